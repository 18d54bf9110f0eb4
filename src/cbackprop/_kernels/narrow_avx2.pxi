# Products with a narrow output, below the threading threshold (an output
# layer of 10 classes): the packed 6x8 / 6x16 micro-tiles would spend a sixth
# to a third of their FMAs on padding columns and read A once per 8 (or 16)
# columns. Two kernels give every vector lane a real result instead:
#
# - rows of op(A) adjacent in memory (op(A) = Xᵀ, the dW = A_prevᵀ δ of an
#   output layer), 2 <= N <= NARROW_MAX_N: vectors run down the rows of C;
#   each step loads 8 (float64) or 16 (float32) rows of A, in place, and
#   broadcasts the values of one group of at most NARROW_COLS columns of B.
#   Columns are split into groups as evenly as possible; a group with fewer
#   columns repeats its last one (the extra results are dropped). Rows left
#   over (fewer than a vector tile) go to the general GEMM.
# - 9 or 10 columns, any op(A) (Z = A_prev @ W of an output layer): columns
#   0-7 in whole vectors as usual, columns 8-9 two rows per vector (see
#   "ten columns" below), over 4 (float64) or 8 (float32) rows of A read in
#   place.
#
# Other narrow products take the general GEMM.

cdef extern from "immintrin.h" nogil:
    ctypedef struct __m128d:
        pass
    __m128d _mm256_castpd256_pd128(__m256d)
    __m128d _mm256_extractf128_pd(__m256d, int)
    __m128d _mm_loadu_pd(const double*)
    __m128d _mm_add_pd(__m128d, __m128d)
    void _mm_storeu_pd(double*, __m128d)
    __m256d _mm256_insertf128_pd(__m256d, __m128d, int)
    __m256 _mm256_blend_ps(__m256, __m256, int)

cdef enum:
    NARROW_COLS = 5        # columns of B per group (accumulators: 2 x 5 vectors)
    NARROW_MAX_N = 10      # widest product sent here (two full groups)


cdef inline void narrow_groups(Py_ssize_t N, Py_ssize_t group, Py_ssize_t* first,
                               Py_ssize_t* cols) noexcept nogil:
    """Columns [first, first + cols) of group ``group``: N split as evenly as possible."""
    cdef Py_ssize_t n_groups = (N + NARROW_COLS - 1) // NARROW_COLS
    cdef Py_ssize_t base = N // n_groups, extra = N % n_groups
    first[0] = group * base + min(group, extra)
    cols[0] = base + (1 if group < extra else 0)


cdef inline void put(real* C, real value, bint overwrite) noexcept nogil:
    if overwrite:
        C[0] = value
    else:
        C[0] += value


# -- op(A) rows adjacent: vectors down the rows of C --------------------------------
cdef void narrow_rows_f64(Py_ssize_t K, const double* a, Py_ssize_t a_cs, const double* b,
                          Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, double* C,
                          Py_ssize_t ldc, bint overwrite) noexcept nogil:
    """C[:8, :cols] (=|+=) Σ_p a[p*a_cs : p*a_cs + 8] ⊗ b[p*rsb + j*csb]."""
    cdef const double* b0 = b
    cdef const double* b1 = b + min(<Py_ssize_t>1, cols - 1) * csb
    cdef const double* b2 = b + min(<Py_ssize_t>2, cols - 1) * csb
    cdef const double* b3 = b + min(<Py_ssize_t>3, cols - 1) * csb
    cdef const double* b4 = b + min(<Py_ssize_t>4, cols - 1) * csb
    cdef __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd()
    cdef __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd()
    cdef __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd()
    cdef __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd()
    cdef __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd()
    cdef __m256d lo, hi, bj
    cdef Py_ssize_t p, k = 0
    for p in range(K):
        lo = _mm256_loadu_pd(a)
        hi = _mm256_loadu_pd(a + 4)
        bj = _mm256_broadcast_sd(b0 + k)
        c00 = _mm256_fmadd_pd(lo, bj, c00)
        c01 = _mm256_fmadd_pd(hi, bj, c01)
        bj = _mm256_broadcast_sd(b1 + k)
        c10 = _mm256_fmadd_pd(lo, bj, c10)
        c11 = _mm256_fmadd_pd(hi, bj, c11)
        bj = _mm256_broadcast_sd(b2 + k)
        c20 = _mm256_fmadd_pd(lo, bj, c20)
        c21 = _mm256_fmadd_pd(hi, bj, c21)
        bj = _mm256_broadcast_sd(b3 + k)
        c30 = _mm256_fmadd_pd(lo, bj, c30)
        c31 = _mm256_fmadd_pd(hi, bj, c31)
        bj = _mm256_broadcast_sd(b4 + k)
        c40 = _mm256_fmadd_pd(lo, bj, c40)
        c41 = _mm256_fmadd_pd(hi, bj, c41)
        a += a_cs
        k += rsb
    # Column j of the tile is t[8j : 8j + 8]; C wants it across its rows.
    cdef double t[8 * NARROW_COLS]
    _mm256_storeu_pd(t, c00)
    _mm256_storeu_pd(t + 4, c01)
    _mm256_storeu_pd(t + 8, c10)
    _mm256_storeu_pd(t + 12, c11)
    _mm256_storeu_pd(t + 16, c20)
    _mm256_storeu_pd(t + 20, c21)
    _mm256_storeu_pd(t + 24, c30)
    _mm256_storeu_pd(t + 28, c31)
    _mm256_storeu_pd(t + 32, c40)
    _mm256_storeu_pd(t + 36, c41)
    cdef Py_ssize_t i, j
    for i in range(8):
        for j in range(cols):
            put(&C[i * ldc + j], t[j * 8 + i], overwrite)


