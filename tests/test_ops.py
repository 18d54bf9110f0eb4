"""cb.ops, the compiled dense-layer kernels on caller-provided arrays, against
their NumPy twins in cb.reference.ops: every op, both dtypes, shapes from 1x1
to above the GEMM's blocking, every activation; out= and in-place use; and
the boundary's answer to bad input."""
import inspect
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cbackprop as cb
from cbackprop import _backend, ops
from cbackprop._activations import ACTIVATIONS as ACTIVATION_NAMES
from cbackprop.reference import ops as ref
from registry_cases import ACTIVATION_NAMES as ACTIVATIONS
from registry_cases import NEEDS_Z

TOL = {"float32": 1e-5, "float64": 1e-12}
# (m, n_in, n_out): 1x1, odd sizes around the micro-tiles, and above MC (the
# GEMM packs 72 rows of A at a time in float64, 144 in float32), KC (192-256) and
# the engine's threading threshold.
LAYER_SHAPES = [(1, 1, 1), (3, 7, 5), (17, 13, 31), (300, 513, 257)]


def close(ours, theirs, dtype, k=1):
    """Agreement to TOL relative to the result's scale (sqrt(k) for sums of k terms)."""
    assert ours.dtype == np.dtype(dtype) and ours.shape == theirs.shape
    scale = np.sqrt(max(k, 1)) * max(1.0, float(np.abs(theirs).max(initial=0)))
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def close_loss(ours, theirs, dtype):
    assert type(ours) is float
    assert ours == pytest.approx(theirs, rel=TOL[dtype], abs=TOL[dtype])


def layer(rng, m, n_in, n_out, dtype):
    a_prev = rng.standard_normal((m, n_in)).astype(dtype)
    weights = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    bias = rng.standard_normal(n_out).astype(dtype)
    return a_prev, weights, bias


def test_every_op_has_a_reference_twin_with_the_same_signature():
    assert set(ops.__all__) == {"gemm", "dense_forward", "dense_backward", "activation_forward",
                                "activation_backward", "mse", "bce", "cross_entropy"}
    assert "ops" in cb.__all__ and cb.ops is ops
    for name in ops.__all__:
        assert inspect.signature(getattr(ops, name)) == inspect.signature(getattr(ref, name)), name
        assert getattr(ops, name).__doc__


def test_ops_run_on_the_selected_engine():
    assert ops._engine is _backend.engine


# -- agreement with the reference -------------------------------------------------------
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (5, 3, 7), (13, 17, 9), (300, 513, 257), (145, 4, 600)])
def test_gemm(M, N, K, trans_a, trans_b, dtype, rng):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    close(ops.gemm(a, b, trans_a, trans_b), ref.gemm(a, b, trans_a, trans_b), dtype, K)
    out = np.full((M, N), np.nan, dtype=dtype)   # never read
    assert ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=out) is out
    close(out, ref.gemm(a, b, trans_a, trans_b), dtype, K)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_dense_forward(shape, activation, dtype, rng):
    a_prev, weights, bias = layer(rng, *shape, dtype)
    expected = ref.dense_forward(a_prev, weights, bias, activation)
    close(ops.dense_forward(a_prev, weights, bias, activation), expected, dtype, shape[1])
    out = np.full(expected.shape, np.nan, dtype=dtype)
    assert ops.dense_forward(a_prev, weights, bias, activation=activation, out=out) is out
    close(out, expected, dtype, shape[1])


def test_dense_forward_defaults_to_the_pre_activation(dtype, rng):
    a_prev, weights, bias = layer(rng, 9, 4, 6, dtype)
    close(ops.dense_forward(a_prev, weights, bias), a_prev @ weights + bias, dtype, 4)


@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_dense_backward(shape, dtype, rng):
    m, n_in, n_out = shape
    a_prev, weights, _ = layer(rng, m, n_in, n_out, dtype)
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    expected = ref.dense_backward(delta, a_prev, weights)
    for ours, theirs, k in zip(ops.dense_backward(delta, a_prev, weights), expected, (m, m, n_out)):
        close(ours, theirs, dtype, k)
    outs = [np.full(e.shape, np.nan, dtype=dtype) for e in expected]
    result = ops.dense_backward(delta, a_prev, weights, *outs)
    assert all(r is o for r, o in zip(result, outs))
    for ours, theirs, k in zip(outs, expected, (m, m, n_out)):
        close(ours, theirs, dtype, k)


def test_dense_backward_can_skip_the_input_gradient(dtype, rng):
    a_prev, weights, _ = layer(rng, 11, 5, 3, dtype)
    delta = rng.standard_normal((11, 3)).astype(dtype)
    grad_weights, grad_bias, grad_a_prev = ops.dense_backward(delta, a_prev, weights,
                                                              need_grad_a_prev=False)
    ref_weights, ref_bias, ref_a_prev = ref.dense_backward(delta, a_prev, weights,
                                                           need_grad_a_prev=False)
    assert grad_a_prev is None and ref_a_prev is None
    close(grad_weights, ref_weights, dtype, 11)
    close(grad_bias, ref_bias, dtype, 11)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 31), (300, 513)])
def test_activation_forward_and_backward(shape, activation, dtype, rng):
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    a = ops.activation_forward(activation, z)
    close(a, ref.activation_forward(activation, z), dtype)
    grad_a = rng.standard_normal(shape).astype(dtype)
    close(ops.activation_backward(activation, grad_a, a, z=z),
          ref.activation_backward(activation, grad_a, a, z=z),
          dtype, shape[1] if activation == "softmax" else 1)


def _fused(a):
    """1 - a*a as an FMA computes it: a*a is exact in float64 and 1 - a*a
    nearly so, then rounded to float32."""
    return (1 - a.astype(np.float64) ** 2).astype(np.float32)


@pytest.mark.parametrize("activation, slopes", [
    ("sigmoid", [lambda a: a * (np.float32(1) - a)]),
    # with FMA the compiler fuses 1 - a*a; without it, two roundings
    ("tanh", [_fused, lambda a: np.float32(1) - a * a]),
])
def test_float32_slopes_are_float32_arithmetic(activation, slopes, rng):
    """The derivative through A in float32 operations and the kernel's order,
    bit for bit. Cython writes a literal 1 as 1.0: without a cast, float32
    kernels ran in double, slower and rounded differently."""
    a = ops.activation_forward(activation, rng.standard_normal((64, 257)).astype(np.float32))
    grad_a = rng.standard_normal((64, 257)).astype(np.float32)
    ours = ops.activation_backward(activation, grad_a, a)
    assert any(np.array_equal(ours, grad_a * slope(a)) for slope in slopes)


