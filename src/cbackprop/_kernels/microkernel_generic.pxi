# The portable micro-kernel: plain loops over a fixed-size accumulator that
# the compiler keeps in registers. Compiled with baseline flags only.

cdef enum:
    GENERIC_MR = 4
    GENERIC_NR = 8


cdef inline Py_ssize_t microkernel_mr(real* kind) noexcept nogil:
    return GENERIC_MR


cdef inline Py_ssize_t microkernel_nr(real* kind) noexcept nogil:
    return GENERIC_NR


cdef inline void microkernel(Py_ssize_t kc, const real* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                             const real* b, Py_ssize_t b_rs, real* C, Py_ssize_t ldc, Py_ssize_t rows,
                             Py_ssize_t cols, bint overwrite) noexcept nogil:
    """C[:rows, :cols] (=|+=) A_sliver @ b_sliver over kc steps; row i of the A
    sliver at step p is a[i*a_rs + p*a_cs] (rows past the edge re-read the last)
    and the sliver of B at step p starts at b[p*b_rs]."""
    cdef real acc[GENERIC_MR * GENERIC_NR]
    cdef Py_ssize_t row_offset[GENERIC_MR]
    cdef real a_i
    cdef Py_ssize_t p, i, j
    for i in range(GENERIC_MR):
        row_offset[i] = min(i, rows - 1) * a_rs
    for i in range(GENERIC_MR * GENERIC_NR):
        acc[i] = 0
    for p in range(kc):
        for i in range(GENERIC_MR):
            a_i = a[row_offset[i] + p * a_cs]
            for j in range(GENERIC_NR):
                acc[i * GENERIC_NR + j] += a_i * b[p * b_rs + j]
    store_tile(acc, GENERIC_NR, C, ldc, rows, cols, overwrite)


cdef inline bint narrow_gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                             const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                             const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                             real* C, Py_ssize_t ldc, bint accumulate,
                             real* pack_a, real* pack_b) noexcept nogil:
    """The portable build has no narrow-product kernels: every product takes the blocked loops."""
    return False


cdef inline void pack_b_transposed(Py_ssize_t kc, const real* B, Py_ssize_t csb,
                                   real* packed) noexcept nogil:
    """packed[p*NR + j] = B[j*csb + p]: NR rows of W, kc values each, as a B sliver."""
    cdef Py_ssize_t p, j
    for p in range(kc):
        for j in range(GENERIC_NR):
            packed[p * GENERIC_NR + j] = B[j * csb + p]


cdef inline void pack_a_transposed(Py_ssize_t kc, const real* A, Py_ssize_t rsa,
                                   real* packed) noexcept nogil:
    """packed[p*MR + i] = A[i*rsa + p]: MR rows of X, kc values each, as an A sliver."""
    cdef Py_ssize_t p, i
    for p in range(kc):
        for i in range(GENERIC_MR):
            packed[p * GENERIC_MR + i] = A[i * rsa + p]
