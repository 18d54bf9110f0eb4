"""save/load round-trips a network, across implementations, and refuses
anything that is not a saved network without ever unpickling it."""
import os

import numpy as np
import pytest

import cbackprop as cb

IMPLEMENTATIONS = [cb.Network, cb.reference.Network]

OPTIMIZERS = {
    "sgd": lambda: cb.SGD(lr=0.05),
    "sgd-nesterov-decay": lambda: cb.SGD(lr=0.02, momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": lambda: cb.Adam(lr=3e-3, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=1e-4),
    "rmsprop": lambda: cb.RMSprop(lr=3e-3, alpha=0.9, eps=1e-7, momentum=0.5, weight_decay=1e-4),
}

# name -> (sizes, activations, loss factory, target maker)
ARCHITECTURES = {
    "mse": ([3, 4, 2], ["relu", "identity"], lambda: "mse", lambda rng, m: rng.normal(size=(m, 2))),
    "mse-sum": ([3, 5, 4, 2], ["tanh", "leaky_relu", "sigmoid"], lambda: cb.MSE(scale=0.5, reduction="sum"),
                lambda rng, m: rng.uniform(size=(m, 2))),
    "bce": ([3, 4, 2], ["sigmoid", "sigmoid"], lambda: cb.BCE(), lambda rng, m: rng.uniform(size=(m, 2))),
    "cross_entropy": ([3, 6, 3], ["linear", "softmax"], lambda: "cross_entropy",
                      lambda rng, m: rng.integers(0, 3, size=m)),
    "gelu-silu": ([3, 5, 4, 2], ["gelu", "silu", "gelu_tanh"], lambda: "mse",
                  lambda rng, m: rng.normal(size=(m, 2))),
}

OPT_FIELDS = {cb.SGD: ("lr", "momentum", "nesterov", "weight_decay"),
              cb.Adam: ("lr", "beta1", "beta2", "eps", "weight_decay"),
              cb.RMSprop: ("lr", "alpha", "eps", "momentum", "weight_decay")}


def build(Net, arch, optimizer, dtype, rng):
    sizes, activations, loss, targets = ARCHITECTURES[arch]
    net = Net(sizes, activations, loss=loss(), optimizer=OPTIMIZERS[optimizer](), dtype=dtype, seed=11)
    X = rng.normal(size=(8, sizes[0]))
    Y = targets(rng, 8)
    for _ in range(3):  # move away from the seeded initialisation
        net.train_step(X, Y)
    return net, X, Y


def assert_same_network(a, b):
    """Architecture, dtype, parameters (bit-exact), loss settings and optimizer settings."""
    assert list(a.sizes) == list(b.sizes)
    assert list(a.activations) == list(b.activations)
    assert np.dtype(a.dtype) == np.dtype(b.dtype)
    for pa, pb in zip(sum(a.get_params(), []), sum(b.get_params(), []), strict=True):
        assert pa.dtype == pb.dtype == np.dtype(a.dtype)
        assert pa.shape == pb.shape
        np.testing.assert_array_equal(pa, pb)
    assert type(a.loss_function) is type(b.loss_function)
    if isinstance(a.loss_function, cb.MSE):
        assert a.loss_function.scale == b.loss_function.scale
        assert a.loss_function.reduction == b.loss_function.reduction
    assert type(a.optimizer) is type(b.optimizer)
    for field in OPT_FIELDS[type(a.optimizer)]:
        assert getattr(a.optimizer, field) == getattr(b.optimizer, field), field


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_round_trip(Net, dtype, arch, optimizer, rng, tmp_path):
    """load(save(net)) has the same architecture, dtype, parameters, loss and optimizer."""
    net, X, Y = build(Net, arch, optimizer, dtype, rng)
    path = tmp_path / "model.cbp"
    net.save(path)
    assert path.exists(), "save(path) must write exactly to path"
    loaded = Net.load(path)
    assert type(loaded) is Net
    assert_same_network(net, loaded)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    assert loaded.loss(X, Y) == net.loss(X, Y)


def test_save_accepts_str_path_and_writes_no_extra_extension(Net, rng, tmp_path):
    net, _, _ = build(Net, "mse", "sgd", "float64", rng)
    path = str(tmp_path / "plain_name")
    net.save(path)
    assert os.listdir(tmp_path) == ["plain_name"]
    assert_same_network(net, Net.load(path))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_training_continues_identically(Net, dtype, arch, rng, tmp_path):
    """With plain SGD, a loaded net takes exactly the same next steps as the original."""
    net, X, Y = build(Net, arch, "sgd", dtype, rng)
    path = tmp_path / "model.cbp"
    net.save(path)
    loaded = Net.load(path)
    for _ in range(3):
        assert loaded.train_step(X, Y) == net.train_step(X, Y)
    for pa, pb in zip(sum(net.get_params(), []), sum(loaded.get_params(), [])):
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("direction", ["compiled->reference", "reference->compiled"])
def test_load_file_of_the_other_implementation(dtype, direction, rng, tmp_path):
    """A file saved by one implementation loads in the other, with identical settings and parameters."""
    Saver, Loader = IMPLEMENTATIONS if direction.startswith("compiled") else IMPLEMENTATIONS[::-1]
    net, X, Y = build(Saver, "mse-sum", "adam", dtype, rng)
    path = tmp_path / "model.cbp"
    net.save(path)
    loaded = Loader.load(path)
    assert type(loaded) is Loader
    assert_same_network(net, loaded)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loaded.forward(X), net.forward(X), **tol)


