# Optimizer updates over one parameter block, in place. Weight decay is
# passed as 0 for biases; Adam's bias corrections are computed once per step
# by the caller. The same element functions serve a dry run that only
# reports whether the step would leave every value finite, so a step that
# would overflow is refused before anything is written.
from libc.math cimport sqrt, sqrtf
from cython.parallel cimport prange

cdef enum OptimizerKind:
    OPT_SGD = 0
    OPT_ADAM = 1


cdef struct OptimizerSettings:
    int kind
    double lr
    double momentum
    bint nesterov
    double weight_decay
    double beta1
    double beta2
    double eps
    double bias_correction1   # 1 - beta1**t
    double bias_correction2   # 1 - beta2**t


cdef inline bint sgd_element(real p, real g, real v, real lr, real momentum, bint nesterov,
                             real decay, real* p_new, real* v_new) noexcept nogil:
    """One parameter's SGD step; False when the new values are not finite."""
    g = g + decay * p
    if momentum == 0:
        p_new[0] = p - lr * g
        v_new[0] = v
    else:
        v_new[0] = momentum * v + g
        p_new[0] = p - lr * (g + momentum * v_new[0] if nesterov else v_new[0])
    # x - x is 0 exactly when x is finite; & (not `and`) keeps the loop branch-free.
    return ((p_new[0] - p_new[0]) == 0) & ((v_new[0] - v_new[0]) == 0)


cdef inline bint adam_element(real p, real g, real m, real v, real lr, real beta1, real beta2,
                              real eps, real correction1, real correction2, real decay,
                              real* p_new, real* m_new, real* v_new) noexcept nogil:
    """One parameter's Adam step; False when the new values are not finite."""
    g = g + decay * p
    m_new[0] = beta1 * m + (1 - beta1) * g
    v_new[0] = beta2 * v + (1 - beta2) * g * g
    if real is float:
        p_new[0] = p - lr * (m_new[0] / correction1) / (sqrtf(v_new[0] / correction2) + eps)
    else:
        p_new[0] = p - lr * (m_new[0] / correction1) / (sqrt(v_new[0] / correction2) + eps)
    return (((p_new[0] - p_new[0]) == 0) & ((m_new[0] - m_new[0]) == 0)
            & ((v_new[0] - v_new[0]) == 0))


cdef bint update_range(Py_ssize_t count, Py_ssize_t start, real* param, const real* grad,
                       real* moment1, real* moment2, const OptimizerSettings* opt,
                       double weight_decay, bint write) noexcept nogil:
    """Step a range of one parameter block: with ``write``, store the new values;
    without, only report whether every one of them would be finite. (Separate
    loops for the two, so that each compiles to straight-line vector code.)"""
    cdef Py_ssize_t i, end = start + count
    cdef real p_new, m_new, v_new
    cdef real lr = <real>opt.lr, decay = <real>weight_decay
    cdef real momentum = <real>opt.momentum, beta1 = <real>opt.beta1, beta2 = <real>opt.beta2
    cdef real eps = <real>opt.eps
    cdef real correction1 = <real>opt.bias_correction1, correction2 = <real>opt.bias_correction2
    cdef bint nesterov = opt.nesterov
    cdef int finite = 1
    if opt.kind == OPT_ADAM and write:
        for i in range(start, end):
            adam_element(param[i], grad[i], moment1[i], moment2[i], lr, beta1, beta2, eps,
                         correction1, correction2, decay, &param[i], &moment1[i], &moment2[i])
    elif opt.kind == OPT_ADAM:
        for i in range(start, end):
            finite &= adam_element(param[i], grad[i], moment1[i], moment2[i], lr, beta1, beta2,
                                   eps, correction1, correction2, decay, &p_new, &m_new, &v_new)
    elif write:
        for i in range(start, end):
            sgd_element(param[i], grad[i], moment1[i], lr, momentum, nesterov, decay,
                        &param[i], &moment1[i])
    else:
        for i in range(start, end):
            finite &= sgd_element(param[i], grad[i], moment1[i], lr, momentum, nesterov, decay,
                                  &p_new, &v_new)
    return finite


cdef enum:
    UPDATE_CHUNK = 32768   # elements per thread task; smaller blocks stay on one thread


cdef bint optimizer_update(Py_ssize_t count, real* param, const real* grad, real* moment1,
                           real* moment2, const OptimizerSettings* opt, double weight_decay,
                           bint write, int n_threads) noexcept nogil:
    """``update_range`` over a whole block, split into chunks over the threads
    when it is large (each element is independent, so the result does not
    depend on the thread count). Returns whether all new values are finite."""
    cdef Py_ssize_t chunk, n_chunks = (count + UPDATE_CHUNK - 1) // UPDATE_CHUNK
    cdef int bad = 0
    if n_threads > 1 and n_chunks > 1:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            bad += not update_range(min(<Py_ssize_t>UPDATE_CHUNK, count - chunk * UPDATE_CHUNK),
                                    chunk * UPDATE_CHUNK, param, grad, moment1, moment2, opt,
                                    weight_decay, write)
        return bad == 0
    return update_range(count, 0, param, grad, moment1, moment2, opt, weight_decay, write)
