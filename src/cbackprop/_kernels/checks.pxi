# Value checks on user data, run by the engine's def methods before any
# computation (the structural checks were done in Python).

cdef enum CheckResult:
    CHECK_OK = 0
    CHECK_X_NOT_FINITE = 1
    CHECK_Y_NOT_FINITE = 2
    CHECK_LABEL_OUT_OF_RANGE = 3
    CHECK_TARGET_OUTSIDE_UNIT = 4
    CHECK_TARGET_NOT_PROBABILITY = 5


cdef inline bint all_finite(Py_ssize_t count, const real* values) noexcept nogil:
    cdef Py_ssize_t i
    cdef int finite = 1
    # x - x is 0 for finite x and NaN for inf/NaN; an integer AND vectorises.
    for i in range(count):
        finite &= (values[i] - values[i]) == 0
    return finite


cdef inline bint all_in_unit_interval(Py_ssize_t count, const real* values) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if not (values[i] >= 0 and values[i] <= 1):
            return False
    return True


cdef inline Py_ssize_t first_label_out_of_range(Py_ssize_t count, const int64_t* labels,
                                                int64_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        if labels[i] < 0 or labels[i] >= n_classes:
            return i
    return -1


cdef inline Py_ssize_t first_bad_probability_row(Py_ssize_t m, Py_ssize_t k, const real* Y,
                                                 double tolerance) noexcept nogil:
    """The first row that is not a probability vector (an entry outside [0, 1],
    or a sum, taken in double, further than ``tolerance`` from 1), or -1."""
    cdef Py_ssize_t i, j
    cdef double total
    cdef bint inside
    for i in range(m):
        total = 0
        inside = True
        for j in range(k):
            inside = inside and Y[i * k + j] >= 0 and Y[i * k + j] <= 1
            total += Y[i * k + j]
        if not inside or fabs(total - 1.0) > tolerance:
            return i
    return -1
