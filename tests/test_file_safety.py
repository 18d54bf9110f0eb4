"""Files: a failing save leaves any existing file intact and no temporary file
behind; a corrupted or hostile file makes ``load`` raise ValueError or
OSError (never another exception, never a crash), or load a valid network."""
import json
import os
import tempfile

import numpy as np
import pytest

import cbackprop as cb
import cbackprop._io as cbio

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}


def make_net(Net=cb.Network, seed=0, **kwargs):
    options = dict(loss="cross_entropy", optimizer=cb.Adam(lr=2e-3, eps=1e-7), dtype="float32")
    options.update(kwargs)
    return Net([5, 6, 4, 3], ["tanh", "relu", "softmax"], seed=seed, **options)


def tree(directory):
    """Every path under ``directory``, relative to it."""
    found = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), directory))
    return found


def assert_same_params(a, b):
    for pa, pb in zip(sum(a.get_params(), []), sum(b.get_params(), []), strict=True):
        assert pa.dtype == pb.dtype and np.array_equal(pa, pb)


def assert_valid_network(net):
    sizes = list(net.sizes)
    assert len(sizes) >= 2 and all(s >= 1 for s in sizes)
    assert len(net.activations) == len(sizes) - 1
    assert np.dtype(net.dtype) in (np.float32, np.float64)
    weights, biases = net.get_params()
    assert len(weights) == len(biases) == len(sizes) - 1
    for layer, (W, b) in enumerate(zip(weights, biases)):
        assert W.shape == (sizes[layer], sizes[layer + 1]) and b.shape == (sizes[layer + 1],)
        assert W.dtype == b.dtype == np.dtype(net.dtype)
        assert np.isfinite(W).all() and np.isfinite(b).all()
    assert net.forward(np.zeros((2, sizes[0]))).shape == (2, sizes[-1])


# --------------------------------------------------------------------------
# (a) a failure in the middle of save
# --------------------------------------------------------------------------


def failing_savez(error):
    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 half of an archive " * 64)  # a partial, broken write
        file.flush()
        raise error
    return savez


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("error", [OSError(28, "No space left on device (simulated)"),
                                   RuntimeError("interrupted (simulated)"),
                                   KeyboardInterrupt()],
                         ids=["OSError", "RuntimeError", "KeyboardInterrupt"])
def test_failed_save_keeps_existing_file(impl, error, tmp_path, monkeypatch):
    Net = IMPLEMENTATIONS[impl]
    old = make_net(Net, seed=1)
    path = tmp_path / "model.npz"
    old.save(path)
    original = path.read_bytes()

    new = make_net(Net, seed=2)  # different parameters: an overwrite would show
    monkeypatch.setattr(cbio.np, "savez", failing_savez(error))
    with pytest.raises(type(error)):
        new.save(path)
    monkeypatch.undo()

    assert tree(tmp_path) == {"model.npz"}, "a temporary file was left behind"
    assert path.read_bytes() == original
    loaded = Net.load(path)
    assert_valid_network(loaded)
    assert_same_params(loaded, old)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_failed_save_without_existing_file_leaves_nothing(impl, tmp_path, monkeypatch):
    Net = IMPLEMENTATIONS[impl]
    monkeypatch.setattr(cbio.np, "savez", failing_savez(OSError(5, "I/O error (simulated)")))
    with pytest.raises(OSError):
        make_net(Net).save(tmp_path / "model.npz")
    monkeypatch.undo()
    assert tree(tmp_path) == set()


def test_failed_save_then_successful_save(tmp_path, monkeypatch):
    """After a failed save, saving again works and replaces the old file."""
    path = tmp_path / "model.npz"
    make_net(seed=1).save(path)
    new = make_net(seed=2)
    monkeypatch.setattr(cbio.np, "savez", failing_savez(OSError("simulated")))
    with pytest.raises(OSError):
        new.save(path)
    monkeypatch.undo()
    new.save(path)
    assert tree(tmp_path) == {"model.npz"}
    assert_same_params(cb.Network.load(path), new)