def same_bits(ours, theirs):
    """Equal values with equal signs (of zeros too), NaN where the other has NaN."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan], theirs[~nan])
    assert np.array_equal(np.signbit(ours[~nan]), np.signbit(theirs[~nan]))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
def test_piecewise_activations_are_the_reference_bit_for_bit(activation, dtype, rng):
    """The branch-free selects (both sides computed, one kept: see setup.py's
    -fno-trapping-math) give the reference's values exactly, at ±0, ±inf,
    NaN, subnormals and either side of 0, forward and backward, on every
    vector width's tail (129 columns)."""
    info = np.finfo(dtype)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, info.smallest_subnormal,
               -info.smallest_subnormal, info.tiny, -info.tiny, info.max, -info.max, 1.0, -1.0]
    z = (3 * rng.standard_normal((37, 129))).astype(dtype)
    z.flat[:len(special)] = special
    z.flat[len(special):2 * len(special)] = -1.0   # units that are off: the slope's other side
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    grad_a.flat[len(special):2 * len(special)] = special
    with np.errstate(all="ignore"):
        a = ops.activation_forward(activation, z)
        same_bits(a, ref.activation_forward(activation, z))
        same_bits(ops.activation_backward(activation, grad_a, a),
                  ref.activation_backward(activation, grad_a, a))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_work_in_place(activation, dtype, rng):
    z = (3 * rng.standard_normal((40, 7))).astype(dtype)
    a = ref.activation_forward(activation, z)
    buffer = z.copy()
    assert ops.activation_forward(activation, buffer, out=buffer) is buffer
    close(buffer, a, dtype)
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    expected = ref.activation_backward(activation, grad_a, buffer, z=z)
    assert ops.activation_backward(activation, grad_a, buffer, out=grad_a, z=z) is grad_a
    close(grad_a, expected, dtype, 7)
    out = np.empty_like(z)
    assert ops.activation_backward(activation, expected, buffer, out=out, z=z) is out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backward_into_another_array_is_the_in_place_pass_bit_for_bit(activation, threads,
                                                                      dtype, rng):
    """Out of place, dL/dA is copied into ``out`` a block at a time and the
    slopes applied there (_kernels/activations.pxi, slope_range_from): the
    same bits as the pass in place, for outputs at several offsets, over
    many blocks, their tail and, at two threads, the threads' chunks."""
    z = (3 * rng.standard_normal((300, 513))).astype(dtype)
    a = ops.activation_forward(activation, z)
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    pool = np.full(z.size + 8, np.nan, dtype)
    old = cb.get_num_threads()
    try:
        cb.set_num_threads(threads)
        in_place = grad_a.copy()
        ops.activation_backward(activation, in_place, a, out=in_place, z=z)
        for shift in (0, 1, 2, 3, 5):
            out = pool[shift:shift + z.size].reshape(z.shape)
            assert ops.activation_backward(activation, grad_a, a, out=out, z=z) is out
            same_bits(out, in_place)
    finally:
        cb.set_num_threads(old)


@pytest.mark.parametrize("activation", NEEDS_Z)
def test_activations_whose_derivative_needs_z_take_it(activation, dtype, rng):
    """gelu, gelu_tanh and silu: f' is not a function of f(z), so z= is
    required (and checked); the result is the derivative at z, whatever a is."""
    z = (3 * rng.standard_normal((6, 5))).astype(dtype)
    a = ops.activation_forward(activation, z)
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    for impl in (ops.activation_backward, ops.mse):
        args = (grad_a, a) if impl is ops.activation_backward else (a, grad_a)
        kwargs = {} if impl is ops.activation_backward else {"activation": activation}
        name = (activation,) if impl is ops.activation_backward else ()
        with pytest.raises(ValueError, match="needs z="):
            impl(*name, *args, **kwargs)
        with pytest.raises(ValueError, match="z must have"):
            impl(*name, *args, **kwargs, z=z[:, :4])
    close(ops.activation_backward(activation, grad_a, np.zeros_like(a), z=z),
          ref.activation_backward(activation, grad_a, a, z=z), dtype)


def test_z_is_read_only_where_the_derivative_needs_it(dtype, rng):
    z = (3 * rng.standard_normal((6, 5))).astype(dtype)
    a = ops.activation_forward("tanh", z)
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    np.testing.assert_array_equal(ops.activation_backward("tanh", grad_a, a, z=np.zeros_like(z)),
                                  ops.activation_backward("tanh", grad_a, a))


@pytest.mark.parametrize("activation", [name for name in ACTIVATIONS if name != "linear"])
@pytest.mark.parametrize("scale, reduction", [(1.0, "mean"), (0.5, "sum"), (3.0, "mean")])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (300, 513)])
def test_mse(shape, scale, reduction, activation, dtype, rng):
    z = rng.standard_normal(shape).astype(dtype)
    a = ref.activation_forward(activation, z)
    y = rng.standard_normal(shape).astype(dtype)
    loss, delta = ops.mse(a, y, scale, reduction, activation, z=z)
    ref_loss, ref_delta = ref.mse(a, y, scale, reduction, activation, z=z)
    close_loss(loss, ref_loss, dtype)
    close(delta, ref_delta, dtype, shape[1])
    out = np.empty_like(a)
    assert ops.mse(a, y, scale=scale, reduction=reduction, activation=activation, out=out,
                   z=z)[1] is out


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (300, 513)])
def test_bce(shape, dtype, rng):
    z = (4 * rng.standard_normal(shape)).astype(dtype)
    y = rng.random(shape).round().astype(dtype)
    loss, delta = ops.bce(z, y)
    ref_loss, ref_delta = ref.bce(z, y)
    close_loss(loss, ref_loss, dtype)
    close(delta, ref_delta, dtype)
    value, result = ops.bce(z, y, out=z)                  # in place: z becomes the delta
    assert result is z and value == loss
    close(z, ref_delta, dtype)


@pytest.mark.parametrize("labels", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (300, 513)])
def test_cross_entropy(shape, labels, dtype, rng):
    m, k = shape
    z = (4 * rng.standard_normal(shape)).astype(dtype)
    classes = rng.integers(0, k, m)
    y = classes if labels else np.eye(k, dtype=dtype)[classes]
    loss, delta = ops.cross_entropy(z, y)
    ref_loss, ref_delta = ref.cross_entropy(z, y)
    close_loss(loss, ref_loss, dtype)
    close(delta, ref_delta, dtype)
    value, result = ops.cross_entropy(z, y, out=z)        # in place
    assert result is z and value == loss
    close(z, ref_delta, dtype)


