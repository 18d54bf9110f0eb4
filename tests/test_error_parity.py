"""Both implementations refuse the same bad input with the same exception
type and the same message, word for word (issue 13, item 6)."""
import numpy as np
import pytest

import cbackprop as cb

SIZES = [4, 5, 3]
M = 6
LABELS = np.array([0, 2, 1, 2, 0, 1])
HEADS = {
    "mse": (["tanh", "identity"], "mse"),
    "bce": (["tanh", "sigmoid"], "bce"),
    "ce": (["tanh", "softmax"], "cross_entropy"),
}


def net(Net, head="mse", dtype="float64", **kwargs):
    activations, loss = HEADS[head]
    return Net(SIZES, activations, loss=loss, optimizer=cb.SGD(lr=0.1), dtype=dtype, seed=2,
               **kwargs)


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(M, SIZES[0])), rng.normal(size=(M, SIZES[-1]))


def with_value(array, index, value):
    array = np.array(array, dtype=np.result_type(array, type(value)))
    array[index] = value
    return array


X, Y = data()
ONE_HOT = np.eye(3)[LABELS]
UNIT = 1 / (1 + np.exp(-Y))

# (description, call(Net)): each call must raise.
CASES = {
    # construction
    "sizes too short": lambda Net: Net([3], []),
    "zero width": lambda Net: Net([3, 0, 1], ["relu", "identity"]),
    "float width": lambda Net: Net([3, 2.0], ["identity"]),
    "activations a string": lambda Net: Net([3, 2], "relu"),
    "wrong number of activations": lambda Net: Net([3, 2], ["relu", "relu"]),
    "unknown activation": lambda Net: Net([3, 2], ["swish2"]),
    "softmax hidden": lambda Net: Net([3, 2, 2], ["softmax", "identity"]),
    "softmax width 1": lambda Net: Net([3, 1], ["softmax"], loss="cross_entropy"),
    "unknown loss": lambda Net: Net([3, 2], ["identity"], loss="hinge"),
    "bce without sigmoid": lambda Net: Net([3, 2], ["relu"], loss="bce"),
    "ce without softmax": lambda Net: Net([3, 2], ["sigmoid"], loss="cross_entropy"),
    "unknown optimizer": lambda Net: Net([3, 2], ["identity"], optimizer="lbfgs"),
    "optimizer a class": lambda Net: Net([3, 2], ["identity"], optimizer=cb.Adam),
    "loss a class": lambda Net: Net([3, 2], ["identity"], loss=cb.MSE),
    "activation a list": lambda Net: Net([3, 2], [["relu"]]),
    "set_params not lists": lambda Net: net(Net).set_params(None, None),
    "bad dtype": lambda Net: Net([3, 2], ["identity"], dtype="float16"),
    "bad init": lambda Net: Net([3, 2], ["identity"], init="orthogonal"),
    "negative seed": lambda Net: Net([3, 2], ["identity"], seed=-1),
    "float seed": lambda Net: Net([3, 2], ["identity"], seed=1.5),
    # hyper-parameters
    "negative lr": lambda Net: Net([3, 2], ["identity"], optimizer=cb.SGD(lr=-1)),
    "momentum 1": lambda Net: Net([3, 2], ["identity"], optimizer=cb.SGD(momentum=1.0)),
    "beta1 1": lambda Net: Net([3, 2], ["identity"], optimizer=cb.Adam(beta1=1.0)),
    "eps 0": lambda Net: Net([3, 2], ["identity"], optimizer=cb.Adam(eps=0.0)),
    "lr nan assigned": lambda Net: setattr(net(Net).optimizer, "lr", float("nan")),
    "bad optimizer assigned": lambda Net: setattr(net(Net), "optimizer", "rmsprop2"),
    "mse scale 0": lambda Net: Net([3, 2], ["identity"], loss=cb.MSE(scale=0.0)),
    # X
    "X wrong width": lambda Net: net(Net).forward(X[:, :3]),
    "X 3-D": lambda Net: net(Net).forward(X[:, None, :]),
    "X 1-D wrong length": lambda Net: net(Net).forward(X[0, :3]),
    "X empty": lambda Net: net(Net).loss(X[:0], Y[:0]),
    "X nan": lambda Net: net(Net).loss(with_value(X, (2, 1), np.nan), Y),
    "X inf forward": lambda Net: net(Net).forward(with_value(X, (0, 0), np.inf)),
    "X nan one sample": lambda Net: net(Net).predict(with_value(X[0], 1, np.nan)),
    "X inf float32 predict": lambda Net: net(Net, dtype="float32").predict(
        with_value(X, (2, 3), np.inf).astype(np.float32)),
    "X inf float32": lambda Net: net(Net, dtype="float32").train_step(
        with_value(X, (1, 1), 1e300), Y),
    "X strings": lambda Net: net(Net).forward(X.astype(str)),
    "X complex": lambda Net: net(Net).forward(X.astype(complex)),
    "X bool": lambda Net: net(Net).forward(X > 0),
    "X object": lambda Net: net(Net).forward(X.astype(object)),
    "X ragged": lambda Net: net(Net).forward([[1, 2, 3, 4], [1, 2]]),
    # Y
    "Y wrong width": lambda Net: net(Net).loss(X, Y[:, :2]),
    "Y wrong rows": lambda Net: net(Net).train_step(X, Y[:-1]),
    "Y 1-D several outputs": lambda Net: net(Net).loss(X, Y[:, 0]),
    "Y 3-D": lambda Net: net(Net).loss(X, Y[:, :, None]),
    "Y nan": lambda Net: net(Net).train_step(X, with_value(Y, (1, 1), np.nan)),
    "Y nan engine form": lambda Net: net(Net).train_step(X, with_value(Y, (5, 2), np.nan)),
    "Y -inf fit": lambda Net: net(Net).fit(X, with_value(Y, (3, 2), -np.inf), epochs=1),
    "Y strings": lambda Net: net(Net).loss(X, Y.astype(str)),
    "Y bool for mse": lambda Net: net(Net).loss(X, Y > 0),
    "Y None": lambda Net: net(Net).loss(X, None),
    # bce targets
    "bce target above 1": lambda Net: net(Net, "bce").train_step(X, with_value(UNIT, (2, 1), 1.5)),
    "bce target below 0": lambda Net: net(Net, "bce").loss(X, with_value(UNIT, (4, 0), -0.5)),
    "bce target float32 fast path": lambda Net: net(Net, "bce", "float32").train_step(
        X.astype(np.float32), with_value(UNIT, (0, 0), 2.0).astype(np.float32)),
    # cross-entropy targets
    "label too large": lambda Net: net(Net, "ce").loss(X, with_value(LABELS, 3, 3)),
    "label too large fast path": lambda Net: net(Net, "ce").train_step(X, with_value(LABELS, 5, 10)),
    "label negative": lambda Net: net(Net, "ce").loss_and_gradients(X, with_value(LABELS, 1, -1)),
    "label negative fit": lambda Net: net(Net, "ce").fit(X, with_value(LABELS, 1, -1), epochs=1),
    "label uint64 max": lambda Net: net(Net, "ce").loss(
        X, with_value(LABELS.astype(np.uint64), 2, np.uint64(2**64 - 1))),
    "label float 1e20": lambda Net: net(Net, "ce").loss(X, with_value(LABELS, 0, 1e20)),
    "label fractional": lambda Net: net(Net, "ce").loss(X, with_value(LABELS, 0, 0.5)),
    "label nan": lambda Net: net(Net, "ce").loss(X, with_value(LABELS, 0, np.nan)),
    "labels too few": lambda Net: net(Net, "ce").loss(X, LABELS[:-1]),
    "labels as a column": lambda Net: net(Net, "ce").loss(X, LABELS[:, None]),
    "labels bool": lambda Net: net(Net, "ce").loss(X, LABELS > 0),
    "one-hot wrong width": lambda Net: net(Net, "ce").loss(X, np.eye(4)[LABELS]),
    "one-hot nan": lambda Net: net(Net, "ce").loss(X, with_value(ONE_HOT, (0, 0), np.nan)),
    "one-hot negative": lambda Net: net(Net, "ce").train_step(X, -ONE_HOT),
    "one-hot row sum 2": lambda Net: net(Net, "ce").train_step(X, with_value(ONE_HOT, (3, 0), 1.0)),
    "soft labels off float32": lambda Net: net(Net, "ce", "float32").train_step(
        X.astype(np.float32), (ONE_HOT * 0.9).astype(np.float32)),
    "validation labels": lambda Net: net(Net, "ce").fit(
        X, LABELS, epochs=1, validation_data=(X, with_value(LABELS, 4, 3))),
    "validation not a pair": lambda Net: net(Net).fit(X, Y, epochs=1, validation_data=(X,)),
    # fit arguments
    "epochs negative": lambda Net: net(Net).fit(X, Y, epochs=-1),
    "batch_size 0": lambda Net: net(Net).fit(X, Y, batch_size=0),
    "shuffle string": lambda Net: net(Net).fit(X, Y, shuffle="no"),
    "patience 0": lambda Net: net(Net).fit(X, Y, patience=0),
    "trace apply string": lambda Net: net(Net).trace(X, Y, apply="yes"),
    # parameters
    "set_params wrong count": lambda Net: net(Net).set_params([], []),
    "set_params wrong shape": lambda Net: net(Net).set_params(
        [np.zeros((4, 5)), np.zeros((5, 2))], [np.zeros(5), np.zeros(3)]),
    "set_params nan": lambda Net: net(Net).set_params(
        [np.zeros((4, 5)), np.full((5, 3), np.nan)], [np.zeros(5), np.zeros(3)]),
    "diverging step": lambda Net: Net([1, 1], ["identity"], optimizer=cb.SGD(lr=1e300)).train_step(
        [[1e300]], [[-1e300]]),
    "update overflows float32": lambda Net: Net(
        [2, 3, 1], ["tanh", "identity"], optimizer=cb.SGD(lr=1e300), dtype="float32",
        seed=0).train_step([[1e2, 1e2]], [[-1e2]]),
    "check_gradients bad target": lambda Net: cb.check_gradients(
        net(Net, "ce"), X, with_value(LABELS, 0, 7)),
}


def outcome(Net, call):
    with pytest.raises(Exception) as info:
        call(Net)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("case", list(CASES))
def test_same_exception_and_message(case):
    compiled = outcome(cb.Network, CASES[case])
    reference = outcome(cb.reference.Network, CASES[case])
    assert compiled == reference
    assert compiled[0] in (ValueError, TypeError, FloatingPointError)


def test_x_shape_is_reported_as_given():
    _, message = outcome(cb.reference.Network, CASES["X 1-D wrong length"])
    assert message.endswith("got (3,)")


def test_messages_that_carry_the_sample():
    """The more informative wording (the sample's index) is the one both use."""
    _, message = outcome(cb.reference.Network, CASES["label too large"])
    assert message == "class label 3 (sample 3) out of range [0, 3)"
