# Losses with fused output deltas. Each returns the loss (accumulated in
# double) and writes delta = dL/dZ of the output layer. BCE and
# cross-entropy work from the pre-activation Z, so no log(0) and no overflow
# for any finite input.
from libc.math cimport exp, fabs, log, log1p
from libc.stdint cimport int64_t

cdef enum LossKind:
    LOSS_MSE = 0
    LOSS_BCE = 1
    LOSS_CROSS_ENTROPY = 2


cdef double mse_loss(Py_ssize_t m, Py_ssize_t n, const real* A, const real* Z, const real* Y,
                     double scale, bint reduction_sum, int activation, real* delta) noexcept nogil:
    """scale * sum((A - Y)²) / N, delta = dL/dA ⊙ f'(Z) (a row-wise JVP for
    softmax); Z is read only by the activations whose derivative needs it."""
    cdef Py_ssize_t i
    cdef double divisor = 1.0 if reduction_sum else <double>(m * n)
    cdef real grad_scale = <real>(2.0 * scale / divisor)
    cdef double total = 0, diff
    for i in range(m * n):
        diff = <double>A[i] - <double>Y[i]
        total += diff * diff
        delta[i] = grad_scale * (A[i] - Y[i])
    if activation == ACT_SOFTMAX:
        softmax_backward(m, n, delta, A)
    else:
        activation_backward(m * n, delta, A, Z, activation, 1)
    return scale * total / divisor


cdef double bce_loss(Py_ssize_t m, Py_ssize_t n, const real* Z, const real* A, const real* Y,
                     real* delta) noexcept nogil:
    """-mean(Y log σ(Z) + (1-Y) log(1-σ(Z))) = mean(max(Z,0) - Y Z + log1p(exp(-|Z|)))."""
    cdef Py_ssize_t i
    cdef Py_ssize_t count = m * n
    cdef double total = 0, z
    for i in range(count):
        z = Z[i]
        total += (z if z > 0 else 0.0) - <double>Y[i] * z + log1p(exp(-fabs(z)))
        delta[i] = (A[i] - Y[i]) / <real>count
    return total / count


cdef double cross_entropy_loss(Py_ssize_t m, Py_ssize_t k, const real* Z, const real* A,
                               const real* Y, const int64_t* labels, real* delta) noexcept nogil:
    """-sum(Y log softmax(Z)) / m from the logits; Y one-hot rows, or ``labels`` when Y is NULL.

    delta = (softmax(Z) * sum(Y_row) - Y) / m: the gradient for any targets,
    equal to (softmax(Z) - Y) / m when rows sum to one.
    """
    cdef Py_ssize_t i, j
    cdef double total = 0, row_max, exp_sum, log_sum_exp, target_sum, row_loss
    for i in range(m):
        row_max = Z[i * k]
        for j in range(1, k):
            if Z[i * k + j] > row_max:
                row_max = Z[i * k + j]
        exp_sum = 0
        for j in range(k):
            exp_sum += exp(<double>Z[i * k + j] - row_max)
        log_sum_exp = row_max + log(exp_sum)
        if Y == NULL:
            total += log_sum_exp - <double>Z[i * k + labels[i]]
            for j in range(k):
                delta[i * k + j] = A[i * k + j] / <real>m
            delta[i * k + labels[i]] = (A[i * k + labels[i]] - 1) / <real>m
        else:
            target_sum = 0
            row_loss = 0
            for j in range(k):
                target_sum += Y[i * k + j]
                row_loss += <double>Y[i * k + j] * (log_sum_exp - <double>Z[i * k + j])
            total += row_loss
            for j in range(k):
                delta[i * k + j] = (A[i * k + j] * <real>target_sum - Y[i * k + j]) / <real>m
    return total / m