cdef void narrow_rows_f32(Py_ssize_t K, const float* a, Py_ssize_t a_cs, const float* b,
                          Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, float* C,
                          Py_ssize_t ldc, bint overwrite) noexcept nogil:
    """C[:16, :cols] (=|+=) Σ_p a[p*a_cs : p*a_cs + 16] ⊗ b[p*rsb + j*csb]."""
    cdef const float* b0 = b
    cdef const float* b1 = b + min(<Py_ssize_t>1, cols - 1) * csb
    cdef const float* b2 = b + min(<Py_ssize_t>2, cols - 1) * csb
    cdef const float* b3 = b + min(<Py_ssize_t>3, cols - 1) * csb
    cdef const float* b4 = b + min(<Py_ssize_t>4, cols - 1) * csb
    cdef __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps()
    cdef __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps()
    cdef __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps()
    cdef __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps()
    cdef __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps()
    cdef __m256 lo, hi, bj
    cdef Py_ssize_t p, k = 0
    for p in range(K):
        lo = _mm256_loadu_ps(a)
        hi = _mm256_loadu_ps(a + 8)
        bj = _mm256_broadcast_ss(b0 + k)
        c00 = _mm256_fmadd_ps(lo, bj, c00)
        c01 = _mm256_fmadd_ps(hi, bj, c01)
        bj = _mm256_broadcast_ss(b1 + k)
        c10 = _mm256_fmadd_ps(lo, bj, c10)
        c11 = _mm256_fmadd_ps(hi, bj, c11)
        bj = _mm256_broadcast_ss(b2 + k)
        c20 = _mm256_fmadd_ps(lo, bj, c20)
        c21 = _mm256_fmadd_ps(hi, bj, c21)
        bj = _mm256_broadcast_ss(b3 + k)
        c30 = _mm256_fmadd_ps(lo, bj, c30)
        c31 = _mm256_fmadd_ps(hi, bj, c31)
        bj = _mm256_broadcast_ss(b4 + k)
        c40 = _mm256_fmadd_ps(lo, bj, c40)
        c41 = _mm256_fmadd_ps(hi, bj, c41)
        a += a_cs
        k += rsb
    cdef float t[16 * NARROW_COLS]
    _mm256_storeu_ps(t, c00)
    _mm256_storeu_ps(t + 8, c01)
    _mm256_storeu_ps(t + 16, c10)
    _mm256_storeu_ps(t + 24, c11)
    _mm256_storeu_ps(t + 32, c20)
    _mm256_storeu_ps(t + 40, c21)
    _mm256_storeu_ps(t + 48, c30)
    _mm256_storeu_ps(t + 56, c31)
    _mm256_storeu_ps(t + 64, c40)
    _mm256_storeu_ps(t + 72, c41)
    cdef Py_ssize_t i, j
    for i in range(16):
        for j in range(cols):
            put(&C[i * ldc + j], t[j * 16 + i], overwrite)


