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
    """Z += bias (per column), then A = f(Z); A may be Z itself.

    One loop per activation (not a switch per element), so each vectorises.
    """
    cdef Py_ssize_t i, j, count = m * n
    cdef real z
    for i in range(m):
        for j in range(n):
            Z[i * n + j] += bias[j]
    if activation == ACT_SOFTMAX:
        softmax_rows(m, n, Z, A)
    elif activation == ACT_RELU:
        for i in range(count):
            A[i] = Z[i] if Z[i] > 0 else 0
    elif activation == ACT_LEAKY_RELU:
        for i in range(count):
            A[i] = Z[i] if Z[i] > 0 else <real>LEAKY_SLOPE * Z[i]
    elif activation == ACT_SIGMOID:
        for i in range(count):
            A[i] = sigmoid(Z[i])
    elif activation == ACT_TANH:
        for i in range(count):
            if real is float:
                A[i] = tanhf(Z[i])
            else:
                A[i] = tanh(Z[i])
    elif A != Z:
        for i in range(count):
            A[i] = Z[i]


cdef void activation_backward(Py_ssize_t count, real* grad, const real* A,
                              int activation) noexcept nogil:
    """grad (dL/dA on entry) becomes dL/dZ, in place, with f'(Z) written through
    A = f(Z): sigmoid A(1-A), tanh 1-A², relu/leaky A > 0 iff Z > 0."""
    cdef Py_ssize_t i
    if activation == ACT_RELU:
        for i in range(count):
            grad[i] = grad[i] if A[i] > 0 else 0
    elif activation == ACT_LEAKY_RELU:
        for i in range(count):
            grad[i] = grad[i] if A[i] > 0 else <real>LEAKY_SLOPE * grad[i]
    elif activation == ACT_SIGMOID:
        for i in range(count):
            grad[i] *= A[i] * (1 - A[i])
    elif activation == ACT_TANH:
        for i in range(count):
            grad[i] *= 1 - A[i] * A[i]


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
