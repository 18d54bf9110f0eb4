"""Every error of CONTRACT.md's Errors section fires, names the problem, and
leaves the network's parameters as they were; unusual but valid inputs work.
"""
import fractions
import math
import re
import warnings

import numpy as np
import pytest

import cbackprop as cb

SIZES = [4, 5, 3]
M = 5


def snapshot(net):
    weights, biases = net.get_params()
    return [w.copy() for w in weights], [b.copy() for b in biases]


def assert_unchanged(net, snap):
    weights, biases = net.get_params()
    assert len(weights) == len(snap[0]) and len(biases) == len(snap[1])
    for got, want in zip(weights + biases, snap[0] + snap[1]):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def mse_net(Net, dtype="float64"):
    return Net(SIZES, ["tanh", "identity"], loss="mse", optimizer=cb.SGD(lr=0.1), dtype=dtype, seed=1)


def ce_net(Net):
    return Net(SIZES, ["relu", "softmax"], loss="cross_entropy", optimizer=cb.SGD(lr=0.1), seed=1)


def bce_net(Net):
    return Net(SIZES, ["relu", "sigmoid"], loss="bce", optimizer=cb.SGD(lr=0.1), seed=1)


def good_batch(rng, m=M):
    return rng.normal(size=(m, SIZES[0])), rng.normal(size=(m, SIZES[-1]))


def call(net, method, X, Y):
    if method == "forward":
        return net.forward(X)
    if method == "predict":
        return net.predict(X)
    if method == "loss":
        return net.loss(X, Y)
    if method == "loss_and_gradients":
        return net.loss_and_gradients(X, Y)
    if method == "train_step":
        return net.train_step(X, Y)
    if method == "fit":
        return net.fit(X, Y, epochs=1, batch_size=2, seed=0)
    raise AssertionError(method)


X_METHODS = ["forward", "predict", "loss", "loss_and_gradients", "train_step", "fit"]
Y_METHODS = ["loss", "loss_and_gradients", "train_step", "fit"]


def expect(error, net, method, X, Y, match=None):
    """Call ``method`` expecting ``error``; the parameters must be untouched."""
    snap = snapshot(net)
    with pytest.raises(error, match=match):
        call(net, method, X, Y)
    assert_unchanged(net, snap)


# --------------------------------------------------------------------------
# Construction: sizes, activations, names, loss/output compatibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[3], [], [2, 0, 1], [2, 3, 0], [2, -1, 1]], ids=str)
def test_bad_sizes(Net, sizes):
    """At least two layer widths, each >= 1."""
    activations = ["sigmoid"] * max(len(sizes) - 1, 0)
    with pytest.raises(ValueError, match="(?i)size|width|layer|entr"):
        Net(sizes, activations)


def test_sizes_in_no_order_are_a_type_error(Net):
    with pytest.raises(TypeError, match="sizes must be a sequence of layer widths, got set"):
        Net({2, 3}, ["relu"])


@pytest.mark.parametrize("activations", [["relu"], ["relu", "relu", "identity"], []], ids=str)
def test_wrong_number_of_activations(Net, activations):
    """One activation name per weight layer."""
    with pytest.raises(ValueError, match="(?i)activation"):
        Net([2, 3, 1], activations)


def test_unknown_activation(Net):
    with pytest.raises(ValueError, match="no_such_act"):
        Net([2, 3, 1], ["no_such_act", "identity"])


@pytest.mark.parametrize("activations", [[["relu"], "identity"], [5, "identity"], [None, "relu"]],
                         ids=["a list", "an int", "None"])
def test_an_activation_that_is_not_a_string_is_an_unknown_name(Net, activations):
    """Not a crash of the lookup (a list is unhashable): the entry is named."""
    with pytest.raises(ValueError, match=r"unknown activation (\['relu'\]|5|None)"):
        Net([2, 3, 1], activations)


@pytest.mark.parametrize("activations", [None, 3, {"relu", "identity"}, {"relu": 1, "identity": 2}])
def test_activations_that_are_no_list_are_a_type_error(Net, activations):
    with pytest.raises(TypeError, match="activations must be a list"):
        Net([2, 3, 1], activations)


@pytest.mark.parametrize("weights, biases, named", [(5, [np.zeros(3), np.zeros(1)], "weights"),
                                                    (None, None, "weights"),
                                                    ([np.zeros((2, 3)), np.zeros((3, 1))], 6.0,
                                                     "biases"),
                                                    # a mapping's or a set's items have no layer order
                                                    ({0: np.zeros((2, 3)), 1: np.zeros((3, 1))},
                                                     [np.zeros(3), np.zeros(1)], "weights"),
                                                    ([np.zeros((2, 3)), np.zeros((3, 1))],
                                                     {"a": np.zeros(3), "b": np.zeros(1)}, "biases")])
