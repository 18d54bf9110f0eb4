"""vmath.h's vector exp, expm1, sigmoid, tanh, silu, log, log1p and erfc, as the running
engine build compiles them: within 4 ulp of the correctly rounded result
(mpmath at 113 bits) over a sweep of each function's whole range, both
dtypes — saturation regions, subnormal inputs and results, the overflow and
underflow thresholds — and the IEEE answers for ±0, ±inf and NaN."""
import math

import mpmath
import numpy as np
import pytest

from cbackprop._backend import engine
from engine_told import told_halves_512

mpmath.mp.prec = 113


def _silu(x):
    return x / (1 + mpmath.exp(-x))


EXACT = {
    "exp": mpmath.exp,
    "expm1": mpmath.expm1,
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "tanh": mpmath.tanh,
    "silu": _silu,
    "log": mpmath.log,
    "log1p": mpmath.log1p,
    # mpmath's erfc fails beyond about 1e150 (an int too large for a float);
    # from 30 on, erfc(x) rounds to 0 in both dtypes, and erfc(-x) to 2.
    "erfc": lambda x: mpmath.erfc(x) if abs(x) < 30 else mpmath.mpf(0 if x > 0 else 2),
}
ULP_LIMIT = 4


def _signed_logspace(low, high, count):
    magnitudes = np.logspace(low, high, count)
    return np.concatenate([magnitudes, -magnitudes])


def sweep(name, dtype):
    """Points across the function's range: a dense linear sweep over where it
    varies and saturates, magnitudes from the smallest subnormal up to the
    largest finite, and the
    thresholds where exp overflows or its result leaves the subnormals."""
    info = np.finfo(dtype)
    tiny_exponent = math.log10(float(info.smallest_subnormal))
    overflow = math.log(float(info.max))                  # exp overflows just above
    underflow = math.log(float(info.smallest_subnormal))  # exp(x) < the smallest subnormal
    if name in ("log", "log1p"):
        # Every binade from the smallest subnormal to the largest finite
        # (for log1p also down to -1), and around 1 (log) or 0 (log1p); the
        # sweep's end rounds to inf, which is checked too.
        with np.errstate(over="ignore"):
            huge_exponent = math.log10(float(info.max))
            points = [np.logspace(tiny_exponent, huge_exponent, 9001),
                      1 + np.linspace(-0.5, 0.5, 2001)]
            if name == "log1p":
                points += [-np.logspace(tiny_exponent, 0, 3001)[:-1], np.linspace(-1, 1, 2001)[1:]]
            edges = np.array([float(info.smallest_normal), float(info.max), 1.0], dtype=dtype)
            points.append(np.concatenate([np.nextafter(edges, np.inf), edges,
                                          np.nextafter(edges, 0)]))
            return np.concatenate(points).astype(dtype)
    span = {"exp": (underflow - 10, overflow + 10), "expm1": (underflow - 10, overflow + 10),
            "sigmoid": (-overflow - 20, overflow + 20), "tanh": (-30.0, 30.0),
            "silu": (-overflow - 20, overflow + 20), "erfc": (-30.0, 30.0)}[name]
    # Up to the largest finite magnitude: exp's argument is clamped there,
    # and silu once scaled its factor x by the clamped exponent.
    huge_exponent = math.log10(float(info.max)) - 1e-9   # 10 ** log10(max) may round above max
    points = [np.linspace(*span, 6001), _signed_logspace(tiny_exponent, 1.5, 3001),
              _signed_logspace(1.5, huge_exponent, 601)]
    if name == "erfc":   # where its two branches meet, and where it goes subnormal and to 0
        last_normal = float(mpmath.findroot(
            lambda a: mpmath.log(mpmath.erfc(a)) - mpmath.log(float(info.smallest_normal)), 5))
        points += [_signed_logspace(math.log10(0.7), math.log10(0.8), 1001),
                   np.linspace(last_normal - 1, last_normal + 1.5, 3001)]
    edges = np.array([overflow, underflow, underflow / 2, -overflow, 2 * overflow], dtype=dtype)
    points.append(np.concatenate([np.nextafter(edges, np.inf), edges, np.nextafter(edges, -np.inf)]))
    return np.concatenate(points).astype(dtype)