# -- 9 or 10 columns, any op(A): 8 columns in vectors, the last two in pairs of rows ---
# A tile of R rows x 10 columns keeps R x 8 results in whole vectors and the
# R x 2 results of columns 8-9 packed two rows per vector (f64: [C[i,8],
# C[i,9], C[i+1,8], C[i+1,9]]), fed by two row broadcasts joined into one
# vector against a B sliver packed as 8 columns then [b8, b9] repeated. In
# float64 they are joined by vinsertf128, not a blend: on Zen3 the blend
# competes with the FMAs for their pipes (measured: 8% slower at 128x256x10).
cdef enum:
    TEN_ROWS_F64 = 4
    TEN_ROWS_F32 = 8
    TEN_PACKED_F64 = 12    # B values per K step in a packed ten-column sliver
    TEN_PACKED_F32 = 16


cdef void pack_ten(Py_ssize_t kc, Py_ssize_t cols, const real* B, Py_ssize_t rsb,
                   Py_ssize_t csb, real* packed) noexcept nogil:
    """kc steps of B's 9 or 10 columns as [b0..b7, (b8, b9) repeated to fill a vector]."""
    cdef Py_ssize_t width = TEN_PACKED_F32 if real is float else TEN_PACKED_F64
    cdef Py_ssize_t p, j
    cdef real b8, b9
    for p in range(kc):
        if csb == 1:         # op(B) = W: eight adjacent values, copied as one vector
            for j in range(8):
                packed[j] = B[p * rsb + j]
        else:
            for j in range(8):
                packed[j] = B[p * rsb + j * csb]
        b8 = B[p * rsb + 8 * csb]
        b9 = B[p * rsb + 9 * csb] if cols == 10 else 0
        for j in range(8, width, 2):
            packed[j] = b8
            packed[j + 1] = b9
        packed += width


cdef void narrow_ten_f64(Py_ssize_t kc, const double* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                         const double* b, double* C, Py_ssize_t ldc, Py_ssize_t rows,
                         Py_ssize_t cols, bint overwrite) noexcept nogil:
    """C[:rows, :cols] (=|+=) op(A) rows x packed ten-column sliver, rows <= 4."""
    # Rows past the edge re-read the last real row; their results are dropped.
    cdef const double* a0 = a
    cdef const double* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const double* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const double* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd()
    cdef __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd()
    cdef __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd()
    cdef __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd()
    cdef __m256d pair01 = _mm256_setzero_pd(), pair23 = _mm256_setzero_pd()
    cdef __m256d b0, b1, b89, x0, x1
    cdef Py_ssize_t p, k = 0
    for p in range(kc):
        b0 = _mm256_loadu_pd(b)
        b1 = _mm256_loadu_pd(b + 4)
        b89 = _mm256_loadu_pd(b + 8)
        x0 = _mm256_broadcast_sd(a0 + k)
        x1 = _mm256_broadcast_sd(a1 + k)
        c00 = _mm256_fmadd_pd(x0, b0, c00)
        c01 = _mm256_fmadd_pd(x0, b1, c01)
        c10 = _mm256_fmadd_pd(x1, b0, c10)
        c11 = _mm256_fmadd_pd(x1, b1, c11)
        pair01 = _mm256_fmadd_pd(_mm256_insertf128_pd(x0, _mm256_castpd256_pd128(x1), 1), b89, pair01)
        x0 = _mm256_broadcast_sd(a2 + k)
        x1 = _mm256_broadcast_sd(a3 + k)
        c20 = _mm256_fmadd_pd(x0, b0, c20)
        c21 = _mm256_fmadd_pd(x0, b1, c21)
        c30 = _mm256_fmadd_pd(x1, b0, c30)
        c31 = _mm256_fmadd_pd(x1, b1, c31)
        pair23 = _mm256_fmadd_pd(_mm256_insertf128_pd(x0, _mm256_castpd256_pd128(x1), 1), b89, pair23)
        k += a_cs
        b += TEN_PACKED_F64
    if rows == TEN_ROWS_F64 and cols == 10:
        # A whole tile: straight into C (the common case; edges go through t).
        if not overwrite:
            c00 = _mm256_add_pd(c00, _mm256_loadu_pd(C))
            c01 = _mm256_add_pd(c01, _mm256_loadu_pd(C + 4))
            c10 = _mm256_add_pd(c10, _mm256_loadu_pd(C + ldc))
            c11 = _mm256_add_pd(c11, _mm256_loadu_pd(C + ldc + 4))
            c20 = _mm256_add_pd(c20, _mm256_loadu_pd(C + 2 * ldc))
            c21 = _mm256_add_pd(c21, _mm256_loadu_pd(C + 2 * ldc + 4))
            c30 = _mm256_add_pd(c30, _mm256_loadu_pd(C + 3 * ldc))
            c31 = _mm256_add_pd(c31, _mm256_loadu_pd(C + 3 * ldc + 4))
        _mm256_storeu_pd(C, c00)
        _mm256_storeu_pd(C + 4, c01)
        _mm256_storeu_pd(C + ldc, c10)
        _mm256_storeu_pd(C + ldc + 4, c11)
        _mm256_storeu_pd(C + 2 * ldc, c20)
        _mm256_storeu_pd(C + 2 * ldc + 4, c21)
        _mm256_storeu_pd(C + 3 * ldc, c30)
        _mm256_storeu_pd(C + 3 * ldc + 4, c31)
        store_pair_f64(C + 8, _mm256_castpd256_pd128(pair01), overwrite)
        store_pair_f64(C + ldc + 8, _mm256_extractf128_pd(pair01, 1), overwrite)
        store_pair_f64(C + 2 * ldc + 8, _mm256_castpd256_pd128(pair23), overwrite)
        store_pair_f64(C + 3 * ldc + 8, _mm256_extractf128_pd(pair23, 1), overwrite)
        return
    cdef double t[TEN_ROWS_F64 * 10]
    cdef double pairs[8]
    _mm256_storeu_pd(pairs, pair01)
    _mm256_storeu_pd(pairs + 4, pair23)
    _mm256_storeu_pd(t, c00)
    _mm256_storeu_pd(t + 4, c01)
    _mm256_storeu_pd(t + 10, c10)
    _mm256_storeu_pd(t + 14, c11)
    _mm256_storeu_pd(t + 20, c20)
    _mm256_storeu_pd(t + 24, c21)
    _mm256_storeu_pd(t + 30, c30)
    _mm256_storeu_pd(t + 34, c31)
    store_ten(t, pairs, C, ldc, rows, cols, overwrite)


