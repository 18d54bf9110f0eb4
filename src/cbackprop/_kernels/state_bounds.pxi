# Moments in place: bounds that prove an optimizer step cannot overflow.
#
# A step writes its new moments into spare buffers so that a step that would
# overflow can be refused with nothing changed (optimizers.pxi). Beyond the
# caches that costs memory traffic: a spare buffer's lines are read from
# memory before they are written, so Adam's and RMSprop's passes move 9
# arrays' worth of memory. On a network that large (MOMENTS_IN_PLACE_MIN_BYTES)
# the engine keeps upper bounds of |parameter| and of the two moment buffers
# (StateBounds). When those, and the largest gradient of the step (one pass
# over the gradients), prove that no new value can overflow, the step writes
# its moments in place: 8 arrays' worth. The same element functions run, so
# the results are the same bits.
#
# The bounds of the new state follow from the same inequalities, so a run
# of such steps needs no pass over the state; a step taken in the spare
# buffers measures them again (state_bounds). Whatever else writes the
# parameters or moments makes the engine forget them (Engine.bounds.known).
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport copysign, fabsf
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    # Parameters in bytes (one array's worth) from which Adam and RMSprop
    # may step in place: below, the spare buffers stay cached and the
    # largest-gradient pass costs more than it saves (bench/README.md,
    # "Kept: Adam in place beyond the caches").
    MOMENTS_IN_PLACE_MIN_BYTES = 2 * 1024 * 1024


cdef inline bint moments_in_place_pay(Py_ssize_t param_bytes) noexcept nogil:
    """Whether steps in place are worth taking for this many bytes of
    parameters on this build. The passes that find the largest gradient and
    measure the bounds (largest_key) take an integer maximum that gcc
    vectorises only with 32-byte vectors or wider: on the baseline build
    (SSE2) the steps in place were slower at every size measured
    (bench/README.md, "Kept: Adam in place beyond the caches")."""
    return CB_VECTOR_BYTES >= 32 and param_bytes >= MOMENTS_IN_PLACE_MIN_BYTES


# 1 + 2^-16: 256 float32 roundings' worth of relative error.
cdef double BOUND_SLACK = 1.0000152587890625


cdef struct StateBounds:
    bint known        # False: unknown (after any write the engine did not bound)
    int kind          # the optimizer whose state they bound (OptimizerKind)
    double param      # >= every |parameter|
    double moment1    # Adam: >= every |m|; RMSprop: >= every v, and every v >= 0
    double moment2    # Adam: >= every v, and every v >= 0; RMSprop: >= every |buffer|
    long steps_in_place   # steps these bounds let write in place (for the tests)


cdef inline bint bounds_moments(int kind) noexcept nogil:
    """Whether an optimizer's steps may write their moments in place."""
    return kind == OPT_ADAM or kind == OPT_RMSPROP


cdef double largest_key(Py_ssize_t count, const real* x, bint magnitudes) noexcept nogil:
    """``max(|x|)`` with ``magnitudes``, else ``max(x)`` when every x >= +0 and
    a negative number otherwise; not finite when any x is not. Taken over
    the bit patterns as unsigned integers, which order non-negative floats
    as their values (NaN above inf, a sign bit above all), because gcc
    vectorises an integer maximum and not a floating-point one."""
    cdef Py_ssize_t i
    cdef uint32_t key32, top32 = 0
    cdef uint64_t key64, top64 = 0
    cdef float value32
    cdef double value64
    if real is float:
        for i in range(count):
            value32 = fabsf(x[i]) if magnitudes else x[i]
            memcpy(&key32, &value32, 4)
            top32 = key32 if key32 > top32 else top32
        memcpy(&value32, &top32, 4)
        return value32
    else:
        for i in range(count):
            value64 = fabs(x[i]) if magnitudes else x[i]
            memcpy(&key64, &value64, 8)
            top64 = key64 if key64 > top64 else top64
        memcpy(&value64, &top64, 8)
        return value64


cdef void state_bounds(Py_ssize_t count, int kind, const real* param, const real* moment1,
                       const real* moment2, StateBounds* bounds) noexcept nogil:
    """Measure the bounds of the state of ``kind``'s step just taken in the
    spare buffers: known when every value is finite and every second moment
    (Adam's moment2, RMSprop's moment1) is +0 or more. (A -0 anywhere gives
    -0, whose bit pattern is the largest: not known, though harmless.)"""
    cdef bint squares_first = kind == OPT_RMSPROP
    bounds.kind = kind
    bounds.param = largest_key(count, param, True)
    bounds.moment1 = largest_key(count, moment1, not squares_first)
    bounds.moment2 = largest_key(count, moment2, squares_first)
    bounds.known = (isfinite(bounds.param) and isfinite(bounds.moment1)
                    and isfinite(bounds.moment2) and copysign(1, bounds.moment1) > 0
                    and copysign(1, bounds.moment2) > 0)


