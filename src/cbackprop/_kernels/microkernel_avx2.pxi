# The AVX2/FMA micro-kernel: a 6x8 (float64) or 6x16 (float32) tile held in
# twelve ymm accumulators, fed by one broadcast of A and two loads of B per
# row and step. Only compiled into the engine built with -mavx2 -mfma, which
# is imported after a CPU check.

cdef extern from "immintrin.h" nogil:
    ctypedef struct __m256d:
        pass
    ctypedef struct __m256:
        pass
    __m256d _mm256_setzero_pd()
    __m256d _mm256_loadu_pd(const double*)
    __m256d _mm256_broadcast_sd(const double*)
    __m256d _mm256_fmadd_pd(__m256d, __m256d, __m256d)
    __m256d _mm256_add_pd(__m256d, __m256d)
    void _mm256_storeu_pd(double*, __m256d)
    __m256 _mm256_setzero_ps()
    __m256 _mm256_loadu_ps(const float*)
    __m256 _mm256_broadcast_ss(const float*)
    __m256 _mm256_fmadd_ps(__m256, __m256, __m256)
    __m256 _mm256_add_ps(__m256, __m256)
    void _mm256_storeu_ps(float*, __m256)
    void _mm_prefetch(const char*, int)
    int _MM_HINT_T0

cdef enum:
    AVX2_MR = 6
    AVX2_NR_F64 = 8
    AVX2_NR_F32 = 16

# The full-width kernels come in two heights, chosen at compile time: six rows,
# and four for a last row sliver of at most four (64 rows are 10 x 6 + 4;
# computing that 4 as 6 would waste 3% of a 64-row product's FMAs).
ctypedef struct SixRows:
    char unused
ctypedef struct FourRows:
    char unused
ctypedef fused tile_height:
    SixRows
    FourRows


cdef inline Py_ssize_t microkernel_mr(real* kind) noexcept nogil:
    return AVX2_MR


cdef inline Py_ssize_t microkernel_nr(real* kind) noexcept nogil:
    if real is float:
        return AVX2_NR_F32
    else:
        return AVX2_NR_F64


