# Activations, forward and backward. The backward passes need only the
# layer's output A (sigmoid: A(1-A), tanh: 1-A², relu/leaky: A > 0 iff Z > 0),
# so hidden layers keep A alone and are activated in place.
from libc.math cimport exp, expf, tanh, tanhf
from cython.parallel cimport prange

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


cdef enum:
    # Element-wise passes over at least this many values are split across the
    # threads by rows or chunks; each value is still computed the same way.
    PARALLEL_MIN_ELEMENTS = 131072
    ELEMENT_CHUNK = 32768


cdef void bias_activation_forward(Py_ssize_t m, Py_ssize_t n, real* Z, const real* bias,
                                  real* A, int activation, int n_threads) noexcept nogil:
    """Z += bias (per column) and A = f(Z), in one pass; A may be Z itself."""
    cdef Py_ssize_t i
    if activation == ACT_SOFTMAX:
        bias_rows(0, m, n, Z, bias, Z, ACT_IDENTITY)
        softmax_rows(m, n, Z, A)
    elif n_threads > 1 and m * n >= PARALLEL_MIN_ELEMENTS:
        for i in prange(m, num_threads=n_threads, schedule="static"):
            bias_rows(i, i + 1, n, Z, bias, A, activation)
    else:
        bias_rows(0, m, n, Z, bias, A, activation)


cdef inline void bias_rows(Py_ssize_t first, Py_ssize_t last, Py_ssize_t n, real* Z,
                           const real* bias, real* A, int activation) noexcept nogil:
    """Rows [first, last): one loop per activation (not a switch per element),
    so that each vectorises."""
    cdef Py_ssize_t i, j, k
    cdef real z
    cdef bint keep_z = A != Z
    for i in range(first, last):
        k = i * n
        if keep_z:
            for j in range(n):
                Z[k + j] += bias[j]
        if activation == ACT_RELU:
            for j in range(n):
                z = Z[k + j] if keep_z else Z[k + j] + bias[j]
                A[k + j] = z if z > 0 else 0
        elif activation == ACT_LEAKY_RELU:
            for j in range(n):
                z = Z[k + j] if keep_z else Z[k + j] + bias[j]
                A[k + j] = z if z > 0 else <real>LEAKY_SLOPE * z
        elif activation == ACT_SIGMOID:
            for j in range(n):
                A[k + j] = sigmoid(Z[k + j] if keep_z else Z[k + j] + bias[j])
        elif activation == ACT_TANH:
            for j in range(n):
                z = Z[k + j] if keep_z else Z[k + j] + bias[j]
                if real is float:
                    A[k + j] = tanhf(z)
                else:
                    A[k + j] = tanh(z)
        else:
            for j in range(n):
                A[k + j] = Z[k + j] if keep_z else Z[k + j] + bias[j]


cdef void activation_backward(Py_ssize_t count, real* grad, const real* A,
                              int activation, int n_threads) noexcept nogil:
    """grad (dL/dA on entry) becomes dL/dZ, in place, with f'(Z) written through
    A = f(Z): sigmoid A(1-A), tanh 1-A², relu/leaky A > 0 iff Z > 0."""
    cdef Py_ssize_t chunk, n_chunks = (count + ELEMENT_CHUNK - 1) // ELEMENT_CHUNK
    if activation == ACT_IDENTITY:
        return
    if n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
            slope_range(chunk * ELEMENT_CHUNK,
                        min(count, (chunk + 1) * <Py_ssize_t>ELEMENT_CHUNK), grad, A, activation)
    else:
        slope_range(0, count, grad, A, activation)


cdef inline void slope_range(Py_ssize_t first, Py_ssize_t last, real* grad, const real* A,
                             int activation) noexcept nogil:
    cdef Py_ssize_t i
    if activation == ACT_RELU:
        for i in range(first, last):
            grad[i] = grad[i] if A[i] > 0 else 0
    elif activation == ACT_LEAKY_RELU:
        for i in range(first, last):
            grad[i] = grad[i] if A[i] > 0 else <real>LEAKY_SLOPE * grad[i]
    elif activation == ACT_SIGMOID:
        for i in range(first, last):
            grad[i] *= A[i] * (1 - A[i])
    elif activation == ACT_TANH:
        for i in range(first, last):
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
