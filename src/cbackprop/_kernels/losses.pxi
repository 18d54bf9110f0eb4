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
    cdef double total = squared_distance_as_double(m * n, A, Y)
    for i in range(m * n):
        delta[i] = grad_scale * (A[i] - Y[i])
    if activation == ACT_SOFTMAX:
        softmax_backward(m, n, delta, A)
    else:
        activation_backward(m * n, delta, delta, A, Z, activation, 1)
    return scale * total / divisor


cdef double bce_loss(Py_ssize_t count, const real* Z, const real* Y, real* delta) noexcept nogil:
    """-mean(Y log σ(Z) + (1-Y) log(1-σ(Z))) = mean(max(Z,0) - Y Z + log1p(exp(-|Z|))),
    and delta = (σ(Z) - Y) / N, with σ(Z) from the same e = exp(-|Z|).
    Chunks of VECTOR_CHUNK: e and log1p(e) by vmath.h into stack buffers,
    then one vector loop. Each element is read before its delta is written,
    so delta may be Z (or Y) itself."""
    cdef real e[VECTOR_CHUNK]
    cdef real softplus[VECTOR_CHUNK]
    cdef double terms[VECTOR_CHUNK]
    cdef Py_ssize_t start, j, n
    cdef double total = 0, z64
    cdef real z, y, s
    for start in range(0, count, 256):   # VECTOR_CHUNK (a range step must be a literal)
        n = min(<Py_ssize_t>VECTOR_CHUNK, count - start)
        for j in range(n):
            e[j] = -fabs(Z[start + j])
        vector_exp(n, e, e)
        vector_log1p(n, e, softplus)
        for j in range(n):
            z = Z[start + j]
            y = Y[start + j]
            z64 = z
            terms[j] = (z64 if z64 > 0 else 0.0) - <double>y * z64 + <double>softplus[j]
            s = <real>1 / (<real>1 + e[j])
            s = s if z >= 0 else e[j] * s
            delta[start + j] = (s - y) / <real>count
        total += sum_as_double(n, terms)
    return total / count


cdef double cross_entropy_loss(Py_ssize_t m, Py_ssize_t k, const real* Z, const real* Y,
                               const int64_t* labels, real* delta) noexcept nogil:
    """-sum(Y log softmax(Z)) / m from the logits; Y rows, or ``labels`` when Y
    is NULL. delta = (softmax(Z) * sum(Y_row) - Y) / m: the gradient for any
    targets, equal to (softmax(Z) - Y) / m when rows sum to one. What the
    loss needs of a row's Z is read before exp(Z - max) is written into its
    delta, so delta may be Z itself. Rows go in blocks whose exp is one
    vmath.h call (rows_per_block), their maxima and sums kept meanwhile."""
    cdef Py_ssize_t i, j, row, first = 0, last, label = 0
    cdef Py_ssize_t block = rows_per_block(k)   # at most VECTOR_CHUNK: the arrays below
    cdef real row_max[VECTOR_CHUNK]
    cdef real z_label[VECTOR_CHUNK]
    cdef double target_sum[VECTOR_CHUNK]
    cdef double target_dot_z[VECTOR_CHUNK]
    cdef double total = 0, exp_sum, log_sum_exp
    cdef real a_label
    while first < m:
        last = min(m, first + block)
        for i in range(first, last):
            row = i * k
            row_max[i - first] = maximum(k, Z + row)
            if Y == NULL:
                z_label[i - first] = Z[row + labels[i]]
            else:
                target_sum[i - first] = sum_as_double(k, Y + row)
                target_dot_z[i - first] = dot_as_double(k, Y + row, Z + row)
            for j in range(k):
                delta[row + j] = Z[row + j] - row_max[i - first]
        vector_exp((last - first) * k, delta + first * k, delta + first * k)
        for i in range(first, last):
            row = i * k
            exp_sum = sum_as_double(k, delta + row)
            log_sum_exp = row_max[i - first] + log(exp_sum)
            for j in range(k):   # softmax(Z), as softmax_rows has it
                delta[row + j] = <real>(delta[row + j] / exp_sum)
            if Y == NULL:
                label = labels[i]
                total += log_sum_exp - <double>z_label[i - first]
                a_label = delta[row + label]
                for j in range(k):
                    delta[row + j] = delta[row + j] / <real>m
                delta[row + label] = (a_label - <real>1) / <real>m
            else:
                # Σ_j Y_j (log_sum_exp - Z_j)
                total += log_sum_exp * target_sum[i - first] - target_dot_z[i - first]
                for j in range(k):
                    delta[row + j] = (delta[row + j] * <real>target_sum[i - first]
                                      - Y[row + j]) / <real>m
        first = last
    return total / m