cdef inline void microkernel(Py_ssize_t kc, const real* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                             const real* b, Py_ssize_t b_rs, real* C, Py_ssize_t ldc, Py_ssize_t rows,
                             Py_ssize_t cols, bint overwrite) noexcept nogil:
    """C[:rows, :cols] (=|+=) A_sliver @ b_sliver over kc steps.

    Row i of the A sliver at step p is a[i*a_rs + p*a_cs] (packed: a_rs = 1,
    a_cs = MR; read in place: A's own strides); the B sliver's NR values of
    step p start at b[p*b_rs] (packed: b_rs = NR; in place: B's row stride). An
    edge sliver of at most NR/2 columns takes the half-width kernel (half the
    FMAs: an output layer of 10 is 8 + 2 columns, not 8 + 8).
    """
    if real is float:
        if cols <= AVX2_NR_F32 // 2:
            microkernel_f32_half(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
        elif rows <= 4:
            microkernel_f32(<FourRows*>NULL, kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
        else:
            microkernel_f32(<SixRows*>NULL, kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
    else:
        if cols <= AVX2_NR_F64 // 2:
            microkernel_f64_half(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
        elif rows <= 4:
            microkernel_f64(<FourRows*>NULL, kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
        else:
            microkernel_f64(<SixRows*>NULL, kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)


cdef inline void prefetch_tile(const void* C, Py_ssize_t ldc_bytes, Py_ssize_t rows,
                               Py_ssize_t row_bytes) noexcept nogil:
    """Ask for the lines of a tile of C before its FMAs start: a large C is
    not in cache, and a miss on the final stores would stall every tile."""
    cdef const char* row = <const char*>C
    cdef Py_ssize_t i
    for i in range(rows):
        _mm_prefetch(row, _MM_HINT_T0)
        _mm_prefetch(row + row_bytes - 1, _MM_HINT_T0)
        row += ldc_bytes


cdef inline void store_row_f64(double* out, __m256d lo, __m256d hi, bint overwrite) noexcept nogil:
    if not overwrite:
        lo = _mm256_add_pd(lo, _mm256_loadu_pd(out))
        hi = _mm256_add_pd(hi, _mm256_loadu_pd(out + 4))
    _mm256_storeu_pd(out, lo)
    _mm256_storeu_pd(out + 4, hi)


cdef inline void store_row_f32(float* out, __m256 lo, __m256 hi, bint overwrite) noexcept nogil:
    if not overwrite:
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(out))
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(out + 8))
    _mm256_storeu_ps(out, lo)
    _mm256_storeu_ps(out + 8, hi)


cdef inline void microkernel_f64(tile_height* height, Py_ssize_t kc, const double* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                                 const double* b, Py_ssize_t b_rs, double* C, Py_ssize_t ldc, Py_ssize_t rows,
                                 Py_ssize_t cols, bint overwrite) noexcept nogil:
    # Rows past the edge re-read the last real row; their results are dropped.
    cdef const double* a0 = a + min(<Py_ssize_t>0, rows - 1) * a_rs
    cdef const double* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const double* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const double* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef const double* a4 = a + min(<Py_ssize_t>4, rows - 1) * a_rs
    cdef const double* a5 = a + min(<Py_ssize_t>5, rows - 1) * a_rs
    cdef __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd()
    cdef __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd()
    cdef __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd()
    cdef __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd()
    cdef __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd()
    cdef __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd()
    cdef __m256d b0, b1, ai
    cdef Py_ssize_t p, k = 0
    prefetch_tile(C, ldc * sizeof(double), rows, cols * sizeof(double))
    for p in range(kc):
        b0 = _mm256_loadu_pd(b)
        b1 = _mm256_loadu_pd(b + 4)
        ai = _mm256_broadcast_sd(a0 + k)
        c00 = _mm256_fmadd_pd(ai, b0, c00)
        c01 = _mm256_fmadd_pd(ai, b1, c01)
        ai = _mm256_broadcast_sd(a1 + k)
        c10 = _mm256_fmadd_pd(ai, b0, c10)
        c11 = _mm256_fmadd_pd(ai, b1, c11)
        ai = _mm256_broadcast_sd(a2 + k)
        c20 = _mm256_fmadd_pd(ai, b0, c20)
        c21 = _mm256_fmadd_pd(ai, b1, c21)
        ai = _mm256_broadcast_sd(a3 + k)
        c30 = _mm256_fmadd_pd(ai, b0, c30)
        c31 = _mm256_fmadd_pd(ai, b1, c31)
        if tile_height is SixRows:
            ai = _mm256_broadcast_sd(a4 + k)
            c40 = _mm256_fmadd_pd(ai, b0, c40)
            c41 = _mm256_fmadd_pd(ai, b1, c41)
            ai = _mm256_broadcast_sd(a5 + k)
            c50 = _mm256_fmadd_pd(ai, b0, c50)
            c51 = _mm256_fmadd_pd(ai, b1, c51)
        k += a_cs
        b += b_rs
    if cols == 8:
        # Whole rows (a full tile, or the last rows of A): straight into C.
        store_row_f64(C, c00, c01, overwrite)
        if rows > 1:
            store_row_f64(C + 1 * ldc, c10, c11, overwrite)
        if rows > 2:
            store_row_f64(C + 2 * ldc, c20, c21, overwrite)
        if rows > 3:
            store_row_f64(C + 3 * ldc, c30, c31, overwrite)
        if tile_height is SixRows:
            if rows > 4:
                store_row_f64(C + 4 * ldc, c40, c41, overwrite)
            if rows > 5:
                store_row_f64(C + 5 * ldc, c50, c51, overwrite)
        return
    # Tiles cut by the last columns go through a local tile; only their valid
    # part reaches C.
    cdef double tile[AVX2_MR * 8]
    _mm256_storeu_pd(tile + 0, c00)
    _mm256_storeu_pd(tile + 4, c01)
    _mm256_storeu_pd(tile + 8, c10)
    _mm256_storeu_pd(tile + 12, c11)
    _mm256_storeu_pd(tile + 16, c20)
    _mm256_storeu_pd(tile + 20, c21)
    _mm256_storeu_pd(tile + 24, c30)
    _mm256_storeu_pd(tile + 28, c31)
    if tile_height is SixRows:
        _mm256_storeu_pd(tile + 32, c40)
        _mm256_storeu_pd(tile + 36, c41)
        _mm256_storeu_pd(tile + 40, c50)
        _mm256_storeu_pd(tile + 44, c51)
    store_tile(tile, 8, C, ldc, rows, cols, overwrite)


cdef inline void microkernel_f64_half(Py_ssize_t kc, const double* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                                 const double* b, Py_ssize_t b_rs, double* C, Py_ssize_t ldc, Py_ssize_t rows,
                                 Py_ssize_t cols, bint overwrite) noexcept nogil:
    # The left half of a packed B sliver: for edge slivers of <= 4 columns.
    # Rows past the edge re-read the last real row; their results are dropped.
    cdef const double* a0 = a + min(<Py_ssize_t>0, rows - 1) * a_rs
    cdef const double* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const double* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const double* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef const double* a4 = a + min(<Py_ssize_t>4, rows - 1) * a_rs
    cdef const double* a5 = a + min(<Py_ssize_t>5, rows - 1) * a_rs
    cdef __m256d c00 = _mm256_setzero_pd()
    cdef __m256d c10 = _mm256_setzero_pd()
    cdef __m256d c20 = _mm256_setzero_pd()
    cdef __m256d c30 = _mm256_setzero_pd()
    cdef __m256d c40 = _mm256_setzero_pd()
    cdef __m256d c50 = _mm256_setzero_pd()
    cdef __m256d b0, ai
    cdef Py_ssize_t p, k = 0
    for p in range(kc):
        b0 = _mm256_loadu_pd(b)
        ai = _mm256_broadcast_sd(a0 + k)
        c00 = _mm256_fmadd_pd(ai, b0, c00)
        ai = _mm256_broadcast_sd(a1 + k)
        c10 = _mm256_fmadd_pd(ai, b0, c10)
        ai = _mm256_broadcast_sd(a2 + k)
        c20 = _mm256_fmadd_pd(ai, b0, c20)
        ai = _mm256_broadcast_sd(a3 + k)
        c30 = _mm256_fmadd_pd(ai, b0, c30)
        ai = _mm256_broadcast_sd(a4 + k)
        c40 = _mm256_fmadd_pd(ai, b0, c40)
        ai = _mm256_broadcast_sd(a5 + k)
        c50 = _mm256_fmadd_pd(ai, b0, c50)
        k += a_cs
        b += b_rs
    # Edge tiles go through a local tile; only their valid part reaches C.
    cdef double tile[AVX2_MR * 4]
    cdef double* out = C
    cdef Py_ssize_t ld = ldc
    cdef bint full = rows == AVX2_MR and cols == 4
    if not full:
        out = tile
        ld = 4
    elif not overwrite:
        c00 = _mm256_add_pd(c00, _mm256_loadu_pd(out))
        c10 = _mm256_add_pd(c10, _mm256_loadu_pd(out + 1 * ld))
        c20 = _mm256_add_pd(c20, _mm256_loadu_pd(out + 2 * ld))
        c30 = _mm256_add_pd(c30, _mm256_loadu_pd(out + 3 * ld))
        c40 = _mm256_add_pd(c40, _mm256_loadu_pd(out + 4 * ld))
        c50 = _mm256_add_pd(c50, _mm256_loadu_pd(out + 5 * ld))
    _mm256_storeu_pd(out, c00)
    _mm256_storeu_pd(out + 1 * ld, c10)
    _mm256_storeu_pd(out + 2 * ld, c20)
    _mm256_storeu_pd(out + 3 * ld, c30)
    _mm256_storeu_pd(out + 4 * ld, c40)
    _mm256_storeu_pd(out + 5 * ld, c50)
    if not full:
        store_tile(tile, 4, C, ldc, rows, cols, overwrite)


cdef inline void microkernel_f32(tile_height* height, Py_ssize_t kc, const float* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                                 const float* b, Py_ssize_t b_rs, float* C, Py_ssize_t ldc, Py_ssize_t rows,
                                 Py_ssize_t cols, bint overwrite) noexcept nogil:
    # Rows past the edge re-read the last real row; their results are dropped.
    cdef const float* a0 = a + min(<Py_ssize_t>0, rows - 1) * a_rs
    cdef const float* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const float* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const float* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef const float* a4 = a + min(<Py_ssize_t>4, rows - 1) * a_rs
    cdef const float* a5 = a + min(<Py_ssize_t>5, rows - 1) * a_rs
    cdef __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps()
    cdef __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps()
    cdef __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps()
    cdef __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps()
    cdef __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps()
    cdef __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps()
    cdef __m256 b0, b1, ai
    cdef Py_ssize_t p, k = 0
    prefetch_tile(C, ldc * sizeof(float), rows, cols * sizeof(float))
    for p in range(kc):
        b0 = _mm256_loadu_ps(b)
        b1 = _mm256_loadu_ps(b + 8)
        ai = _mm256_broadcast_ss(a0 + k)
        c00 = _mm256_fmadd_ps(ai, b0, c00)
        c01 = _mm256_fmadd_ps(ai, b1, c01)
        ai = _mm256_broadcast_ss(a1 + k)
        c10 = _mm256_fmadd_ps(ai, b0, c10)
        c11 = _mm256_fmadd_ps(ai, b1, c11)
        ai = _mm256_broadcast_ss(a2 + k)
        c20 = _mm256_fmadd_ps(ai, b0, c20)
        c21 = _mm256_fmadd_ps(ai, b1, c21)
        ai = _mm256_broadcast_ss(a3 + k)
        c30 = _mm256_fmadd_ps(ai, b0, c30)
        c31 = _mm256_fmadd_ps(ai, b1, c31)
        if tile_height is SixRows:
            ai = _mm256_broadcast_ss(a4 + k)
            c40 = _mm256_fmadd_ps(ai, b0, c40)
            c41 = _mm256_fmadd_ps(ai, b1, c41)
            ai = _mm256_broadcast_ss(a5 + k)
            c50 = _mm256_fmadd_ps(ai, b0, c50)
            c51 = _mm256_fmadd_ps(ai, b1, c51)
        k += a_cs
        b += b_rs
    if cols == 16:
        # Whole rows (a full tile, or the last rows of A): straight into C.
        store_row_f32(C, c00, c01, overwrite)
        if rows > 1:
            store_row_f32(C + 1 * ldc, c10, c11, overwrite)
        if rows > 2:
            store_row_f32(C + 2 * ldc, c20, c21, overwrite)
        if rows > 3:
            store_row_f32(C + 3 * ldc, c30, c31, overwrite)
        if tile_height is SixRows:
            if rows > 4:
                store_row_f32(C + 4 * ldc, c40, c41, overwrite)
            if rows > 5:
                store_row_f32(C + 5 * ldc, c50, c51, overwrite)
        return
    # Tiles cut by the last columns go through a local tile; only their valid
    # part reaches C.
    cdef float tile[AVX2_MR * 16]
    _mm256_storeu_ps(tile + 0, c00)
    _mm256_storeu_ps(tile + 8, c01)
    _mm256_storeu_ps(tile + 16, c10)
    _mm256_storeu_ps(tile + 24, c11)
    _mm256_storeu_ps(tile + 32, c20)
    _mm256_storeu_ps(tile + 40, c21)
    _mm256_storeu_ps(tile + 48, c30)
    _mm256_storeu_ps(tile + 56, c31)
    if tile_height is SixRows:
        _mm256_storeu_ps(tile + 64, c40)
        _mm256_storeu_ps(tile + 72, c41)
        _mm256_storeu_ps(tile + 80, c50)
        _mm256_storeu_ps(tile + 88, c51)
    store_tile(tile, 16, C, ldc, rows, cols, overwrite)


cdef inline void microkernel_f32_half(Py_ssize_t kc, const float* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                                 const float* b, Py_ssize_t b_rs, float* C, Py_ssize_t ldc, Py_ssize_t rows,
                                 Py_ssize_t cols, bint overwrite) noexcept nogil:
    # The left half of a packed B sliver: for edge slivers of <= 8 columns.
    # Rows past the edge re-read the last real row; their results are dropped.
    cdef const float* a0 = a + min(<Py_ssize_t>0, rows - 1) * a_rs
    cdef const float* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const float* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const float* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef const float* a4 = a + min(<Py_ssize_t>4, rows - 1) * a_rs
    cdef const float* a5 = a + min(<Py_ssize_t>5, rows - 1) * a_rs
    cdef __m256 c00 = _mm256_setzero_ps()
    cdef __m256 c10 = _mm256_setzero_ps()
    cdef __m256 c20 = _mm256_setzero_ps()
    cdef __m256 c30 = _mm256_setzero_ps()
    cdef __m256 c40 = _mm256_setzero_ps()
    cdef __m256 c50 = _mm256_setzero_ps()
    cdef __m256 b0, ai
    cdef Py_ssize_t p, k = 0
    for p in range(kc):
        b0 = _mm256_loadu_ps(b)
        ai = _mm256_broadcast_ss(a0 + k)
        c00 = _mm256_fmadd_ps(ai, b0, c00)
        ai = _mm256_broadcast_ss(a1 + k)
        c10 = _mm256_fmadd_ps(ai, b0, c10)
        ai = _mm256_broadcast_ss(a2 + k)
        c20 = _mm256_fmadd_ps(ai, b0, c20)
        ai = _mm256_broadcast_ss(a3 + k)
        c30 = _mm256_fmadd_ps(ai, b0, c30)
        ai = _mm256_broadcast_ss(a4 + k)
        c40 = _mm256_fmadd_ps(ai, b0, c40)
        ai = _mm256_broadcast_ss(a5 + k)
        c50 = _mm256_fmadd_ps(ai, b0, c50)
        k += a_cs
        b += b_rs
    # Edge tiles go through a local tile; only their valid part reaches C.
    cdef float tile[AVX2_MR * 8]
    cdef float* out = C
    cdef Py_ssize_t ld = ldc
    cdef bint full = rows == AVX2_MR and cols == 8
    if not full:
        out = tile
        ld = 8
    elif not overwrite:
        c00 = _mm256_add_ps(c00, _mm256_loadu_ps(out))
        c10 = _mm256_add_ps(c10, _mm256_loadu_ps(out + 1 * ld))
        c20 = _mm256_add_ps(c20, _mm256_loadu_ps(out + 2 * ld))
        c30 = _mm256_add_ps(c30, _mm256_loadu_ps(out + 3 * ld))
        c40 = _mm256_add_ps(c40, _mm256_loadu_ps(out + 4 * ld))
        c50 = _mm256_add_ps(c50, _mm256_loadu_ps(out + 5 * ld))
    _mm256_storeu_ps(out, c00)
    _mm256_storeu_ps(out + 1 * ld, c10)
    _mm256_storeu_ps(out + 2 * ld, c20)
    _mm256_storeu_ps(out + 3 * ld, c30)
    _mm256_storeu_ps(out + 4 * ld, c40)
    _mm256_storeu_ps(out + 5 * ld, c50)
    if not full:
        store_tile(tile, 8, C, ldc, rows, cols, overwrite)


include "narrow_avx2.pxi"
include "pack_avx2.pxi"