# --------------------------------------------------------------------------
# (b) fuzzing load with corrupted files
# --------------------------------------------------------------------------


def corrupt(data, rng):
    data = bytearray(data)
    how = int(rng.integers(5))
    if how == 0:  # flip a few random bits
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
    elif how == 1:  # truncate
        data = data[: int(rng.integers(len(data)))]
    elif how == 2:  # overwrite a random range with random bytes
        start = int(rng.integers(len(data)))
        length = int(rng.integers(1, 65))
        data[start : start + length] = rng.bytes(min(length, len(data) - start))
    elif how == 3:  # append garbage
        data += rng.bytes(int(rng.integers(1, 513)))
    else:  # replace single bytes by random values
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
    return bytes(data), ["flip", "truncate", "overwrite", "append", "bytes"][how]


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fuzzed_files_load_cleanly_or_raise(impl, dtype, tmp_path):
    Net = IMPLEMENTATIONS[impl]
    net = make_net(Net, seed=3, dtype=dtype)
    net.train_step(np.random.default_rng(0).standard_normal((8, 5)), np.arange(8) % 3)
    good = tmp_path / "good.npz"
    net.save(good)
    data = good.read_bytes()
    rng = np.random.default_rng([2024, sorted(IMPLEMENTATIONS).index(impl), int(dtype == "float64")])
    outcomes = {"loaded": 0, "ValueError": 0, "OSError": 0}
    bad = tmp_path / "bad.npz"
    for trial in range(150):
        damaged, how = corrupt(data, rng)
        bad.write_bytes(damaged)
        try:
            loaded = Net.load(bad)
        except (ValueError, OSError) as exc:
            outcomes["OSError" if isinstance(exc, OSError) else "ValueError"] += 1
            continue
        except BaseException as exc:  # noqa: BLE001 - any other type is the failure
            pytest.fail(f"trial {trial} ({how}): load raised {type(exc).__name__}: {exc}")
        outcomes["loaded"] += 1
        assert_valid_network(loaded)
    print(outcomes)
    assert outcomes["ValueError"] + outcomes["OSError"] > 0  # the corruptions did bite


# --------------------------------------------------------------------------
# (c) hostile archives written by hand
# --------------------------------------------------------------------------


def saved_fields(tmp_path):
    """The fields of a real saved network, as a dict of arrays."""
    net = cb.Network([3, 4, 2], ["relu", "identity"], loss="mse",
                     optimizer=cb.SGD(lr=0.05, momentum=0.9), dtype="float64", seed=0)
    path = tmp_path / "template.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


LOSS = {"name": "mse", "config": {"scale": 1.0, "reduction": "mean"}}
OPT = {"name": "sgd", "config": {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}}


def with_config(what, base, **changes):
    spec = json.loads(json.dumps(base))
    spec["config"].update(changes)
    return {what: np.array(json.dumps(spec))}


def without(*names):
    return lambda fields: {k: v for k, v in fields.items() if k not in names}


def replace(**new):
    return lambda fields: {**fields, **new}


def modify(name, change):
    def apply(fields):
        fields = dict(fields)
        fields[name] = change(fields[name].copy())
        return fields
    return apply


def set_item(index, value):
    def change(array):
        array[index] = value
        return array
    return change


