"""Saving and loading networks as ``.npz`` archives that hold no pickles.

Loading validates every field before building the network, so a truncated,
corrupted or hostile file ends in ``ValueError`` (or ``OSError`` from the
filesystem) and never runs code. Each member's ``.npy`` header (dtype and
shape) is read and checked first, against the architecture for the
parameters and against small bounds for the other fields, and only then is
its data decompressed, never past what the header declares: a small file
cannot make ``load`` inflate gigabytes before an error. Members must be
stored or deflated (zipfile inflates bzip2 and LZMA ones whole).
"""
import io
import json
import math
import os
import stat
import tempfile
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from .losses import loss_from_config
from .optimizers import optimizer_from_config

FORMAT = "cbackprop-network"
VERSION = 1
# Fields other than the parameters are small: a string of at most this many
# characters (the loss and optimizer JSON), at most this many layers.
MAX_TEXT_CHARS = 1 << 16
MAX_LAYERS = 1 << 16
# An activation's name (the longest registered is a dozen characters): the
# names of MAX_LAYERS layers then hold at most 16 MiB, where names of
# MAX_TEXT_CHARS each would let a small file inflate 16 GiB.
MAX_NAME_CHARS = 64
# The most bytes of .npy header read (NumPy's own limit on what it parses): a
# version 2.0 header may declare up to 4 GiB, which NumPy reads whole before
# its limit refuses it.
MAX_HEADER_BYTES = 10_000


def save_network(net, path):
    with net._lock:   # parameters and settings of one moment (another thread may train)
        fields = _fields_of(net)
    # A bytes path becomes text (tempfile cannot mix the two).
    path = os.fsdecode(os.fspath(path))
    if _is_special_file(path):
        # A FIFO, a device, a pipe (/dev/stdout, whose link does not resolve
        # to a path): written through, as open() would; a file renamed over
        # it would take its place (as root, /dev/null's).
        with open(path, "wb") as f:
            np.savez(f, **fields)
        return
    # A symbolic link becomes its target, so that the atomic replace updates
    # the file it points to.
    _write_atomically(os.path.realpath(path), fields)


def _fields_of(net):
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
    return fields


def _is_special_file(path):
    try:
        mode = os.stat(path).st_mode   # through symbolic links
    except OSError:   # absent (or unreadable): the atomic write creates or reports it
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _write_atomically(path, fields):
    # A crash or error mid-write leaves any existing file at ``path`` intact.
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cbackprop-", suffix=".tmp")
    except OSError as exc:   # named as the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **fields)
        os.chmod(tmp, _mode_for(path))   # mkstemp's is 0o600
        try:
            os.replace(tmp, path)
        except OSError as exc:   # (a directory at ``path``) as above
            raise type(exc)(exc.errno, exc.strerror, path) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _mode_for(path):
    """The permission bits ``open(path, "w")`` would leave: an existing file's
    own read, write and execute bits (a private model file stays private;
    not its setuid, setgid or sticky bits), else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask():
    """The process's umask, read without setting it where Linux shows it:
    os.umask can only read it by setting another, for a moment in which a
    file another thread creates would take that one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)   # the safer of the two while it lasts
    os.umask(umask)
    return umask


def load_network(cls, path):
    path = os.fsdecode(os.fspath(path))
    try:
        archive = zipfile.ZipFile(path)
    except OSError:
        raise
    except Exception as exc:  # not a zip archive (an .npy, a pickle, noise, a cut file)
        raise ValueError(f"{path!r} is not a saved cbackprop network ({exc})") from None
    try:
        with archive:
            spec = _read_fields(_Archive(archive))
    except ValueError as exc:   # said of the fields: the file is named here
        raise ValueError(f"{path!r}: {exc}") from None
    except Exception as exc:  # truncated or corrupted members
        raise ValueError(f"{path!r} is not a readable cbackprop network: {exc}") from None
    try:   # fields valid each alone that the network refuses together
        net = cls(spec["sizes"], spec["activations"], loss=spec["loss"],
                  optimizer=spec["optimizer"], dtype=spec["dtype"], seed=0)
        net.set_params(spec["weights"], spec["biases"])
    except ValueError as exc:
        raise ValueError(f"{path!r}: {exc}") from None
    return net