@pytest.mark.parametrize("targets", ["labels", "one-hot"])
@pytest.mark.parametrize("m", [3, 4, 5, 8, 32, 33])
def test_cross_entropy_delta_is_each_rows_own_over_m(m, targets, dtype, rng):
    """A row's delta in a batch of m rows is, to the bit, its delta as a batch
    of one divided by m in the dtype: the compiled pass divides once by m, or
    (m a power of two) multiplies by 1/m, which rounds the same value. Logits
    spread so far apart that many deltas are subnormal, where rounding the
    softmax to the dtype before the division matters."""
    k = 10
    z = rng.uniform(-20.0, 0.0, (m, k))
    # exp(z - max) subnormal: z below log of the smallest normal (-87.3 in
    # float32, -708.4 in float64) and above that of the smallest subnormal
    low, high = (-102.0, -88.0) if np.dtype(dtype) == np.float32 else (-743.0, -709.0)
    far = rng.random((m, k)) < 0.5
    z[far] = rng.uniform(low, high, far.sum())
    z[:, 0] = 0.0                                          # every row's maximum
    z = z.astype(dtype)
    classes = rng.integers(0, k, m)
    y = classes if targets == "labels" else np.eye(k, dtype=dtype)[classes]
    delta = ops.cross_entropy(z, y)[1]
    alone = np.concatenate([ops.cross_entropy(z[i:i + 1], y[i:i + 1])[1] for i in range(m)])
    tiny = np.finfo(dtype).tiny
    assert np.count_nonzero((np.abs(delta) < tiny) & (delta != 0)) > m   # subnormal deltas
    np.testing.assert_array_equal(delta, alone / np.array(m, dtype=dtype))


def test_cross_entropy_takes_any_target_rows_and_any_integer_labels(dtype, rng):
    z = rng.standard_normal((6, 4)).astype(dtype)
    soft = rng.random((6, 4)).astype(dtype)                # rows not summing to one
    loss, delta = ops.cross_entropy(z, soft)
    ref_loss, ref_delta = ref.cross_entropy(z, soft)
    close_loss(loss, ref_loss, dtype)
    close(delta, ref_delta, dtype)
    classes = np.array([0, 3, 1, 2, 3, 0])
    expected = ops.cross_entropy(z, classes)
    # long long is int64 as a dtype but another C type: strided, NumPy's copy keeps it
    longlong = np.repeat(classes.astype(np.longlong), 2)[::2]
    for labels in (classes.astype(np.int8), classes.astype(np.uint16), classes.astype(">i4"), list(classes),
                   longlong, longlong[::-1][::-1], classes.astype(np.longlong)):
        loss, delta = ops.cross_entropy(z, labels)
        assert loss == expected[0]
        np.testing.assert_array_equal(delta, expected[1])


@pytest.mark.parametrize("z", [[[1e4, -1e4, 0.0]], [[-1e4, -1e4, 1e4]], [[88.0, 0.0, -88.0]]])
def test_losses_stay_finite_for_extreme_logits(z, dtype):
    z = np.array(z, dtype=dtype)
    for op, y in ((ops.bce, np.array([[1.0, 1.0, 0.0]], dtype=dtype)), (ops.cross_entropy, np.array([1]))):
        loss, delta = op(z, y)
        ref_loss, ref_delta = getattr(ref, op.__name__)(z, y)
        assert np.isfinite(loss) and np.all(np.isfinite(delta))
        close_loss(loss, ref_loss, dtype)
        close(delta, ref_delta, dtype)


# -- composed into a training step ------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "bce", "cross_entropy"])
def test_a_custom_loop_reproduces_the_network(loss, dtype, rng):
    """Forward, fused loss delta and backward written with ops give the Network's
    loss and gradients (the same kernels, strung together by hand)."""
    output = {"mse": "tanh", "bce": "sigmoid", "cross_entropy": "softmax"}[loss]
    net = cb.Network([6, 9, 4], ["relu", output], loss=loss, dtype=dtype, seed=1)
    (W1, W2), (b1, b2) = net.get_params()
    X = rng.standard_normal((21, 6)).astype(dtype)
    Y = {"mse": rng.standard_normal((21, 4)), "bce": rng.random((21, 4)).round(),
         "cross_entropy": rng.integers(0, 4, 21)}[loss]
    Y = Y if loss == "cross_entropy" else Y.astype(dtype)
    h = ops.dense_forward(X, W1, b1, "relu")
    if loss == "mse":
        value, delta = ops.mse(ops.dense_forward(h, W2, b2, output), Y, activation=output)
    else:
        z = ops.dense_forward(h, W2, b2)
        value, delta = getattr(ops, loss)(z, Y, out=z)
    gW2, gb2, grad_h = ops.dense_backward(delta, h, W2)
    ops.activation_backward("relu", grad_h, h, out=grad_h)
    gW1, gb1, _ = ops.dense_backward(grad_h, X, W1, need_grad_a_prev=False)
    net_value, net_grads = net.loss_and_gradients(X, Y)
    close_loss(value, net_value, dtype)
    for ours, theirs in zip((gW1, gb1, gW2, gb2), [g for pair in net_grads for g in pair]):
        close(ours, theirs, dtype, 21)


# -- inputs the kernels cannot take as they are -------------------------------------------
def test_inputs_of_any_layout_are_copied_not_refused(dtype, rng):
    a_prev, weights, bias = layer(rng, 8, 6, 5, dtype)
    expected = ops.dense_forward(a_prev, weights, bias, "tanh")
    misaligned = np.frombuffer(b"\0" + np.ascontiguousarray(a_prev).tobytes(), dtype=dtype,
                               offset=1).reshape(a_prev.shape)
    assert not misaligned.flags.aligned
    swapped = a_prev.astype(a_prev.dtype.newbyteorder())
    as_list = a_prev.tolist() if dtype == "float64" else a_prev   # lists read as float64
    for x in (np.asfortranarray(a_prev), np.repeat(a_prev, 2, axis=1)[:, ::2], swapped, misaligned, as_list):
        np.testing.assert_array_equal(ops.dense_forward(x, weights, bias, "tanh"), expected)
    readonly = a_prev.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(ops.dense_forward(readonly, weights, bias, "tanh"), expected)


def test_empty_dimensions(dtype):
    assert ops.gemm(np.ones((0, 3), dtype), np.ones((3, 4), dtype)).shape == (0, 4)
    np.testing.assert_array_equal(ops.gemm(np.ones((2, 0), dtype), np.ones((0, 4), dtype)),
                                  np.zeros((2, 4)))
    no_inputs = (np.ones((3, 0), dtype), np.ones((0, 2), dtype), np.array([1, 2], dtype), "softmax")
    close(ops.dense_forward(*no_inputs), ref.dense_forward(*no_inputs), dtype)
    for name in ACTIVATIONS:
        for shape in ((0, 3), (3, 0)):
            ones = np.ones(shape, dtype)
            for twin in (ops, ref):   # the reference's twins take what cb.ops takes
                assert twin.activation_forward(name, ones).shape == shape
                assert twin.activation_backward(name, ones, ones, z=ones.copy()).shape == shape
    no_outputs = (np.ones((3, 2), dtype), np.ones((2, 0), dtype), np.ones(0, dtype), "softmax")
    assert ops.dense_forward(*no_outputs).shape == ref.dense_forward(*no_outputs).shape == (3, 0)
    no_rows = (np.ones((0, 3), dtype), np.ones((0, 2), dtype), np.ones((2, 3), dtype))
    grad_weights, grad_bias, grad_a_prev = ops.dense_backward(*no_rows)
    np.testing.assert_array_equal(grad_weights, np.zeros((2, 3)))
    np.testing.assert_array_equal(grad_bias, np.zeros(3))
    assert grad_a_prev.shape == (0, 2)


