# Packing that transposes, in the AVX2 build: W read as Wᵀ (B of δ@Wᵀ) and X
# read row by row (A of X@W) arrive with their K steps along memory, while a
# packed sliver wants each step's NR (or MR) values side by side. Element by
# element that is two instructions per value; in float32, whole vectors are
# loaded from 8 rows and transposed in registers (8x8). Measured in one
# process against element-by-element packing: δ@Wᵀ 7-16% faster, X@W 2-4%,
# train_step 1.01-1.05x. In float64 (4x4 blocks) it gained under 1% at one
# thread and lost 0.4-3.7% at two, so float64 packs element by element.

cdef extern from "immintrin.h" nogil:
    __m256 _mm256_unpacklo_ps(__m256, __m256)
    __m256 _mm256_unpackhi_ps(__m256, __m256)
    __m256 _mm256_shuffle_ps(__m256, __m256, int)
    __m256 _mm256_permute2f128_ps(__m256, __m256, int)
    ctypedef struct __m64:
        pass
    ctypedef struct __m128:
        pass
    __m128 _mm256_castps256_ps128(__m256)
    __m128 _mm256_extractf128_ps(__m256, int)
    void _mm_storeu_ps(float*, __m128)
    void _mm_storel_pi(__m64*, __m128)


cdef inline void transpose_8x8_f32(const float* rows, Py_ssize_t row_stride, Py_ssize_t last_row,
                                   __m256* columns) noexcept nogil:
    """columns[q][i] = rows[min(i, last_row)*row_stride + q] for i, q < 8."""
    cdef __m256 r[8]
    cdef Py_ssize_t i
    for i in range(8):
        r[i] = _mm256_loadu_ps(rows + min(i, last_row) * row_stride)
    cdef __m256 t0 = _mm256_unpacklo_ps(r[0], r[1])   # r0[0] r1[0] r0[1] r1[1] | r0[4] ...
    cdef __m256 t1 = _mm256_unpackhi_ps(r[0], r[1])   # r0[2] r1[2] r0[3] r1[3] | r0[6] ...
    cdef __m256 t2 = _mm256_unpacklo_ps(r[2], r[3])
    cdef __m256 t3 = _mm256_unpackhi_ps(r[2], r[3])
    cdef __m256 t4 = _mm256_unpacklo_ps(r[4], r[5])
    cdef __m256 t5 = _mm256_unpackhi_ps(r[4], r[5])
    cdef __m256 t6 = _mm256_unpacklo_ps(r[6], r[7])
    cdef __m256 t7 = _mm256_unpackhi_ps(r[6], r[7])
    # u0 = column 0 of rows 0-3 | column 4 of rows 0-3, and so on.
    cdef __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44)
    cdef __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xEE)
    cdef __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44)
    cdef __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xEE)
    cdef __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44)
    cdef __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xEE)
    cdef __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44)
    cdef __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xEE)
    columns[0] = _mm256_permute2f128_ps(u0, u4, 0x20)
    columns[1] = _mm256_permute2f128_ps(u1, u5, 0x20)
    columns[2] = _mm256_permute2f128_ps(u2, u6, 0x20)
    columns[3] = _mm256_permute2f128_ps(u3, u7, 0x20)
    columns[4] = _mm256_permute2f128_ps(u0, u4, 0x31)
    columns[5] = _mm256_permute2f128_ps(u1, u5, 0x31)
    columns[6] = _mm256_permute2f128_ps(u2, u6, 0x31)
    columns[7] = _mm256_permute2f128_ps(u3, u7, 0x31)


cdef inline void store_six_f32(float* out, __m256 values) noexcept nogil:
    _mm_storeu_ps(out, _mm256_castps256_ps128(values))
    _mm_storel_pi(<__m64*>(out + 4), _mm256_extractf128_ps(values, 1))


cdef inline void pack_b_transposed(Py_ssize_t kc, const real* B, Py_ssize_t csb,
                                   real* packed) noexcept nogil:
    """packed[p*NR + j] = B[j*csb + p]: NR rows of W, kc values each, as a B sliver."""
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    cdef Py_ssize_t p = 0, j, q
    cdef __m256 columns[8]
    if real is float:
        while p + 8 <= kc:
            for j in range(0, nr, 8):
                transpose_8x8_f32(B + j * csb + p, csb, 7, columns)
                for q in range(8):
                    _mm256_storeu_ps(packed + (p + q) * nr + j, columns[q])
            p += 8
    for p in range(p, kc):
        for j in range(nr):
            packed[p * nr + j] = B[j * csb + p]


cdef inline void pack_a_transposed(Py_ssize_t kc, const real* A, Py_ssize_t rsa,
                                   real* packed) noexcept nogil:
    """packed[p*MR + i] = A[i*rsa + p]: MR (6) rows of X, kc values each, as an A sliver."""
    cdef Py_ssize_t p = 0, q, i
    cdef __m256 columns[8]
    if real is float:
        # Rows 6 and 7 of the 8x8 block repeat row 5. Each step's 8 values are
        # stored whole, in order: the 2 past the 6 wanted land on the next
        # step's first 2, which its own store then writes. Only the last step
        # of the sliver must not spill: it is stored as 4 + 2.
        while p + 8 <= kc:
            transpose_8x8_f32(A + p, rsa, AVX2_MR - 1, columns)
            for q in range(7):
                _mm256_storeu_ps(packed + (p + q) * AVX2_MR, columns[q])
            if p + 8 < kc:
                _mm256_storeu_ps(packed + (p + 7) * AVX2_MR, columns[7])
            else:
                store_six_f32(packed + (p + 7) * AVX2_MR, columns[7])
            p += 8
    for p in range(p, kc):
        for i in range(AVX2_MR):
            packed[p * AVX2_MR + i] = A[i * rsa + p]
