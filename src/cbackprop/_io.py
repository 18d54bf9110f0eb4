"""Saving and loading networks as ``.npz`` archives that hold no pickles.

Loading validates every field before building the network, so a truncated,
corrupted or hostile file ends in ``ValueError`` (or ``OSError`` from the
filesystem) and never runs code.
"""
import json
import os
import tempfile

import numpy as np

from .losses import loss_from_config
from .optimizers import optimizer_from_config

FORMAT = "cbackprop-network"
VERSION = 1


def save_network(net, path):
    weights, biases = net.get_params()
    fields = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, dtype=np.int64),
        "sizes": np.array(net.sizes, dtype=np.int64),
        "activations": np.array(net.activations),
        "dtype": np.array(net.dtype.name),
        "loss": np.array(json.dumps({"name": net.loss_function.name,
                                     "config": net.loss_function.config()})),
        "optimizer": np.array(json.dumps({"name": net.optimizer.name,
                                          "config": net.optimizer.config()})),
    }
    for layer, (w, b) in enumerate(zip(weights, biases)):
        fields[f"W{layer}"] = w
        fields[f"b{layer}"] = b
    _write_atomically(os.fspath(path), fields)


def _write_atomically(path, fields):
    # A crash or error mid-write leaves any existing file at ``path`` intact.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cbackprop-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **fields)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_network(cls, path):
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError:
        raise
    except Exception as exc:  # not an archive, or it asks for a pickle
        raise ValueError(f"{path!r} is not a saved cbackprop network: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is not a saved cbackprop network (a bare .npy array)")
    try:
        with archive:
            spec = _read_fields(archive)
    except ValueError:
        raise
    except Exception as exc:  # truncated or corrupted members
        raise ValueError(f"{path!r} is not a readable cbackprop network: {exc}") from None
    net = cls(spec["sizes"], spec["activations"], loss=spec["loss"], optimizer=spec["optimizer"],
              dtype=spec["dtype"], seed=0)
    net.set_params(spec["weights"], spec["biases"])
    return net


def _read_fields(archive):
    def field(name):
        if name not in archive.files:
            raise ValueError(f"the file is not a saved cbackprop network: field {name!r} is missing")
        return archive[name]

    def text(name):
        value = field(name)
        if value.dtype.kind != "U" or value.ndim != 0:
            raise ValueError(f"field {name!r} must be a string")
        return str(value)

    if text("format") != FORMAT:
        raise ValueError("the file is not a saved cbackprop network (wrong format tag)")
    version = field("version")
    if version.dtype.kind != "i" or version.ndim != 0 or int(version) != VERSION:
        raise ValueError(f"unsupported cbackprop file version {version!r} (this build reads {VERSION})")
    sizes = field("sizes")
    if sizes.dtype.kind != "i" or sizes.ndim != 1 or sizes.size < 2 or (sizes < 1).any():
        raise ValueError(f"field 'sizes' is invalid: {sizes!r}")
    sizes = [int(s) for s in sizes]
    activations = field("activations")
    if activations.dtype.kind != "U" or activations.shape != (len(sizes) - 1,):
        raise ValueError("field 'activations' must hold one name per weight layer")
    dtype = text("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"field 'dtype' is invalid: {dtype!r}")
    weights, biases = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape, out in ((f"W{layer}", (fan_in, fan_out), weights),
                                 (f"b{layer}", (fan_out,), biases)):
            array = field(name)
            if array.dtype != np.dtype(dtype) or array.shape != shape:
                raise ValueError(f"field {name!r} must be {dtype} of shape {shape}, "
                                 f"got {array.dtype} {array.shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"field {name!r} contains NaN or infinity")
            out.append(array)
    return {
        "sizes": sizes,
        "activations": [str(a) for a in activations],
        "dtype": dtype,
        "loss": _from_json(text("loss"), loss_from_config, "loss"),
        "optimizer": _from_json(text("optimizer"), optimizer_from_config, "optimizer"),
        "weights": weights,
        "biases": biases,
    }


def _from_json(text, build, what):
    try:
        spec = json.loads(text)
        if not isinstance(spec, dict) or set(spec) != {"name", "config"}:
            raise ValueError("expected exactly the keys 'name' and 'config'")
        if not isinstance(spec["config"], dict):
            raise ValueError("'config' must be an object")
        return build(spec["name"], spec["config"])
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise ValueError(f"field {what!r} is invalid: {exc}") from None
