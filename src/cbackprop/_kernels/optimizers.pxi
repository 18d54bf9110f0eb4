# Optimizer updates over one parameter block. Weight decay is passed as 0
# for biases; Adam's bias corrections are computed once per step by the
# caller. A step that would leave a value non-finite is refused whole, so
# nothing may be written in place until every new value is known to be
# finite. Every optimizer therefore writes its step into spare buffers, in
# one pass that reads each input once and reports whether all the new
# values are finite; the engine swaps the buffers in only then:
#
# - the new parameters go into the gradient buffer (each gradient is read
#   in the same iteration that overwrites it);
# - the new first and second state buffers (velocity; Adam's m and v;
#   RMSprop's square average and momentum buffer) go into the engine's two
#   spare buffers, spare1 and spare2 (moments_written says how many a kind
#   writes).
#
# A dry run followed by an in-place pass would read everything twice:
# Adam's update beyond L2 would cost 11 array streams instead of 7.
#
# Adam in place: a spare buffer's lines are read from memory before they
# are written, so Adam's pass moves 9 arrays' worth of memory when its
# arrays are beyond the caches. On a network that large the engine keeps
# upper bounds of |parameter|, |m| and v (StateBounds); when those and the
# largest gradient (one pass over the gradients) prove that no new value
# can overflow, Adam writes m and v in place (8 arrays' worth). The bounds
# of the new state follow from the same inequalities, so a run of steps
# needs no pass over the state; a step in the spare buffers measures them
# again (state_bounds). Same element function, same bits.
#
# The codes are the registry's (the ``code`` of each class in
# cbackprop/optimizers.py): an optimizer is its class there, its element
# function and range loop here, and its cases in update_range and
# moments_written.
#
# Gradient clipping is fused into the same passes: the engine computes the
# global gradient norm once per step (gradient_norm) and hands the factor and
# the clamp bound down in the settings; each element is clipped as it is
# read. Without clipping the loops are the unclipped ones, chosen once per
# block.
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, fabs, fabsf, isfinite, isinf, pow, sqrt, sqrtf
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy
from cython.parallel cimport prange

cdef enum OptimizerKind:
    OPT_SGD = 0
    OPT_ADAM = 1
    OPT_RMSPROP = 2


cdef struct OptimizerSettings:
    int kind
    double lr
    double momentum
    bint nesterov
    double weight_decay
    double beta1
    double beta2
    double eps
    double alpha              # RMSprop's smoothing constant
    double bias_correction1   # 1 - beta1**t
    double bias_correction2   # 1 - beta2**t
    double clip_norm          # 0: off
    double clip_value         # infinity: off
    double gradient_scale     # this step's factor: clip_norm / ||g|| when that is < 1, else 1

# Every field, for the engine to fill from an optimizer's own settings (a
# dict converts to the struct only when it names every field).
OPTIMIZER_DEFAULTS = dict(kind=OPT_SGD, lr=0.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                          beta1=0.0, beta2=0.0, eps=0.0, alpha=0.0, bias_correction1=1.0,
                          bias_correction2=1.0, clip_norm=0.0, clip_value=INFINITY,
                          gradient_scale=1.0)


cdef inline void start_step(OptimizerSettings* opt, long step) noexcept nogil:
    """What depends on the step's number (from 1): Adam's bias corrections."""
    if opt.kind == OPT_ADAM:
        opt.bias_correction1 = 1.0 - pow(opt.beta1, step)
        opt.bias_correction2 = 1.0 - pow(opt.beta2, step)


cdef inline int moments_written(const OptimizerSettings* opt) noexcept nogil:
    """How many state buffers a step writes into the spares (spare1 first):
    SGD its velocities when it has momentum; Adam and RMSprop two each."""
    if opt.kind == OPT_SGD:
        return 1 if opt.momentum != 0 else 0
    return 2


cdef inline bint stays_finite(real x) noexcept nogil:
    # x - x is 0 exactly when x is finite; callers combine with & (not `and`)
    # to keep their loops branch-free.
    return (x - x) == 0


# The element functions compute into locals and store last: a value read
# back through an output pointer after another store might alias it, and
# that reload keeps the loops from vectorising.
cdef inline bint sgd_element(real p, real g, real lr, real decay, real* p_new) noexcept nogil:
    """One parameter's SGD step without momentum; False when it is not finite."""
    cdef real p_next = p - lr * (g + decay * p)
    p_new[0] = p_next
    return stays_finite(p_next)