HOSTILE = {
    # format tag and version
    "wrong format tag": replace(format=np.array("cbackprop-model")),
    "format as bytes": replace(format=np.array(b"cbackprop-network")),
    "format as a list": replace(format=np.array(["cbackprop-network"])),
    "format missing": without("format"),
    "version 2": replace(version=np.array(2)),
    "version 0": replace(version=np.array(0)),
    "version -1": replace(version=np.array(-1)),
    "version as float": replace(version=np.array(1.0)),
    "version as string": replace(version=np.array("1")),
    "version missing": without("version"),
    # sizes
    "sizes disagree with W": replace(sizes=np.array([3, 5, 2])),
    "sizes of another depth": replace(sizes=np.array([3, 4, 4, 2])),
    "sizes too short": replace(sizes=np.array([3])),
    "sizes zero": replace(sizes=np.array([3, 0, 2])),
    "sizes negative": replace(sizes=np.array([3, -4, 2])),
    "sizes as floats": replace(sizes=np.array([3.0, 4.0, 2.0])),
    "sizes 2-D": replace(sizes=np.array([[3, 4, 2]])),
    "sizes huge": replace(sizes=np.array([3, 2**40, 2])),
    "sizes missing": without("sizes"),
    # parameters
    "W float32 in a float64 file": modify("W0", lambda w: w.astype(np.float32)),
    "W as integers": modify("W0", lambda w: w.astype(np.int64)),
    "W as text": replace(W0=np.array("not an array")),
    "W transposed": modify("W1", lambda w: np.ascontiguousarray(w.T)),
    "W with an extra axis": modify("W0", lambda w: w[None]),
    "b as a column": modify("b0", lambda b: b[:, None]),
    "NaN in W": modify("W0", set_item((1, 2), np.nan)),
    "inf in W": modify("W1", set_item((0, 0), np.inf)),
    "-inf in b": modify("b1", set_item(1, -np.inf)),
    "W missing": without("W1"),
    "b missing": without("b0"),
    # activations and dtype
    "activations too long": replace(activations=np.array(["relu", "identity", "identity"])),
    "activations too short": replace(activations=np.array(["relu"])),
    "unknown activation": replace(activations=np.array(["swish", "identity"])),
    "softmax in a hidden layer": replace(activations=np.array(["softmax", "identity"])),
    "activations as numbers": replace(activations=np.array([1, 2])),
    "activation name too long": replace(activations=np.array(["relu" + " " * 61, "identity"])),
    "activations missing": without("activations"),
    "dtype float16": replace(dtype=np.array("float16")),
    "dtype int64": replace(dtype=np.array("int64")),
    "dtype disagrees with W": replace(dtype=np.array("float32")),
    # loss JSON
    "loss malformed JSON": replace(loss=np.array('{"name": "mse", "config": {')),
    "loss not JSON": replace(loss=np.array("mse")),
    "loss JSON null": replace(loss=np.array("null")),
    "loss JSON list": replace(loss=np.array('["mse", {}]')),
    "loss JSON deeply nested": replace(loss=np.array("[" * 100000 + "]" * 100000)),
    "loss unknown name": replace(loss=np.array(json.dumps({"name": "hinge", "config": {}}))),
    "loss unknown config key": lambda f: {**f, **with_config("loss", LOSS, gamma=2.0)},
    "loss unknown top-level key": replace(loss=np.array(json.dumps({**LOSS, "weights": [1, 2]}))),
    "loss config missing": replace(loss=np.array(json.dumps({"name": "mse"}))),
    "loss config a list": replace(loss=np.array(json.dumps({"name": "mse", "config": [1.0]}))),
    "loss scale -1": lambda f: {**f, **with_config("loss", LOSS, scale=-1.0)},
    "loss scale NaN": lambda f: {**f, **with_config("loss", LOSS, scale=float("nan"))},
    "loss reduction median": lambda f: {**f, **with_config("loss", LOSS, reduction="median")},
    "loss bce on an identity output": replace(loss=np.array(json.dumps({"name": "bce", "config": {}}))),
    "loss missing": without("loss"),
    # optimizer JSON
    "optimizer malformed JSON": replace(optimizer=np.array('{"name": "sgd", "config": {"lr": }')),
    "optimizer JSON a number": replace(optimizer=np.array("3")),
    "optimizer JSON deeply nested": replace(optimizer=np.array('{"a":' * 50000 + "1" + "}" * 50000)),
    "optimizer unknown name": replace(optimizer=np.array(json.dumps({"name": "adagrad", "config": {}}))),
    "optimizer unknown config key": lambda f: {**f, **with_config("optimizer", OPT, amsgrad=True)},
    "optimizer unknown top-level key": replace(optimizer=np.array(json.dumps({**OPT, "state": [0]}))),
    "optimizer lr -1": lambda f: {**f, **with_config("optimizer", OPT, lr=-1)},
    "optimizer lr NaN": lambda f: {**f, **with_config("optimizer", OPT, lr=float("nan"))},
    "optimizer lr Infinity": lambda f: {**f, **with_config("optimizer", OPT, lr=float("inf"))},
    "optimizer lr a string": lambda f: {**f, **with_config("optimizer", OPT, lr="0.1")},
    "optimizer momentum 1": lambda f: {**f, **with_config("optimizer", OPT, momentum=1.0)},
    "optimizer nesterov 'yes'": lambda f: {**f, **with_config("optimizer", OPT, nesterov="yes")},
    "optimizer adam settings under sgd": replace(optimizer=np.array(json.dumps(
        {"name": "sgd", "config": {"lr": 0.1, "beta1": 0.9}}))),
    "optimizer adam eps 0": replace(optimizer=np.array(json.dumps(
        {"name": "adam", "config": {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 0.0, "weight_decay": 0}}))),
    "optimizer adam beta1 1.5": replace(optimizer=np.array(json.dumps(
        {"name": "adam", "config": {"lr": 0.1, "beta1": 1.5, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0}}))),
    "optimizer missing": without("optimizer"),
}