def test_set_params_of_no_lists_is_a_type_error(Net, weights, biases, named):
    net = Net([2, 3, 1], ["relu", "identity"], seed=0)
    snap = snapshot(net)
    with pytest.raises(TypeError, match=f"{named} must be a list"):
        net.set_params(weights, biases)
    assert_unchanged(net, snap)


@pytest.mark.parametrize("dtype, expected", [(np.float32, "float32"), (np.dtype("float64"), "float64"),
                                             (">f8", "float64"), ("<f4", "float32")])
def test_numpy_dtypes_name_the_network_dtype(Net, dtype, expected, rng):
    """A NumPy dtype or type, in either byte order: the network computes in
    this CPU's order."""
    net = Net([2, 3, 1], ["relu", "identity"], dtype=dtype, seed=0)
    twin = Net([2, 3, 1], ["relu", "identity"], dtype=expected, seed=0)
    assert net.dtype == np.dtype(expected)
    X = rng.normal(size=(4, 2))
    out = net.forward(X)
    assert out.dtype == np.dtype(expected) and out.dtype.isnative
    np.testing.assert_array_equal(out, twin.forward(X))


@pytest.mark.parametrize("argument", ["loss", "optimizer"])
def test_a_class_given_for_an_instance_is_named_as_such(Net, argument):
    cls = {"loss": cb.MSE, "optimizer": cb.Adam}[argument]
    with pytest.raises(ValueError, match=rf"{argument} is the class cb.{cls.__name__}: pass an "
                                         rf"instance, cb.{cls.__name__}\(\)"):
        Net([2, 3, 1], ["relu", "identity"], **{argument: cls})


def test_unknown_loss(Net):
    with pytest.raises(ValueError, match="no_such_loss"):
        Net([2, 3, 1], ["relu", "identity"], loss="no_such_loss")


def test_unknown_optimizer(Net):
    with pytest.raises(ValueError, match="no_such_optimizer"):
        Net([2, 3, 1], ["relu", "identity"], optimizer="no_such_optimizer")


def test_unknown_init(Net):
    with pytest.raises(ValueError, match="(?i)init|no_such_init"):
        Net([2, 3, 1], ["relu", "identity"], init="no_such_init")


def test_unsupported_dtype(Net):
    with pytest.raises(ValueError, match="(?i)dtype|float16"):
        Net([2, 3, 1], ["relu", "identity"], dtype="float16")


def test_unknown_mse_reduction():
    with pytest.raises(ValueError, match="(?i)reduction"):
        cb.MSE(reduction="median")


@pytest.mark.parametrize("value", [np.array("he"), np.array(["he", "auto"]), 1],
                         ids=["0-d", "1-d", "int"])
def test_init_is_a_string(Net, value):
    """Not only a name: a 0-d array of one passed (the comparison with a
    name), an array of two said "truth value ... ambiguous"."""
    with pytest.raises(ValueError, match="unknown init"):
        Net([2, 3, 1], ["relu", "identity"], init=value)


@pytest.mark.parametrize("value", [np.array("sum"), np.array(["mean", "sum"]), None],
                         ids=["0-d", "1-d", "None"])
def test_mse_reduction_is_a_string(value):
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        cb.MSE(reduction=value)


def test_a_sparse_matrix_is_said_to_be_one(Net):
    """np.asarray wraps a scipy.sparse matrix as an object array: the message
    said X "must hold real numbers", of a matrix of real numbers."""
    sparse = pytest.importorskip("scipy.sparse")
    net = Net([2, 1], ["identity"])
    X = sparse.csr_matrix(np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"X is a sparse csr_matrix.*pass X\.toarray\(\)"):
        net.forward(X)
    with pytest.raises(TypeError, match=r"Y is a sparse csr_matrix"):
        net.train_step(np.ones((3, 2)), sparse.csr_matrix(np.ones((3, 1))))
    with pytest.raises(TypeError, match=r"a is a sparse csr_matrix.*pass a\.toarray\(\)"):
        cb.ops.gemm(X, np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"y is a sparse csr_matrix"):   # a OneHotEncoder's
        cb.ops.cross_entropy(np.zeros((3, 2)), sparse.csr_matrix(np.eye(2)[[0, 1, 0]]))


@pytest.mark.parametrize("what", ["loss", "optimizer"])
def test_loss_and_optimizer_given_as_arrays_of_names(Net, what):
    """An array of names is no name: said as unknown, not "truth value ... ambiguous"."""
    with pytest.raises(ValueError, match=f"unknown {what}"):
        Net([2, 3, 1], ["relu", "identity"], **{what: np.array(["mse", "sgd"])})


@pytest.mark.parametrize("activations", [["softmax", "identity"], ["softmax", "softmax"], ["relu", "softmax", "sigmoid"]], ids=str)
def test_softmax_only_last(Net, activations):
    sizes = [2] + [3] * len(activations)
    with pytest.raises(ValueError, match="(?i)softmax"):
        Net(sizes, activations)