cdef inline void store_pair_f64(double* C, __m128d pair, bint overwrite) noexcept nogil:
    if not overwrite:
        pair = _mm_add_pd(pair, _mm_loadu_pd(C))
    _mm_storeu_pd(C, pair)


cdef void narrow_ten_f32(Py_ssize_t kc, const float* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                         const float* b, float* C, Py_ssize_t ldc, Py_ssize_t rows,
                         Py_ssize_t cols, bint overwrite) noexcept nogil:
    """C[:rows, :cols] (=|+=) op(A) rows x packed ten-column sliver, rows <= 8."""
    cdef const float* a0 = a
    cdef const float* a1 = a + min(<Py_ssize_t>1, rows - 1) * a_rs
    cdef const float* a2 = a + min(<Py_ssize_t>2, rows - 1) * a_rs
    cdef const float* a3 = a + min(<Py_ssize_t>3, rows - 1) * a_rs
    cdef const float* a4 = a + min(<Py_ssize_t>4, rows - 1) * a_rs
    cdef const float* a5 = a + min(<Py_ssize_t>5, rows - 1) * a_rs
    cdef const float* a6 = a + min(<Py_ssize_t>6, rows - 1) * a_rs
    cdef const float* a7 = a + min(<Py_ssize_t>7, rows - 1) * a_rs
    cdef __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps()
    cdef __m256 c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps()
    cdef __m256 c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps()
    cdef __m256 c6 = _mm256_setzero_ps(), c7 = _mm256_setzero_ps()
    cdef __m256 pair03 = _mm256_setzero_ps(), pair47 = _mm256_setzero_ps()
    cdef __m256 b0, b89, x0, x1, x2, x3
    cdef Py_ssize_t p, k = 0
    for p in range(kc):
        b0 = _mm256_loadu_ps(b)
        b89 = _mm256_loadu_ps(b + 8)
        x0 = _mm256_broadcast_ss(a0 + k)
        x1 = _mm256_broadcast_ss(a1 + k)
        x2 = _mm256_broadcast_ss(a2 + k)
        x3 = _mm256_broadcast_ss(a3 + k)
        c0 = _mm256_fmadd_ps(x0, b0, c0)
        c1 = _mm256_fmadd_ps(x1, b0, c1)
        c2 = _mm256_fmadd_ps(x2, b0, c2)
        c3 = _mm256_fmadd_ps(x3, b0, c3)
        pair03 = _mm256_fmadd_ps(_mm256_blend_ps(_mm256_blend_ps(x0, x1, 0xCC),
                                                 _mm256_blend_ps(x2, x3, 0xCC), 0xF0),
                                 b89, pair03)
        x0 = _mm256_broadcast_ss(a4 + k)
        x1 = _mm256_broadcast_ss(a5 + k)
        x2 = _mm256_broadcast_ss(a6 + k)
        x3 = _mm256_broadcast_ss(a7 + k)
        c4 = _mm256_fmadd_ps(x0, b0, c4)
        c5 = _mm256_fmadd_ps(x1, b0, c5)
        c6 = _mm256_fmadd_ps(x2, b0, c6)
        c7 = _mm256_fmadd_ps(x3, b0, c7)
        pair47 = _mm256_fmadd_ps(_mm256_blend_ps(_mm256_blend_ps(x0, x1, 0xCC),
                                                 _mm256_blend_ps(x2, x3, 0xCC), 0xF0),
                                 b89, pair47)
        k += a_cs
        b += TEN_PACKED_F32
    cdef float t[TEN_ROWS_F32 * 10]
    cdef float pairs[16]
    _mm256_storeu_ps(pairs, pair03)
    _mm256_storeu_ps(pairs + 8, pair47)
    _mm256_storeu_ps(t, c0)
    _mm256_storeu_ps(t + 10, c1)
    _mm256_storeu_ps(t + 20, c2)
    _mm256_storeu_ps(t + 30, c3)
    _mm256_storeu_ps(t + 40, c4)
    _mm256_storeu_ps(t + 50, c5)
    _mm256_storeu_ps(t + 60, c6)
    _mm256_storeu_ps(t + 70, c7)
    store_ten(t, pairs, C, ldc, rows, cols, overwrite)


