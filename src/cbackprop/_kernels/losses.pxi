# Losses with fused output deltas. Each returns the loss (accumulated in
# double) and writes delta = dL/dZ of the output layer. BCE and
# cross-entropy work from the pre-activation Z alone, so no log(0) and no
# overflow for any finite input, and cb.ops can run them in place.
#
# The codes are the registry's (the ``code`` of each class in
# cbackprop/losses.py).
from libc.float cimport FLT_MIN
from libc.math cimport NAN, fabs, log, log1p, nearbyint
from libc.stdint cimport int64_t

cdef enum LossKind:
    LOSS_MSE = 0
    LOSS_BCE = 1
    LOSS_CROSS_ENTROPY = 2


cdef double mse_loss(Py_ssize_t m, Py_ssize_t n, const real* A, const real* Z, const real* Y,
                     double scale, bint reduction_sum, int activation, real* delta) noexcept nogil:
    """scale * sum((A - Y)²) / N, delta = dL/dA ⊙ f'(Z) (a row-wise JVP for
    softmax); Z is read only by the activations whose derivative needs it."""
    cdef double divisor = 1.0 if reduction_sum else <double>(m * n)
    cdef real grad_scale = <real>(2.0 * scale / divisor)
    cdef double total = squared_distance_and_delta(m * n, A, Y, grad_scale, delta)
    if activation == ACT_SOFTMAX:
        softmax_backward(m, n, delta, A)
    else:
        activation_backward(m * n, delta, delta, A, Z, activation, 1)
    return scale * total / divisor


cdef double bce_loss(Py_ssize_t count, const real* Z, const real* Y, real* delta) noexcept nogil:
    """-mean(Y log σ(Z) + (1-Y) log(1-σ(Z))) = mean(max(Z,0) - Y Z + log1p(exp(-|Z|))),
    and delta = (σ(Z) - Y) / N, with σ(Z) from the same e = exp(-|Z|).
    Chunks of VECTOR_CHUNK: e and log1p(e) by vmath.h into stack buffers,
    then one vector loop. Each element is read before its delta is written
    (and, where float32 takes some terms in double, every term of a chunk
    before its first delta), so delta may be Z (or Y) itself."""
    cdef real e[VECTOR_CHUNK]
    cdef real softplus[VECTOR_CHUNK]
    cdef double terms[VECTOR_CHUNK]
    cdef Py_ssize_t start, j, n
    cdef double total = 0
    cdef real z, y
    cdef double exact[VECTOR_CHUNK]   # float32's chunk again, in double
    cdef bint below
    start = 0
    while start < count:
        n = min(<Py_ssize_t>VECTOR_CHUNK, count - start)
        for j in range(n):
            e[j] = -fabs(Z[start + j])
        vector_exp(n, e, e)
        vector_log1p(n, e, softplus)
        below = False
        if real is float:
            for j in range(n):
                below |= e[j] < FLT_MIN
        if below:
            # float32's exp(-|z|) has lost its digits (or is 0, beyond |z| of
            # about 103) where double keeps them, and where log1p(e) = e is the
            # whole of a confident element's loss: there it is taken from
            # vmath's double exp of the chunk, every term before any delta is
            # written over Z or Y.
            for j in range(n):
                exact[j] = -fabs(<double>Z[start + j])
            cb_vexp_f64(n, exact, exact)
            for j in range(n):
                terms[j] = bce_term(Z[start + j], Y[start + j],
                                    exact[j] if e[j] < FLT_MIN else <double>softplus[j])
            for j in range(n):
                delta[start + j] = bce_delta(Z[start + j], Y[start + j], e[j], count)
        else:
            for j in range(n):
                z = Z[start + j]
                y = Y[start + j]
                terms[j] = bce_term(z, y, softplus[j])
                delta[start + j] = bce_delta(z, y, e[j], count)
        total += sum_as_double(n, terms)
        start += VECTOR_CHUNK
    return total / count


cdef inline double bce_term(real z, real y, double softplus) noexcept nogil:
    """max(z, 0) - y z + softplus, in double; softplus is log1p(exp(-|z|))."""
    cdef double z64 = z
    return (z64 if z64 > 0 else 0.0) - <double>y * z64 + softplus