def write_archive(path, fields):
    with open(path, "wb") as f:
        np.savez(f, **fields)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_hand_written_valid_archive_loads(impl, tmp_path):
    """The baseline of the hostile cases: the untouched fields, re-written by hand, load."""
    Net = IMPLEMENTATIONS[impl]
    path = tmp_path / "by_hand.npz"
    write_archive(path, saved_fields(tmp_path))
    net = Net.load(path)
    assert_valid_network(net)
    assert net.sizes == [3, 4, 2] and net.activations == ["relu", "identity"]
    assert net.optimizer == cb.SGD(lr=0.05, momentum=0.9)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_raises_value_error(impl, case, tmp_path):
    Net = IMPLEMENTATIONS[impl]
    path = tmp_path / "hostile.npz"
    write_archive(path, HOSTILE[case](saved_fields(tmp_path)))
    with pytest.raises(ValueError, match="hostile.npz") as error:   # names the file
        Net.load(path)
    if case in ("sizes zero", "sizes negative", "sizes too short", "sizes as floats",
                "sizes 2-D"):
        assert "'sizes'" in str(error.value)   # and the field, not a later consequence
    if case == "version 2":   # the number, not the array holding it
        assert "file version 2 (this build reads 1)" in str(error.value)
    if case == "activation name too long":
        assert "at most 64 characters" in str(error.value)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_big_endian_parameters_load(impl, tmp_path):
    """Parameters written in the other byte order (on a big-endian machine)
    load as the same values, in the network's native dtype."""
    Net = IMPLEMENTATIONS[impl]
    fields = saved_fields(tmp_path)
    swapped = {name: (value.astype(value.dtype.newbyteorder(">"))
                      if name[0] in "Wb" and name[1:].isdigit() else value)
               for name, value in fields.items()}
    path = tmp_path / "big_endian.npz"
    write_archive(path, swapped)
    net = Net.load(path)
    weights, biases = net.get_params()
    for layer, (w, b) in enumerate(zip(weights, biases)):
        assert w.dtype == np.float64 and w.dtype.isnative
        np.testing.assert_array_equal(w, fields[f"W{layer}"])
        np.testing.assert_array_equal(b, fields[f"b{layer}"])