cdef inline void store_ten(real* t, const real* pairs, real* C, Py_ssize_t ldc, Py_ssize_t rows,
                           Py_ssize_t cols, bint overwrite) noexcept nogil:
    """Rows of 10 in ``t`` (columns 8-9 taken from ``pairs``: row i at 2i, 2i+1) into C."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        t[i * 10 + 8] = pairs[2 * i]
        t[i * 10 + 9] = pairs[2 * i + 1]
        for j in range(cols):
            put(&C[i * ldc + j], t[i * 10 + j], overwrite)

# -- the driver ------------------------------------------------------------------------
cdef bint narrow_gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                      const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                      const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                      real* C, Py_ssize_t ldc, bint accumulate,
                      real* pack_a, real* pack_b) noexcept nogil:
    """C = op(A) @ op(B) (or +=) by the narrow kernels, on one thread; False
    (and nothing done) when the product is not of a shape they serve."""
    cdef Py_ssize_t rows_per_tile = 16 if real is float else 8
    cdef Py_ssize_t n_groups = (N + NARROW_COLS - 1) // NARROW_COLS
    cdef Py_ssize_t i, g, first, cols, pc, kc, full_rows, ten_rows
    cdef bint overwrite
    if N > NARROW_MAX_N or N < 2:
        return False
    if rsa == 1 and M >= rows_per_tile and K >= 1:
        full_rows = M // rows_per_tile * rows_per_tile
        i = 0
        while i < full_rows:
            for g in range(n_groups):
                narrow_groups(N, g, &first, &cols)
                if real is float:
                    narrow_rows_f32(K, A + i, csa, B + first * csb, rsb, csb, cols,
                                    C + i * ldc + first, ldc, not accumulate)
                else:
                    narrow_rows_f64(K, A + i, csa, B + first * csb, rsb, csb, cols,
                                    C + i * ldc + first, ldc, not accumulate)
            i += rows_per_tile
        if full_rows < M:
            gemm_blocks(M - full_rows, N, K, A + full_rows, rsa, csa, B, rsb, csb,
                        C + full_rows * ldc, ldc, accumulate, pack_a, pack_b, 0, 1, NULL)
        return True
    if 8 < N <= 10:
        ten_rows = TEN_ROWS_F32 if real is float else TEN_ROWS_F64
        pc = 0
        while pc < K:
            kc = min(<Py_ssize_t>GEMM_KC, K - pc)
            overwrite = pc == 0 and not accumulate
            pack_ten(kc, N, B + pc * rsb, rsb, csb, pack_b)
            i = 0
            while i < M:
                if real is float:
                    narrow_ten_f32(kc, A + i * rsa + pc * csa, rsa, csa, pack_b, C + i * ldc,
                                   ldc, min(ten_rows, M - i), N, overwrite)
                else:
                    narrow_ten_f64(kc, A + i * rsa + pc * csa, rsa, csa, pack_b, C + i * ldc,
                                   ldc, min(ten_rows, M - i), N, overwrite)
                i += ten_rows
            pc += GEMM_KC
        return True
    return False