class _Archive:
    """The ``.npy`` members of an ``.npz``, each read only once its header passes a check."""

    def __init__(self, zip_file):
        self._zip = zip_file
        self.files = {name[:-4] for name in zip_file.namelist() if name.endswith(".npy")}

    def read(self, name, check):
        """Member ``name`` as an array. ``check(dtype, shape)`` sees its header
        first and raises ValueError to refuse it; the data is then read up to
        the size the header declares, and a member holding more is refused."""
        info = self._zip.getinfo(name + ".npy")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # zipfile inflates a bzip2 or LZMA member's chunks whole: reading
            # the header of a 1 kB one inflated 256 MiB of names.
            raise ValueError(f"field {name!r} is compressed by zip method {info.compress_type}: "
                             "a saved network's fields are stored or deflated (np.savez, "
                             "np.savez_compressed)")
        with self._zip.open(info) as member:
            try:
                shape, fortran_order, dtype = _read_npy_header(member)
            except ValueError as exc:
                raise ValueError(f"field {name!r} has no readable .npy header: {exc}") from None
            if dtype.hasobject:
                raise ValueError(f"field {name!r} holds Python objects (which would need a pickle)")
            check(dtype, shape)
            size = math.prod(shape) * dtype.itemsize
            if info.file_size != member.tell() + size:
                raise ValueError(f"field {name!r} holds {info.file_size - member.tell()} bytes of "
                                 f"data where its header declares {size}")
            data = member.read(size)
            if len(data) != size or member.read(1):
                raise ValueError(f"field {name!r} does not hold the data its header declares")
        array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
        return array.copy()


def _read_npy_header(member):
    """``(shape, fortran_order, dtype)`` of the .npy stream ``member``, its
    header's length checked before the header is read."""
    version = npy_format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    length_bytes = member.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(length_bytes, "little")
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"its header declares {length} bytes, more than the "
                         f"{MAX_HEADER_BYTES} a saved network's ever takes")
    header = io.BytesIO(length_bytes + member.read(length))
    if version == (1, 0):
        return npy_format.read_array_header_1_0(header)
    return npy_format.read_array_header_2_0(header)


def _read_fields(archive):
    def field(name, check):
        if name not in archive.files:
            raise ValueError(f"the file is not a saved cbackprop network: field {name!r} is missing")
        return archive.read(name, check)

    def text(name):
        def check(dtype, shape):
            if dtype.kind != "U" or shape != () or dtype.itemsize > 4 * MAX_TEXT_CHARS:
                raise ValueError(f"field {name!r} must be a string of at most {MAX_TEXT_CHARS} "
                                 f"characters")
        return str(field(name, check))

    def integers(name, max_length=None):
        def check(dtype, shape):
            if dtype.kind != "i" or dtype.itemsize > 8 or len(shape) != (0 if max_length is None else 1) \
                    or (max_length is not None and shape[0] > max_length):
                raise ValueError(f"field {name!r} is invalid: {dtype} of shape {shape}")
        return field(name, check)

    if text("format") != FORMAT:
        raise ValueError("the file is not a saved cbackprop network (wrong format tag)")
    version = integers("version")
    if int(version) != VERSION:
        raise ValueError(f"unsupported cbackprop file version {int(version)} "
                         f"(this build reads {VERSION})")
    sizes = integers("sizes", max_length=MAX_LAYERS + 1)
    if sizes.size < 2 or (sizes < 1).any():
        raise ValueError(f"field 'sizes' is invalid: {sizes!r}")
    sizes = [int(s) for s in sizes]

    def names(dtype, shape):
        if dtype.kind != "U" or shape != (len(sizes) - 1,) or dtype.itemsize > 4 * MAX_NAME_CHARS:
            raise ValueError(f"field 'activations' must hold one name of at most {MAX_NAME_CHARS} "
                             f"characters per weight layer")
    activations = field("activations", names)
    dtype = text("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"field 'dtype' is invalid: {dtype!r}")
    # The small fields before the parameters: a broken one is refused before
    # any weight is inflated.
    loss = _from_json(text("loss"), loss_from_config, "loss")
    optimizer = _from_json(text("optimizer"), optimizer_from_config, "optimizer")
    weights, biases = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for name, shape, out in ((f"W{layer}", (fan_in, fan_out), weights),
                                 (f"b{layer}", (fan_out,), biases)):
            def parameter(declared_dtype, declared_shape, name=name, shape=shape):
                # Either byte order (a file written on a big-endian machine)
                if declared_dtype.newbyteorder("=") != np.dtype(dtype) or declared_shape != shape:
                    raise ValueError(f"field {name!r} must be {dtype} of shape {shape}, "
                                     f"got {declared_dtype} {declared_shape}")
            array = field(name, parameter)
            if not np.isfinite(array).all():
                raise ValueError(f"field {name!r} contains NaN or infinity")
            out.append(array.astype(dtype, copy=False))
    return {
        "sizes": sizes,
        "activations": [str(a) for a in activations],
        "dtype": dtype,
        "loss": loss,
        "optimizer": optimizer,
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