def ulp_errors(name, x, got, dtype):
    """|got - exact| in units of the dtype's spacing at the rounded exact value;
    inf where got is NaN or the wrong infinity."""
    info = np.finfo(dtype)
    errors = np.empty(x.size)
    for i, (xi, yi) in enumerate(zip(x.tolist(), got.tolist())):
        exact = EXACT[name](mpmath.mpf(xi))
        with np.errstate(over="ignore"):   # to inf where the result overflows
            rounded = np.array(float(exact)).astype(dtype)
        if np.isinf(rounded) or math.isnan(yi) or math.isinf(yi):
            errors[i] = 0.0 if yi == float(rounded) else np.inf
            continue
        with np.errstate(over="ignore"):
            spacing = float(np.spacing(np.abs(rounded)))
        if math.isinf(spacing):   # at the largest finite value: the gap below it
            spacing = float(np.abs(rounded) - np.nextafter(np.abs(rounded), 0))
        spacing = max(spacing, float(info.smallest_subnormal))
        errors[i] = float(abs(mpmath.mpf(yi) - exact) / spacing)
    return errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXACT))
def test_within_four_ulp_over_the_whole_range(name, dtype):
    x = sweep(name, dtype)
    got = engine.vector_math(name, x)
    assert got.dtype == x.dtype and got.shape == x.shape
    errors = ulp_errors(name, x, got, dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= ULP_LIMIT, (
        f"{name}({x[worst]!r}) = {got[worst]!r}: {errors[worst]:.2f} ulp from "
        f"{mpmath.nstr(EXACT[name](mpmath.mpf(float(x[worst]))), 20)}")


def test_float32_erfc_at_every_value_of_its_range():
    """float32's erfc from 0.3 (inside its near branch) to where it rounds to
    0, both signs: every value (about 44 million), against the float64 erfc
    the sweep above holds to mpmath (its error, ~1e-16 relative, is far below
    a float32 ulp). The sweep's few thousand points missed 4.2 ulp at 0.8222."""
    first, last = np.array([0.3, 10.2], np.float32).view(np.int32)
    for start in range(first, last, 1 << 22):
        x = np.arange(start, min(start + (1 << 22), last), dtype=np.int32).view(np.float32)
        for signed in (x, -x):
            exact = engine.vector_math("erfc", signed.astype(np.float64))
            got = engine.vector_math("erfc", signed).astype(np.float64)
            spacing = np.maximum(np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64),
                                 float(np.finfo(np.float32).smallest_subnormal))
            errors = np.abs(got - exact) / spacing
            assert errors.max() <= ULP_LIMIT, signed[int(np.argmax(errors))]


NAN = float("nan")
SPECIAL = [   # x, then (exp, expm1, sigmoid, tanh, silu, log, log1p, erfc) of it; None: not checked
    (0.0, (1.0, 0.0, 0.5, 0.0, 0.0, -np.inf, 0.0, 1.0)),
    (-0.0, (1.0, -0.0, 0.5, -0.0, -0.0, -np.inf, -0.0, 1.0)),
    (np.inf, (np.inf, np.inf, 1.0, 1.0, np.inf, np.inf, np.inf, 0.0)),
    (-np.inf, (0.0, -1.0, 0.0, -1.0, NAN, NAN, NAN, 2.0)),   # silu(-inf) = -inf * 0: NaN, as torch's
    (-1.0, (None, None, None, None, None, NAN, -np.inf, None)),
    (-2.0, (None, None, None, None, None, NAN, NAN, None)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zeros_infinities_and_nan(dtype):
    for x, expected in SPECIAL:
        for name, value in zip(("exp", "expm1", "sigmoid", "tanh", "silu", "log", "log1p", "erfc"),
                               expected):
            if value is None:
                continue
            got = engine.vector_math(name, np.array([x], dtype=dtype))[0]
            if math.isnan(value):
                assert np.isnan(got), (name, x, got)
            else:
                assert got == value and np.signbit(got) == np.signbit(value), (name, x, got)
    for name in EXACT:
        assert np.isnan(engine.vector_math(name, np.array([np.nan, -np.nan], dtype=dtype))).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 15, 16, 17, 33, 1000])
def test_every_length_and_in_place(n, dtype):
    """Whole vectors and the padded tail give the same values as one by one."""
    x = np.linspace(-5, 5, n).astype(dtype)
    for name in EXACT:
        whole = engine.vector_math(name, x)
        one_by_one = np.array([engine.vector_math(name, x[i:i + 1])[0] for i in range(n)], dtype)
        np.testing.assert_array_equal(whole, one_by_one)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown function"):
        engine.vector_math("erf", np.zeros(3))
    with pytest.raises(TypeError):
        engine.vector_math("exp", np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError):
        engine.vector_math("exp", np.zeros((4, 4))[:, ::2])


@pytest.fixture(params=["newton", "instruction"])
def root_way(request):
    """Both ways of the square root: by Newton steps on the FMA units where
    the build has them (a 64-byte AVX-512 build not told that the CPU halves
    512-bit instructions), and by the instruction; the import's setting is
    put back."""
    with told_halves_512(request.param == "instruction"):
        yield request.param