# --------------------------------------------------------------------------
# Untrusted files: never unpickled, always a clean exception
# --------------------------------------------------------------------------


class LeavesAMark:
    """Unpickling this object creates a directory: evidence that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def armed_npz(path, marker, template=None):
    """An .npz whose every array is a pickled object array; keys copied from a real save if possible."""
    keys = ["weights", "biases", "config"]
    if template is not None:
        try:
            with np.load(template, allow_pickle=False) as real:
                keys = list(real.keys()) or keys
        except Exception:  # the save format is not npz: use generic names
            pass
    evil = np.empty(1, dtype=object)
    evil[0] = LeavesAMark(marker)
    with open(path, "wb") as f:
        np.savez(f, **{key: evil for key in keys})


def test_pickled_npz_is_refused_without_running_code(Net, rng, tmp_path):
    """An .npz holding pickled object arrays raises ValueError, and loading runs none of its code."""
    net, _, _ = build(Net, "mse", "sgd", "float64", rng)
    real = tmp_path / "real.npz"
    net.save(real)
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.npz"
    armed_npz(evil, marker, template=real)

    with pytest.raises(ValueError):
        Net.load(evil)
    assert not marker.exists(), "Network.load unpickled an untrusted file"

    # The file really is armed: unpickling it does run code.
    with np.load(evil, allow_pickle=True) as data:
        data[data.files[0]]
    assert marker.exists()


def test_pickled_npy_and_raw_pickle_are_refused(Net, tmp_path):
    """A bare pickle file and an object .npy are not saved networks: refused, no code run."""
    import pickle

    marker = tmp_path / "code_ran"
    raw = tmp_path / "net.pkl"
    raw.write_bytes(pickle.dumps(LeavesAMark(marker)))
    npy = tmp_path / "net.npy"
    evil = np.empty(1, dtype=object)
    evil[0] = LeavesAMark(marker)
    np.save(npy, evil, allow_pickle=True)
    for path in (raw, npy):
        with pytest.raises((ValueError, OSError)):
            Net.load(path)
        assert not marker.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file(Net, rng, tmp_path, fraction):
    """A save cut short raises ValueError or OSError (not a crash, not another exception type)."""
    net, _, _ = build(Net, "cross_entropy", "adam", "float32", rng)
    path = tmp_path / "model.cbp"
    net.save(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.cbp"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises((ValueError, OSError)):
        Net.load(cut)


@pytest.mark.parametrize("size", [1, 100, 5000])
def test_random_bytes(Net, tmp_path, size):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    with pytest.raises((ValueError, OSError)):
        Net.load(path)


def test_corrupted_middle(Net, rng, tmp_path):
    """Bytes flipped inside a saved file: refused cleanly, or (if the damage missed
    everything checked) a loadable network of the saved architecture."""
    net, _, _ = build(Net, "mse", "sgd", "float64", rng)
    path = tmp_path / "model.cbp"
    net.save(path)
    data = bytearray(path.read_bytes())
    for start in range(0, len(data), max(len(data) // 7, 1)):
        damaged = bytearray(data)
        damaged[start : start + 16] = bytes(16)
        bad = tmp_path / f"bad{start}.cbp"
        bad.write_bytes(bytes(damaged))
        try:
            loaded = Net.load(bad)
        except (ValueError, OSError):
            continue
        assert list(loaded.sizes) == list(net.sizes)
