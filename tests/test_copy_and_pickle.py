"""pickle, copy.deepcopy and copy.copy of a network (both implementations,
both dtypes): the copy carries architecture, dtype, parameters, loss,
optimizer settings and optimizer state, trains on bit for bit like the
original, shares nothing with it, and is made of plain data."""
import copy
import io
import itertools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cbackprop as cb

OPTIMIZERS = {
    "sgd": lambda: cb.SGD(lr=0.05),
    "sgd-momentum": lambda: cb.SGD(lr=0.05, momentum=0.9),
    "sgd-nesterov": lambda: cb.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": lambda: cb.Adam(lr=0.01),
    "adam-decay-clip": lambda: cb.Adam(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6,
                                       weight_decay=1e-3, clip_norm=0.5),
    "rmsprop-momentum": lambda: cb.RMSprop(lr=0.01, momentum=0.9, weight_decay=1e-3),
}

ROUND_TRIPS = {
    "pickle": lambda net: pickle.loads(pickle.dumps(net)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}

SIZES = [4, 7, 3]


def make_net(Net, dtype, optimizer="adam", head="mse", seed=5):
    output, loss = {"mse": ("identity", cb.MSE(scale=0.5, reduction="sum")),
                    "cross_entropy": ("softmax", "cross_entropy")}[head]
    return Net(SIZES, ["tanh", output], loss=loss, optimizer=OPTIMIZERS[optimizer](),
               dtype=dtype, seed=seed)


def batches(head="mse", count=10, m=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        X = rng.standard_normal((m, SIZES[0]))
        Y = (rng.standard_normal((m, SIZES[-1])) if head == "mse"
             else rng.integers(0, SIZES[-1], size=m))
        out.append((X, Y))
    return out


def params_of(net):
    weights, biases = net.get_params()
    return weights + biases


def assert_same_params(a, b):
    for x, y in zip(params_of(a), params_of(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


# -- training continues bit for bit ----------------------------------------------------------
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_round_trip_continues_training_bit_identically(Net, dtype, optimizer, how):
    net = make_net(Net, dtype, optimizer)
    data = batches()
    for X, Y in data[:4]:
        net.train_step(X, Y)
    twin = ROUND_TRIPS[how](net)
    assert type(twin) is Net and twin is not net
    assert_same_params(twin, net)
    for X, Y in data[4:]:
        assert twin.train_step(X, Y) == net.train_step(X, Y)
        assert_same_params(twin, net)
    # And through fit, with shuffling.
    X, Y = np.concatenate([X for X, _ in data]), np.concatenate([Y for _, Y in data])
    h1 = net.fit(X, Y, epochs=2, batch_size=16, seed=3)
    h2 = twin.fit(X, Y, epochs=2, batch_size=16, seed=3)
    assert h1 == h2
    assert_same_params(twin, net)


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_the_optimizer_state_makes_the_difference(Net, optimizer):
    """The test above would catch a copy that dropped the optimizer state: a
    network with the same parameters but fresh state trains differently."""
    net = make_net(Net, "float64", optimizer)
    data = batches()
    for X, Y in data[:4]:
        net.train_step(X, Y)
    fresh = make_net(Net, "float64", optimizer)
    fresh.set_params(*net.get_params())
    twin = pickle.loads(pickle.dumps(net))
    X, Y = data[4]
    for other in (net, fresh, twin):
        other.train_step(X, Y)
    assert_same_params(twin, net)
    assert any(not np.array_equal(a, b) for a, b in zip(params_of(fresh), params_of(net)))


def optimizer_state(net):
    """Both moments, flattened into one array, and the step count (each
    implementation keeps the moments in its own layout)."""
    moment1, moment2, step_count = net._optimizer_state()
    parts = [part if isinstance(part, list) else [part] for part in (moment1, moment2)]
    return np.concatenate([a.ravel() for part in parts for a in part]), step_count


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_optimizer_state_is_carried_exactly(Net, dtype, how):
    net = make_net(Net, dtype, "adam")
    for X, Y in batches(count=3):
        net.train_step(X, Y)
    moments, step_count = optimizer_state(net)
    assert step_count == 3 and np.any(moments != 0)
    twin_moments, twin_step_count = optimizer_state(ROUND_TRIPS[how](net))
    assert twin_step_count == 3
    np.testing.assert_array_equal(twin_moments, moments)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol(Net, protocol):
    net = make_net(Net, "float32", "sgd-momentum", head="cross_entropy")
    data = batches("cross_entropy")
    for X, Y in data[:3]:
        net.train_step(X, Y)
    twin = pickle.loads(pickle.dumps(net, protocol=protocol))
    for X, Y in data[3:]:
        assert twin.train_step(X, Y) == net.train_step(X, Y)
    assert_same_params(twin, net)


# -- what a copy carries ---------------------------------------------------------------------
@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_round_trip_carries_the_description(Net, dtype, how):
    net = Net([3, 5, 4, 2], ["relu", "leaky_relu", "sigmoid"], loss="bce",
              optimizer=cb.SGD(lr=0.3, momentum=0.5, nesterov=True, weight_decay=0.01,
                               clip_value=2.0), dtype=dtype, seed=9)
    twin = ROUND_TRIPS[how](net)
    assert type(twin) is Net
    assert twin.sizes == [3, 5, 4, 2]
    assert twin.activations == ["relu", "leaky_relu", "sigmoid"]
    assert twin.dtype == np.dtype(dtype)
    assert type(twin.loss_function) is cb.BCE
    assert type(twin.optimizer) is cb.SGD and twin.optimizer == net.optimizer
    assert twin.optimizer.config() == net.optimizer.config()
    assert repr(twin) == repr(net)
    assert_same_params(twin, net)


def test_loss_settings_are_carried(Net):
    net = Net([2, 2], ["identity"], loss=cb.MSE(scale=3.0, reduction="sum"), seed=0)
    twin = pickle.loads(pickle.dumps(net))
    assert twin.loss_function == cb.MSE(scale=3.0, reduction="sum")
    X, Y = np.ones((3, 2)), np.zeros((3, 2))
    assert twin.loss(X, Y) == net.loss(X, Y)


def test_a_pickle_loads_as_the_implementation_it_came_from():
    compiled = make_net(cb.Network, "float64")
    reference = make_net(cb.reference.Network, "float64")
    assert type(pickle.loads(pickle.dumps(compiled))) is cb.Network
    assert type(pickle.loads(pickle.dumps(reference))) is cb.reference.Network
    # Both start from the same seed: same parameters, different classes.
    assert_same_params(pickle.loads(pickle.dumps(compiled)), reference)


def test_public_user_attributes_travel_along(Net):
    net = make_net(Net, "float64")
    net.name = "run 3"
    net.notes = {"lr schedule": [0.1, 0.01]}
    for how, round_trip in ROUND_TRIPS.items():
        twin = round_trip(net)
        assert twin.name == "run 3" and twin.notes == net.notes, how
        assert twin.notes is not net.notes, how   # copy.copy is deep too


# -- a copy shares nothing -------------------------------------------------------------------
@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_a_copy_is_independent(Net, dtype, how):
    """copy.copy is a deep copy: training, set_params or optimizer changes on
    one never reach the other (a shallow copy used to share the engine)."""
    net = make_net(Net, dtype, "sgd-momentum")
    data = batches()
    net.train_step(*data[0])
    before = params_of(net)
    twin = ROUND_TRIPS[how](net)
    assert twin.optimizer is not net.optimizer and twin.loss_function is not net.loss_function
    for X, Y in data[1:4]:
        twin.train_step(X, Y)
    for now, then in zip(params_of(net), before):
        np.testing.assert_array_equal(now, then)
    twin.optimizer.lr = 123.0
    assert net.optimizer.lr == 0.05
    snapshot = params_of(twin)
    weights, biases = net.get_params()
    net.set_params([w + 1 for w in weights], [b + 1 for b in biases])
    net.train_step(*data[5])
    for now, then in zip(params_of(twin), snapshot):
        np.testing.assert_array_equal(now, then)


def test_keep_a_deepcopy_of_the_best_model(Net):
    """The pattern the issue names: a callback keeps a copy of the best epoch."""
    net = make_net(Net, "float64", "adam")
    data = batches(count=6)
    X, Y = np.concatenate([X for X, _ in data]), np.concatenate([Y for _, Y in data])
    best = {}

    def keep_best(net, epoch, logs):
        if logs["loss"] < best.get("loss", np.inf):
            best.update(loss=logs["loss"], epoch=epoch, net=copy.deepcopy(net),
                        params=params_of(net))

    net.fit(X, Y, epochs=6, batch_size=12, seed=0, callbacks=[keep_best])
    for kept, wanted in zip(params_of(best["net"]), best["params"]):
        np.testing.assert_array_equal(kept, wanted)


# -- plain data only -------------------------------------------------------------------------
PLAIN_SCALARS = (str, int, float, bool, type(None))


def assert_plain(value, where="state"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        assert type(value) is np.ndarray and value.dtype.kind in "fiu", f"{where}: {value.dtype}"
    else:
        assert type(value) in PLAIN_SCALARS, f"{where}: {type(value).__name__}"


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_the_state_is_plain_data(Net, dtype, optimizer):
    net = make_net(Net, dtype, optimizer)
    net.train_step(*batches(count=1)[0])
    state = net.__getstate__()
    assert_plain(state)
    assert state["dtype"] == dtype and state["sizes"] == SIZES
    assert not any(key.startswith("_") for key in state["attributes"])
    # The pickle names no class but the network's own and NumPy's array machinery:
    # no engine, no lock, no loss or optimizer objects.
    data = pickle.dumps(net, protocol=pickle.HIGHEST_PROTOCOL)
    classes = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            classes.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    assert (Net.__module__, Net.__qualname__) in classes
    others = classes - {(Net.__module__, Net.__qualname__)}
    assert all(module.split(".")[0] == "numpy" for module, _ in others), others
    for word in (b"RLock", b"_thread", b"Engine", b"_engine", b"cbackprop.losses",
                 b"cbackprop.optimizers"):
        assert word not in data


def test_an_unknown_state_version_is_refused(Net):
    net = make_net(Net, "float64")
    state = net.__getstate__()
    state["version"] = 99
    twin = Net.__new__(Net)
    with pytest.raises(ValueError, match="version"):
        twin.__setstate__(state)


@pytest.mark.parametrize("change", ["another network's", "one moment short", "float32 moments",
                                    "negative step count", "a float step count",
                                    "a moment not an array"])
def test_an_optimizer_state_that_does_not_fit_is_refused(Net, change):
    """Both implementations refuse it when the state is set, with ValueError;
    the reference took it and failed at the next step with a broadcasting error."""
    net = make_net(Net, "float64")
    state = net.__getstate__()
    moment1, moment2, step_count = state["optimizer_state"]
    if change == "another network's":
        other = Net([3, 7, 2], ["tanh", "identity"], optimizer=cb.Adam())
        state["optimizer_state"] = other.__getstate__()["optimizer_state"]
    elif change == "one moment short":
        short = moment1[:-1] if isinstance(moment1, list) else moment1[:-1].copy()
        state["optimizer_state"] = (short, moment2, step_count)
    elif change == "float32 moments":
        cast = ([m.astype(np.float32) for m in moment1] if isinstance(moment1, list)
                else moment1.astype(np.float32))
        state["optimizer_state"] = (cast, moment2, step_count)
    elif change == "negative step count":
        state["optimizer_state"] = (moment1, moment2, -1)
    elif change == "a float step count":
        state["optimizer_state"] = (moment1, moment2, 3.5)
    else:
        as_lists = ([m.tolist() for m in moment1] if isinstance(moment1, list)
                    else moment1.tolist())
        state["optimizer_state"] = (as_lists, moment2, step_count)
    twin = Net.__new__(Net)
    error = TypeError if change in ("a float step count", "a moment not an array") else ValueError
    with pytest.raises(error):
        twin.__setstate__(state)


def test_a_pickle_trains_on_in_another_process():
    """What multiprocessing and joblib do: the pickle goes to a fresh
    interpreter, which builds its own engine and trains on bit for bit."""
    nets = [make_net(Net, dtype, "adam") for Net in (cb.Network, cb.reference.Network)
            for dtype in ("float32", "float64")]
    data = batches(count=6)
    for net in nets:
        for X, Y in data[:3]:
            net.train_step(X, Y)
    code = ("import pickle, sys\n"
            "nets, data = pickle.load(sys.stdin.buffer)\n"
            "for net in nets:\n"
            "    for X, Y in data:\n"
            "        net.train_step(X, Y)\n"
            "pickle.dump(nets, sys.stdout.buffer)\n")
    package_root = str(Path(cb.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((nets, data[3:])),
                            capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    trained = pickle.loads(result.stdout)
    for net, there in zip(nets, trained, strict=True):
        for X, Y in data[3:]:
            net.train_step(X, Y)
        assert type(there) is type(net)
        assert_same_params(there, net)


def test_a_setting_changed_on_an_unpickled_optimizer_or_loss_takes_effect(monkeypatch):
    """The engine keeps what it read of an optimizer or a loss until the
    object's ``_version`` (the count of its last change) moves. Unpickled,
    they kept the number the pickling process had counted, which this
    process's count could reach later: the change that drew it went unseen,
    and the compiled network trained on with the old lr and scale."""
    from cbackprop import _checks

    forged = 10**12   # another process's count: far ahead of this one's
    optimizer, loss = cb.SGD(lr=1e-3), cb.MSE(scale=1.0)
    object.__setattr__(optimizer, "_version", forged)
    object.__setattr__(loss, "_version", forged + 1)
    optimizer, loss = pickle.loads(pickle.dumps((optimizer, loss)))
    X, Y = batches(count=1)[0]
    nets = [Net(SIZES, ["tanh", "identity"], loss=loss, optimizer=optimizer, seed=0)
            for Net in (cb.Network, cb.reference.Network)]
    for net in nets:
        net.train_step(X, Y)
    monkeypatch.setattr(_checks, "_VERSIONS", itertools.count(forged))   # this count reaches it
    optimizer.lr = 0.5
    loss.scale = 10.0
    losses = [net.train_step(X, Y) for net in nets]
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    for got, want in zip(params_of(nets[0]), params_of(nets[1])):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