def test_the_root_is_by_newton_on_avx512_unless_512_bit_instructions_are_halved():
    """vector_math's sqrt: Zen 4 (halves) takes the instruction, where the
    Newton steps' FMAs cost more than the divider's roots (bench/README.md).
    Adam's and RMSprop's roots: test_the_roots_of_the_updates_by_cpu."""
    import cbackprop as cb
    with told_halves_512(True):
        halved = engine.root_by_newton()
    with told_halves_512(False):
        whole = engine.root_by_newton()
    assert halved is False
    assert whole is (cb.kernel_path == "avx512")


def test_the_roots_of_the_updates_by_cpu():
    """Adam's and RMSprop's roots: the AVX-512 build's all by Newton steps on
    whole 512-bit units; on halved ones (Zen 4) float64's one vector in
    three by Newton steps, where the divider bounds the loop, and float32's
    by the instruction (bench/README.md); other builds have the instruction
    alone."""
    import cbackprop as cb
    with told_halves_512(True):
        halved = engine.update_roots()
    with told_halves_512(False):
        whole = engine.update_roots()
    if cb.kernel_path == "avx512":
        assert whole == {"float64": "newton", "float32": "newton"}
        assert halved == {"float64": "one in three by newton", "float32": "instruction"}
    else:
        assert whole == halved == {"float64": "instruction", "float32": "instruction"}


def _same_bits_as_numpy_sqrt(x):
    got = engine.vector_math("sqrt", x)
    with np.errstate(invalid="ignore"):
        want = np.sqrt(x)
    same = (got == want) & (np.signbit(got) == np.signbit(want))
    same |= np.isnan(got) & np.isnan(want)
    worst = np.flatnonzero(~same)[:5]
    assert same.all(), [(float(x[i]).hex(), float(got[i]).hex(), float(want[i]).hex())
                        for i in worst]


def _root_modulo(r, bits):
    """An odd s with s² = r modulo 2^bits, for r = 1 modulo 8 (Hensel's lifting)."""
    root = 1
    for k in range(3, bits):
        if (root * root - r) % (1 << (k + 1)):
            root += 1 << (k - 1)
    return root


def _next_to_midpoints(dtype, count):
    """Values whose square roots lie next to a point halfway between two
    neighbours of the dtype, the hardest to round (a random mantissa is
    rarely close enough to tell a last correction that is not exact). With
    p the mantissa's bits: an odd z of p + 1 bits whose square is r modulo
    2^(p+2) for a small r, so that x = (z² - r) / 2^(p+2) is exact in p bits
    and sqrt(x) = z/2 - r/(4z) + ..., next to the halfway point z/2; then x
    scaled by every even power of two that keeps it finite (which scales its
    root exactly): every binade, subnormals included."""
    p = np.finfo(dtype).nmant + 1
    values = []
    for r in range(-8 * count + 1, 8 * count, 8):   # r = 1 modulo 8, as odd squares are
        root = _root_modulo(r % (1 << (p + 2)), p + 2)
        for z in {root, -root % (1 << (p + 2)), (root + (1 << (p + 1))) % (1 << (p + 2)),
                  (-root + (1 << (p + 1))) % (1 << (p + 2))}:
            if 1 << p <= z < 1 << (p + 1):
                values.append((z * z - r) >> (p + 2))
    x = np.array(values, dtype=np.float64).astype(dtype)
    info = np.finfo(dtype)
    exponents = range(int(np.log2(float(info.smallest_subnormal))) - p - 2,
                      int(np.log2(float(info.max))) - p + 2, 2)
    with np.errstate(over="ignore"):
        scaled = np.concatenate([np.ldexp(x, shift).astype(dtype) for shift in exponents])
    return scaled[np.isfinite(scaled)]


def test_float32_sqrt_is_the_instructions_on_every_mantissa(root_way):
    """sqrt's rounding depends on the mantissa and on the exponent's parity
    alone, so every float32 in [1, 4) covers the Newton steps of the AVX-512
    build (2^24 values); then every 257th float32 of every binade (the
    hand-over to the sqrt instruction at 2^-90 among them), roots next to a
    halfway point in every binade, and the special values. (The hand-over
    has a margin: with it moved to 2^-110, 34 of the float32 values in
    [2^-110, 2^-100) came out wrong, all in the lowest binade, too few for
    a sample to find; every float32 was checked by a script.)"""
    def binades(low, high, stride=1):
        first, last = np.array([low, high], np.float32).view(np.int32)
        return np.arange(first, last, stride, dtype=np.int32).view(np.float32)
    x = np.concatenate([binades(1.0, 4.0),
                        binades(float(np.finfo(np.float32).smallest_subnormal),
                                float(np.finfo(np.float32).max), 257),
                        _next_to_midpoints(np.float32, 64),
                        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, -2.0**-140,
                                  np.finfo(np.float32).max], np.float32)])
    _same_bits_as_numpy_sqrt(x)