# --------------------------------------------------------------------------
# (d) saving where it cannot be saved
# --------------------------------------------------------------------------


def stray_temp_files(before, after):
    return sorted(name for name in after - before
                  if "cbackprop" in name or name.endswith(".tmp") or name.startswith("tmp"))


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("where", ["missing directory", "missing nested directory", "parent is a file",
                                   "path is a directory"])
def test_unsavable_path_raises_oserror_and_leaves_nothing(impl, where, tmp_path, monkeypatch):
    Net = IMPLEMENTATIONS[impl]
    work = tmp_path / "work"
    work.mkdir()
    (work / "a_file").write_bytes(b"x")
    (work / "a_dir").mkdir()
    monkeypatch.chdir(work)
    expected = OSError
    if where == "missing directory":
        path, expected = work / "no_such_dir" / "model.npz", FileNotFoundError
    elif where == "missing nested directory":
        path, expected = "no_such_dir/deeper/model.npz", FileNotFoundError  # relative to cwd
    elif where == "parent is a file":
        path = work / "a_file" / "model.npz"
    else:
        path = work / "a_dir"
    system_tmp = tempfile.gettempdir()
    before_tree, before_tmp = tree(tmp_path), set(os.listdir(system_tmp))

    with pytest.raises(expected) as refused:
        make_net(Net).save(path)

    # Named as the file asked for, never as the temporary one beside it.
    assert refused.value.filename == os.path.realpath(path)
    assert ".cbackprop-" not in str(refused.value)
    assert tree(tmp_path) == before_tree, "save left files behind"
    assert (work / "a_file").read_bytes() == b"x"
    assert (work / "a_dir").is_dir() and not any((work / "a_dir").iterdir())
    assert stray_temp_files(before_tmp, set(os.listdir(system_tmp))) == []


# --------------------------------------------------------------------------
# (e) archives that would inflate far past their size
# --------------------------------------------------------------------------

BOMB_ELEMENTS = 16_000_000   # 128 MB of float64 zeros, ~125 KB deflated
BOMB_HEADER_BYTES = 128 << 20   # a version 2.0 .npy header of 128 MB of spaces


def write_member(zip_file, name, header_array_like, data_bytes, extra_zero_bytes=0):
    """An .npy member written in chunks: a header describing ``header_array_like``
    (dtype and shape only), then ``data_bytes``, then ``extra_zero_bytes`` zeros."""
    import io
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(
        header_array_like))
    with zip_file.open(name + ".npy", "w", force_zip64=True) as member:
        member.write(header.getvalue())   # the magic string and the header
        member.write(data_bytes)
        chunk = bytes(1 << 20)
        for start in range(0, extra_zero_bytes, len(chunk)):
            member.write(chunk[: min(len(chunk), extra_zero_bytes - start)])


