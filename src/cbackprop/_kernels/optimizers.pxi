# Optimizer updates, in place over one parameter block. Weight decay is
# passed as 0 for biases. Bias corrections of Adam are computed once per step
# by the caller.
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


cdef void sgd_update(Py_ssize_t count, real* param, const real* grad, real* velocity,
                     const OptimizerSettings* opt, double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g
    cdef real lr = <real>opt.lr, momentum = <real>opt.momentum, decay = <real>weight_decay
    if opt.momentum == 0:
        for i in range(count):
            g = grad[i] + decay * param[i]
            param[i] -= lr * g
        return
    for i in range(count):
        g = grad[i] + decay * param[i]
        velocity[i] = momentum * velocity[i] + g
        if opt.nesterov:
            param[i] -= lr * (g + momentum * velocity[i])
        else:
            param[i] -= lr * velocity[i]


cdef void adam_update(Py_ssize_t count, real* param, const real* grad, real* m, real* v,
                      const OptimizerSettings* opt, double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g
    cdef real beta1 = <real>opt.beta1, beta2 = <real>opt.beta2, decay = <real>weight_decay
    cdef real lr = <real>opt.lr, eps = <real>opt.eps
    cdef real correction1 = <real>opt.bias_correction1, correction2 = <real>opt.bias_correction2
    for i in range(count):
        g = grad[i] + decay * param[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        if real is float:
            param[i] -= lr * (m[i] / correction1) / (sqrtf(v[i] / correction2) + eps)
        else:
            param[i] -= lr * (m[i] / correction1) / (sqrt(v[i] / correction2) + eps)


cdef enum:
    UPDATE_CHUNK = 32768   # elements per thread task; smaller blocks stay on one thread


cdef void optimizer_update(Py_ssize_t count, real* param, const real* grad, real* moment1,
                           real* moment2, const OptimizerSettings* opt,
                           double weight_decay, int n_threads) noexcept nogil:
    """The update of one parameter block, split into chunks over the threads
    when it is large (each element's update is independent, so the result
    does not depend on the thread count)."""
    cdef Py_ssize_t chunk, n_chunks = (count + UPDATE_CHUNK - 1) // UPDATE_CHUNK
    if n_threads > 1 and n_chunks > 1:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            update_range(min(<Py_ssize_t>UPDATE_CHUNK, count - chunk * UPDATE_CHUNK),
                         chunk * UPDATE_CHUNK, param, grad, moment1, moment2, opt, weight_decay)
    else:
        update_range(count, 0, param, grad, moment1, moment2, opt, weight_decay)


cdef inline void update_range(Py_ssize_t count, Py_ssize_t start, real* param, const real* grad,
                              real* moment1, real* moment2, const OptimizerSettings* opt,
                              double weight_decay) noexcept nogil:
    if opt.kind == OPT_ADAM:
        adam_update(count, param + start, grad + start, moment1 + start, moment2 + start, opt,
                    weight_decay)
    else:
        sgd_update(count, param + start, grad + start, moment1 + start, opt, weight_decay)
