# GEMM, BLIS-style: C = op(A) @ op(B) (+ C when accumulating).
#
# Transposes are strides: op(A)[i, p] = A[i*rsa + p*csa], so the three
# products of a dense layer (A_prev @ W, A_prevᵀ @ delta, delta @ Wᵀ) are one
# routine. Five loops (jc by NC, pc by KC, ic by MC, jr by NR, ir by MR) feed
# a register-tiled micro-kernel from packed panels; the packing zero-pads
# edges, so the same micro-kernel serves every tile and only the final store
# looks at the real tile size. The micro-kernel and MR/NR come from the
# variant file included before this one (generic loops or AVX2/FMA).

cdef enum:
    GEMM_KC = 256   # K per packed panel: an MR x KC and a KC x NR sliver stay in L1/L2
    GEMM_MC = 144   # rows of A packed at once (multiple of every MR used)
    GEMM_NC = 4096  # columns of B packed at once (multiple of every NR used)


cdef inline Py_ssize_t round_up(Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    return (n + step - 1) // step * step


cdef inline void store_tile(const real* tile, Py_ssize_t tile_ld, real* C, Py_ssize_t ldc,
                            Py_ssize_t rows, Py_ssize_t cols, bint overwrite) noexcept nogil:
    """The valid rows x cols corner of a micro-tile into C (edge tiles)."""
    cdef Py_ssize_t i, j
    if overwrite:
        for i in range(rows):
            for j in range(cols):
                C[i * ldc + j] = tile[i * tile_ld + j]
    else:
        for i in range(rows):
            for j in range(cols):
                C[i * ldc + j] += tile[i * tile_ld + j]


cdef inline void pack_panel_a(Py_ssize_t mc, Py_ssize_t kc, const real* A, Py_ssize_t rsa,
                              Py_ssize_t csa, real* packed) noexcept nogil:
    """Rows of op(A) in slivers of MR: sliver s holds kc columns of MR values, zero-padded."""
    cdef Py_ssize_t ir, i, p, rows
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    # (Cython turns range() into a C loop only for a constant step.)
    ir = 0
    while ir < mc:
        rows = min(mr, mc - ir)
        for p in range(kc):
            for i in range(rows):
                packed[p * mr + i] = A[(ir + i) * rsa + p * csa]
            for i in range(rows, mr):
                packed[p * mr + i] = 0
        packed += mr * kc
        ir += mr


cdef inline void pack_panel_b(Py_ssize_t kc, Py_ssize_t nc, const real* B, Py_ssize_t rsb,
                              Py_ssize_t csb, real* packed) noexcept nogil:
    """Columns of op(B) in slivers of NR: sliver s holds kc rows of NR values, zero-padded."""
    cdef Py_ssize_t jr, j, p, cols
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    jr = 0
    while jr < nc:
        cols = min(nr, nc - jr)
        for p in range(kc):
            for j in range(cols):
                packed[p * nr + j] = B[p * rsb + (jr + j) * csb]
            for j in range(cols, nr):
                packed[p * nr + j] = 0
        packed += nr * kc
        jr += nr


cdef inline Py_ssize_t gemm_pack_a_size(Py_ssize_t max_m, Py_ssize_t max_k, real* kind) noexcept nogil:
    """Elements of the A-panel buffer for products with M <= max_m and K <= max_k."""
    return round_up(min(<Py_ssize_t>GEMM_MC, max_m), microkernel_mr(kind)) * min(<Py_ssize_t>GEMM_KC, max_k)


cdef inline Py_ssize_t gemm_pack_b_size(Py_ssize_t max_n, Py_ssize_t max_k, real* kind) noexcept nogil:
    return round_up(min(<Py_ssize_t>GEMM_NC, max_n), microkernel_nr(kind)) * min(<Py_ssize_t>GEMM_KC, max_k)


cdef void gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const real* A, Py_ssize_t rsa, Py_ssize_t csa,
               const real* B, Py_ssize_t rsb, Py_ssize_t csb,
               real* C, Py_ssize_t ldc, bint accumulate,
               real* pack_a, real* pack_b) noexcept nogil:
    """C (M x N, row stride ldc) = op(A) @ op(B), or += when ``accumulate``.

    Without ``accumulate`` C is never read (it may hold garbage or NaN).
    ``pack_a``/``pack_b`` hold at least gemm_pack_a_size / gemm_pack_b_size elements.
    """
    cdef Py_ssize_t jc, pc, ic, jr, ir, nc, kc, mc
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    cdef bint overwrite
    if K == 0:
        if not accumulate:
            for ic in range(M):
                for jc in range(N):
                    C[ic * ldc + jc] = 0
        return
    jc = 0
    while jc < N:
        nc = min(<Py_ssize_t>GEMM_NC, N - jc)
        pc = 0
        while pc < K:
            kc = min(<Py_ssize_t>GEMM_KC, K - pc)
            pack_panel_b(kc, nc, B + pc * rsb + jc * csb, rsb, csb, pack_b)
            overwrite = pc == 0 and not accumulate
            ic = 0
            while ic < M:
                mc = min(<Py_ssize_t>GEMM_MC, M - ic)
                pack_panel_a(mc, kc, A + ic * rsa + pc * csa, rsa, csa, pack_a)
                jr = 0
                while jr < nc:
                    ir = 0
                    while ir < mc:
                        microkernel(kc, pack_a + ir * kc, pack_b + jr * kc,
                                    C + (ic + ir) * ldc + jc + jr, ldc,
                                    min(mr, mc - ir), min(nr, nc - jr), overwrite)
                        ir += mr
                    jr += nr
                ic += GEMM_MC
            pc += GEMM_KC
        jc += GEMM_NC
