"""Moments in place (_kernels/state_bounds.pxi): on a network whose
parameters are too many to stay cached, an Adam or RMSprop step that
provably cannot overflow writes its moments in place instead of into the
spare buffers. It must not be seen from outside: the same bits as the steps
through the spare buffers, a step that would overflow still refused with
nothing changed, and bounds that really bound the state they describe.

The engine chooses the mode from the parameters' size; these tests switch it
on small networks (``Engine.moments_in_place``) to compare both ways, and
also run it at its real size."""
import numpy as np
import pytest

import cbackprop as cb
from cbackprop._backend import engine

SETTINGS = {
    "adam": lambda: cb.Adam(lr=1e-2),
    "adam-weight-decay": lambda: cb.Adam(lr=5e-3, beta1=0.8, beta2=0.99, eps=1e-6,
                                         weight_decay=1e-2),
    "adam-clip-norm": lambda: cb.Adam(lr=1e-2, clip_norm=0.5),
    "adam-clip-value": lambda: cb.Adam(lr=1e-2, clip_value=1e-3),
    "rmsprop": lambda: cb.RMSprop(lr=1e-3),
    "rmsprop-momentum-decay": lambda: cb.RMSprop(lr=1e-3, alpha=0.9, momentum=0.5,
                                                 weight_decay=1e-3),
    "rmsprop-clip-norm": lambda: cb.RMSprop(lr=1e-3, momentum=0.9, clip_norm=0.5),
}


def twins(dtype, settings="adam", sizes=(20, 30, 5)):
    """The same network twice: moments in place allowed in the first, not in the second."""
    nets = []
    for in_place in (True, False):
        net = cb.Network(list(sizes), ["tanh", "identity"], dtype=dtype, seed=1,
                         optimizer=SETTINGS[settings]())
        net._engine.moments_in_place = in_place
        nets.append(net)
    return nets


def batches(dtype, count, sizes=(20, 30, 5), m=8, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((m, sizes[0])).astype(dtype),
             rng.standard_normal((m, sizes[-1])).astype(dtype)) for _ in range(count)]


def engine_state(net):
    """Parameters and optimizer state, copied without handing out parameter
    views (which would make the engine forget its bounds)."""
    engine = net._engine
    moment1, moment2, steps = engine.optimizer_state()
    return [engine.params[:engine.n_params].copy(), moment1, moment2, np.array(steps)]