cdef inline bint sgd_momentum_element(real p, real g, real v, real lr, real momentum,
                                      bint nesterov, real decay, real* p_new,
                                      real* v_new) noexcept nogil:
    """One parameter's SGD step with (Nesterov) momentum; False when not finite."""
    g = g + decay * p
    cdef real v_next = momentum * v + g
    cdef real p_next = p - lr * (g + momentum * v_next if nesterov else v_next)
    p_new[0] = p_next
    v_new[0] = v_next
    return stays_finite(p_next) & stays_finite(v_next)


cdef inline bint adam_element(real p, real g, real m, real v, real step_size, real beta1,
                              real one_minus_beta1, real beta2, real one_minus_beta2, real eps,
                              real inverse_root2, real decay, real* p_new, real* m_new,
                              real* v_new) noexcept nogil:
    """One parameter's Adam step; False when the new values are not finite.
    ``lr m̂ / (sqrt(v̂) + eps)`` as ``step_size m / (sqrt(v) inverse_root2 + eps)``
    (step_size = lr / (1 - beta1^t), inverse_root2 = 1 / sqrt(1 - beta2^t), the
    factors torch computes too): one division per element instead of three.
    1 - beta1 and 1 - beta2 come from the caller, in the dtype: Cython writes
    a literal 1 as 1.0, which made float32's arithmetic double."""
    g = g + decay * p
    cdef real m_next = beta1 * m + one_minus_beta1 * g
    cdef real v_next = beta2 * v + one_minus_beta2 * g * g
    cdef real p_next
    if real is float:
        p_next = p - step_size * m_next / (sqrtf(v_next) * inverse_root2 + eps)
    else:
        p_next = p - step_size * m_next / (sqrt(v_next) * inverse_root2 + eps)
    p_new[0] = p_next
    m_new[0] = m_next
    v_new[0] = v_next
    return stays_finite(p_next) & stays_finite(m_next) & stays_finite(v_next)


cdef inline bint rmsprop_element(real p, real g, real v, real buf, real lr, real alpha,
                                 real one_minus_alpha, real eps, real momentum, real decay,
                                 real* p_new, real* v_new, real* buf_new) noexcept nogil:
    """One parameter's RMSprop step (torch's, not centered); False when not
    finite. 1 - alpha comes from the caller, as adam_element's 1 - beta1."""
    cdef real step
    g = g + decay * p
    cdef real v_next = alpha * v + one_minus_alpha * g * g
    if real is float:
        step = g / (sqrtf(v_next) + eps)
    else:
        step = g / (sqrt(v_next) + eps)
    # Without momentum the buffer keeps its value (a select, not a branch).
    cdef real buf_next = momentum * buf + step if momentum != 0 else buf
    cdef real p_next = p - lr * (buf_next if momentum != 0 else step)
    p_new[0] = p_next
    v_new[0] = v_next
    buf_new[0] = buf_next
    return stays_finite(p_next) & stays_finite(v_next) & stays_finite(buf_next)


cdef inline real clipped(real g, real scale, real limit) noexcept nogil:
    """``g * scale`` clamped to ``[-limit, limit]``; NaN stays NaN."""
    g = g * scale
    g = limit if g > limit else g
    return -limit if g < -limit else g


cdef bint sgd_range(Py_ssize_t count, Py_ssize_t start, const real* param, real* grad,
                    const real* velocity, real* velocity_out, const OptimizerSettings* opt,
                    double weight_decay) noexcept nogil:
    """SGD over a range of one block: the new parameters replace the gradients
    in ``grad``, the new velocities go to ``velocity_out`` (with momentum);
    returns whether all of them are finite."""
    cdef Py_ssize_t i, end = start + count
    cdef real lr = <real>opt.lr, decay = <real>weight_decay, momentum = <real>opt.momentum
    cdef real scale = <real>opt.gradient_scale, limit = <real>opt.clip_value
    cdef bint nesterov = opt.nesterov
    cdef int ok = 1
    if opt.gradient_scale != 1 or isfinite(opt.clip_value):
        # (The test of moments_written, in double: a float32 momentum that
        # rounds to 0 must still write the velocities it promised.)
        if opt.momentum == 0:
            for i in range(start, end):
                ok &= sgd_element(param[i], clipped(grad[i], scale, limit), lr, decay, &grad[i])
        else:
            for i in range(start, end):
                ok &= sgd_momentum_element(param[i], clipped(grad[i], scale, limit), velocity[i],
                                           lr, momentum, nesterov, decay, &grad[i],
                                           &velocity_out[i])
    elif opt.momentum == 0:
        for i in range(start, end):
            ok &= sgd_element(param[i], grad[i], lr, decay, &grad[i])
    else:
        for i in range(start, end):
            ok &= sgd_momentum_element(param[i], grad[i], velocity[i], lr, momentum, nesterov,
                                       decay, &grad[i], &velocity_out[i])
    return ok


