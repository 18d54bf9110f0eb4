# Losses with fused output deltas. Each returns the loss (accumulated in
# double) and writes delta = dL/dZ of the output layer. BCE and
# cross-entropy work from the pre-activation Z alone, so no log(0) and no
# overflow for any finite input, and cb.ops can run them in place.
#
# The codes are the registry's (the ``code`` of each class in
# cbackprop/losses.py).
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


cdef double bce_loss(Py_ssize_t count, const real* Z, const real* Y, real* delta) noexcept nogil:
    """-mean(Y log σ(Z) + (1-Y) log(1-σ(Z))) = mean(max(Z,0) - Y Z + log1p(exp(-|Z|))),
    and delta = (σ(Z) - Y) / N. Each element is read before its delta is
    written, so delta may be Z (or Y) itself."""
    cdef Py_ssize_t i
    cdef double total = 0, z64
    cdef real z, y
    for i in range(count):
        z = Z[i]
        y = Y[i]
        z64 = z
        total += (z64 if z64 > 0 else 0.0) - <double>y * z64 + log1p(exp(-fabs(z64)))
        delta[i] = (sigmoid(z) - y) / <real>count
    return total / count


cdef double cross_entropy_loss(Py_ssize_t m, Py_ssize_t k, const real* Z, const real* Y,
                               const int64_t* labels, real* delta) noexcept nogil:
    """-sum(Y log softmax(Z)) / m from the logits; Y rows, or ``labels`` when Y
    is NULL. delta = (softmax(Z) * sum(Y_row) - Y) / m: the gradient for any
    targets, equal to (softmax(Z) - Y) / m when rows sum to one. softmax(Z) is
    written straight into delta after each row's loss is taken, so delta may
    be Z itself."""
    cdef Py_ssize_t i, j, row, label
    cdef double total = 0, row_max, exp_sum, log_sum_exp, target_sum, row_loss
    cdef real a_label
    for i in range(m):
        row = i * k
        row_max = Z[row]
        for j in range(1, k):
            if Z[row + j] > row_max:
                row_max = Z[row + j]
        exp_sum = 0
        for j in range(k):
            exp_sum += exp(<double>Z[row + j] - row_max)
        log_sum_exp = row_max + log(exp_sum)
        if Y == NULL:
            label = labels[i]
            total += log_sum_exp - <double>Z[row + label]
            softmax_rows(1, k, Z + row, delta + row)
            a_label = delta[row + label]
            for j in range(k):
                delta[row + j] = delta[row + j] / <real>m
            delta[row + label] = (a_label - 1) / <real>m
        else:
            target_sum = 0
            row_loss = 0
            for j in range(k):
                target_sum += Y[row + j]
                row_loss += <double>Y[row + j] * (log_sum_exp - <double>Z[row + j])
            total += row_loss
            softmax_rows(1, k, Z + row, delta + row)
            for j in range(k):
                delta[row + j] = (delta[row + j] * <real>target_sum - Y[row + j]) / <real>m
    return total / m