def test_calls_from_several_threads_share_nothing(rng):
    """Each call has its own GEMM panels: concurrent products stay correct."""
    pairs = [(rng.standard_normal((160, 300)), rng.standard_normal((300, 70))) for _ in range(4)]
    results = [None] * len(pairs)

    def work(i):
        for _ in range(5):
            results[i] = ops.gemm(*pairs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), result in zip(pairs, results):
        close(result, a @ b, "float64", 300)


# -- the boundary ----------------------------------------------------------------------
def _f64(*shape):
    return np.ones(shape)


def _bad_calls():
    """(label, call, exception) for input that each op must refuse."""
    x, w, b = _f64(4, 3), _f64(3, 2), _f64(2)
    d, a = _f64(4, 2), _f64(4, 2)
    f32 = np.ones((3, 2), np.float32)
    buf = _f64(5, 2)
    square = _f64(3, 3)
    readonly = _f64(4, 2)
    readonly.flags.writeable = False
    strided = _f64(4, 4)[:, ::2]
    misaligned = np.frombuffer(bytearray(65), offset=1).reshape(4, 2)   # writable
    cases = [
        # dtypes: nothing but float32/float64, and one of them per call
        ("strings", lambda: ops.gemm(np.array([["a"]]), np.array([["b"]])), TypeError),
        ("objects", lambda: ops.activation_forward("relu", np.array([[None]], dtype=object)), TypeError),
        ("integers", lambda: ops.gemm(np.ones((2, 2), int), np.ones((2, 2), int)), TypeError),
        ("float16", lambda: ops.activation_forward("tanh", np.ones((2, 2), np.float16)), TypeError),
        ("complex", lambda: ops.activation_forward("tanh", np.ones((2, 2), complex)), TypeError),
        ("ragged list", lambda: ops.gemm([[1.0, 2.0], [3.0]], w), ValueError),
        ("mixed dtypes", lambda: ops.dense_forward(x, f32, b), ValueError),
        ("mixed bias dtype", lambda: ops.dense_forward(x, w, b.astype(np.float32)), ValueError),
        ("mixed targets", lambda: ops.mse(a, a.astype(np.float32)), ValueError),
        # ranks and shapes
        ("1-D gemm", lambda: ops.gemm(np.ones(3), w), ValueError),
        ("3-D gemm", lambda: ops.gemm(np.ones((1, 4, 3)), w), ValueError),
        ("scalar", lambda: ops.activation_forward("relu", 1.0), ValueError),
        ("inner dims", lambda: ops.gemm(x, _f64(4, 2)), ValueError),
        ("inner dims, transposed", lambda: ops.gemm(x, w, trans_a=True), ValueError),
        ("weights rows", lambda: ops.dense_forward(x, _f64(4, 2), b), ValueError),
        ("bias length", lambda: ops.dense_forward(x, w, _f64(3)), ValueError),
        ("2-D bias", lambda: ops.dense_forward(x, w, _f64(1, 2)), ValueError),
        ("delta rows", lambda: ops.dense_backward(_f64(5, 2), x, w), ValueError),
        ("weights shape", lambda: ops.dense_backward(d, x, _f64(2, 3)), ValueError),
        ("a vs grad_a", lambda: ops.activation_backward("relu", d, _f64(2, 4)), ValueError),
        ("mse targets", lambda: ops.mse(a, _f64(4, 3)), ValueError),
        ("bce targets", lambda: ops.bce(a, _f64(2, 4)), ValueError),
        ("one-hot shape", lambda: ops.cross_entropy(a, _f64(4, 3)), ValueError),
        ("label count", lambda: ops.cross_entropy(a, np.zeros(3, int)), ValueError),
        ("2-D int targets", lambda: ops.cross_entropy(a, np.zeros((4, 2), int)), TypeError),
        ("float labels", lambda: ops.cross_entropy(a, np.zeros(4)), TypeError),
        ("bool labels", lambda: ops.cross_entropy(a, np.zeros(4, bool)), TypeError),
        ("empty mse", lambda: ops.mse(_f64(0, 2), _f64(0, 2)), ValueError),
        ("empty bce", lambda: ops.bce(_f64(3, 0), _f64(3, 0)), ValueError),
        ("empty cross-entropy", lambda: ops.cross_entropy(_f64(0, 2), np.zeros(0, int)), ValueError),
        # values that index memory, names and settings
        ("label -1", lambda: ops.cross_entropy(a, np.array([0, 1, -1, 0])), ValueError),
        ("label k", lambda: ops.cross_entropy(a, np.array([0, 1, 2, 0])), ValueError),
        ("huge label", lambda: ops.cross_entropy(a, np.array([0, 1, 2**63, 0], np.uint64)), ValueError),
        ("unknown activation", lambda: ops.activation_forward("elu", a), ValueError),
        ("activation not a name", lambda: ops.activation_forward(a, "relu"), TypeError),
        ("dense activation", lambda: ops.dense_forward(x, w, b, "swish"), ValueError),
        ("mse activation", lambda: ops.mse(a, a.copy(), activation="Relu"), ValueError),
        ("negative scale", lambda: ops.mse(a, a.copy(), scale=-1.0), ValueError),
        ("nan scale", lambda: ops.mse(a, a.copy(), scale=float("nan")), ValueError),
        ("text scale", lambda: ops.mse(a, a.copy(), scale="1"), TypeError),
        ("reduction", lambda: ops.mse(a, a.copy(), reduction="max"), ValueError),
        ("trans flag", lambda: ops.gemm(x, w, 2), TypeError),
        ("out passed as a flag", lambda: ops.gemm(x, w, _f64(4, 2)), TypeError),
        ("need flag", lambda: ops.dense_backward(d, x, w, need_grad_a_prev=None), TypeError),
        ("grad_a_prev not needed", lambda: ops.dense_backward(d, x, w, grad_a_prev=_f64(4, 3),
                                                              need_grad_a_prev=False), ValueError),
        # out: exactly the result's shape and dtype, writable, C-contiguous, aligned
        ("out shape", lambda: ops.gemm(x, w, out=_f64(4, 3)), ValueError),
        ("out transposed shape", lambda: ops.gemm(x, w, out=_f64(2, 4)), ValueError),
        ("out dtype", lambda: ops.gemm(x, w, out=np.ones((4, 2), np.float32)), ValueError),
        ("out byte order", lambda: ops.gemm(x, w, out=np.ones((4, 2), ">f8")), ValueError),
        ("out list", lambda: ops.gemm(x, w, out=[[0.0] * 2] * 4), ValueError),
        ("out read-only", lambda: ops.activation_forward("relu", a, out=readonly), ValueError),
        ("out strided", lambda: ops.activation_forward("relu", a, out=strided), ValueError),
        ("out Fortran", lambda: ops.gemm(x, w, out=np.asfortranarray(_f64(4, 2))), ValueError),
        ("out misaligned", lambda: ops.activation_forward("relu", a, out=misaligned), ValueError),
        ("grad_bias shape", lambda: ops.dense_backward(d, x, w, grad_bias=_f64(3)), ValueError),
        ("loss out dtype", lambda: ops.bce(a, a.copy(), out=np.ones((4, 2), np.float32)), ValueError),
        # out sharing memory with an input where that would be wrong
        ("gemm out=a", lambda: ops.gemm(square, square.copy(), out=square), ValueError),
        ("gemm out=b", lambda: ops.gemm(square.copy(), square, out=square), ValueError),
        ("gemm out over b", lambda: ops.gemm(_f64(3, 2), buf[:2], out=buf[1:4]), ValueError),
        ("dense out=a_prev", lambda: ops.dense_forward(a, _f64(2, 2), b, out=a), ValueError),
        ("dense out=bias", lambda: ops.dense_forward(_f64(1, 2), _f64(2, 2), buf[0], out=buf[:1]),
         ValueError),
        ("grad_weights=weights", lambda: ops.dense_backward(d, x, w, grad_weights=w), ValueError),
        ("grad_a_prev=a_prev", lambda: ops.dense_backward(d, x, w, grad_a_prev=x), ValueError),
        ("two grads in one buffer", lambda: ops.dense_backward(_f64(3, 3), _f64(3, 3), _f64(3, 3),
                                                               grad_weights=square, grad_a_prev=square), ValueError),
        ("bias grad inside weights grad", lambda: ops.dense_backward(d, x, w, grad_weights=buf[:3],
                                                                     grad_bias=buf[2]), ValueError),
        ("activation out overlaps z", lambda: ops.activation_forward("tanh", buf[:4], out=buf[1:]),
         ValueError),
        ("activation backward out=a", lambda: ops.activation_backward("tanh", d, a, out=a), ValueError),
        ("backward out overlaps grad_a", lambda: ops.activation_backward("relu", buf[:4], a, out=buf[1:]),
         ValueError),
        ("mse out=a", lambda: ops.mse(a, d, out=a), ValueError),
        ("mse out=y", lambda: ops.mse(a, d, out=d), ValueError),
        ("bce out=y", lambda: ops.bce(a, d, out=d), ValueError),
        ("cross-entropy out=y", lambda: ops.cross_entropy(a, d, out=d), ValueError),
        # the in-place input passed twice: out would also overwrite the other role's input
        ("bce out=z=y", lambda: ops.bce(a, a, out=a), ValueError),
        ("cross-entropy out=z=y", lambda: ops.cross_entropy(a, a, out=a), ValueError),
        ("backward out=grad_a=a", lambda: ops.activation_backward("sigmoid", a, a, out=a), ValueError),
        ("cross-entropy out overlaps z", lambda: ops.cross_entropy(buf[:4], np.zeros(4, int), out=buf[1:]),
         ValueError),
    ]
    return cases


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("call, error", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.parametrize("y, error, message", [
    (np.array([[0], [1], [1], [0]]), TypeError, "class labels go 1-D, shape \\(m,\\), not a column"),
    (np.zeros((4, 2), int), TypeError, "2-D y holds targets and must have z's dtype \\(float32\\)"),
    (np.int64(1), ValueError, "y must be \\(m,\\) class labels or \\(m, k\\) targets, got shape \\(\\)"),
    (None, TypeError, "y must be \\(m,\\) integer class labels or \\(m, k\\) float32 targets, got dtype object"),
    ("abc", TypeError, "got dtype <U3"),
    ([[1.0, 0.0]] * 4, ValueError, "given as a list, it is read as float64: pass np.asarray\\(y, np.float32\\)"),
])
def test_cross_entropy_targets_of_the_wrong_kind_say_what_goes(y, error, message):
    z = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(error, match=message):
        ops.cross_entropy(z, y)


def test_a_refused_call_writes_nothing():
    z = np.zeros((4, 3))
    out = np.full((4, 3), 7.0)
    with pytest.raises(ValueError, match="out of range"):
        ops.cross_entropy(z, np.array([0, 1, 3, 2]), out=out)
    with pytest.raises(ValueError, match="out of range"):
        ops.cross_entropy(z, np.array([0, 1, 2, 3]), out=z)
    np.testing.assert_array_equal(out, 7.0)
    np.testing.assert_array_equal(z, 0.0)


def test_views_of_one_buffer_that_do_not_overlap_are_fine(rng):
    buf = rng.standard_normal((10, 4))
    expected = ref.activation_forward("sigmoid", buf[:5])
    assert ops.activation_forward("sigmoid", buf[:5], out=buf[5:]) is not None
    close(buf[5:], expected, "float64")
    z = buf[:5]
    same = buf[:5]                      # a different view object of the same elements
    expected = np.tanh(z)
    assert ops.activation_forward("tanh", z, out=same) is same
    close(same, expected, "float64")


def test_an_input_copied_first_may_overlap_the_output(rng):
    """As the module says: a transposed or reversed input is read from its
    copy, made before anything is written, so the result is right."""
    x = rng.standard_normal((3, 3))
    w = rng.standard_normal((3, 3))
    expected = x.T @ w
    assert ops.gemm(x.T, w, out=x) is x
    close(x, expected, "float64")
    z = rng.standard_normal((2, 3))
    expected = np.maximum(z[::-1], 0)
    assert ops.activation_forward("relu", z[::-1], out=z) is z
    np.testing.assert_array_equal(z, expected)


def _fenced(shape, dtype):
    """An out array inside a larger buffer whose margins hold a marker value:
    a kernel writing outside ``out`` changes them."""
    size = int(np.prod(shape))
    buffer = np.full(size + 64, -12345.0, dtype=dtype)
    return buffer, buffer[32:32 + size].reshape(shape)


@pytest.mark.parametrize("m, n_in, n_out", [(1, 1, 1), (7, 13, 5), (145, 259, 17)])
def test_no_op_writes_outside_its_outputs(m, n_in, n_out, dtype, rng):
    a_prev, weights, bias = layer(rng, m, n_in, n_out, dtype)
    delta = rng.standard_normal((m, n_out)).astype(dtype)
    labels = rng.integers(0, n_out, m)
    calls = [
        ([(m, n_out)], lambda out: ops.gemm(a_prev, weights, out=out)),
        ([(n_out, m)], lambda out: ops.gemm(weights, a_prev, True, True, out=out)),
        ([(m, n_out)], lambda out: ops.dense_forward(a_prev, weights, bias, "softmax", out=out)),
        ([(m, n_out)], lambda out: ops.dense_forward(a_prev, weights, bias, "tanh", out=out)),
        ([(n_in, n_out), (n_out,), (m, n_in)], lambda *outs: ops.dense_backward(delta, a_prev, weights, *outs)),
        ([(m, n_out)], lambda out: ops.activation_forward("softmax", delta, out=out)),
        ([(m, n_out)], lambda out: ops.activation_backward("softmax", delta, delta, out=out)),
        ([(m, n_out)], lambda out: ops.activation_backward("sigmoid", delta, delta, out=out)),
        ([(m, n_out)], lambda out: ops.mse(delta, delta * 2, activation="softmax", out=out)),
        ([(m, n_out)], lambda out: ops.bce(delta, delta * 0, out=out)),
        ([(m, n_out)], lambda out: ops.cross_entropy(delta, labels, out=out)),
    ]
    for shapes, call in calls:
        fenced = [_fenced(shape, dtype) for shape in shapes]
        call(*[out for _, out in fenced])
        for buffer, out in fenced:
            assert np.all(buffer[:32] == -12345.0) and np.all(buffer[32 + out.size:] == -12345.0)
            assert not np.any(out == -12345.0)


@settings(max_examples=150, deadline=None, database=None,
          derandomize=not os.environ.get("CBACKPROP_HYPOTHESIS_EXPLORE"),
          suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), n_in=st.integers(1, 40), n_out=st.integers(1, 40),
       activation=st.sampled_from(ACTIVATIONS), dtype=st.sampled_from(["float32", "float64"]),
       magnitude=st.sampled_from([1e-3, 1.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_random_layers_agree_with_the_reference(m, n_in, n_out, activation, dtype, magnitude, seed):
    """One layer's forward, loss deltas and backward on random shapes and scales."""
    rng = np.random.default_rng(seed)
    a_prev, weights, bias = layer(rng, m, n_in, n_out, dtype)
    a_prev *= np.asarray(magnitude, dtype)
    a = ops.dense_forward(a_prev, weights, bias, activation)
    close(a, ref.dense_forward(a_prev, weights, bias, activation), dtype, n_in)
    z = ops.dense_forward(a_prev, weights, bias)
    y = rng.random((m, n_out)).astype(dtype)
    for loss, ours in (("mse", ops.mse(a, y, 2.0, "sum", activation, z=z)), ("bce", ops.bce(a, y)),
                       ("cross_entropy", ops.cross_entropy(a, y))):
        theirs = (ref.mse(a, y, 2.0, "sum", activation, z=z) if loss == "mse"
                  else getattr(ref, loss)(a, y))
        close_loss(ours[0], theirs[0], dtype)
        close(ours[1], theirs[1], dtype, n_out)
    delta = ops.activation_backward(activation, y, a, z=z)
    close(delta, ref.activation_backward(activation, y, a, z=z), dtype, n_out)
    for ours, theirs, k in zip(ops.dense_backward(delta, a_prev, weights),
                               ref.dense_backward(delta, a_prev, weights), (m, m, n_out)):
        close(ours, theirs, dtype, k)


@pytest.mark.parametrize("name", sorted(ACTIVATION_NAMES))
def test_the_fast_path_and_the_checked_path_agree(name, dtype, rng):
    """Plain arrays skip the Python checks (_engine.elementwise_ready); a list
    or a Fortran-ordered array goes through them and is converted: the same
    kernels, the same bits."""
    z = rng.standard_normal((6, 5)).astype(dtype)
    grad = rng.standard_normal((6, 5)).astype(dtype)
    assert _backend.engine.elementwise_ready((z,), None, -1)
    assert not _backend.engine.elementwise_ready((np.asfortranarray(z),), None, -1)
    a = ops.activation_forward(name, z)
    np.testing.assert_array_equal(ops.activation_forward(name, np.asfortranarray(z)), a)
    if dtype == "float64":
        np.testing.assert_array_equal(ops.activation_forward(name, z.tolist()), a)
    fast = ops.activation_backward(name, grad, a, z=z)
    checked = ops.activation_backward(name, np.asfortranarray(grad), a, z=np.asfortranarray(z))
    np.testing.assert_array_equal(fast, checked)


def test_elementwise_ready_refuses_what_the_checks_refuse():
    ready = _backend.engine.elementwise_ready
    z = np.zeros((4, 3))
    buffer = np.zeros((5, 3))
    assert ready((z, z.copy()), z, 0)                      # in place, as allowed
    assert not ready((z, z.copy()), z, 1)                  # in place on the wrong input
    assert not ready((z, z), z, 0)                         # the other input is out too
    assert not ready((buffer[:4],), buffer[1:], 0)         # a partial overlap
    assert ready((buffer[:2],), buffer[2:4], -1)           # one buffer, no overlap
    assert not ready((z,), np.zeros((4, 3), np.float32), -1)
    assert not ready((z,), np.zeros((3, 4)), -1)
    read_only = np.zeros((4, 3))
    read_only.flags.writeable = False
    assert not ready((z,), read_only, -1)
    assert not ready((z, z.astype(np.float32)), None, -1)
    assert not ready((z.astype(">f8"),), None, -1)
    assert not ready((np.zeros((4, 3), np.int64),), None, -1)
    assert not ready((np.zeros(12),), None, -1)


def test_products_and_losses_take_the_fast_path_with_the_checked_paths_bits(dtype, rng):
    """Plain arrays skip the Python checks of gemm, dense_forward,
    dense_backward and the losses (_engine.*_ready); Fortran-ordered copies
    and lists go through them and are converted: the same kernels, the same
    bits, and the same allocations of missing outputs."""
    engine = _backend.engine
    a_prev, weights, bias = layer(rng, 7, 5, 4, dtype)
    delta = rng.standard_normal((7, 4)).astype(dtype)
    targets = rng.random((7, 4)).astype(dtype)
    labels = rng.integers(0, 4, 7)
    slow = np.asfortranarray   # a copy that takes the checked path
    assert engine.gemm_ready(a_prev, weights, False, False, None)
    assert engine.gemm_ready(a_prev, a_prev, True, False, np.empty((5, 5), dtype))
    np.testing.assert_array_equal(ops.gemm(a_prev, weights), ops.gemm(slow(a_prev), weights))
    np.testing.assert_array_equal(ops.gemm(delta, weights, trans_b=True),
                                  ops.gemm(delta, slow(weights), trans_b=np.True_))
    assert engine.dense_forward_ready(a_prev, weights, bias, None)
    for activation in ("relu", "softmax", "linear"):
        np.testing.assert_array_equal(ops.dense_forward(a_prev, weights, bias, activation),
                                      ops.dense_forward(slow(a_prev), weights, bias, activation))
    assert engine.dense_backward_ready(delta, a_prev, weights, None, None, None, True)
    outputs = (np.empty((5, 4), dtype), np.empty(4, dtype), np.empty((7, 5), dtype))
    assert engine.dense_backward_ready(delta, a_prev, weights, *outputs, True)
    fast = ops.dense_backward(delta, a_prev, weights, *outputs)
    assert all(x is y for x, y in zip(fast, outputs))
    for fast, checked in zip(ops.dense_backward(delta, a_prev, weights),
                             ops.dense_backward(slow(delta), a_prev, weights)):
        np.testing.assert_array_equal(fast, checked)
    first = ops.dense_backward(delta, a_prev, weights, need_grad_a_prev=False)
    assert first[2] is None
    np.testing.assert_array_equal(first[0], ops.dense_backward(delta, a_prev, weights)[0])
    a = ops.activation_forward("sigmoid", a_prev)
    for scale, reduction in ((1.0, "mean"), (2, "sum")):
        for activation, z in (("identity", None), ("sigmoid", None), ("silu", a_prev)):
            fast = ops.mse(a, a_prev, scale, reduction, activation, z=z)
            checked = ops.mse(slow(a), a_prev, scale, reduction, activation, z=z)
            assert fast[0] == checked[0]
            np.testing.assert_array_equal(fast[1], checked[1])
    fast, checked = ops.bce(delta, targets), ops.bce(slow(delta), targets)
    assert fast[0] == checked[0]
    np.testing.assert_array_equal(fast[1], checked[1])
    for y in (labels, targets):
        assert engine.cross_entropy_ready(delta, y, None)
        fast = ops.cross_entropy(delta, y)
        checked = ops.cross_entropy(slow(delta), y.tolist() if y.ndim == 1 else slow(y))
        assert fast[0] == checked[0]
        np.testing.assert_array_equal(fast[1], checked[1])
    in_place = delta.copy()
    assert ops.cross_entropy(in_place, labels, out=in_place)[1] is in_place
    np.testing.assert_array_equal(in_place, ops.cross_entropy(delta, labels)[1])


def test_the_ready_checks_refuse_what_the_python_checks_refuse():
    """Each *_ready function says no to every argument the Python checks
    would convert or refuse, so that those still decide (and raise)."""
    engine = _backend.engine
    x, w, b = np.zeros((6, 5)), np.zeros((5, 4)), np.zeros(4)
    buffer = np.zeros(100)
    assert engine.gemm_ready(x, w, False, False, np.zeros((6, 4)))
    assert engine.gemm_ready(x, buffer[:30].reshape(6, 5), False, True, buffer[30:66].reshape(6, 6))
    for args in ((x, w, 0, False, None),                          # not a bool
                 (x, w, np.False_, False, None),                  # NumPy's bool: converted
                 (x, w, True, False, None),                       # inner dimensions differ
                 (x, w.astype(np.float32), False, False, None),   # mixed dtypes
                 (x.astype(np.int64), w, False, False, None),
                 (x.tolist(), w, False, False, None),
                 (np.asfortranarray(x), w, False, False, None),
                 (x, w, False, False, np.zeros((4, 6))),          # out of the wrong shape
                 (x, w, False, False, np.zeros((6, 4), np.float32)),
                 (x, w, False, False, np.zeros((4, 6)).T),        # not C-contiguous
                 (buffer[:30].reshape(6, 5), w, False, False, buffer[20:44].reshape(6, 4))):
        assert not engine.gemm_ready(*args), args
    read_only = np.zeros((6, 4))
    read_only.flags.writeable = False
    assert not engine.gemm_ready(x, w, False, False, read_only)

    assert engine.dense_forward_ready(x, w, b, np.zeros((6, 4)))
    for args in ((x, w, np.zeros(5), None), (x, w, np.zeros((1, 4)), None),
                 (x, w, b.astype(np.float32), None), (x, np.zeros((4, 4)), b, None),
                 (x, w, b, b), (x, w, b, np.zeros((6, 5)))):
        assert not engine.dense_forward_ready(*args)

    delta = np.zeros((6, 4))
    outputs = [np.zeros((5, 4)), np.zeros(4), np.zeros((6, 5))]
    assert engine.dense_backward_ready(delta, x, w, *outputs, True)
    assert engine.dense_backward_ready(delta, x, w, None, None, None, False)
    assert not engine.dense_backward_ready(delta, x, w, None, None, outputs[2], False)
    assert not engine.dense_backward_ready(delta, x, w, None, None, None, 1)
    assert not engine.dense_backward_ready(delta, x[:5], w, None, None, None, True)
    assert not engine.dense_backward_ready(delta, x, w.T, None, None, None, True)
    assert not engine.dense_backward_ready(delta, x, w, x, None, None, True)   # wrong shape
    assert not engine.dense_backward_ready(delta, x, w, None, None, x, True)   # an input
    shared = np.zeros(60)
    assert not engine.dense_backward_ready(delta, x, w, shared[:20].reshape(5, 4),
                                           shared[16:20], None, True)         # two outputs

    labels = np.zeros(6, np.int64)
    assert engine.cross_entropy_ready(delta, labels, delta)                   # in place
    assert engine.cross_entropy_ready(delta, np.zeros((6, 4)), np.zeros((6, 4)))
    assert not engine.cross_entropy_ready(delta, labels.astype(np.int32), None)
    assert not engine.cross_entropy_ready(delta, labels[:5], None)
    assert not engine.cross_entropy_ready(delta, labels.astype(np.float64), None)
    assert not engine.cross_entropy_ready(np.zeros((0, 4)), labels[:0], None)  # empty
    assert not engine.cross_entropy_ready(delta, delta, delta)                # out is y
    block = np.zeros(30)
    assert not engine.cross_entropy_ready(block[:24].reshape(6, 4), labels,
                                          block[4:28].reshape(6, 4))          # a partial overlap


@pytest.mark.parametrize("module", [ops, ref], ids=["compiled", "reference"])
def test_cross_entropy_of_confident_rows_keeps_its_digits(module, dtype):
    """-log softmax of the labelled class where it is tiny (the label's logit
    far above the others): formed as max + log(sum) - z_label it rounded to
    0 from a margin of about 37 on (float64), and was 1.3 % off at 30. Against
    mpmath, for labels and for the same rows as soft targets."""
    import mpmath

    Z = np.array([[0.0, 30.0, -2.0], [0.0, 40.0, 1.0], [1e4, 1e4 + 40, 1e4 - 3],
                  [5.0, 5.0, -50.0], [0.0, 10.0, 3.0], [-60.0, 0.0, -70.0]], dtype=dtype)
    labels = np.array([1, 1, 1, 0, 1, 1])
    soft = np.zeros(Z.shape, dtype=dtype)
    soft[:, 1], soft[:, 0] = 0.75, 0.25
    with mpmath.workprec(200):
        def minus_log_softmax(row, j):
            values = [mpmath.mpf(float(v)) for v in row]
            return mpmath.log(sum(mpmath.exp(v) for v in values)) - values[j]
        by_label = [float(minus_log_softmax(row, j)) for row, j in zip(Z, labels)]
        by_soft = [float(0.75 * minus_log_softmax(row, 1) + 0.25 * minus_log_softmax(row, 0))
                   for row in Z]
    # float32 logits: the compiled exp is float32's (a few of its ulp)
    limit = 1e-6 if dtype == "float32" else 1e-14
    for i in range(len(Z)):
        got = module.cross_entropy(Z[i:i + 1], labels[i:i + 1])[0]
        assert got == pytest.approx(by_label[i], rel=limit, abs=0), (Z[i], got, by_label[i])
        got = module.cross_entropy(Z[i:i + 1], soft[i:i + 1])[0]
        assert got == pytest.approx(by_soft[i], rel=limit, abs=0), (Z[i], got, by_soft[i])


def assert_keeps_its_digits(module, name, low, exact, conditioning, dtype):
    """``name`` and its derivative against mpmath at 113 bits from z = ``low``
    up to 6, to 8 eps (1 + conditioning(z)) relative: ``exact(x)`` gives f(x),
    f'(x) and the size of f'(x)'s two terms (f' crosses 0 near z = -0.75,
    where its error is relative to them)."""
    import mpmath

    z = np.concatenate([np.linspace(low, 6.0, 701), [-3.0, -0.5, 0.0, 0.5]]).astype(dtype)
    z = z.reshape(1, -1)
    with mpmath.workprec(113):
        value, slope, slope_scale = np.array(
            [[float(part) for part in exact(mpmath.mpf(float(v)))] for v in z.ravel()]
        ).T.reshape(3, *z.shape)
    a = module.activation_forward(name, z)
    got_slope = module.activation_backward(name, np.ones_like(z), a, z=z)
    limit = 8 * np.finfo(dtype).eps * (1 + conditioning(z.astype(np.float64)))
    for got, want, scale in ((a, value, np.abs(value)), (got_slope, slope, slope_scale)):
        error = np.abs(got.astype(np.float64) - want) / np.maximum(scale, np.finfo(dtype).tiny)
        bad = error > limit
        assert not bad.any(), (z[bad], got[bad], want[bad])


@pytest.mark.parametrize("module", [ops, ref], ids=["compiled", "reference"])
def test_gelu_keeps_its_digits_in_the_tails(module, dtype):
    """gelu (the erf form) and its derivative are relatively accurate where
    they are tiny (z far below 0): written as z (1 + erf(z / √2)) / 2 the sum
    cancelled: gelu was 57 % off at z = -5.5 and 0 from -5.6 down in
    float32, 8 % off at -8.2 and 0 from -8.4 down in float64. To a few times the conditioning of exp(-z²/2) (z²/2
    ulp), down to where Φ(z) nears the smallest normal (below it, subnormal)."""
    import mpmath

    def exact(x):
        cdf = mpmath.erfc(-x / mpmath.sqrt(2)) / 2
        term = x * mpmath.npdf(x)
        return x * cdf, cdf + term, abs(cdf) + abs(term)

    low = -12.5 if dtype == "float32" else -37.0
    assert_keeps_its_digits(module, "gelu", low, exact, lambda z: z ** 2 / 2, dtype)


@pytest.mark.parametrize("module", [ops, ref], ids=["compiled", "reference"])
def test_gelu_tanh_slope_at_magnitudes_whose_square_overflows(module, dtype):
    """gelu_tanh' is 1 far above 0 and 0 far below, also where z² overflows
    (u'(z) grows as z²): it was 0 x inf = NaN from |z| = 1.3e154 (float64)
    and 1.8e19 (float32) on."""
    big = [1e4, 1e19, 1e20, 3e38] if dtype == "float32" else [1e4, 1e154, 2e154, 1e300]
    z = np.array([big + [-v for v in big]], dtype=dtype)
    with np.errstate(over="ignore"):   # the reference's z³ in u
        a = module.activation_forward("gelu_tanh", z)
        slope = module.activation_backward("gelu_tanh", np.ones_like(z), a, z=z)
    np.testing.assert_array_equal(slope, [[1.0] * len(big) + [0.0] * len(big)])


@pytest.mark.parametrize("module", [ops, ref], ids=["compiled", "reference"])
def test_gelu_tanh_keeps_its_digits_in_the_tails(module, dtype):
    """gelu_tanh and its derivative are relatively accurate where they are
    tiny (z far below 0), not only near 1: written as z (1 + tanh(u)) / 2 the
    sum cancelled and float32 gave 12 times the true value at z = -5.4, and
    float64 twice it at z = -7.2. To a few times the rounding of u (|2u|
    ulp), down to where σ(2u) nears the smallest normal (below it, subnormal)."""
    import mpmath

    def exact(x):
        u = mpmath.sqrt(2 / mpmath.pi) * (x + mpmath.mpf(0.044715) * x ** 3)
        s = 1 / (1 + mpmath.exp(-2 * u))
        term = 2 * x * s * (1 - s) * mpmath.sqrt(2 / mpmath.pi) * (
            1 + 3 * mpmath.mpf(0.044715) * x * x)
        return x * s, s + term, abs(s) + abs(term)

    def two_u(z):
        return 2 * np.sqrt(2 / np.pi) * np.abs(z) * (1 + 0.044715 * z ** 2)

    low = -9.5 if dtype == "float32" else -19.5
    assert_keeps_its_digits(module, "gelu_tanh", low, exact, two_u, dtype)


EMPTY_ROWS_AT_A_GUARD_PAGE = r"""
import ctypes, mmap, sys
import numpy as np
import cbackprop as cb

page = mmap.PAGESIZE
memory = mmap.mmap(-1, 2 * page)
libc = ctypes.CDLL(None, use_errno=True)
start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
assert libc.mprotect(ctypes.c_void_p(start + page), page, 0) == 0   # PROT_NONE
for dtype in ("float64", "float32"):
    # Rows of no columns whose data pointer is the first byte of the page no one may read.
    z = np.ndarray((3, 0), dtype=dtype, buffer=memory, offset=page)
    for name in sys.argv[1:]:
        assert cb.ops.activation_forward(name, z).shape == (3, 0)
print("ok")
"""


@pytest.mark.skipif(os.name != "posix", reason="places an array at a page made unreadable by mprotect")
def test_rows_of_no_columns_are_never_read():
    """An activation of (m, 0) values reads nothing: softmax took each row's
    first value for its maximum (here it would fault, the array's data
    pointer being the start of a page no one may read; run in its own
    process so that a fault fails the test)."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", EMPTY_ROWS_AT_A_GUARD_PAGE, *ACTIVATIONS],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"exit code {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [(1, 1, 1), (3, 5, 7), (64, 10, 256), (300, 129, 1000)])
def test_the_ops_pack_on_cache_lines(dtype, sizes):
    """Each op's packed panels start on 64-byte lines, as the Engine's
    workspace's do, whatever numpy's memory gave their buffer."""
    engine = _backend.engine
    guard = 64 if engine.debug_guards() else 0   # elements of a debug build's guard zone
    for _ in range(8):   # buffers of several allocations
        a_offset, b_offset, distance, size_a = engine.op_panel_offsets(dtype, *sizes)
        assert (a_offset, b_offset) == (0, 0)
        # B starts past A's panel and its guard zone, at the next block of
        # 16 elements (ALIGN, a line of float32).
        assert size_a > 0 and distance % 16 == 0
        assert size_a + guard <= distance < size_a + guard + 16