cdef bint adam_range(Py_ssize_t count, Py_ssize_t start, const real* param, real* grad,
                     const real* moment1, const real* moment2, real* moment1_out,
                     real* moment2_out, const OptimizerSettings* opt,
                     double weight_decay) noexcept nogil:
    """Adam over a range of one block: the new parameters replace the gradients
    in ``grad``, the new moments go to ``moment1_out`` and ``moment2_out``;
    returns whether all of them are finite."""
    cdef Py_ssize_t i, end = start + count
    cdef real decay = <real>weight_decay
    cdef real beta1 = <real>opt.beta1, beta2 = <real>opt.beta2, eps = <real>opt.eps
    cdef real one_minus_beta1 = <real>(1 - opt.beta1)
    cdef real one_minus_beta2 = <real>(1 - opt.beta2)
    cdef real step_size = <real>(opt.lr / opt.bias_correction1)
    cdef real inverse_root2 = <real>(1 / sqrt(opt.bias_correction2))
    cdef real scale = <real>opt.gradient_scale, limit = <real>opt.clip_value
    cdef int ok = 1
    if opt.gradient_scale != 1 or isfinite(opt.clip_value):
        for i in range(start, end):
            ok &= adam_element(param[i], clipped(grad[i], scale, limit), moment1[i], moment2[i],
                               step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                               inverse_root2, decay, &grad[i], &moment1_out[i], &moment2_out[i])
    else:
        for i in range(start, end):
            ok &= adam_element(param[i], grad[i], moment1[i], moment2[i], step_size, beta1,
                               one_minus_beta1, beta2, one_minus_beta2, eps, inverse_root2,
                               decay, &grad[i], &moment1_out[i], &moment2_out[i])
    return ok


cdef bint rmsprop_range(Py_ssize_t count, Py_ssize_t start, const real* param, real* grad,
                        const real* square_avg, const real* buf, real* square_avg_out,
                        real* buf_out, const OptimizerSettings* opt,
                        double weight_decay) noexcept nogil:
    """RMSprop over a range of one block, as adam_range (the momentum test is
    the same for every element: a select, not a branch)."""
    cdef Py_ssize_t i, end = start + count
    cdef real lr = <real>opt.lr, decay = <real>weight_decay, alpha = <real>opt.alpha
    cdef real eps = <real>opt.eps, momentum = <real>opt.momentum
    cdef real one_minus_alpha = <real>(1 - opt.alpha)
    cdef real scale = <real>opt.gradient_scale, limit = <real>opt.clip_value
    cdef int ok = 1
    if opt.gradient_scale != 1 or isfinite(opt.clip_value):
        for i in range(start, end):
            ok &= rmsprop_element(param[i], clipped(grad[i], scale, limit), square_avg[i], buf[i],
                                  lr, alpha, one_minus_alpha, eps, momentum, decay, &grad[i],
                                  &square_avg_out[i], &buf_out[i])
    else:
        for i in range(start, end):
            ok &= rmsprop_element(param[i], grad[i], square_avg[i], buf[i], lr, alpha,
                                  one_minus_alpha, eps, momentum, decay, &grad[i],
                                  &square_avg_out[i], &buf_out[i])
    return ok


