# Activations, forward and backward. The backward passes need only the
# layer's output A (sigmoid: A(1-A), tanh: 1-A², relu/leaky: A > 0 iff Z > 0),
# so hidden layers keep A alone and are activated in place.
from libc.math cimport exp, expf, tanh, tanhf

cdef enum Activation:
    ACT_SIGMOID = 0
    ACT_RELU = 1
    ACT_TANH = 2
    ACT_IDENTITY = 3
    ACT_LEAKY_RELU = 4
    ACT_SOFTMAX = 5

ACTIVATION_CODES = {"sigmoid": ACT_SIGMOID, "relu": ACT_RELU, "tanh": ACT_TANH,
                    "identity": ACT_IDENTITY, "leaky_relu": ACT_LEAKY_RELU,
                    "softmax": ACT_SOFTMAX}

cdef double LEAKY_SLOPE = 0.01


cdef inline real real_exp(real x) noexcept nogil:
    if real is float:
        return expf(x)
    else:
        return exp(x)


cdef inline real sigmoid(real z) noexcept nogil:
    # exp(-|z|) never overflows; the two branches are the two stable forms.
    cdef real e = real_exp(-z if z >= 0 else z)
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


cdef inline real activate(real z, int activation) noexcept nogil:
    if activation == ACT_SIGMOID:
        return sigmoid(z)
    if activation == ACT_RELU:
        return z if z > 0 else 0
    if activation == ACT_TANH:
        if real is float:
            return tanhf(z)
        else:
            return tanh(z)
    if activation == ACT_LEAKY_RELU:
        return z if z > 0 else <real>LEAKY_SLOPE * z
    return z


cdef inline real activation_slope(real a, int activation) noexcept nogil:
    """f'(z) expressed through a = f(z), for the element-wise activations."""
    if activation == ACT_SIGMOID:
        return a * (1 - a)
    if activation == ACT_RELU:
        return 1 if a > 0 else 0
    if activation == ACT_TANH:
        return 1 - a * a
    if activation == ACT_LEAKY_RELU:
        return 1 if a > 0 else <real>LEAKY_SLOPE
    return 1


cdef void softmax_rows(Py_ssize_t m, Py_ssize_t n, const real* Z, real* A) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef real row_max
    cdef double total
    for i in range(m):
        row_max = Z[i * n]
        for j in range(1, n):
            if Z[i * n + j] > row_max:
                row_max = Z[i * n + j]
        total = 0
        for j in range(n):
            A[i * n + j] = real_exp(Z[i * n + j] - row_max)
            total += A[i * n + j]
        for j in range(n):
            A[i * n + j] = <real>(A[i * n + j] / total)


cdef void bias_activation_forward(Py_ssize_t m, Py_ssize_t n, real* Z, const real* bias,
                                  real* A, int activation) noexcept nogil:
    """Z += bias (per column), then A = f(Z); A may be Z itself."""
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(n):
            Z[i * n + j] += bias[j]
    if activation == ACT_SOFTMAX:
        softmax_rows(m, n, Z, A)
    elif activation == ACT_IDENTITY:
        if A != Z:
            for i in range(m * n):
                A[i] = Z[i]
    else:
        for i in range(m * n):
            A[i] = activate(Z[i], activation)


cdef void activation_backward(Py_ssize_t count, real* grad, const real* A,
                              int activation) noexcept nogil:
    """grad (dL/dA on entry) becomes dL/dZ, in place; element-wise activations only."""
    cdef Py_ssize_t i
    if activation == ACT_IDENTITY:
        return
    for i in range(count):
        grad[i] *= activation_slope(A[i], activation)


cdef void softmax_backward(Py_ssize_t m, Py_ssize_t n, real* grad, const real* A) noexcept nogil:
    """grad (dL/dA) becomes dL/dZ = A * (grad - sum_j grad_j A_j), row by row."""
    cdef Py_ssize_t i, j
    cdef double dot
    for i in range(m):
        dot = 0
        for j in range(n):
            dot += grad[i * n + j] * A[i * n + j]
        for j in range(n):
            grad[i * n + j] = A[i * n + j] * <real>(grad[i * n + j] - dot)