@pytest.mark.parametrize("output", ["identity", "relu", "tanh", "softmax", "leaky_relu"])
@pytest.mark.parametrize("loss", ["bce", cb.BCE], ids=["name", "instance"])
def test_bce_needs_sigmoid_output(Net, output, loss):
    loss = loss() if callable(loss) else loss
    with pytest.raises(ValueError, match="(?i)sigmoid|bce|binary"):
        Net([2, 3, 2], ["relu", output], loss=loss)


@pytest.mark.parametrize("output", ["identity", "relu", "tanh", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("loss", ["cross_entropy", cb.CrossEntropy], ids=["name", "instance"])
def test_cross_entropy_needs_softmax_output(Net, output, loss):
    loss = loss() if callable(loss) else loss
    with pytest.raises(ValueError, match="(?i)softmax|cross"):
        Net([2, 3, 2], ["relu", output], loss=loss)


# --------------------------------------------------------------------------
# Hyper-parameters
# --------------------------------------------------------------------------

BAD_HYPER = [
    (cb.SGD, "lr", -0.1),
    (cb.SGD, "lr", math.nan),
    (cb.SGD, "lr", math.inf),
    (cb.SGD, "lr", -math.inf),
    (cb.SGD, "momentum", 1.0),
    (cb.SGD, "momentum", -0.1),
    (cb.SGD, "momentum", 1.5),
    (cb.SGD, "momentum", math.nan),
    (cb.Adam, "lr", -1e-3),
    (cb.Adam, "lr", math.nan),
    (cb.Adam, "lr", math.inf),
    (cb.Adam, "beta1", 1.0),
    (cb.Adam, "beta1", -0.1),
    (cb.Adam, "beta1", math.nan),
    (cb.Adam, "beta2", 1.0),
    (cb.Adam, "beta2", -0.1),
    (cb.Adam, "beta2", 2.0),
    (cb.Adam, "eps", 0.0),
    (cb.Adam, "eps", -1e-8),
    (cb.Adam, "eps", math.nan),
    (cb.RMSprop, "lr", -1e-3),
    (cb.RMSprop, "lr", math.nan),
    (cb.RMSprop, "alpha", 1.0),
    (cb.RMSprop, "alpha", -0.1),
    (cb.RMSprop, "alpha", math.nan),
    (cb.RMSprop, "eps", 0.0),
    (cb.RMSprop, "eps", -1e-8),
    (cb.RMSprop, "momentum", 1.0),
    (cb.RMSprop, "momentum", -0.1),
    (cb.RMSprop, "weight_decay", -0.1),
]
# Integers too large for a float are out of range (ValueError), not OverflowError.
NUMERIC_HYPER = {cb.SGD: ["lr", "momentum", "weight_decay", "clip_norm", "clip_value"],
                 cb.Adam: ["lr", "beta1", "beta2", "eps", "weight_decay", "clip_norm", "clip_value"],
                 cb.RMSprop: ["lr", "alpha", "eps", "momentum", "weight_decay", "clip_norm",
                              "clip_value"]}
BAD_HYPER += [(cls, name, sign * 10**400) for cls, names in NUMERIC_HYPER.items()
              for name in names for sign in (1, -1)]
BAD_HYPER += [(cb.SGD, "lr", fractions.Fraction(10**400, 3))]


def short(value):
    text = str(value)
    return text if len(text) < 20 else f"{type(value).__name__}({text[:4]}...)"


BAD_HYPER_IDS = [f"{cls.__name__}-{name}={short(value)}" for cls, name, value in BAD_HYPER]


@pytest.mark.parametrize("cls, name, value", BAD_HYPER, ids=BAD_HYPER_IDS)
def test_invalid_hyper_parameter_at_construction(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


@pytest.mark.parametrize("value", [10**400, -10**400, fractions.Fraction(10**400, 3)],
                         ids=["10**400", "-10**400", "Fraction(10**400, 3)"])
def test_huge_mse_scale_is_a_value_error(value):
    with pytest.raises(ValueError, match="scale"):
        cb.MSE(scale=value)
    loss = cb.MSE()
    with pytest.raises(ValueError, match="scale"):
        loss.scale = value
    assert loss.scale == 1.0


@pytest.mark.parametrize("cls, name, value", BAD_HYPER, ids=BAD_HYPER_IDS)
def test_invalid_hyper_parameter_assigned_later(Net, cls, name, value, rng):
    """Assigning a bad value raises at once, keeps the old value, and later steps use it."""
    X, Y = good_batch(rng)
    net = Net(SIZES, ["tanh", "identity"], optimizer=cls(), seed=1)
    twin = Net(SIZES, ["tanh", "identity"], optimizer=cls(), seed=1)
    old = getattr(net.optimizer, name)
    snap = snapshot(net)
    with pytest.raises(ValueError, match=name):
        setattr(net.optimizer, name, value)
    assert getattr(net.optimizer, name) == old
    assert_unchanged(net, snap)
    net.train_step(X, Y)
    twin.train_step(X, Y)
    for got, want in zip(sum(net.get_params(), []), sum(twin.get_params(), [])):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("value", [np.True_, np.False_, True, False, 0, 1])
def test_nesterov_takes_python_and_numpy_bools(value):
    """And the integers 0 and 1, which it has always accepted."""
    opt = cb.SGD(momentum=0.9, nesterov=value)
    assert opt.nesterov is bool(value)


@pytest.mark.parametrize("value", ["yes", None, 2, -1, 0.5, 1.0])
def test_nesterov_refuses_other_values(value):
    with pytest.raises(ValueError, match="nesterov"):
        cb.SGD(momentum=0.9, nesterov=value)


@pytest.mark.parametrize("value", [np.array(0.25), np.array(1, dtype=np.int8), np.float32(0.25)],
                         ids=["0-d float64", "0-d int8", "float32 scalar"])
def test_a_hyper_parameter_may_be_a_numpy_number(value):
    """A 0-d array or NumPy scalar of a real dtype is a number; a bool one is not."""
    assert cb.SGD(lr=value).lr == float(value)
    assert type(cb.Adam(eps=value).eps) is float
    with pytest.raises(TypeError, match="lr must be a real number"):
        cb.SGD(lr=np.array(True))
    with pytest.raises(TypeError, match="lr must be a real number"):
        cb.SGD(lr=np.array([0.25]))


def test_the_default_hyper_parameters_are_the_contracts(Net):
    """optimizer=None is cb.SGD(lr=0.01, momentum=0.0, nesterov=False,
    weight_decay=0.0); Adam's defaults are lr=0.001, betas 0.9 and 0.999,
    eps=1e-8; MSE's scale 1 and reduction 'mean'."""
    net = Net([2, 3, 1], ["relu", "identity"])
    assert net.optimizer == cb.SGD(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0)
    assert net.optimizer.config() == dict(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                                          clip_norm=None, clip_value=None)
    assert cb.Adam().config() == dict(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                                      weight_decay=0.0, clip_norm=None, clip_value=None)
    assert net.loss_function == cb.MSE(scale=1.0, reduction="mean")


def test_boundary_hyper_parameters_are_valid(Net, rng):
    """lr = 0, momentum = 0 and betas = 0 lie inside the allowed ranges; lr = 0 changes nothing."""
    cb.Adam(lr=0.0, beta1=0.0, beta2=0.0, eps=1e-12)
    X, Y = good_batch(rng)
    net = Net(SIZES, ["tanh", "identity"], optimizer=cb.SGD(lr=0.0, momentum=0.0), seed=1)
    snap = snapshot(net)
    net.train_step(X, Y)
    assert_unchanged(net, snap)


# --------------------------------------------------------------------------
# Bad X
# --------------------------------------------------------------------------


def bad_x(case, rng):
    X, Y = good_batch(rng)
    if case == "wrong width":
        return rng.normal(size=(M, SIZES[0] - 1)), Y
    if case == "too wide":
        return rng.normal(size=(M, SIZES[0] + 2)), Y
    if case == "3-D":
        return rng.normal(size=(M, 1, SIZES[0])), Y
    if case == "1-D wrong length":
        return rng.normal(size=SIZES[0] + 1), Y[0]
    if case == "0-D":
        return np.float64(1.0), Y[0]
    if case == "empty":
        return np.zeros((0, SIZES[0])), np.zeros((0, SIZES[-1]))
    if case == "nan":
        X[2, 1] = np.nan
        return X, Y
    if case == "inf":
        X[0, 3] = np.inf
        return X, Y
    if case == "-inf":
        X[4, 0] = -np.inf
        return X, Y
    raise AssertionError(case)


X_CASES = ["wrong width", "too wide", "3-D", "1-D wrong length", "0-D", "empty", "nan", "inf", "-inf"]
SHAPE = "(?i)shape|dimension|column|feature|width"
FINITE = "(?i)nan|inf|finite"
X_MATCH = {"empty": "(?i)empty|no sample|no row|zero|at least", "nan": FINITE, "inf": FINITE, "-inf": FINITE}


@pytest.mark.parametrize("method", X_METHODS)
@pytest.mark.parametrize("case", X_CASES)
def test_bad_x_raises_value_error(Net, case, method, rng):
    X, Y = bad_x(case, rng)
    expect(ValueError, mse_net(Net), method, X, Y, match=X_MATCH.get(case, SHAPE))


# --------------------------------------------------------------------------
# Bad Y
# --------------------------------------------------------------------------


def bad_y(case, rng):
    X, Y = good_batch(rng)
    if case == "wrong width":
        return X, rng.normal(size=(M, SIZES[-1] - 1))
    if case == "wrong rows":
        return X, rng.normal(size=(M - 1, SIZES[-1]))
    if case == "1-D with several outputs":
        return X, rng.normal(size=M)
    if case == "3-D":
        return X, rng.normal(size=(M, SIZES[-1], 1))
    if case == "nan":
        Y[1, 1] = np.nan
        return X, Y
    if case == "inf":
        Y[3, 2] = -np.inf
        return X, Y
    raise AssertionError(case)


Y_CASES = ["wrong width", "wrong rows", "1-D with several outputs", "3-D", "nan", "inf"]


@pytest.mark.parametrize("method", Y_METHODS)
@pytest.mark.parametrize("case", Y_CASES)
def test_bad_y_raises_value_error(Net, case, method, rng):
    X, Y = bad_y(case, rng)
    match = {"nan": FINITE, "inf": FINITE}.get(case, SHAPE)
    expect(ValueError, mse_net(Net), method, X, Y, match=match)


@pytest.mark.parametrize("where, method", [("X", method) for method in X_METHODS]
                         + [("Y", method) for method in Y_METHODS])
def test_finite_values_beyond_float32_are_named_as_such(Net, where, method, rng):
    """A float64 1e300 given to a float32 network is finite: the error says
    that it is beyond float32's range, not that the data holds infinity
    (the cast to float32 would have made it inf)."""
    X, Y = good_batch(rng)
    (X if where == "X" else Y)[2, 1] = -1e300
    expect(ValueError, mse_net(Net, "float32"), method, X, Y,
           match=rf"^{where} holds values beyond float32's range")


def test_set_params_beyond_float32_is_named_as_such(Net):
    net = mse_net(Net, "float32")
    weights, biases = net.get_params()
    weights = [w.astype(np.float64) for w in weights]
    weights[1][0, 0] = 1e39
    snap = snapshot(net)
    with pytest.raises(ValueError, match=r"^weights\[1\] holds values beyond float32's range"):
        net.set_params(weights, biases)
    assert_unchanged(net, snap)


def ce_batch(case, rng):
    X = rng.normal(size=(M, SIZES[0]))
    labels = np.array([0, 2, 1, 2, 0])
    if case == "label too large":
        labels[3] = SIZES[-1]
        return X, labels
    if case == "negative label":
        labels[1] = -1
        return X, labels
    if case == "fractional label":
        return X, labels.astype(float) + np.array([0, 0, 0.5, 0, 0])
    if case == "too few labels":
        return X, labels[:-1]
    if case == "labels as a column":
        return X, labels[:, None]
    if case == "one-hot wrong width":
        return X, np.eye(SIZES[-1] + 1)[labels]
    if case == "one-hot with nan":
        onehot = np.eye(SIZES[-1])[labels]
        onehot[0, 0] = np.nan
        return X, onehot
    raise AssertionError(case)


CE_CASES = ["label too large", "negative label", "fractional label", "too few labels",
            "labels as a column", "one-hot wrong width", "one-hot with nan"]


@pytest.mark.parametrize("method", Y_METHODS)
@pytest.mark.parametrize("case", CE_CASES)
def test_bad_class_targets(Net, case, method, rng):
    """Out-of-range, negative and non-integer class labels, and malformed one-hot targets."""
    X, Y = ce_batch(case, rng)
    match = {
        "label too large": "(?i)label|class|range",
        "negative label": "(?i)label|class|range|negative",
        "fractional label": "(?i)label|class|whole|integer",
        "one-hot with nan": FINITE,
    }.get(case, SHAPE)
    expect(ValueError, ce_net(Net), method, X, Y, match=match)


@pytest.mark.parametrize("case", ["nan in X", "inf in Y", "label out of range", "negative label"])
def test_fit_checks_every_batch_before_training(Net, case, rng):
    """fit refuses bad data in its LAST minibatch before taking any step: the
    earlier minibatches must not have been trained on when the error is raised."""
    X = rng.normal(size=(6, SIZES[0]))
    if case in ("label out of range", "negative label"):
        net, Y = ce_net(Net), np.array([0, 1, 2, 0, 1, 2])
        Y[-1] = 3 if case == "label out of range" else -1
    else:
        net, Y = mse_net(Net), rng.normal(size=(6, SIZES[-1]))
        if case == "nan in X":
            X[-1, 0] = np.nan
        else:
            Y[-1, 0] = np.inf
    snap = snapshot(net)
    with pytest.raises(ValueError):
        net.fit(X, Y, epochs=2, batch_size=1, shuffle=False)
    assert_unchanged(net, snap)


def test_labels_of_any_64_bit_integer_type_are_labels(Net, rng):
    """long long labels (int64 as a dtype, another C type), strided or not,
    mean what int64 ones do, and out-of-range ones are refused: they were
    read as float targets."""
    X, _ = ce_batch("label too large", rng)
    labels = np.array([0, 2, 1, 2, 0])
    net = ce_net(Net)
    for longlong in (labels.astype(np.longlong), np.repeat(labels.astype(np.longlong), 2)[::2]):
        assert net.loss(X, longlong) == net.loss(X, labels)
        assert ce_net(Net).train_step(X, longlong) == ce_net(Net).train_step(X, labels)
    bad = np.repeat(np.array([0, 2, 1, 7, 0], dtype=np.longlong), 2)[::2]
    with pytest.raises(ValueError, match="class label 7"):
        net.loss(X, bad)


def test_whole_number_float_labels_are_labels(Net, rng):
    """Whole-number float labels are accepted and mean the same as integer labels."""
    X, _ = ce_batch("label too large", rng)
    labels = np.array([0, 2, 1, 2, 0])
    net = ce_net(Net)
    assert net.loss(X, labels.astype(np.float64)) == net.loss(X, labels)


@pytest.mark.parametrize("value", [1.5, -0.5])
@pytest.mark.parametrize("method", Y_METHODS)
def test_bce_targets_outside_unit_interval(Net, method, value, rng):
    X = rng.normal(size=(M, SIZES[0]))
    Y = rng.uniform(size=(M, SIZES[-1]))
    Y[2, 1] = value
    expect(ValueError, bce_net(Net), method, X, Y, match=r"(?i)\[0, ?1\]|range|between|target")


# --------------------------------------------------------------------------
# Non-numeric data -> TypeError
# --------------------------------------------------------------------------


def non_numeric(kind, A):
    if kind == "str":
        return A.astype(str)  # numeric-looking strings: still not numbers
    if kind == "object":
        return A.astype(object)
    if kind == "complex":
        return A.astype(np.complex128)
    if kind == "bool":
        return A > 0
    raise AssertionError(kind)


KINDS = ["str", "object", "complex", "bool"]
NUMERIC = "(?i)numer|real|dtype|type"


@pytest.mark.parametrize("method", X_METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_non_numeric_x(Net, kind, method, rng):
    X, Y = good_batch(rng)
    expect(TypeError, mse_net(Net), method, non_numeric(kind, X), Y, match=NUMERIC)


@pytest.mark.parametrize("method", Y_METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_non_numeric_y(Net, kind, method, rng):
    X, Y = good_batch(rng)
    expect(TypeError, mse_net(Net), method, X, non_numeric(kind, Y), match=NUMERIC)


@pytest.mark.parametrize("kind", KINDS)
def test_non_numeric_labels(Net, kind, rng):
    X = rng.normal(size=(M, SIZES[0]))
    labels = np.array([0, 2, 1, 2, 1])
    expect(TypeError, ce_net(Net), "loss_and_gradients", X, non_numeric(kind, labels), match=NUMERIC)


def test_list_of_strings_is_not_numeric(Net):
    expect(TypeError, mse_net(Net), "forward", [["a", "b", "c", "d"]], None)


# --------------------------------------------------------------------------
# set_params
# --------------------------------------------------------------------------


def bad_params(case, net, rng):
    weights, biases = net.get_params()
    # The first layer gets new, valid values: a refused call must not apply them either.
    weights[0] = rng.normal(size=weights[0].shape)
    biases[0] = rng.normal(size=biases[0].shape)
    if case == "too few weights":
        weights = weights[:-1]
    elif case == "too few biases":
        biases = biases[:-1]
    elif case == "too many layers":
        weights = weights + [np.zeros((SIZES[-1], 2))]
        biases = biases + [np.zeros(2)]
    elif case == "transposed weight":
        weights[-1] = weights[-1].T.copy()
    elif case == "bias too long":
        biases[-1] = np.zeros(SIZES[-1] + 1)
    elif case == "1-D weight":
        weights[-1] = weights[-1].ravel()
    elif case == "nan weight":
        weights[-1][0, 0] = np.nan
    elif case == "inf bias":
        biases[-1][1] = np.inf
    else:
        raise AssertionError(case)
    return weights, biases


PARAM_CASES = ["too few weights", "too few biases", "too many layers", "transposed weight",
               "bias too long", "1-D weight", "nan weight", "inf bias"]


@pytest.mark.parametrize("case", PARAM_CASES)
def test_bad_set_params(Net, case, rng):
    """Wrong count, wrong shape or non-finite values: ValueError, nothing copied in."""
    net = mse_net(Net)
    snap = snapshot(net)
    weights, biases = bad_params(case, net, rng)
    match = {"nan weight": FINITE, "inf bias": FINITE}.get(case, SHAPE)
    if case.startswith("too"):
        match = "(?i)expected|number|count|layer"
    with pytest.raises(ValueError, match=match):
        net.set_params(weights, biases)
    assert_unchanged(net, snap)


# --------------------------------------------------------------------------
# A diverged step -> FloatingPointError, parameters restored
# --------------------------------------------------------------------------


def overflowing_net(Net, dtype):
    """Huge but finite weights and inputs: the identity output overflows to inf."""
    big = 1e20 if dtype == "float32" else 1e200  # big * big overflows the dtype
    net = Net([3, 2], ["identity"], loss="mse", optimizer=cb.SGD(lr=0.1), dtype=dtype)
    net.set_params([np.full((3, 2), big)], [np.zeros(2)])
    return net, np.full((4, 3), big), np.zeros((4, 2))


def test_train_step_with_infinite_loss(Net, dtype):
    """A non-finite loss: FloatingPointError, parameters unchanged (numpy warnings aside)."""
    net, X, Y = overflowing_net(Net, dtype)
    snap = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="(?i)finite|inf|nan|diverg"):
            net.train_step(X, Y)
    assert_unchanged(net, snap)


def test_infinite_loss_raises_no_runtime_warning(Net, dtype):
    """The diverged step reports itself by the exception only, not by a numpy
    RuntimeWarning (which this suite, per pyproject.toml, treats as an error)."""
    net, X, Y = overflowing_net(Net, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(FloatingPointError):
            net.train_step(X, Y)


def test_train_step_diverging_over_steps(Net, rng):
    """A huge learning rate blows up within a few steps; the failing step changes nothing."""
    X, Y = good_batch(rng)
    net = Net(SIZES, ["identity", "identity"], loss="mse", optimizer=cb.SGD(lr=1e30), dtype="float32", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(20):
            snap = snapshot(net)
            try:
                net.train_step(X, Y)
            except FloatingPointError:
                assert_unchanged(net, snap)
                return
    pytest.fail("lr=1e30 never produced a non-finite loss")


# --------------------------------------------------------------------------
# load of bad paths
# --------------------------------------------------------------------------


def test_load_missing_file(Net, tmp_path):
    with pytest.raises(OSError):
        Net.load(tmp_path / "does_not_exist.npz")
    with pytest.raises(OSError):
        Net.load(str(tmp_path / "does_not_exist"))


def test_load_text_file(Net, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a saved network\n")
    with pytest.raises(ValueError):
        Net.load(path)


def test_load_unrelated_npz(Net, tmp_path):
    path = tmp_path / "arrays.npz"
    with open(path, "wb") as f:
        np.savez(f, a=np.arange(3.0), b=np.eye(2))
    with pytest.raises(ValueError):
        Net.load(path)


def test_load_unrelated_npy(Net, tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10.0))
    with pytest.raises(ValueError):
        Net.load(path)


# --------------------------------------------------------------------------
# Valid but unusual inputs must work
# --------------------------------------------------------------------------


def variants(A):
    """The same values as A, laid out in memory in awkward ways."""
    wide = np.zeros((A.shape[0], 2 * A.shape[1]), dtype=A.dtype)
    wide[:, ::2] = A
    readonly = A.copy()
    readonly.flags.writeable = False
    reversed_rows = A[::-1].copy()[::-1]
    misaligned = np.frombuffer(bytearray(A.nbytes + 1), dtype=A.dtype, offset=1).reshape(A.shape)
    misaligned[...] = A
    return {
        "misaligned": misaligned,
        "strided columns": wide[:, ::2],
        "fortran order": np.asfortranarray(A),
        "read-only": readonly,
        "negative row stride": reversed_rows,
    }


@pytest.mark.parametrize("layout", ["strided columns", "fortran order", "read-only", "negative row stride",
                                    "misaligned"])
def test_awkward_layouts_give_same_results(Net, dtype, layout, rng):
    """Non-contiguous, Fortran-order and read-only X and Y equal a contiguous copy, and are not modified."""
    X, Y = good_batch(rng)
    Xv, Yv = variants(X)[layout], variants(Y)[layout]
    assert not (Xv.flags.c_contiguous and Xv.flags.writeable and Xv.flags.aligned)
    X_before, Y_before = Xv.copy(), Yv.copy()
    a, b = mse_net(Net, dtype), mse_net(Net, dtype)
    # BLAS may sum in another order for another layout: equal up to rounding.
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)

    np.testing.assert_allclose(a.forward(Xv), b.forward(X), **tol)
    np.testing.assert_allclose(a.loss(Xv, Yv), b.loss(X, Y), **tol)
    la, ga = a.loss_and_gradients(Xv, Yv)
    lb, gb = b.loss_and_gradients(X, Y)
    np.testing.assert_allclose(la, lb, **tol)
    for (dWa, dba), (dWb, dbb) in zip(ga, gb):
        np.testing.assert_allclose(dWa, dWb, **tol)
        np.testing.assert_allclose(dba, dbb, **tol)
    np.testing.assert_allclose(a.train_step(Xv, Yv), b.train_step(X, Y), **tol)
    for pa, pb in zip(sum(a.get_params(), []), sum(b.get_params(), [])):
        np.testing.assert_allclose(pa, pb, **tol)
    np.testing.assert_array_equal(Xv, X_before)
    np.testing.assert_array_equal(Yv, Y_before)


@pytest.mark.parametrize("convert", ["int64", "int32", "float32", "float64", "list"])
def test_other_numeric_inputs_are_cast(Net, dtype, convert):
    """Integer arrays, the other float dtype and nested lists are numeric data: cast, not refused."""
    X = np.array([[1, -2, 0, 3], [2, 1, -1, 0]])
    Y = np.array([[0, 1, 2], [1, 0, -1]])
    if convert == "list":
        Xc, Yc = X.tolist(), Y.tolist()
    else:
        Xc, Yc = X.astype(convert), Y.astype(convert)
    a, b = mse_net(Net, dtype), mse_net(Net, dtype)
    out = a.forward(Xc)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, b.forward(X.astype(dtype)))
    assert a.loss(Xc, Yc) == b.loss(X.astype(dtype), Y.astype(dtype))


# --------------------------------------------------------------------------
# What the messages say about the likely slip
# --------------------------------------------------------------------------


def test_a_batch_of_the_wrong_width_counts_its_features(Net, rng):
    net = mse_net(Net)
    with pytest.raises(ValueError, match=r"X has 2 features per sample but the network takes 4 "
                                         r"\(sizes\[0\]\): X must have shape \(m, 4\)"):
        net.predict(rng.normal(size=(6, 2)))


def test_targets_of_another_batch_are_counted_against_x(Net, rng):
    X, Y = good_batch(rng)
    with pytest.raises(ValueError, match=f"Y has {M - 2} rows but X has {M}"):
        mse_net(Net).train_step(X, Y[:-2])


def test_transposed_targets_are_named_as_such(Net, rng):
    X, Y = good_batch(rng)
    with pytest.raises(ValueError, match=r"Y looks transposed \(pass Y.T"):
        mse_net(Net).train_step(X, Y.T)
    with pytest.raises(ValueError, match=r"got \(3,\)$"):   # a 1-D Y has no rows to count
        mse_net(Net).train_step(X, Y[0])


def test_the_base_class_of_losses_is_an_unknown_loss(Net):
    from cbackprop.losses import Loss
    with pytest.raises(ValueError, match="unknown loss"):
        Net([2, 3, 1], ["relu", "identity"], loss=Loss)


def test_class_labels_for_another_loss_name_the_loss_they_need(Net, rng):
    X, _ = good_batch(rng)
    with pytest.raises(ValueError, match="1-D class labels need loss 'cross_entropy' and a softmax "
                                         "output \\(this network's loss is 'mse'\\)"):
        mse_net(Net).train_step(X, np.arange(M) % 3)


def test_a_fractional_label_is_shown(Net, rng):
    X, _ = good_batch(rng)
    labels = np.array([0.0, 1.0, 2.5, 1.0, 0.0])
    with pytest.raises(ValueError, match="class labels must be whole numbers: sample 2's is 2.5"):
        ce_net(Net).loss(X, labels)


@pytest.mark.parametrize("dtype_", ["float64", "float32"])
def test_a_bce_target_outside_the_unit_interval_is_shown(Net, dtype_, rng):
    """Both the engine's check (a ready float batch) and the reference's name
    the first target outside [0, 1] and the two likely slips."""
    net = Net(SIZES, ["relu", "sigmoid"], loss="bce", dtype=dtype_, seed=1)
    X = rng.normal(size=(M, SIZES[0])).astype(dtype_)
    Y = np.full((M, SIZES[-1]), 0.5, dtype=dtype_)
    Y[3, 1], Y[4, 0] = -1.0, 2.0
    with pytest.raises(ValueError, match=r"bce targets Y must lie in \[0, 1\]: Y\[3, 1\] is -1.0 "
                                         r"\(for more than two classes.*\(Y \+ 1\) / 2\)"):
        net.train_step(X, Y)


def test_saving_into_a_missing_directory_names_the_path_asked_for(Net, tmp_path):
    path = tmp_path / "no such directory" / "net.npz"
    with pytest.raises(FileNotFoundError) as error:
        mse_net(Net).save(path)
    assert error.value.filename == str(path) and ".tmp" not in str(error.value)


def test_loading_another_npz_names_the_file(Net, tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match=f"{re.escape(repr(str(path)))}: the file is not a saved "
                                         "cbackprop network: field 'format' is missing"):
        Net.load(path)