cdef inline bint update_range(Py_ssize_t count, Py_ssize_t start, const real* param,
                              real* grad, const real* moment1, const real* moment2,
                              real* spare1, real* spare2, const OptimizerSettings* opt,
                              double weight_decay) noexcept nogil:
    if opt.kind == OPT_ADAM:
        return adam_range(count, start, param, grad, moment1, moment2, spare1, spare2, opt,
                          weight_decay)
    if opt.kind == OPT_RMSPROP:
        return rmsprop_range(count, start, param, grad, moment1, moment2, spare1, spare2, opt,
                             weight_decay)
    return sgd_range(count, start, param, grad, moment1, spare1, opt, weight_decay)


cdef enum:
    UPDATE_CHUNK = 32768   # elements per thread task; smaller blocks stay on one thread


cdef bint optimizer_update(Py_ssize_t count, const real* param, real* grad,
                           const real* moment1, const real* moment2, real* spare1,
                           real* spare2, const OptimizerSettings* opt, double weight_decay,
                           int n_threads) noexcept nogil:
    """One block's update into the gradient and spare buffers, split into
    chunks over the threads when it is large (each element is independent, so
    the result does not depend on the thread count). Returns whether all new
    values are finite."""
    cdef Py_ssize_t chunk, n_chunks = (count + UPDATE_CHUNK - 1) // UPDATE_CHUNK
    cdef int bad = 0
    if n_threads > 1 and n_chunks > 1:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            bad += not update_range(min(<Py_ssize_t>UPDATE_CHUNK, count - chunk * UPDATE_CHUNK),
                                    chunk * UPDATE_CHUNK, param, grad, moment1, moment2,
                                    spare1, spare2, opt, weight_decay)
        return bad == 0
    return update_range(count, 0, param, grad, moment1, moment2, spare1, spare2, opt,
                        weight_decay)


# -- Adam in place (see the top of this file) -----------------------------------------------
cdef enum:
    # Parameters in bytes (one array's worth) from which Adam may step in
    # place: below, the spare buffers stay cached and the largest-gradient
    # pass costs more than it saves (bench/README.md, "Optimizer updates").
    ADAM_IN_PLACE_MIN_BYTES = 2 * 1024 * 1024


# 1 + 2^-16: 256 float32 roundings' worth of relative error.
cdef double BOUND_SLACK = 1.0000152587890625


cdef struct StateBounds:
    bint known        # False: unknown (after any write the engine did not bound)
    double param      # >= every |parameter|
    double moment1    # >= every |m|
    double moment2    # >= every v, and every v >= 0
    long steps_in_place   # Adam steps these bounds let write in place (for the tests)


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


cdef void state_bounds(Py_ssize_t count, const real* param, const real* moment1,
                       const real* moment2, StateBounds* bounds) noexcept nogil:
    """Measure the bounds of a state (the Adam state of a step just taken in
    the spare buffers): known when every value is finite and every v >= 0."""
    bounds.param = largest_key(count, param, True)
    bounds.moment1 = largest_key(count, moment1, True)
    bounds.moment2 = largest_key(count, moment2, False)
    bounds.known = (isfinite(bounds.param) and isfinite(bounds.moment1)
                    and isfinite(bounds.moment2) and bounds.moment2 >= 0)


cdef bint adam_in_place_is_safe(const OptimizerSettings* opt, double largest_gradient,
                                const StateBounds* bounds, double limit,
                                StateBounds* after) noexcept nogil:
    """Whether Adam's step from a state within ``bounds``, with gradients of
    at most ``largest_gradient`` in magnitude, leaves every new value and
    every intermediate (see adam_element) at most ``limit`` (a quarter of the
    dtype's largest value), so that it may write in place; ``after``: the
    new state's bounds. The triangle inequality on each line of
    adam_element, with |m| / (sqrt(v) / sqrt(1 - beta2^t) + eps) <= |m| / eps;
    each bound is then raised by BOUND_SLACK, more than the rounding of the
    few operations (and of the coefficients to float32) that compute the
    value it bounds, so that it holds of the rounded values too."""
    if not (bounds.known and opt.eps > 0 and largest_gradient <= limit):
        return False
    cdef double g = min(largest_gradient * opt.gradient_scale, opt.clip_value)
    g = (g + fabs(opt.weight_decay) * bounds.param) * BOUND_SLACK
    cdef double m = (opt.beta1 * bounds.moment1 + (1 - opt.beta1) * g) * BOUND_SLACK
    cdef double v = (opt.beta2 * bounds.moment2 + (1 - opt.beta2) * g * g) * BOUND_SLACK
    cdef double step_size = fabs(opt.lr) / opt.bias_correction1
    cdef double step = step_size * m / opt.eps * BOUND_SLACK
    after.known = True
    after.steps_in_place = bounds.steps_in_place + 1
    after.param = (bounds.param + step) * BOUND_SLACK
    after.moment1 = m
    after.moment2 = v
    # (Each test is false for NaN.)
    return (g * g <= limit and m <= limit and v <= limit and step_size * m <= limit
            and sqrt(v) / sqrt(opt.bias_correction2) <= limit and step <= limit
            and after.param <= limit)


