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
# Beyond the caches, Adam and RMSprop may write their state in place instead
# when bounds prove that no new value can overflow (state_bounds.pxi).
#
# The codes are the registry's (the ``code`` of each class in
# cbackprop/optimizers.py): an optimizer is its class there, its element
# function and range loop here, and its cases in update_range and
# moments_written. Adam's and RMSprop's elements and loops are C, vmath.h's
# cb_vadam and cb_vrmsprop (the AVX-512 build can take their square root
# off the divider, which needs vector code that Cython cannot write); their
# range functions here prepare the factors.
#
# Gradient clipping is fused into the same passes: the engine computes the
# global gradient norm once per step (gradient_norm) and hands the factor and
# the clamp bound down in the settings; each element is clipped as it is
# read. Without clipping the loops are the unclipped ones, chosen once per
# block.
from libc.math cimport INFINITY, fabs, isfinite, isinf, pow, sqrt
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
    returns whether all of them are finite.

    ``lr m̂ / (sqrt(v̂) + eps)`` as ``step_size m / (sqrt(v) inverse_root2 + eps)``
    (step_size = lr / (1 - beta1^t), inverse_root2 = 1 / sqrt(1 - beta2^t), the
    factors torch computes too): one division per element instead of three.
    The factors are rounded to the dtype here; the loop is vmath.h's
    cb_vadam (updates_template.h), whose square roots the AVX-512 build
    computes off the divider, all or a third of them, as cb_update_roots
    says."""
    cdef real step_size = <real>(opt.lr / opt.bias_correction1)
    cdef real inverse_root2 = <real>(1 / sqrt(opt.bias_correction2))
    cdef real eps = <real>opt.eps
    cdef cb_update_factors factors
    if isinf(step_size):
        # lr / (1 - beta1^t) beyond the dtype (lr near its largest value):
        # the same step as lr m / ((1 - beta1^t) (sqrt(v) / sqrt(1 - beta2^t) + eps)).
        step_size = <real>opt.lr
        inverse_root2 = <real>(opt.bias_correction1 / sqrt(opt.bias_correction2))
        eps = <real>(opt.bias_correction1 * opt.eps)
    fill_update_factors(&factors, opt, weight_decay, <real*>NULL)
    factors.rate = step_size
    factors.root_scale = inverse_root2
    factors.eps = eps
    factors.keep1 = <real>opt.beta1
    factors.add1 = <real>(1 - opt.beta1)
    factors.keep2 = <real>opt.beta2
    factors.add2 = <real>(1 - opt.beta2)
    if real is float:
        return cb_vadam_f32(count, param + start, grad + start, moment1 + start,
                            moment2 + start, moment1_out + start, moment2_out + start, &factors)
    else:
        return cb_vadam_f64(count, param + start, grad + start, moment1 + start,
                            moment2 + start, moment1_out + start, moment2_out + start, &factors)


cdef bint rmsprop_range(Py_ssize_t count, Py_ssize_t start, const real* param, real* grad,
                        const real* square_avg, const real* buf, real* square_avg_out,
                        real* buf_out, const OptimizerSettings* opt,
                        double weight_decay) noexcept nogil:
    """RMSprop (torch's, not centered) over a range of one block, as
    adam_range: the loop is vmath.h's cb_vrmsprop (updates_template.h). 1 -
    alpha is rounded here, in the dtype."""
    cdef cb_update_factors factors
    fill_update_factors(&factors, opt, weight_decay, <real*>NULL)
    factors.rate = <real>opt.lr
    factors.eps = <real>opt.eps
    factors.momentum = opt.momentum   # rounded where used; tested for 0 as given
    factors.keep2 = <real>opt.alpha
    factors.add2 = <real>(1 - opt.alpha)
    if real is float:
        return cb_vrmsprop_f32(count, param + start, grad + start, square_avg + start,
                               buf + start, square_avg_out + start, buf_out + start, &factors)
    else:
        return cb_vrmsprop_f64(count, param + start, grad + start, square_avg + start,
                               buf + start, square_avg_out + start, buf_out + start, &factors)


cdef inline void fill_update_factors(cb_update_factors* factors, const OptimizerSettings* opt,
                                     double weight_decay, real* kind) noexcept nogil:
    """What Adam and RMSprop share of the factors (``kind`` for the dtype):
    weight decay and clipping; the rest 0 until the caller sets it."""
    factors.rate = factors.keep1 = factors.add1 = factors.keep2 = factors.add2 = 0
    factors.root_scale = 1
    factors.eps = factors.momentum = 0
    factors.decay = <real>weight_decay
    factors.scale = <real>opt.gradient_scale
    factors.limit = <real>opt.clip_value
    factors.clip = opt.gradient_scale != 1 or isfinite(opt.clip_value)


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
        for chunk in prange(n_chunks, num_threads=cb_team(n_threads), schedule="static"):
            bad += not update_range(min(<Py_ssize_t>UPDATE_CHUNK, count - chunk * UPDATE_CHUNK),
                                    chunk * UPDATE_CHUNK, param, grad, moment1, moment2,
                                    spare1, spare2, opt, weight_decay)
        return bad == 0
    return update_range(count, 0, param, grad, moment1, moment2, spare1, spare2, opt,
                        weight_decay)


# -- the global gradient norm, for clip_norm ---------------------------------------------
cdef enum:
    NORM_CHUNK = 32768   # elements per partial sum


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
        for chunk in prange(n_chunks, num_threads=cb_team(n_threads), schedule="static"):
            partials[chunk] = chunk_sum_of_squares(chunk, count, grad)
        for chunk in range(n_chunks):
            total = total + partials[chunk]
    else:
        for chunk in range(n_chunks):
            total = total + chunk_sum_of_squares(chunk, count, grad)
    if isinf(total):
        return rescaled_norm(count, grad)
    return sqrt(total)


cdef inline double chunk_sum_of_squares(Py_ssize_t chunk, Py_ssize_t count,
                                        const real* grad) noexcept nogil:
    cdef Py_ssize_t start = chunk * NORM_CHUNK
    cdef Py_ssize_t n = min(count - start, <Py_ssize_t>NORM_CHUNK)
    return dot_as_double(n, grad + start, grad + start)


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