def test_float64_sqrt_is_the_instructions_across_every_binade(root_way):
    """float64: random mantissas in every binade from the subnormals to the
    largest (in particular around the AVX-512 build's hand-over at 2^-900),
    roots next to a halfway point in every binade (a random mantissa is
    rarely close enough to one to tell a last correction that is not exact),
    a million in [1, 4), the special values; several vectors mix lanes of
    both paths and zeros."""
    rng = np.random.default_rng(7)
    mantissas = rng.integers(0, 1 << 52, size=(2098, 256), dtype=np.uint64)
    exponents = np.arange(2098, dtype=np.uint64)[:, None] % np.uint64(2047)
    across = ((exponents << np.uint64(52)) | mantissas).view(np.float64).ravel()
    near_one = (rng.integers(0, 1 << 53, size=1 << 20, dtype=np.uint64)
                | np.uint64(1023 << 52)).view(np.float64) * np.where(
                    rng.random(1 << 20) < 0.5, 1.0, 2.0)
    mixed = across[::5].copy()
    mixed[::3] = 0.0
    mixed[1::7] = -mixed[1::7]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 5e-324,
                        np.finfo(np.float64).max, 2.0**-900, np.nextafter(2.0**-900, 0)])
    _same_bits_as_numpy_sqrt(np.concatenate([across, near_one, mixed, special,
                                             _next_to_midpoints(np.float64, 64)]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 15, 16, 17, 33, 1000])
def test_sqrt_of_every_length(n, dtype, root_way):
    x = np.linspace(0, 5, n).astype(dtype)
    _same_bits_as_numpy_sqrt(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "adam-decay", "adam-clip", "rmsprop",
                                       "rmsprop-momentum"])
def test_updates_are_the_same_either_way_of_the_root(optimizer, dtype):
    """Adam and RMSprop give the same parameters and state, bit for bit, with
    their square roots by Newton steps and by the instruction (each way of
    cb_vm_sqrt rounds as the instruction), or, in float64 told that the CPU
    halves 512-bit instructions, a third by Newton steps: a [5, 33, 3]
    network (a tail of every width; arrays of 20, 4 and 12 whole float64
    vectors: after the first, groups of three with one, none and two left
    over) whose first input column is tiny, so that some second moments are
    subnormal, which the Newton steps hand to the instruction. No output of
    9-10 columns: its products would take other tiles. (Every way rounds the
    same, so only test_the_roots_of_the_updates_by_cpu sees which way runs.)"""
    import cbackprop as cb
    make = {"adam": lambda: cb.Adam(lr=1e-2),
            "adam-decay": lambda: cb.Adam(lr=1e-2, weight_decay=1e-3),
            "adam-clip": lambda: cb.Adam(lr=1e-2, clip_norm=0.5),
            "rmsprop": lambda: cb.RMSprop(lr=1e-2),
            "rmsprop-momentum": lambda: cb.RMSprop(lr=1e-2, momentum=0.9, weight_decay=1e-3)}
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 5)).astype(dtype)
    X[:, 0] *= np.sqrt(np.finfo(dtype).tiny) / 4
    Y = rng.standard_normal((16, 3)).astype(dtype)
    states = {}
    for halves in (False, True):
        with told_halves_512(halves):
            net = cb.Network([5, 33, 3], ["tanh", "identity"], optimizer=make[optimizer](),
                             dtype=dtype, seed=1)
            for _ in range(6):
                net.train_step(X, Y)
            states[halves] = net.__getstate__()
    if not make[optimizer]().config()["weight_decay"]:
        # (weight decay adds decay * p to each gradient: no tiny ones then)
        assert any(np.any((a != 0) & (np.abs(a) < np.finfo(dtype).tiny))
                   for a in _arrays(states[False]["optimizer_state"])), "no subnormal moment"
    for whole, halved in zip(_arrays(states[False]), _arrays(states[True]), strict=True):
        assert whole.tobytes() == halved.tobytes()


def _arrays(value):
    """Every NumPy array in a nest of dicts, lists and tuples, in order."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for key in sorted(value) for a in _arrays(value[key])]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in _arrays(item)]
    return []