cdef double largest_gradient(Py_ssize_t count, const real* grad, double* partials,
                             int n_threads) noexcept nogil:
    """``max(|grad[:count]|)`` (not finite when an element is not), over
    NORM_CHUNK chunks spread on the threads as gradient_norm's."""
    cdef Py_ssize_t chunk, n_chunks = (count + NORM_CHUNK - 1) // NORM_CHUNK
    cdef double top = 0
    if n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            partials[chunk] = largest_key(min(<Py_ssize_t>NORM_CHUNK, count - chunk * NORM_CHUNK),
                                          grad + chunk * NORM_CHUNK, True)
        for chunk in range(n_chunks):
            if not partials[chunk] <= top:   # NaN too
                top = partials[chunk]
        return top
    return largest_key(count, grad, True)


cdef inline double overflow_limit(bint is_float32) noexcept nogil:
    return (FLT_MAX if is_float32 else DBL_MAX) / 4


# -- the global gradient norm, for clip_norm ---------------------------------------------
cdef enum:
    NORM_CHUNK = 32768   # elements per partial sum


cdef double sum_of_squares(Py_ssize_t start, Py_ssize_t end, const real* grad) noexcept nogil:
    """``sum(grad[start:end]**2)`` in double. Four interleaved partial sums: a
    fixed order (so a fixed result) that does not wait on one addition chain."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i, stop4 = start + (end - start) // 4 * 4
    for i in range(start, stop4, 4):
        s0 += <double>grad[i] * <double>grad[i]
        s1 += <double>grad[i + 1] * <double>grad[i + 1]
        s2 += <double>grad[i + 2] * <double>grad[i + 2]
        s3 += <double>grad[i + 3] * <double>grad[i + 3]
    for i in range(stop4, end):
        s0 += <double>grad[i] * <double>grad[i]
    return (s0 + s1) + (s2 + s3)


cdef double gradient_norm(Py_ssize_t count, const real* grad, double* partials,
                          int n_threads) noexcept nogil:
    """The Euclidean norm of ``grad[:count]``, accumulated in double; not finite
    when an element is not. ``partials``: one double per NORM_CHUNK elements.

    The sum is taken over fixed chunks whose partial sums are added in order,
    so the result is the same to the bit for any thread count; a large
    gradient spreads the chunks over the threads."""
    cdef Py_ssize_t chunk, n_chunks = (count + NORM_CHUNK - 1) // NORM_CHUNK
    cdef double total = 0
    if n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            partials[chunk] = sum_of_squares(chunk * NORM_CHUNK,
                                             min(count, (chunk + 1) * <Py_ssize_t>NORM_CHUNK), grad)
        for chunk in range(n_chunks):
            total = total + partials[chunk]
    else:
        for chunk in range(n_chunks):
            total = total + sum_of_squares(chunk * NORM_CHUNK,
                                           min(count, (chunk + 1) * <Py_ssize_t>NORM_CHUNK), grad)
    if isinf(total):
        return rescaled_norm(count, grad)
    return sqrt(total)


cdef double rescaled_norm(Py_ssize_t count, const real* grad) noexcept nogil:
    """The norm when the squares overflow double (elements beyond ~1e154, so
    float64 only): summed after dividing by the largest magnitude. Rare, so
    serial."""
    cdef Py_ssize_t i
    cdef double biggest = 0, total = 0, x
    for i in range(count):
        x = fabs(<double>grad[i])
        if not x <= biggest:   # NaN too
            biggest = x
    if not isfinite(biggest):
        return biggest
    for i in range(count):
        x = <double>grad[i] / biggest
        total = total + x * x
    return biggest * sqrt(total)