def write_header_bomb(zip_file, name):
    """An .npy (version 2.0) member whose header is BOMB_HEADER_BYTES long:
    NumPy reads a header whole before its size limit refuses it."""
    with zip_file.open(name + ".npy", "w", force_zip64=True) as member:
        member.write(np.lib.format.magic(2, 0) + BOMB_HEADER_BYTES.to_bytes(4, "little"))
        chunk = b" " * (1 << 20)
        for _ in range(BOMB_HEADER_BYTES // len(chunk)):
            member.write(chunk)


def write_bomb(path, fields, bomb):
    """The fields of a real network, deflated, with W0 replaced by ``bomb``:
    'declares' (a header asking for BOMB_ELEMENTS float64), 'inflates'
    (W0's own header and data, then BOMB_ELEMENTS * 8 bytes more) or
    'header' (a header of BOMB_HEADER_BYTES)."""
    import zipfile
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in fields.items():
            if name != "W0":
                write_member(archive, name, value, np.ascontiguousarray(value).tobytes())
        W0 = np.ascontiguousarray(fields["W0"])
        if bomb == "declares":
            like = np.lib.stride_tricks.as_strided(np.zeros(1), (BOMB_ELEMENTS,), (0,))
            write_member(archive, "W0", like, b"", 8 * BOMB_ELEMENTS)
        elif bomb == "header":
            write_header_bomb(archive, "W0")
        else:
            write_member(archive, "W0", W0, W0.tobytes(), 8 * BOMB_ELEMENTS)


def peak_rss_mb_of_load(path, legit):
    """Peak resident memory (MB) of a fresh process that imports cbackprop and
    loads ``path``: its VmHWM, which (unlike ru_maxrss) starts afresh at exec."""
    import subprocess
    import sys
    code = ("import re, sys, cbackprop as cb\n"
            "try:\n    cb.Network.load(sys.argv[1])\n"
            "except ValueError as exc:\n    print('refused:', exc)\n"
            "else:\n    print('loaded')\n"
            "status = open('/proc/self/status').read()\n"
            "print(int(re.search(r'VmHWM:\\s*(\\d+)', status).group(1)) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == ("loaded" if legit else out[0]) and (legit or out[0].startswith("refused:")), out
    return float(out[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from Linux's /proc")
@pytest.mark.parametrize("bomb", ["declares", "inflates", "header"])
def test_a_member_that_would_inflate_is_refused_before_its_data(bomb, tmp_path):
    """A small archive whose W0 header asks for 128 MB, whose W0 member holds
    128 MB more than its header declares, or whose W0 header is itself 128 MB
    long, is refused (ValueError) with the peak memory of loading it within
    a few MB of loading the real file."""
    fields = saved_fields(tmp_path)
    legit, hostile = tmp_path / "legit.npz", tmp_path / "bomb.npz"
    write_archive(legit, fields)
    write_bomb(hostile, fields, bomb)
    assert hostile.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="W0"):
        cb.Network.load(hostile)
    with pytest.raises(ValueError, match="W0"):
        cb.reference.Network.load(hostile)
    assert peak_rss_mb_of_load(hostile, legit=False) < peak_rss_mb_of_load(legit, legit=True) + 8


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from Linux's /proc")
@pytest.mark.parametrize("broken", ["loss", "optimizer"])
def test_a_broken_small_field_is_refused_before_the_parameters_inflate(broken, tmp_path):
    """An architecture of 128 MB of (deflated) zero weights with a broken loss
    or optimizer field is refused naming that field, with the peak
    memory of loading it within a few MB of loading a small real file: the
    weights used to be inflated before the loss and optimizer were read."""
    import zipfile
    fields = saved_fields(tmp_path)
    legit, hostile = tmp_path / "legit.npz", tmp_path / "broken.npz"
    write_archive(legit, fields)
    n_in = 4000
    fields.update(sizes=np.array([n_in, 4000, 2]), **{broken: np.array("not valid")})
    with zipfile.ZipFile(hostile, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in fields.items():
            if name != "W0":
                write_member(archive, name, value, np.ascontiguousarray(value).tobytes())
        zeros = np.lib.stride_tricks.as_strided(np.zeros(1), (n_in, 4000), (0, 0))
        write_member(archive, "W0", zeros, b"", 8 * n_in * 4000)
    assert hostile.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match=f"'{broken}'"):
        cb.Network.load(hostile)
    assert peak_rss_mb_of_load(hostile, legit=False) < peak_rss_mb_of_load(legit, legit=True) + 8


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from Linux's /proc")
@pytest.mark.parametrize("missing", [8, 1 << 20])
def test_a_member_short_of_its_declared_data_is_refused_before_it_inflates(missing, tmp_path):
    """W0's header declares the architecture's 128 MB and its member holds
    ``missing`` bytes less (deflated zeros: a file of about 125 KB): refused
    from the member's size in the zip directory, with the peak memory of
    loading a small real file; it used to be found short only after all but
    those bytes were inflated (a mutation review: 413 MB and 0.7 s)."""
    import zipfile
    fields = saved_fields(tmp_path)
    legit, hostile = tmp_path / "legit.npz", tmp_path / "short.npz"
    write_archive(legit, fields)
    n_in = BOMB_ELEMENTS // 4000
    fields.update(sizes=np.array([n_in, 4000, 2]))
    with zipfile.ZipFile(hostile, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in fields.items():
            if name != "W0":
                write_member(archive, name, value, np.ascontiguousarray(value).tobytes())
        declared = np.lib.stride_tricks.as_strided(np.zeros(1), (n_in, 4000), (0, 0))
        write_member(archive, "W0", declared, b"", 8 * BOMB_ELEMENTS - missing)
    assert hostile.stat().st_size < 2_000_000
    for Net in (cb.Network, cb.reference.Network):
        with pytest.raises(ValueError, match=f"field 'W0' holds {8 * BOMB_ELEMENTS - missing} "
                                             f"bytes of data where its header declares"):
            Net.load(hostile)
    assert peak_rss_mb_of_load(hostile, legit=False) < peak_rss_mb_of_load(legit, legit=True) + 8


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory read from Linux's /proc")
@pytest.mark.parametrize("method", ["ZIP_BZIP2", "ZIP_LZMA"])
def test_a_bzip2_or_lzma_member_is_refused_before_it_inflates(method, tmp_path):
    """zipfile inflates a bzip2 or LZMA member's chunks whole, header check
    or not: activation names of 64 x 256 KiB of zeros in a file of about a
    kilobyte took 32 MiB to refuse (1,024 of them, 546 MiB). Such members
    are refused unread; a real network so compressed is refused too."""
    import zipfile
    compression = getattr(zipfile, method)
    fields = saved_fields(tmp_path)
    legit, recompressed, bomb = (tmp_path / name for name in ("legit.npz", "re.npz", "bomb.npz"))
    write_archive(legit, fields)
    with zipfile.ZipFile(recompressed, "w", compression) as archive:
        for name, value in fields.items():
            write_member(archive, name, value, np.ascontiguousarray(value).tobytes())
    with pytest.raises(ValueError, match=f"zip method {compression}"):
        cb.Network.load(recompressed)
    names = np.lib.stride_tricks.as_strided(np.zeros(1, dtype="<U65536"), (64,), (0,))
    with zipfile.ZipFile(bomb, "w", compression) as archive:
        for name, value in fields.items():
            if name == "activations":
                write_member(archive, name, names, b"", names.size * names.itemsize)
            else:
                write_member(archive, name, value, np.ascontiguousarray(value).tobytes())
    assert bomb.stat().st_size < 100_000
    assert peak_rss_mb_of_load(bomb, legit=False) < peak_rss_mb_of_load(legit, legit=True) + 8


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_refusals_never_advise_allow_pickle(impl, tmp_path):
    """A pickle, an object .npy and an .npz with an object member are refused
    without repeating NumPy's advice to pass allow_pickle=True."""
    import pickle
    Net = IMPLEMENTATIONS[impl]
    objects = np.empty(2, dtype=object)
    files = {"net.pkl": pickle.dumps({"W0": [1, 2]}), "net.npy": None, "net.npz": None,
             "long_header.npz": None}
    np.save(tmp_path / "net.npy", objects, allow_pickle=True)
    fields = saved_fields(tmp_path)
    np.savez(tmp_path / "net.npz", **{**fields, "W0": objects})
    (tmp_path / "net.pkl").write_bytes(files["net.pkl"])
    # W0 with a version 1.0 header of 20,000 bytes: valid .npy, past the
    # length NumPy parses (its refusal advised allow_pickle).
    import zipfile
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }" + " " * 20_000 + "\n"
    with zipfile.ZipFile(tmp_path / "long_header.npz", "w") as archive:
        for name, value in fields.items():
            if name != "W0":
                with archive.open(name + ".npy", "w") as member:
                    np.lib.format.write_array(member, value)
        archive.writestr("W0.npy", np.lib.format.magic(1, 0) + len(header).to_bytes(2, "little")
                         + header.encode("latin1") + bytes(96))
    for name in files:
        with pytest.raises(ValueError) as refused:
            Net.load(tmp_path / name)
        assert "allow_pickle" not in str(refused.value), (name, str(refused.value))


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_bytes_and_path_like_paths_save_and_load(impl, tmp_path):
    Net = IMPLEMENTATIONS[impl]
    net = make_net(Net, seed=4)
    for path in (os.fsencode(tmp_path / "bytes.npz"), tmp_path / "pathlib.npz", str(tmp_path / "str.npz")):
        net.save(path)
        assert_same_params(net, Net.load(path))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_saving_onto_a_symlink_writes_its_target_and_keeps_the_link(impl, tmp_path):
    """As ``open(link, "w")`` would: the file the link points to is replaced
    (atomically), the link itself stays a link."""
    Net = IMPLEMENTATIONS[impl]
    target, link = tmp_path / "models" / "v1.npz", tmp_path / "current.npz"
    target.parent.mkdir()
    make_net(Net, seed=1).save(target)
    os.symlink(target, link)
    newer = make_net(Net, seed=2)
    newer.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert_same_params(newer, Net.load(target))
    assert_same_params(newer, Net.load(link))
    assert sorted(os.listdir(target.parent)) == ["v1.npz"]   # no temporary file left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_saving_onto_a_fifo_writes_through_it(impl, tmp_path):
    """As ``open(fifo, "w")`` would: the archive goes to the pipe's reader and
    the pipe stays a pipe. A file renamed over it took its place (and, run
    as root, would have replaced /dev/null or the file behind /dev/stdout)."""
    import stat
    import threading
    Net = IMPLEMENTATIONS[impl]
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    net = make_net(Net, seed=3)
    net.save(fifo)
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    copy = tmp_path / "received.npz"
    copy.write_bytes(received[0])
    assert_same_params(net, Net.load(copy))
    assert sorted(os.listdir(tmp_path)) == ["pipe.npz", "received.npz"]


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="/dev/stdout")
def test_saving_onto_dev_stdout_writes_into_the_pipe(tmp_path):
    """/dev/stdout on a pipe links to no path: resolved first, the save failed
    (FileNotFoundError, '/proc/PID/fd/pipe:[N]')."""
    import subprocess
    import sys
    code = ("import cbackprop as cb\n"
            "cb.Network([3, 2], ['relu'], seed=4).save('/dev/stdout')\n")
    archive = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                             timeout=120).stdout
    (tmp_path / "piped.npz").write_bytes(archive)
    assert_same_params(cb.Network.load(tmp_path / "piped.npz"),
                       cb.Network([3, 2], ["relu"], seed=4))


def test_help_describes_the_constructor_arguments():
    import pydoc
    text = pydoc.render_doc(cb.Network, renderer=pydoc.plaintext)
    for argument in ("sizes", "activations", "loss", "optimizer", "dtype", "init", "seed"):
        assert f"``{argument}``" in text, argument


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_saving_keeps_a_files_permissions(impl, tmp_path):
    """As ``open(path, "w")`` would: a new file takes 0o666 less the umask,
    and saving over a file keeps its permission bits (a private model file
    stays private). The file written and renamed over it came out 0o644."""
    import stat
    Net = IMPLEMENTATIONS[impl]
    path = tmp_path / "model.npz"
    umask = os.umask(0o027)
    try:
        make_net(Net, seed=1).save(path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for mode in (0o600, 0o604, 0o660, 0o4755):
        path.chmod(mode)
        make_net(Net, seed=2).save(path)
        assert stat.S_IMODE(path.stat().st_mode) == mode & 0o777
        assert_same_params(Net.load(path), make_net(Net, seed=2))