# The two proofs below apply the triangle inequality to each line of the
# element function, then raise each bound by BOUND_SLACK, more than the
# rounding of the few operations (and of the coefficients to float32) that
# compute the value it bounds, so that it holds of the rounded values too.
# Every value and intermediate must stay within ``limit``, a quarter of the
# dtype's largest value. (Each comparison is false for NaN.)

cdef inline double largest_step_gradient(const OptimizerSettings* opt, double largest_gradient,
                                         const StateBounds* bounds) noexcept nogil:
    """A bound of |g| as the element functions use it: clipped, plus weight decay."""
    cdef double g = min(largest_gradient * opt.gradient_scale, opt.clip_value)
    return (g + fabs(opt.weight_decay) * bounds.param) * BOUND_SLACK


cdef bint adam_stays_finite(const OptimizerSettings* opt, double g, const StateBounds* bounds,
                            double limit, StateBounds* after) noexcept nogil:
    """Adam's step (cb_vadam), with |m| / (sqrt(v) / sqrt(1 - beta2^t) + eps) <= |m| / eps."""
    cdef double m = (opt.beta1 * bounds.moment1 + (1 - opt.beta1) * g) * BOUND_SLACK
    cdef double v = (opt.beta2 * bounds.moment2 + (1 - opt.beta2) * g * g) * BOUND_SLACK
    cdef double step_size = fabs(opt.lr) / opt.bias_correction1
    cdef double step = step_size * m / opt.eps * BOUND_SLACK
    after.param = (bounds.param + step) * BOUND_SLACK
    after.moment1 = m
    after.moment2 = v
    return (g * g <= limit and m <= limit and v <= limit and step_size * m <= limit
            and sqrt(v) / sqrt(opt.bias_correction2) <= limit and step <= limit
            and after.param <= limit)


cdef bint rmsprop_stays_finite(const OptimizerSettings* opt, double g,
                               const StateBounds* bounds, double limit,
                               StateBounds* after) noexcept nogil:
    """RMSprop's step (cb_vrmsprop), with |g| / (sqrt(v) + eps) <= |g| / eps; without
    momentum the buffer keeps its values."""
    cdef double v = (opt.alpha * bounds.moment1 + (1 - opt.alpha) * g * g) * BOUND_SLACK
    cdef double step = g / opt.eps * BOUND_SLACK
    cdef double buffer = bounds.moment2
    if opt.momentum != 0:
        buffer = (fabs(opt.momentum) * bounds.moment2 + step) * BOUND_SLACK
    cdef double change = fabs(opt.lr) * (buffer if opt.momentum != 0 else step) * BOUND_SLACK
    after.param = (bounds.param + change) * BOUND_SLACK
    after.moment1 = v
    after.moment2 = buffer
    return (g * g <= limit and v <= limit and step <= limit and buffer <= limit
            and change <= limit and after.param <= limit)


cdef bint moments_in_place_are_safe(const OptimizerSettings* opt, double largest_gradient,
                                    const StateBounds* bounds, double limit,
                                    StateBounds* after) noexcept nogil:
    """Whether the step of ``opt`` from a state within ``bounds`` (known, and
    of this optimizer's state: the caller checks that first), with gradients
    of at most ``largest_gradient`` in magnitude, may write its moments in
    place; ``after``: the bounds of the state it leaves."""
    if not (opt.eps > 0 and largest_gradient <= limit):
        return False
    cdef double g = largest_step_gradient(opt, largest_gradient, bounds)
    if not g <= limit:
        return False
    after.known = True
    after.kind = opt.kind
    after.steps_in_place = bounds.steps_in_place + 1
    if opt.kind == OPT_ADAM:
        return adam_stays_finite(opt, g, bounds, limit, after)
    return rmsprop_stays_finite(opt, g, bounds, limit, after)


cdef double largest_gradient(Py_ssize_t count, const real* grad, double* partials,
                             int n_threads) noexcept nogil:
    """``max(|grad[:count]|)`` (not finite when an element is not), over
    NORM_CHUNK chunks spread on the threads as gradient_norm's."""
    cdef Py_ssize_t chunk, n_chunks = (count + NORM_CHUNK - 1) // NORM_CHUNK
    cdef double top = 0
    if n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=cb_team(n_threads), schedule="static"):
            partials[chunk] = largest_key(min(<Py_ssize_t>NORM_CHUNK, count - chunk * NORM_CHUNK),
                                          grad + chunk * NORM_CHUNK, True)
        for chunk in range(n_chunks):
            if not partials[chunk] <= top:   # NaN too
                top = partials[chunk]
        return top
    return largest_key(count, grad, True)


cdef inline double overflow_limit(bint is_float32) noexcept nogil:
    return (FLT_MAX if is_float32 else DBL_MAX) / 4
