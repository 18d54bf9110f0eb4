# Reductions of the element-wise passes, in double and in a fixed order:
# eight interleaved partial results (so that the loop runs on vectors),
# combined pairwise. The order depends only on the length, never on the
# thread count.

cdef enum:
    PARTIALS = 8   # pairwise() adds exactly eight


cdef inline double pairwise(const double* partial) noexcept nogil:
    return (((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7])))


cdef inline double sum_as_double(Py_ssize_t n, const real* x) noexcept nogil:
    """Σ x[i]."""
    cdef double partial[PARTIALS]
    cdef Py_ssize_t i, j, whole = n - n % PARTIALS
    for j in range(PARTIALS):
        partial[j] = 0
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            partial[j] += x[i + j]
        i += PARTIALS
    for i in range(whole, n):
        partial[i - whole] += x[i]
    return pairwise(partial)


cdef inline double dot_as_double(Py_ssize_t n, const real* x, const real* y) noexcept nogil:
    """Σ x[i] y[i], each product in double."""
    cdef double partial[PARTIALS]
    cdef Py_ssize_t i, j, whole = n - n % PARTIALS
    for j in range(PARTIALS):
        partial[j] = 0
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            partial[j] += <double>x[i + j] * <double>y[i + j]
        i += PARTIALS
    for i in range(whole, n):
        partial[i - whole] += <double>x[i] * <double>y[i]
    return pairwise(partial)


cdef inline double squared_distance_and_delta(Py_ssize_t n, const real* x, const real* y,
                                              real scale, real* delta) noexcept nogil:
    """Σ (x[i] - y[i])², each difference in double, and delta[i] = scale *
    (x[i] - y[i]) in the dtype, in one pass (delta may be x or y: each
    element is read before its delta is written)."""
    cdef double partial[PARTIALS]
    cdef double diff
    cdef real xi, yi
    cdef Py_ssize_t i, j, whole = n - n % PARTIALS
    for j in range(PARTIALS):
        partial[j] = 0
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            xi = x[i + j]
            yi = y[i + j]
            diff = <double>xi - <double>yi
            partial[j] += diff * diff
            delta[i + j] = scale * (xi - yi)
        i += PARTIALS
    for i in range(whole, n):
        xi = x[i]
        yi = y[i]
        diff = <double>xi - <double>yi
        partial[i - whole] += diff * diff
        delta[i] = scale * (xi - yi)
    return pairwise(partial)


cdef inline real maximum(Py_ssize_t n, const real* x) noexcept nogil:
    """max x[i] for n >= 1 (a NaN is skipped, as by ``if x > best``)."""
    cdef real partial[PARTIALS]
    cdef real best
    cdef Py_ssize_t i, j, whole = n - n % PARTIALS
    for j in range(PARTIALS):
        partial[j] = x[0]
    i = 0
    while i < whole:
        for j in range(PARTIALS):
            partial[j] = x[i + j] if x[i + j] > partial[j] else partial[j]
        i += PARTIALS
    for i in range(whole, n):
        partial[i - whole] = x[i] if x[i] > partial[i - whole] else partial[i - whole]
    best = partial[0]
    for j in range(1, PARTIALS):
        best = partial[j] if partial[j] > best else best
    return best