def assert_same_bits(a, b):
    for x, y in zip(engine_state(a), engine_state(b), strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("settings", sorted(SETTINGS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_steps_are_the_spare_buffer_steps_bit_for_bit(dtype, settings):
    """train_step and fit's compiled chunks, with each clipping and weight
    decay: the twins end with the same bits, and nearly every step of the
    first went in place (the first step after a start has no bounds yet)."""
    in_place, spare = twins(dtype, settings)
    for X, Y in batches(dtype, 20):
        assert in_place.train_step(X, Y) == spare.train_step(X, Y)
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((100, 20)).astype(dtype), rng.standard_normal((100, 5)).astype(dtype)
    histories = [net.fit(X, Y, epochs=3, batch_size=16, seed=3) for net in (in_place, spare)]
    assert histories[0]["loss"] == histories[1]["loss"]
    assert_same_bits(in_place, spare)
    assert spare._engine.steps_in_place == 0
    # 41 steps; weight decay grows the bound of the parameters fastest, so a
    # few of its steps go back to the spares and measure the bounds again.
    assert in_place._engine.steps_in_place >= 30


@pytest.mark.parametrize("settings", ["adam", "rmsprop-momentum-decay"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_network_beyond_the_caches_steps_in_place_by_itself(dtype, threads, settings):
    """[1024, 512] has 2 MiB of float32 parameters: the engine chooses moments
    in place on its own (not on [64, 128, 10]) where its vectors are 32 bytes
    or wider (not on the baseline build, whose bounds pass is scalar), on one
    thread or spread over two (the largest-gradient pass and the update in
    chunks), and a twin that never does gets the same bits."""
    assert not cb.Network([64, 128, 10], ["relu", "identity"], dtype=dtype)._engine.moments_in_place
    sizes = (1024, 512)
    old = cb.get_num_threads()
    try:
        cb.set_num_threads(threads)
        nets = [cb.Network(list(sizes), ["tanh"], dtype=dtype, seed=2,
                           optimizer=SETTINGS[settings]()) for _ in range(2)]
        assert nets[0]._engine.moments_in_place == (engine.tile_table()["vector_bytes"] >= 32)
        nets[0]._engine.moments_in_place = True
        nets[1]._engine.moments_in_place = False
        for X, Y in batches(dtype, 4, sizes=sizes, m=4):
            assert nets[0].train_step(X, Y) == nets[1].train_step(X, Y)
    finally:
        cb.set_num_threads(old)
    assert nets[0]._engine.steps_in_place == 3
    assert_same_bits(*nets)


@pytest.mark.parametrize("settings", sorted(SETTINGS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_bounds_bound_the_state(dtype, settings):
    """Adam's bounds are of |p|, |m| and v, RMSprop's of |p|, v and |buffer|."""
    net = twins(dtype, settings)[0]
    for X, Y in batches(dtype, 15):
        net.train_step(X, Y)
    assert net._engine.steps_in_place > 0
    largest_param, largest_moment1, largest_moment2 = net._engine.state_bounds
    params, moment1, moment2, _ = engine_state(net)
    squares = moment1 if settings.startswith("rmsprop") else moment2
    assert np.abs(params).max() <= largest_param
    assert np.abs(moment1).max() <= largest_moment1
    assert np.abs(moment2).max() <= largest_moment2
    assert squares.min() >= 0


@pytest.mark.parametrize("settings", ["adam", "rmsprop-momentum-decay"])
def test_a_step_whose_update_overflows_is_refused_with_nothing_changed(settings):
    """With bounds known, a batch whose gradients' squares overflow: the
    largest gradient rules out the in-place step, and the step through the
    spares is refused as always. Both twins then train on alike. (float32:
    its loss is summed in double and stays finite; in float64 the loss would
    overflow first.)"""
    dtype = "float32"
    in_place, spare = twins(dtype, settings)
    for X, Y in batches(dtype, 5):
        in_place.train_step(X, Y)
        spare.train_step(X, Y)
    assert in_place._engine.state_bounds is not None
    before = engine_state(in_place)
    X, Y = batches(dtype, 1, seed=9)[0]
    Y = np.full_like(Y, 1e30)
    for net in (in_place, spare):
        with pytest.raises(FloatingPointError, match="update of this step overflows"):
            net.train_step(X, Y)
    for a, b in zip(engine_state(in_place), before, strict=True):
        assert a.tobytes() == b.tobytes()
    for X, Y in batches(dtype, 5, seed=3):
        assert in_place.train_step(X, Y) == spare.train_step(X, Y)
    assert_same_bits(in_place, spare)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_a_step_that_overflows_through_weight_decay_alone_is_refused_in_place(optimizer):
    """The bounds that let a step run in place must count the weight decay:
    decay x W = 1e10 x 1e30 overflows float32 while the gradients and the
    state stay small. A bound without it let the step through, leaving W and
    the moments non-finite with no error."""
    make = {"adam": lambda: cb.Adam(lr=1e-3), "rmsprop": lambda: cb.RMSprop(lr=1e-3)}[optimizer]
    nets = []
    for in_place in (True, False):
        net = cb.Network([4, 3], ["identity"], optimizer=make(), dtype="float32")
        net._engine.moments_in_place = in_place
        net.set_params([np.full((4, 3), 1e30)], [np.zeros(3)])
        nets.append(net)
    X, Y = np.zeros((2, 4), np.float32), np.ones((2, 3), np.float32)
    for net in nets:
        net.train_step(X, Y)
    assert nets[0]._engine.state_bounds is not None
    before = engine_state(nets[0])
    for net in nets:
        net.optimizer.weight_decay = 1e10
        with pytest.raises(FloatingPointError):
            net.train_step(X, Y)
    for a, b in zip(engine_state(nets[0]), before, strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "rmsprop-momentum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_step_that_overflows_through_the_learning_rate_alone_is_refused_in_place(dtype,
                                                                                  optimizer):
    """Gradients, squares and moments all small; only lr x (the normalised
    step) passes the largest value. Steps on zero gradients (targets = the
    outputs) make the bounds known; a batch with small errors then must be
    refused by both twins, nothing changed. A bound that left out the step
    or the new |W| let it through, leaving W infinite with no error."""
    huge = float(np.finfo(dtype).max) / 2
    make = {"adam": lambda: cb.Adam(lr=huge, beta1=0.0),
            "rmsprop": lambda: cb.RMSprop(lr=huge),
            "rmsprop-momentum": lambda: cb.RMSprop(lr=huge, momentum=0.5)}[optimizer]
    nets = []
    for in_place in (True, False):
        net = cb.Network([20, 30, 5], ["tanh", "identity"], optimizer=make(), dtype=dtype, seed=1)
        net._engine.moments_in_place = in_place
        nets.append(net)
    X = batches(dtype, 1)[0][0]
    for _ in range(9):   # Adam's v̂ = v / (1 - 0.999^10) ≈ g² / 10: a step of ≈ 3 lr
        for net in nets:
            net.train_step(X, net.forward(X))
    assert nets[0]._engine.state_bounds is not None and nets[0]._engine.steps_in_place >= 1
    before = engine_state(nets[0])
    Y = nets[0].forward(X) + np.asarray(0.05, dtype)
    for net in nets:
        with pytest.raises(FloatingPointError, match="update of this step overflows"):
            net.train_step(X, Y)
    for a, b in zip(engine_state(nets[0]), before, strict=True):
        assert a.tobytes() == b.tobytes()
    assert_same_bits(*nets)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_huge_gradient_in_the_last_chunk_is_seen(threads):
    """The largest gradient is taken over 32,768-element chunks, spread on the
    threads: a batch whose only huge gradients are the biases (the last,
    short chunk: X tiny, Y huge) must rule out the step in place and be
    refused, as by the twin that never steps in place."""
    dtype = "float32"
    sizes = (1024, 256)
    old = cb.get_num_threads()
    try:
        cb.set_num_threads(threads)
        nets = [cb.Network(list(sizes), ["identity"], dtype=dtype, seed=1,
                           optimizer=cb.Adam(lr=1e-3)) for _ in range(2)]
        nets[0]._engine.moments_in_place = True
        nets[1]._engine.moments_in_place = False
        for X, Y in batches(dtype, 3, sizes=sizes, m=4):
            assert nets[0].train_step(X, Y) == nets[1].train_step(X, Y)
        assert nets[0]._engine.steps_in_place == 2
        before = engine_state(nets[0])
        X, Y = np.full((4, 1024), 1e-25, dtype), np.full((4, 256), -1e28, dtype)
        for net in nets:
            with pytest.raises(FloatingPointError, match="update of this step overflows"):
                net.train_step(X, Y)
    finally:
        cb.set_num_threads(old)
    for a, b in zip(engine_state(nets[0]), before, strict=True):
        assert a.tobytes() == b.tobytes()
    assert_same_bits(*nets)


def forget(net, how):
    engine = net._engine
    if how == "get_params":
        net.get_params()
    elif how == "set_params":
        net.set_params(*net.get_params())
    elif how == "restore_optimizer_state":
        engine.restore_optimizer_state(*engine.optimizer_state())
    elif how == "reset_optimizer_state":
        engine.reset_optimizer_state()
    elif how == "another optimizer":
        net.optimizer = cb.SGD(lr=1e-3, momentum=0.9)
        net.train_step(*batches(net.dtype, 1, seed=4)[0])
        net.optimizer = cb.Adam(lr=1e-2)
    elif how == "moments_in_place":
        engine.moments_in_place = True


@pytest.mark.parametrize("how", ["get_params", "set_params", "restore_optimizer_state",
                                 "reset_optimizer_state", "another optimizer", "moments_in_place"])
def test_the_bounds_are_forgotten_when_the_state_changes_otherwise(how):
    """Whatever writes the parameters or moments other than a step that
    bounds them (or hands out views that could) makes the engine forget its
    bounds; the next step goes through the spares and measures them again."""
    net = twins("float64")[0]
    for X, Y in batches("float64", 3):
        net.train_step(X, Y)
    assert net._engine.state_bounds is not None
    forget(net, how)
    assert net._engine.state_bounds is None
    steps_in_place = net._engine.steps_in_place
    net.train_step(*batches("float64", 1, seed=8)[0])
    assert net._engine.steps_in_place == steps_in_place
    assert net._engine.state_bounds is not None


def test_bounds_of_one_optimizer_do_not_serve_another():
    """Adam's bounds are of |m| and v, RMSprop's of v and |buffer|: the first
    RMSprop step after Adam's goes through the spares, the next in place."""
    net = twins("float64")[0]
    for X, Y in batches("float64", 3):
        net.train_step(X, Y)
    steps_in_place = net._engine.steps_in_place
    net.optimizer = cb.RMSprop(lr=1e-3, momentum=0.5)
    X, Y = batches("float64", 1, seed=8)[0]
    net.train_step(X, Y)
    assert net._engine.steps_in_place == steps_in_place
    net.train_step(X, Y)
    assert net._engine.steps_in_place == steps_in_place + 1


@pytest.mark.parametrize("settings", ["adam", "rmsprop-momentum-decay"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_moments_put_back_from_outside_are_not_trusted(dtype, settings):
    """A state put back after steps in place whose next step overflows or
    is NaN: Adam's huge first moments with zero second moments (its update
    is ~m / eps), RMSprop's negative averages of squares (the square root of
    a negative). The step must be refused with nothing changed, as it would
    have been through the spares: bounds kept across the restore would have
    let it write the moments."""
    net = twins(dtype, settings)[0]
    for X, Y in batches(dtype, 5):
        net.train_step(X, Y)
    moment1, moment2, steps = net._engine.optimizer_state()
    if settings == "adam":
        moment1[:] = 1e36 if dtype == "float32" else 1e305
        moment2[:] = 0
    else:
        moment1[:] = -1
    net._engine.restore_optimizer_state(moment1, moment2, steps)
    before = engine_state(net)
    with pytest.raises(FloatingPointError, match="update of this step overflows"):
        net.train_step(*batches(dtype, 1, seed=6)[0])
    for a, b in zip(engine_state(net), before, strict=True):
        assert a.tobytes() == b.tobytes()