cdef inline real bce_delta(real z, real y, real e, Py_ssize_t count) noexcept nogil:
    """(σ(z) - y) / count, σ(z) from e = exp(-|z|)."""
    cdef real s = <real>1 / (<real>1 + e)
    s = s if z >= 0 else e * s
    return (s - y) / <real>count


cdef inline double sum_of_the_others(Py_ssize_t k, const real* e,
                                     double exp_sum) noexcept nogil:
    """Σ e[j] over a row of exp(Z - max) without its maximum's term: the terms
    below 1 (in sums.pxi's order, so that the loop runs on vectors), plus 1
    for each further term equal to 1 (a tie; exp_sum, the row's whole sum,
    less the terms below 1 counts them)."""
    cdef double partial[PARTIALS]
    cdef double below
    cdef Py_ssize_t i, j, whole = k - k % PARTIALS
    for j in range(PARTIALS):
        partial[j] = 0
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            partial[j] += e[i + j] if e[i + j] < 1 else 0
        i += PARTIALS
    for i in range(whole, k):
        partial[i - whole] += e[i] if e[i] < 1 else 0
    below = pairwise(partial)
    return below + (nearbyint(exp_sum - below) - 1)


cdef inline double target_dot_gap(Py_ssize_t k, const real* y, const real* z,
                                  real top) noexcept nogil:
    """Σ y[j] (top - z[j]) in double, in the order of sums.pxi. A class
    without target weight adds nothing, also where its gap overflows (logits
    further apart than double's range: 0 x inf), which the plain loop would
    make NaN; that rare sum is taken again term by term."""
    cdef double partial[PARTIALS]
    cdef double total = 0
    cdef Py_ssize_t i, j, whole = k - k % PARTIALS
    for j in range(PARTIALS):
        partial[j] = 0
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            partial[j] += <double>y[i + j] * (<double>top - <double>z[i + j])
        i += PARTIALS
    for i in range(whole, k):
        partial[i - whole] += <double>y[i] * (<double>top - <double>z[i])
    total = pairwise(partial)
    if total == total:
        return total
    total = 0
    for i in range(k):
        if y[i] != 0:
            total += <double>y[i] * (<double>top - <double>z[i])
    return total


cdef inline double others_in_double_precision(Py_ssize_t k, const float* z,
                                              float top) noexcept nogil:
    """Σ exp(z_j - top) in double (the gaps exact, exp by vmath's double
    kernel) over a float32 row's classes below its maximum ``top``, a NaN
    gap included (it makes the sum NaN, as float32's own would be)."""
    cdef double gaps[VECTOR_CHUNK]
    cdef double terms[VECTOR_CHUNK]
    cdef double total = 0
    cdef Py_ssize_t start, j, n
    start = 0
    while start < k:
        n = min(<Py_ssize_t>VECTOR_CHUNK, k - start)
        for j in range(n):
            gaps[j] = <double>z[start + j] - <double>top
        cb_vexp_f64(n, gaps, terms)
        for j in range(n):
            if not (gaps[j] >= 0):   # the maximum's own 0 left out
                total += terms[j]
        start += VECTOR_CHUNK
    return total


cdef inline real over_m(real x, Py_ssize_t m, real inverse_m) noexcept nogil:
    """x / m, as x * inverse_m where that is the same to the bit (inverse_m
    is 1/m for m a power of two, else 0)."""
    return x * inverse_m if inverse_m != 0 else x / <real>m


cdef double cross_entropy_loss(Py_ssize_t m, Py_ssize_t k, const real* Z, const real* Y,
                               const int64_t* labels, real* delta) noexcept nogil:
    """-sum(Y log softmax(Z)) / m from the logits; Y rows, or ``labels`` when Y
    is NULL. delta = (softmax(Z) * sum(Y_row) - Y) / m: the gradient for any
    targets, equal to (softmax(Z) - Y) / m when rows sum to one. What the
    loss needs of a row's Z is read before exp(Z - max) is written into its
    delta, so delta may be Z itself. Rows go in blocks whose exp is one
    vmath.h call (rows_per_block), their maxima and sums kept meanwhile.

    -log softmax(Z)_j = (max - Z_j) + log1p(Σ over the other classes of
    exp(Z - max)): both terms >= 0, so a confident row's loss keeps its
    digits (max + log(1 + tiny) - Z_label rounds them away: 0 for a margin
    of 40 where the loss is 4.2e-18). In float32, a row whose other terms
    are all too small for float32 to sum (below others_low) takes their sum
    in double (others_in_double_precision)."""
    cdef Py_ssize_t i, j, row, first = 0, last, label = 0
    cdef Py_ssize_t block = rows_per_block(k)   # at most VECTOR_CHUNK: the arrays below
    cdef real row_max[VECTOR_CHUNK]
    cdef real z_label[VECTOR_CHUNK]
    cdef Py_ssize_t row_label[VECTOR_CHUNK]   # each row's label as read once, or -1
    cdef double target_sum[VECTOR_CHUNK]
    cdef double target_gap[VECTOR_CHUNK]
    cdef real log_others[VECTOR_CHUNK]   # log1p of the row's other terms, by vmath.h
    cdef double others_in_double[VECTOR_CHUNK]   # float32's rows whose other terms it cannot hold
    cdef double total = 0, exp_sum, log_others_row
    cdef Py_ssize_t near
    # In float32, the other terms of a row sum to float32's digits when one of
    # them is at least k FLT_MIN, exp(others_low): then the k at most that
    # are subnormal (each within 2^-150) cannot move the sum by more than its
    # last digit. Below, float32 keeps a few digits of them or none (0 beyond
    # a gap of 103), though they are the whole of the row's loss
    # (log1p(s) = s): the row takes them in double.
    cdef real others_low = 0
    cdef real a_label
    # 1/m when m is a power of two: x * 2^-e is x / 2^e to the bit (both
    # round the same exact value), and a multiplication is not a division.
    cdef real inverse_m = <real>1 / <real>m if m & (m - 1) == 0 else 0
    if real is float:
        others_low = <real>(log(<double>FLT_MIN) + log(<double>k))
    while first < m:
        last = min(m, first + block)
        for i in range(first, last):
            row = i * k
            row_max[i - first] = maximum(k, Z + row)
            if Y == NULL:
                # Checked at the boundary, yet read once and kept in range here:
                # a label is an index, and another thread may write the array
                # between the check and this pass (a wrong one makes the loss NaN).
                label = labels[i]
                row_label[i - first] = label if 0 <= label < k else -1
                z_label[i - first] = Z[row + label] if 0 <= label < k else NAN
            else:
                target_sum[i - first] = sum_as_double(k, Y + row)
                target_gap[i - first] = target_dot_gap(k, Y + row, Z + row, row_max[i - first])
            if real is float:
                # Decided, and taken, before delta is written over the row's Z.
                # near: the classes whose gap reaches others_low (or is NaN);
                # the maximum alone, and float32's sum is not to be trusted.
                near = 0
                for j in range(k):
                    near += not (Z[row + j] - row_max[i - first] < others_low)
                others_in_double[i - first] = (
                    others_in_double_precision(k, Z + row, row_max[i - first]) if near == 1
                    else -1)
            for j in range(k):
                delta[row + j] = Z[row + j] - row_max[i - first]
        vector_exp((last - first) * k, delta + first * k, delta + first * k)
        for i in range(first, last):
            row = i * k
            exp_sum = sum_as_double(k, delta + row)
            log_others[i - first] = <real>sum_of_the_others(k, delta + row, exp_sum)
            # softmax(Z) = <real>(exp / exp_sum), as softmax_rows has it, then / m
            if Y == NULL:
                label = row_label[i - first]
                a_label = <real>(delta[row + label] / exp_sum) if label >= 0 else NAN
                for j in range(k):
                    delta[row + j] = over_m(<real>(delta[row + j] / exp_sum), m, inverse_m)
                if label >= 0:
                    delta[row + label] = over_m(a_label - <real>1, m, inverse_m)
            else:
                for j in range(k):
                    delta[row + j] = over_m(<real>(delta[row + j] / exp_sum)
                                            * <real>target_sum[i - first] - Y[row + j],
                                            m, inverse_m)
        vector_log1p(last - first, log_others, log_others)
        for i in range(first, last):
            log_others_row = log_others[i - first]
            if real is float and others_in_double[i - first] >= 0:
                log_others_row = log1p(others_in_double[i - first])
            if Y == NULL:
                total += ((<double>row_max[i - first] - <double>z_label[i - first])
                          + log_others_row)
            else:
                total += target_gap[i - first] + target_sum[i - first] * log_others_row
        first = last
    return total / m
