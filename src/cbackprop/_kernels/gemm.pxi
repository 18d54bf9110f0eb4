# GEMM, BLIS-style: C = op(A) @ op(B) (+ C when accumulating).
#
# Transposes are strides: op(A)[i, p] = A[i*rsa + p*csa], so the three
# products of a dense layer (A_prev @ W, A_prevᵀ @ delta, delta @ Wᵀ) are one
# routine. Five loops (jc by NC, pc by KC, ic by MC, jr by NR, ir by MR, or
# their rows-first order: see gemm_blocks) feed a register-tiled
# micro-kernel from packed panels; the packing zero-pads
# edges, so the same micro-kernel serves every tile and only the final store
# looks at the real tile size. The micro-kernels, MR/NR and the blocking
# constants come from tiles.pxi: one C source compiled per CPU class.

from cython.parallel cimport parallel, threadid

include "tiles.pxi"

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static void cbackprop_barrier(void) { _Pragma("omp barrier") }
    static int cbackprop_team_size(void) { return omp_get_num_threads(); }
    #else
    static void cbackprop_barrier(void) { }
    static int cbackprop_team_size(void) { return 1; }
    #endif
    /* Whether a team of threads has run in this process: GNU libgomp's
     * thread pool then exists, and it does not survive fork() (a child's
     * first team waits forever for threads that are not there; _backend.py
     * keeps such a child on one thread). Every parallel region's
     * num_threads goes through cb_team. */
    static int cb_team_ran = 0;
    static int cb_team(int n_threads) {
        if (n_threads > 1)
            cb_team_ran = 1;
        return n_threads;
    }
    """
    void cbackprop_barrier() nogil
    int cbackprop_team_size() nogil
    int cb_team_ran
    int cb_team(int n_threads) nogil

cdef extern from *:
    """
    static Py_ssize_t cbackprop_fetch_add(Py_ssize_t* counter, Py_ssize_t n) {
        return __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
    }
    static Py_ssize_t cbackprop_load(Py_ssize_t* counter) {
        return __atomic_load_n(counter, __ATOMIC_RELAXED);
    }
    """
    Py_ssize_t cbackprop_fetch_add(Py_ssize_t* counter, Py_ssize_t n) nogil
    Py_ssize_t cbackprop_load(Py_ssize_t* counter) nogil

cdef enum:
    # A team of up to this many threads balances its micro-tiles by stealing
    # (see gemm_blocks); a larger one keeps the static split alone.
    MAX_STEALING_TEAM = 16
    COUNTER_STRIDE = 8        # Py_ssize_t per counter: one cache line each


# The thresholds below choose between ways of running one product; each is
# where the two ways' timings cross. bench/README.md ("The engine's
# thresholds") gives the measurements and the commands that repeat them.
cdef enum:
    # A panel meeting at most this many B slivers is read in place: each A
    # sliver is then used too few times for its packing to pay off.
    PACK_A_MIN_B_SLIVERS = 8
    # At most this many K steps per panel, tiles run along the rows of C: with
    # short panels the stores of C dominate, and row order keeps them in line.
    C_ROW_ORDER_MAX_KC = 64
    # Whether the whole slivers of a thread's share of a panel whose K steps
    # are rows of adjacent values (B of X@W and Xᵀ@δ, A of Xᵀ@δ) are packed
    # step by step across them (1) or one sliver after another (0): across
    # them, each step is read along memory as the hardware prefetchers
    # follow it (Xᵀ@δ 1-4 % faster on an Intel Xeon).
    PACK_PANEL_BY_STEPS = 1
    # Widest product the narrow kernels serve (groups of CB_NARROW_COLS: two of
    # 5 columns, or one of 10 in the AVX-512 build), but the rows of Cᵀ (up
    # to narrow_rows_per_tile columns) and the tall products (a vector).
    NARROW_MAX_N = 10
    # Products of at most this many multiply-adds (M N K) are three plain
    # loops: a tiny network's are a few dozen, less than choosing a kernel.
    TINY_PRODUCT_MAX = 256
    # Products of at most this many rows whose B rows are contiguous (X@W on
    # a few samples) stream B as it lies (tiles.h, cb_few_rows) once it has
    # at least FEW_ROWS_MIN_B_VALUES values (smaller ones sit in L1 anyway)
    # and a whole vector of columns (narrower, C's elements are scalar
    # chains). Beyond, the tiles (which take a B in L2 at up to twice the
    # rate) win or tie (bench/README.md, "The engine's thresholds").
    FEW_ROWS_MAX_M_F64 = 4
    FEW_ROWS_MAX_M_F32 = 3
    FEW_ROWS_MIN_B_VALUES = 16384
    # Products with op(B) = Bᵀ, B's rows adjacent along K, and op(A)'s steps
    # adjacent (δ@Wᵀ on up to few_dots_max_m samples: 32 with AVX-512) are
    # dot products (cb_few_dots, B read as it lies), of any size of B and
    # any width, when K has FEW_DOTS_MIN_VECTORS_PER_ROW vectors per row of
    # A: each dot product ends in a sum across the lanes, whose cost the
    # blocked loops avoid at the price of packing Wᵀ once for all the rows
    # (and of padding the rows to a tile's height), a cost that falls with
    # each row more. The dot products won or tied wherever K >= lanes M
    # (bench/README.md, "Few dots on more rows"; in L1 too, "Few dots on a
    # small B").
    FEW_DOTS_MIN_VECTORS_PER_ROW = 1
    # A B (read as it lies) of more than FEW_DOTS_FAR_B_BYTES goes to the dot
    # products in blocks of about FEW_DOTS_B_BLOCK_BYTES (few_dots_block),
    # every group of four rows of A on one block before the next: such a B,
    # streamed whole by each group, came from L3 for every group (on an Intel
    # Xeon float64 16x1024x1024T 1.69x faster in blocks, and 17-32 rows of a
    # B of 2-8 MB ran 1.10-1.68x faster than in the blocked loops that had
    # won there before); a B that stays in L2 is read whole, so that a tall A
    # of a few columns is not read once per block (bench/README.md, "Few dots
    # on a far B").
    FEW_DOTS_FAR_B_BYTES = 1024 * 1024
    FEW_DOTS_B_BLOCK_BYTES = 256 * 1024
    # Products of a few columns (narrow_dots_max_n, fewer than a vector's
    # lanes: the narrowest tile spends the rest of its vector on padding)
    # whose op(A) steps are adjacent (X@W of an output layer of a few units,
    # δ@Wᵀ of a layer of a few inputs) are dot products too (dot_columns), on
    # any number of rows, when K is at least narrow_dots_min_k; of more than
    # NARROW_DOTS_ONE_PASS_N columns (each group of four rows of A read in two
    # passes or more; with 16 registers a pass takes two columns, so there
    # from three) only on an A of at most NARROW_DOTS_TWO_PASS_MAX_A_BYTES:
    # beyond L3 the second pass lost to the tiles (bench/README.md,
    # "NARROW_DOTS_SUM_COST", measured on the 32-register build).
    NARROW_DOTS_ONE_PASS_N = 4
    NARROW_DOTS_TWO_PASS_MAX_A_BYTES = 16 * 1024 * 1024
    # One column whose op(A) rows are adjacent (Xᵀ@δ of a one-unit output
    # layer), C adjacent too, with at least this many vectors of rows: the
    # row of Cᵀ, streamed (one_column) instead of a tile of one real column.
    ONE_COLUMN_MIN_VECTORS = 1
    # X@W of a few rows and 2 to narrow_rows_per_tile columns (predict on a
    # few samples, an output layer's forward pass on a small batch), B's
    # rows adjacent: vectors along the rows of C as the short rows of Cᵀ
    # (rows_of_ct), B read in place, rather than a tile that pads the
    # columns to NR and the rows to a tile's height, or dot products that
    # copy B's columns first. Each vector spends its lanes on N products, so
    # on at most ROWS_OF_CT_ROWS_PER_VECTOR rows per vector's worth of
    # columns but one (M lanes <= 24 (N - 1)): past that the dot products or
    # the tiles won (bench/README.md, "Rows of Cᵀ").
    ROWS_OF_CT_ROWS_PER_VECTOR = 24
    # Products of at least a pass of the tall kernel's rows (CB_TALL_ROWS),
    # op(A)'s steps adjacent, K of at most the table's CB_TALL_MAX_K (0:
    # none) and at most a vector of columns (X@W of a first layer on a few
    # features, predict on many rows, δ@Wᵀ between two narrow hidden layers)
    # take the tall kernel (tiles.h, cb_tall): all of op(B) in registers,
    # CB_TALL_ROWS rows at a time, where a one-vector register tile spent its
    # setup and its row pointers on a K loop of a few steps; one column only
    # on K of at most TALL_ONE_COLUMN_MAX_K: on 16 steps (two whole vectors
    # in float64, one in float32) the dot products won (bench/README.md,
    # "Tall products of a few columns"). Past the K its bodies spell out
    # (CB_TALL_SPELLED_K), op(B) is read from L1 at each step, on at least
    # half a vector of columns; or, with CB_TALL_ACROSS, on at least a
    # vector's lanes of rows and 2 columns to half a vector, the rows go
    # along the vector; one column, the dot products (bench/README.md,
    # "Tall products on a longer K").
    TALL_ONE_COLUMN_MAX_K = 15


cdef inline Py_ssize_t round_up(Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    return (n + step - 1) // step * step


cdef inline bint b_rows_on_cache_lines(const real* B, Py_ssize_t rsb) noexcept nogil:
    """Whether every row of B starts on a 64-byte cache line, so that each
    step of a B sliver read in place is one whole line. From rows that do
    not, every step splits across two lines, and packing B is faster
    (bench/alignment.py shows both for any shape)."""
    return (<size_t>B) % 64 == 0 and (rsb * sizeof(real)) % 64 == 0


cdef inline void pack_sliver_a(Py_ssize_t rows, Py_ssize_t kc, const real* A, Py_ssize_t rsa,
                               Py_ssize_t csa, real* packed) noexcept nogil:
    """``rows`` (<= MR) rows of op(A) over kc columns, as kc groups of MR, zero-padded."""
    cdef Py_ssize_t i, p
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    # Full slivers of the two layouts the dense layers use go to the vector
    # copies and transposes of tiles.h. (pack_a_block packs the full slivers
    # of the steps layout all at once, unless PACK_PANEL_BY_STEPS is 0.)
    if rows == mr and rsa == 1:          # op(A) = Xᵀ: each step copies MR adjacent values
        pack_a_panel_steps(kc, 1, A, csa, packed)
    elif rows == mr and csa == 1:        # op(A) = X: an MR x kc transpose
        pack_a_transposed(kc, A, rsa, packed)
    else:
        for p in range(kc):
            for i in range(rows):
                packed[p * mr + i] = A[i * rsa + p * csa]
            for i in range(rows, mr):
                packed[p * mr + i] = 0


cdef inline void pack_sliver_b(Py_ssize_t kc, Py_ssize_t cols, const real* B, Py_ssize_t rsb,
                               Py_ssize_t csb, real* packed) noexcept nogil:
    """``cols`` (<= NR) columns of op(B) over kc rows, as kc groups of NR, zero-padded."""
    cdef Py_ssize_t j, p
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    # As pack_sliver_a: the full slivers of the steps layout come here only
    # when PACK_PANEL_BY_STEPS is 0.
    if cols == nr and csb == 1:          # op(B) = W or delta: each step copies NR adjacent values
        pack_b_panel_steps(kc, 1, B, rsb, packed)
    elif cols == nr and rsb == 1:        # op(B) = Wᵀ: a kc x NR transpose
        pack_b_transposed(kc, B, csb, packed)
    else:
        for p in range(kc):
            for j in range(cols):
                packed[p * nr + j] = B[p * rsb + j * csb]
            for j in range(cols, nr):
                packed[p * nr + j] = 0


cdef inline Py_ssize_t gemm_pack_a_size(Py_ssize_t max_m, Py_ssize_t max_k, real* kind) noexcept nogil:
    """Elements of the A-panel buffer for products with M <= max_m and K <= max_k."""
    cdef Py_ssize_t rows = max(gemm_mc(kind), gemm_panel_rows(kind))
    return round_up(min(rows, max_m), microkernel_mr(kind)) * min(gemm_kc(kind), max_k)


cdef inline Py_ssize_t gemm_pack_b_size(Py_ssize_t max_n, Py_ssize_t max_k, real* kind) noexcept nogil:
    return round_up(min(CB_NC, max_n), microkernel_nr(kind)) * min(gemm_kc(kind), max_k)


cdef void gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               const real* A, Py_ssize_t rsa, Py_ssize_t csa,
               const real* B, Py_ssize_t rsb, Py_ssize_t csb,
               real* C, Py_ssize_t ldc, bint accumulate,
               real* pack_a, real* pack_b, int n_threads) noexcept nogil:
    """C (M x N, row stride ldc) = op(A) @ op(B), or += when ``accumulate``.

    Without ``accumulate`` C is never read (it may hold garbage or NaN).
    ``pack_a``/``pack_b`` hold at least gemm_pack_a_size / gemm_pack_b_size
    elements. With ``n_threads`` > 1 and enough work, a team of threads runs
    the blocked loops (see gemm_blocks) or the narrow kernels (narrow_gemm)
    together, but for the few-rows kernel; small products never start one.
    """
    cdef Py_ssize_t i, j
    cdef int thread = 0, team = 1, narrow
    cdef bint team_up
    cdef Py_ssize_t next_tile[MAX_STEALING_TEAM * COUNTER_STRIDE]
    if K == 0:
        if not accumulate:
            for i in range(M):
                for j in range(N):
                    C[i * ldc + j] = 0
        return
    if M * N * K <= TINY_PRODUCT_MAX:
        tiny_gemm(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate)
        return
    narrow = narrow_kind(A, M, N, K, rsa, csa, rsb, csb, ldc)
    # The choice depends on the shape alone, so results never depend on the
    # thread count: a narrow product takes the narrow kernels at any size,
    # its tiles shared by a team when it is large (each tile whole on one
    # thread). The blocked loops ran those of a wide layer's output 1.1-3.1x
    # slower (bench/README.md, "Kept: narrow kernels at any size").
    team_up = n_threads > 1 and 2.0 * M * N * K >= CB_PARALLEL_MIN_FLOPS
    # The few-rows kernel streams B once: a team sharing its columns streamed
    # it no faster (bench/README.md, "Few dots on more rows").
    team_up = team_up and narrow != NARROW_FEW_ROWS
    if narrow != NARROW_NONE:
        if team_up:
            with parallel(num_threads=cb_team(n_threads)):
                narrow_gemm(narrow, M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate,
                            pack_a, pack_b, threadid(), cbackprop_team_size())
        else:
            narrow_gemm(narrow, M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, pack_a,
                        pack_b, 0, 1)
        return
    if team_up:
        with parallel(num_threads=cb_team(n_threads)):
            thread = threadid()
            team = cbackprop_team_size()
            gemm_blocks(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, pack_a, pack_b,
                        thread, team, next_tile)
        return
    gemm_blocks(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, pack_a, pack_b, 0, 1,
                next_tile)


cdef void tiny_gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                    const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                    const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                    real* C, Py_ssize_t ldc, bint accumulate) noexcept nogil:
    """gemm for products of at most TINY_PRODUCT_MAX multiply-adds: each
    element a dot product over K, in order."""
    cdef Py_ssize_t i, j, p
    cdef real total
    for i in range(M):
        for j in range(N):
            total = 0
            for p in range(K):
                total = total + A[i * rsa + p * csa] * B[p * rsb + j * csb]
            C[i * ldc + j] = C[i * ldc + j] + total if accumulate else total


cdef inline void share(Py_ssize_t count, int thread, int team, Py_ssize_t* first,
                       Py_ssize_t* last) noexcept nogil:
    """This thread's contiguous part [first, last) of ``count`` work items."""
    first[0] = count * thread // team
    last[0] = count * (thread + 1) // team


cdef inline bint b_read_in_place(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const real* B,
                                 Py_ssize_t rsb, Py_ssize_t csb) noexcept nogil:
    """Whether gemm_blocks reads B's slivers in place rather than packed: B's
    rows contiguous and on cache lines (X@W, Xᵀ@δ), and few rows of A to
    meet its slivers, so that packing them would cost more than it saves.
    The rule, with the constants of tiles.h's table: at most
    CB_B_IN_PLACE_MAX_M rows; or at most CB_SMALL_B_IN_PLACE_MAX_M rows and
    B at most CB_SMALL_B_MAX_BYTES (a large B read in place is read again
    from L3 for every block of rows, where a packed panel stays in L2); and
    a float64 B at most CB_B_IN_PLACE_MAX_BYTES_F64 (on the AVX2 CPUs
    measured, a larger B streamed with a row's stride lost to packing)."""
    cdef Py_ssize_t b_bytes = K * N * <Py_ssize_t>sizeof(real)
    if csb != 1 or not b_rows_on_cache_lines(B, rsb):
        return False
    if real is double and b_bytes > CB_B_IN_PLACE_MAX_BYTES_F64:
        return False
    return M <= CB_B_IN_PLACE_MAX_M or (M <= CB_SMALL_B_IN_PLACE_MAX_M
                                        and b_bytes <= CB_SMALL_B_MAX_BYTES)


cdef inline bint sliver_in_place(bint read_b_in_place, Py_ssize_t nr,
                                 Py_ssize_t cols_left) noexcept nogil:
    """Whether a B sliver with ``cols_left`` columns from its start is read in
    place: a partial last sliver is packed anyway (its zero padding)."""
    return read_b_in_place and cols_left >= nr


def reads_b_in_place(Py_ssize_t M, cnp.ndarray B):
    """gemm_blocks' choice for op(A) @ B with M rows and this C-contiguous B
    (K x N) as given (tests)."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(B) or B.ndim != 2 or B.dtype not in (np.float32, np.float64):
        raise ValueError("B must be a C-contiguous 2-D float32 or float64 array")
    cdef Py_ssize_t K = B.shape[0], N = B.shape[1], rsb = N
    if B.dtype == np.float32:
        return b_read_in_place(M, K, N, <const float*>cnp.PyArray_DATA(B), rsb, 1)
    return b_read_in_place(M, K, N, <const double*>cnp.PyArray_DATA(B), rsb, 1)


cdef void gemm_blocks(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                      const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                      const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                      real* C, Py_ssize_t ldc, bint accumulate,
                      real* pack_a, real* pack_b, int thread, int team,
                      Py_ssize_t* next_tile) noexcept nogil:
    """The five BLIS loops, run by every thread of a team of ``team``, in
    one of two orders, the table's (tiles.h, CB_PANEL_ROWS_<sfx>; a team on
    a large product columns first, blocks_rows_first):

    - columns first (0 rows): for each block of CB_NC columns and
      each K panel, B's panel packed once, then blocks of MC rows of A
      packed, each met by the whole panel (BLIS's order);
    - rows first: for each block of at most gemm_panel_rows rows (M split
      evenly) and each K panel, A's panel packed once, then blocks of
      gemm_block_cols columns of B packed, each met by the whole of A's panel,
      tile after tile along C's rows: one A sliver stays in L1 while the
      block's B slivers come from L2 (BLIS's order on Cᵀ = op(B)ᵀ op(A)ᵀ).
      On an Intel Xeon 3-12 % faster on the big float64 products at one
      thread (bench/README.md, "Kept: float64 rows first").

    Either way all threads walk the blocks together; each packs its share of
    the slivers of every panel and computes its share of the micro-tiles of
    every block (block_tiles), with a barrier wherever a panel must be
    complete (before use) or free (before it is repacked). A team of one
    needs no barriers. Each tile is computed whole by one thread, its K
    panels summed in order, so the team's size never changes the bits.
    """
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    cdef Py_ssize_t jc, pc, ic, nc, kc, mc, row_block, block_cols
    cdef bint pack_a_panel, along_rows_of_c
    cdef bint read_b_in_place = b_read_in_place(M, K, N, B, rsb, csb)
    cdef Py_ssize_t panel_rows
    if not blocks_rows_first(M, N, K, team, <real*>NULL):
        jc = 0
        while jc < N:
            nc = min(CB_NC, N - jc)
            # Packing A pays off when each A sliver meets many B slivers; for
            # narrow products (an output layer of 10) the kernel reads A in place.
            pack_a_panel = (nc + nr - 1) // nr > PACK_A_MIN_B_SLIVERS
            pc = 0
            while pc < K:
                kc = min(gemm_kc(<real*>NULL), K - pc)
                pack_b_block(jc, nc, pc, kc, B, rsb, csb, read_b_in_place, pack_b, thread, team)
                ic = 0
                while ic < M:
                    mc = min(gemm_mc(<real*>NULL), M - ic)
                    if pack_a_panel:
                        pack_a_block(ic, mc, pc, kc, A, rsa, csa, pack_a, thread, team)
                    # With short panels the stores of C dominate: tiles then
                    # run along its rows, whose stores stay in line, and a
                    # team splits them by rows.
                    along_rows_of_c = kc <= C_ROW_ORDER_MAX_KC
                    block_tiles(ic, mc, jc, nc, pc, kc, A, rsa, csa, B, rsb, read_b_in_place,
                                C, ldc, pc == 0 and not accumulate, pack_a_panel,
                                along_rows_of_c, not along_rows_of_c, pack_a, pack_b, thread,
                                team, next_tile)
                    ic += mc
                pc += kc
            jc += nc
        return
    # Rows first, in blocks of equal height: a remainder of a few rows would
    # pack all of B again for them.
    panel_rows = gemm_panel_rows(<real*>NULL)
    row_block = (M + panel_rows - 1) // panel_rows
    row_block = round_up((M + row_block - 1) // row_block, mr)
    # A team splits each block's tiles by the B slivers each thread packed,
    # so each thread gets a block of its own; B read in place, by rows
    # (bench/README.md, "Kept: a thread's tiles over the slivers it packed").
    block_cols = gemm_block_cols(<real*>NULL)
    if not read_b_in_place:
        block_cols = min(block_cols * team, CB_NC)
    # A's panel is packed once for all of B's columns here (columns first
    # packs it again for each block of CB_NC), so all of them count.
    pack_a_panel = (N + nr - 1) // nr > PACK_A_MIN_B_SLIVERS
    ic = 0
    while ic < M:
        mc = min(row_block, M - ic)
        pc = 0
        while pc < K:
            kc = min(gemm_kc(<real*>NULL), K - pc)
            if pack_a_panel:
                pack_a_block(ic, mc, pc, kc, A, rsa, csa, pack_a, thread, team)
            jc = 0
            while jc < N:
                nc = min(block_cols, N - jc)
                pack_b_block(jc, nc, pc, kc, B, rsb, csb, read_b_in_place, pack_b, thread, team)
                block_tiles(ic, mc, jc, nc, pc, kc, A, rsa, csa, B, rsb, read_b_in_place, C, ldc,
                            pc == 0 and not accumulate, pack_a_panel, True, not read_b_in_place,
                            pack_a, pack_b, thread, team, next_tile)
                jc += nc
            pc += kc
        ic += mc


cdef inline bint blocks_rows_first(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int team,
                                   real* kind) noexcept nogil:
    """Whether gemm_blocks runs rows first: where the table says so, but for
    a team on a product of CB_TEAM_ROWS_FIRST_MAX_FLOPS or more. On the Zen 4
    at two threads, columns first ran the big float64 products 1.02-1.05x as
    fast (rows first's A panel is packed half by each core and read whole
    by both), 1.09-1.32x while the other vCPU was slowed, but 128x256x256
    0.84-0.98x (bench/README.md, "Kept: a team columns first on large
    products"). Both orders give the same bits (each tile's K panels summed
    in order)."""
    if gemm_panel_rows(kind) == 0:
        return False
    return team == 1 or 2.0 * M * N * K < CB_TEAM_ROWS_FIRST_MAX_FLOPS


def runs_rows_first(dtype, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, int team):
    """gemm_blocks' order for an M x K x N product on a team of ``team``
    threads: True rows first, False columns first (tests)."""
    if team < 1:
        raise ValueError("team must be at least 1")
    if np.dtype(dtype) == np.float32:
        return blocks_rows_first(M, N, K, team, <float*>NULL)
    return blocks_rows_first(M, N, K, team, <double*>NULL)


cdef inline void pack_a_block(Py_ssize_t ic, Py_ssize_t mc, Py_ssize_t pc, Py_ssize_t kc,
                              const real* A, Py_ssize_t rsa, Py_ssize_t csa, real* pack_a,
                              int thread, int team) noexcept nogil:
    """This thread's share of the slivers of op(A)'s rows [ic, ic + mc) over
    K steps [pc, pc + kc), packed into pack_a, sliver s at s MR kc."""
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    cdef Py_ssize_t first, last, full, s
    share((mc + mr - 1) // mr, thread, team, &first, &last)
    if PACK_PANEL_BY_STEPS and rsa == 1:
        full = min(last, mc // mr)
        if full > first:
            pack_a_panel_steps(kc, full - first, A + ic + first * mr + pc * csa, csa,
                               pack_a + first * mr * kc)
            first = full
    for s in range(first, last):
        pack_sliver_a(min(mr, mc - s * mr), kc, A + (ic + s * mr) * rsa + pc * csa, rsa, csa,
                      pack_a + s * mr * kc)


cdef inline void pack_b_block(Py_ssize_t jc, Py_ssize_t nc, Py_ssize_t pc, Py_ssize_t kc,
                              const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                              bint read_b_in_place, real* pack_b, int thread,
                              int team) noexcept nogil:
    """This thread's share of the slivers of op(B)'s columns [jc, jc + nc)
    over K steps [pc, pc + kc), packed into pack_b, sliver s at s NR kc,
    but those read in place."""
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    cdef Py_ssize_t first, last, full, s
    share((nc + nr - 1) // nr, thread, team, &first, &last)
    if PACK_PANEL_BY_STEPS and csb == 1 and not read_b_in_place:
        full = min(last, nc // nr)
        if full > first:
            pack_b_panel_steps(kc, full - first, B + pc * rsb + jc + first * nr, rsb,
                               pack_b + first * nr * kc)
            first = full
    for s in range(first, last):
        if not sliver_in_place(read_b_in_place, nr, nc - s * nr):
            pack_sliver_b(kc, min(nr, nc - s * nr), B + pc * rsb + (jc + s * nr) * csb, rsb, csb,
                          pack_b + s * nr * kc)


cdef inline void block_tiles(Py_ssize_t ic, Py_ssize_t mc, Py_ssize_t jc, Py_ssize_t nc,
                             Py_ssize_t pc, Py_ssize_t kc,
                             const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                             const real* B, Py_ssize_t rsb, bint read_b_in_place,
                             real* C, Py_ssize_t ldc, bint overwrite, bint pack_a_panel,
                             bint along_rows_of_c, bint split_by_b,
                             const real* pack_a, const real* pack_b,
                             int thread, int team, Py_ssize_t* next_tile) noexcept nogil:
    """The micro-tiles of C's block [ic, ic + mc) x [jc, jc + nc) over K
    steps [pc, pc + kc), from the team's packed slivers (A's read in place
    unless ``pack_a_panel``), tile after tile along C's rows or, with
    ``along_rows_of_c`` false, down its columns.

    A thread's share is the tiles of the slivers it packed itself (its share
    of pack_b_block's, or with ``split_by_b`` false of pack_a_block's) over
    all of the other operand's: a sliver just packed by another core is
    read from that core's cache line by line (bench/README.md, "Kept: a
    thread's tiles over the slivers it packed"). It claims them through its
    own counter in ``next_tile`` (MAX_STEALING_TEAM x COUNTER_STRIDE, shared
    by the team), in runs that shrink as the share empties; with its share
    done, it claims what is left of the others' one tile at a time. A thread
    slowed by a busy core then holds the barrier for a tile or two, not for
    the rest of its share. Each tile is computed whole by one thread, so
    results do not depend on which thread that is.
    """
    cdef Py_ssize_t mr = microkernel_mr(<real*>NULL)
    cdef Py_ssize_t nr = microkernel_nr(<real*>NULL)
    cdef Py_ssize_t a_slivers = (mc + mr - 1) // mr, b_slivers = (nc + nr - 1) // nr
    cdef Py_ssize_t first, last, s, i, j, b_rs, fast, slow, run, n_fast, tiles
    cdef Py_ssize_t i_first = 0, i_last = a_slivers, j_first = 0, j_last = b_slivers
    cdef const real* b_sliver
    cdef int turn, owner
    cdef bint stealing = 1 < team <= MAX_STEALING_TEAM
    if stealing:
        # No thread touches a counter between the barrier that ends one
        # block's tiles and the one that starts the next's.
        next_tile[thread * COUNTER_STRIDE] = 0
    if team > 1:
        cbackprop_barrier()   # both panels packed
    # Turn 0: this thread's own share; then the others', stolen.
    for turn in range(team if stealing else 1):
        owner = (thread + turn) % team
        if split_by_b:
            share(b_slivers, owner, team, &j_first, &j_last)
        else:
            share(a_slivers, owner, team, &i_first, &i_last)
        tiles = (i_last - i_first) * (j_last - j_first)
        if tiles == 0:
            continue
        # Tile s of the share is (fast, slow), stepped without a division.
        n_fast = j_last - j_first if along_rows_of_c else i_last - i_first
        while True:
            if stealing:
                run = 1
                if turn == 0:
                    run = max(<Py_ssize_t>1, (tiles - cbackprop_load(
                        &next_tile[owner * COUNTER_STRIDE])) // 4)
                first = cbackprop_fetch_add(&next_tile[owner * COUNTER_STRIDE], run)
                if first >= tiles:
                    break
                last = min(tiles, first + run)
            else:
                first = 0
                last = tiles
            fast = first % n_fast
            slow = first // n_fast
            for s in range(first, last):
                if fast == n_fast:
                    fast = 0
                    slow += 1
                if along_rows_of_c:
                    i = i_first + slow
                    j = j_first + fast
                else:
                    i = i_first + fast
                    j = j_first + slow
                if sliver_in_place(read_b_in_place, nr, nc - j * nr):
                    b_sliver = B + pc * rsb + jc + j * nr
                    b_rs = rsb
                else:
                    b_sliver = pack_b + j * nr * kc
                    b_rs = nr
                if pack_a_panel:
                    microkernel_packed(kc, pack_a + i * mr * kc, b_sliver, b_rs,
                                       C + (ic + i * mr) * ldc + jc + j * nr, ldc,
                                       min(mr, mc - i * mr), min(nr, nc - j * nr), overwrite)
                else:
                    microkernel(kc, A + (ic + i * mr) * rsa + pc * csa, rsa, csa, b_sliver, b_rs,
                                C + (ic + i * mr) * ldc + jc + j * nr, ldc,
                                min(mr, mc - i * mr), min(nr, nc - j * nr), overwrite)
                fast += 1
            if not stealing:
                break
    if team > 1:
        cbackprop_barrier()   # panels free to be repacked


# -- narrow products ---------------------------------------------------------------------
cdef inline void narrow_groups(Py_ssize_t N, Py_ssize_t group, Py_ssize_t* first,
                               Py_ssize_t* cols) noexcept nogil:
    """Columns [first, first + cols) of group ``group``: N split as evenly as possible."""
    cdef Py_ssize_t n_groups = (N + CB_NARROW_COLS - 1) // CB_NARROW_COLS
    cdef Py_ssize_t base = N // n_groups, extra = N % n_groups
    first[0] = group * base + min(group, extra)
    cols[0] = base + (1 if group < extra else 0)


cdef enum NarrowKind:
    NARROW_NONE = 0
    NARROW_ROWS = 1     # vectors down the rows of C (narrow_rows)
    NARROW_TEN = 2      # the ten-column tiles (ten_tile)
    NARROW_DOTS = 3     # dot products along K (dot_columns)
    NARROW_COLUMN = 4   # one column as a row of Cᵀ (one_column)
    NARROW_ROWS_OF_CT = 5   # a few rows of C as the short rows of Cᵀ (rows_of_ct)
    NARROW_FEW_ROWS = 6     # a few rows, B streamed as it lies (few_rows), on one thread
    NARROW_TALL = 7         # many rows on a short K, a vector of columns (tall)


cdef inline Py_ssize_t narrow_dots_min_k(Py_ssize_t N, bint whole, real* kind) noexcept nogil:
    """The shortest K at which dot products take N (< lanes) columns: where
    the FMAs a one-vector tile wastes per element on its lanes - N padding
    columns, (K / lanes) (lanes - N) / N vectors, reach what an element of
    dot products costs beyond its own (narrow_dots_sum_cost vectors, at
    most as many for a K of ``whole`` vectors)."""
    cdef Py_ssize_t lanes = vector_lanes(kind)
    return (narrow_dots_sum_cost(whole, kind) * N * lanes + lanes - N - 1) // (lanes - N)


cdef inline int narrow_kind(const real* A, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                            Py_ssize_t rsa, Py_ssize_t csa, Py_ssize_t rsb, Py_ssize_t csb,
                            Py_ssize_t ldc) noexcept nogil:
    """Which kernel other than the blocked loops serves C = op(A) @ op(B):
    NARROW_FEW_ROWS for at most FEW_ROWS_MAX_M_F64 (_F32) rows times a B of
    adjacent rows, at least FEW_ROWS_MIN_B_VALUES values and a vector of
    columns, unless the short rows of Cᵀ take it (a B of few columns keeps
    its own kernel: few_rows would take its one or two vectors of columns as
    chains of FMAs through C); otherwise narrow_layouts' choice."""
    cdef int kind = narrow_layouts(A, M, N, K, rsa, csa, rsb, csb, ldc)
    if (kind != NARROW_ROWS_OF_CT and M <= FEW_ROWS_MAX_M_F64
            and (real is double or M <= FEW_ROWS_MAX_M_F32) and csb == 1
            and K * N >= FEW_ROWS_MIN_B_VALUES and N >= vector_lanes(<real*>NULL)):
        return NARROW_FEW_ROWS
    return kind


cdef inline int narrow_layouts(const real* A, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                               Py_ssize_t rsa, Py_ssize_t csa, Py_ssize_t rsb, Py_ssize_t csb,
                               Py_ssize_t ldc) noexcept nogil:
    """Which narrow kernel serves C = op(A) @ op(B), from the shape and the
    layouts of op(A), op(B) and C (A for its dtype alone): NARROW_DOTS, of
    any width, for at most few_dots_max_m rows when op(A)'s steps and
    op(B)'s are adjacent (δ@Wᵀ) and K has FEW_DOTS_MIN_VECTORS_PER_ROW
    vectors per row; otherwise, when op(A)'s rows
    are adjacent in memory (dW of an output layer), NARROW_COLUMN for one
    column of adjacent values and at least ONE_COLUMN_MIN_VECTORS vectors of
    rows, NARROW_ROWS for the other N <= NARROW_MAX_N and at least 2 rows
    (fewer than a tile's in the short rows; one row, a row of adjacent steps
    too, takes the rules below);
    otherwise, with the N values of each step of op(B) adjacent (X@W),
    NARROW_ROWS_OF_CT for 2 to narrow_rows_per_tile columns and at most
    ROWS_OF_CT_ROWS_PER_VECTOR rows per vector's worth of columns but one;
    otherwise, with op(A)'s steps adjacent, K of at most CB_TALL_MAX_K and
    C of columns the dot products sum a vector of sums at a time
    (dots_adjacent_fits), NARROW_DOTS for one column or for K of whole
    vectors of at least narrow_dots_min_k (bench/README.md, "Dot products
    summed a vector at a time");
    otherwise, with op(A)'s steps adjacent, NARROW_TALL for at least
    CB_TALL_ROWS rows, K of at most CB_TALL_MAX_K and at most a vector of
    columns (one column on K of at most TALL_ONE_COLUMN_MAX_K; on K past
    CB_TALL_SPELLED_K, at least half a vector of them or, with
    CB_TALL_ACROSS, at least 2 on at least a vector's lanes of rows);
    otherwise, with op(A)'s steps adjacent (an output layer's forward pass),
    NARROW_TEN for 9 or 10 columns and K at least the shortest the
    ten-column tiles take, where a packed tile would spend a third or more
    of its lanes on padding columns, and NARROW_DOTS for at most
    narrow_dots_max_n columns, K of at least narrow_dots_min_k (at most as
    long for a K of whole vectors as for one that ends in part of a vector;
    and A of at most NARROW_DOTS_TWO_PASS_MAX_A_BYTES past
    NARROW_DOTS_ONE_PASS_N columns);
    otherwise NARROW_NONE."""
    cdef Py_ssize_t lanes = vector_lanes(<real*>NULL)
    if N < 1 or K < 1:
        return NARROW_NONE
    if (rsb == 1 and csa == 1 and M <= few_dots_max_m(<real*>NULL)
            and K >= FEW_DOTS_MIN_VECTORS_PER_ROW * lanes * M):
        return NARROW_DOTS
    if rsa == 1 and N <= NARROW_MAX_N:
        if N == 1 and ldc == 1 and M >= ONE_COLUMN_MIN_VECTORS * lanes:
            return NARROW_COLUMN
        if M >= 2:
            return NARROW_ROWS
    if (csb == 1 and N <= narrow_rows_per_tile(<real*>NULL)
            and M * lanes <= ROWS_OF_CT_ROWS_PER_VECTOR * (N - 1)):
        return NARROW_ROWS_OF_CT
    if (csa == 1 and K <= CB_TALL_MAX_K and dots_adjacent_fits(N, K, ldc, rsa, <real*>NULL)
            and (N == 1 or (K % lanes == 0 and K >= narrow_dots_min_k(N, True, <real*>NULL)))):
        return NARROW_DOTS
    if (csa == 1 and K <= CB_TALL_MAX_K and N <= lanes and M >= CB_TALL_ROWS
            and (N > 1 or K <= TALL_ONE_COLUMN_MAX_K)
            and (K <= CB_TALL_SPELLED_K or 2 * N >= lanes
                 or tall_across_fits(M, K, N, <real*>NULL))):
        return NARROW_TALL
    if N > NARROW_MAX_N or csa != 1:
        return NARROW_NONE
    if N >= 9 and ten_pays(<real*>NULL) and K >= ten_min_k(<real*>NULL):
        return NARROW_TEN
    if (N <= narrow_dots_max_n(<real*>NULL)
            and K >= narrow_dots_min_k(N, K % lanes == 0, <real*>NULL)
            and (N <= NARROW_DOTS_ONE_PASS_N
                 or M * K * <Py_ssize_t>sizeof(real) <= NARROW_DOTS_TWO_PASS_MAX_A_BYTES)):
        return NARROW_DOTS
    return NARROW_NONE


NARROW_KERNEL_NAMES = {NARROW_NONE: None, NARROW_ROWS: "rows", NARROW_TEN: "ten",
                       NARROW_DOTS: "dots", NARROW_COLUMN: "column",
                       NARROW_ROWS_OF_CT: "rows_of_ct", NARROW_FEW_ROWS: "few_rows",
                       NARROW_TALL: "tall"}


def narrow_kernel(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, bint trans_a, dtype,
                  bint trans_b=False):
    """narrow_kind's choice for op(A) @ op(B) of this shape, A and B
    C-contiguous (op(A) = Aᵀ when ``trans_a``, op(B) = Bᵀ when ``trans_b``)
    into a C-contiguous C: "few_rows", "column", "rows", "rows_of_ct",
    "tall", "ten", "dots" or None (tests; gemm asks only for products that
    its tiny path leaves)."""
    cdef Py_ssize_t rsa = 1 if trans_a else K, csa = M if trans_a else 1
    cdef Py_ssize_t rsb = 1 if trans_b else N, csb = K if trans_b else 1
    if np.dtype(dtype) == np.float32:
        return NARROW_KERNEL_NAMES[narrow_kind(<const float*>NULL, M, N, K, rsa, csa, rsb, csb,
                                               N)]
    if np.dtype(dtype) == np.float64:
        return NARROW_KERNEL_NAMES[narrow_kind(<const double*>NULL, M, N, K, rsa, csa, rsb, csb,
                                               N)]
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


cdef void narrow_gemm(int kind, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                      const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                      const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                      real* C, Py_ssize_t ldc, bint accumulate,
                      real* pack_a, real* pack_b, int thread, int team) noexcept nogil:
    """C = op(A) @ op(B) (or +=) by the narrow kernel ``kind`` (narrow_kind):
    this thread's share of its tiles (of its rows for NARROW_DOTS, of its
    vectors of rows for NARROW_COLUMN, of its groups of rows for
    NARROW_ROWS_OF_CT, of its passes of CB_TALL_ROWS rows for NARROW_TALL;
    NARROW_FEW_ROWS, which gemm never gives a team, all of it), run by every
    thread of a team of ``team``. Each tile is computed whole by one thread,
    so results do not depend on the team. Rows left over from the narrow
    rows' tiles (fewer than one tile) go to the short rows, on the team's
    last thread (the blocked loops padded their few columns to NR: 1.04-10x
    slower, bench/README.md, "Short rows")."""
    cdef Py_ssize_t rows_per_tile = narrow_rows_per_tile(<real*>NULL)
    cdef Py_ssize_t n_groups = (N + CB_NARROW_COLS - 1) // CB_NARROW_COLS
    cdef Py_ssize_t tile, first_tile, last_tile, i, g, first, last, cols, full_rows
    if kind == NARROW_TEN:
        ten_columns(M, N, K, A, rsa, B, rsb, csb, C, ldc, accumulate, pack_b, thread, team)
        return
    if kind == NARROW_DOTS:
        dot_columns(M, N, K, A, rsa, B, rsb, csb, C, ldc, accumulate, pack_b, thread, team)
        return
    if kind == NARROW_COLUMN:
        one_column(M, K, A, csa, B, rsb, C, accumulate, thread, team)
        return
    if kind == NARROW_ROWS_OF_CT:
        rows_of_ct(M, N, K, A, rsa, csa, B, rsb, C, ldc, accumulate, thread, team)
        return
    if kind == NARROW_TALL:
        share((M + CB_TALL_ROWS - 1) // CB_TALL_ROWS, thread, team, &first_tile, &last_tile)
        first = first_tile * CB_TALL_ROWS
        last = min(last_tile * CB_TALL_ROWS, M)
        if last > first:
            tall(last - first, K, A + first * rsa, rsa, B, rsb, csb, N, C + first * ldc, ldc,
                 not accumulate)
        return
    if kind == NARROW_FEW_ROWS:
        if thread == 0:   # (gemm gives it no team; were it to, one thread would do it all)
            few_rows(M, N, K, A, rsa, csa, B, rsb, C, ldc, not accumulate)
        return
    full_rows = M // rows_per_tile * rows_per_tile
    share(full_rows // rows_per_tile, thread, team, &first_tile, &last_tile)
    for tile in range(first_tile, last_tile):
        i = tile * rows_per_tile
        for g in range(n_groups):
            narrow_groups(N, g, &first, &cols)
            narrow_rows(K, A + i, csa, B + first * csb, rsb, csb, cols,
                        C + i * ldc + first, ldc, not accumulate)
    if full_rows < M and thread == team - 1:
        for g in range(n_groups):
            narrow_groups(N, g, &first, &cols)
            narrow_short_rows(M - full_rows, K, A + full_rows, csa, B + first * csb, rsb, csb,
                              cols, C + full_rows * ldc + first, ldc, 1, not accumulate)


cdef inline void rows_of_ct(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                            const real* A, Py_ssize_t rsa, Py_ssize_t csa,
                            const real* B, Py_ssize_t rsb,
                            real* C, Py_ssize_t ldc, bint accumulate,
                            int thread, int team) noexcept nogil:
    """C = op(A) @ op(B) (or +=) for a few rows and columns, op(B)'s steps
    each N adjacent values (NARROW_ROWS_OF_CT): the short rows (tiles.h,
    cb_narrow_short_rows) of Cᵀ = op(B)ᵀ op(A)ᵀ, whose rows, C's columns,
    are adjacent in B. Vectors run along the rows of C, B read in place, one
    value of op(A) broadcast a step. C's rows go in groups of at most
    CB_NARROW_COLS, each computed whole by one thread of the team."""
    cdef Py_ssize_t n_groups = (M + CB_NARROW_COLS - 1) // CB_NARROW_COLS
    cdef Py_ssize_t g, first_group, last_group, first, rows
    share(n_groups, thread, team, &first_group, &last_group)
    for g in range(first_group, last_group):
        narrow_groups(M, g, &first, &rows)
        narrow_short_rows(N, K, B, rsb, A + first * rsa, csa, rsa, rows, C + first * ldc, 1, ldc,
                          not accumulate)


cdef inline void ten_columns(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                             const real* A, Py_ssize_t rsa,
                             const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                             real* C, Py_ssize_t ldc, bint accumulate,
                             real* pack_b, int thread, int team) noexcept nogil:
    """C = op(A) @ op(B) (or +=) for N of 9 or 10 by the ten-column tiles, K
    in panels of gemm_kc, each packed once (pack_b holds gemm_pack_b_size(N,
    K)) by the team's first thread; every thread computes its share of the
    row blocks of each panel, the same share each time. op(A)'s steps are
    adjacent (narrow_kind checked that), as the tiles read them."""
    cdef Py_ssize_t rows = ten_rows(<real*>NULL)
    cdef Py_ssize_t pc = 0, kc, block, first_block, last_block, i
    share((M + rows - 1) // rows, thread, team, &first_block, &last_block)
    while pc < K:
        kc = min(gemm_kc(<real*>NULL), K - pc)
        if thread == 0:
            pack_ten(kc, N, B + pc * rsb, rsb, csb, pack_b)
        if team > 1:
            cbackprop_barrier()   # the panel packed
        for block in range(first_block, last_block):
            i = block * rows
            ten_tile(kc, A + i * rsa + pc, rsa, pack_b, C + i * ldc, ldc,
                     min(rows, M - i), N, pc == 0 and not accumulate)
        if team > 1:
            cbackprop_barrier()   # the panel free to be repacked
        pc += gemm_kc(<real*>NULL)


cdef inline Py_ssize_t few_dots_block(Py_ssize_t N, Py_ssize_t K, real* kind) noexcept nogil:
    """Columns of a B read as it lies that the dot products take per block
    (dot_columns): all N while B is at most FEW_DOTS_FAR_B_BYTES, else about
    FEW_DOTS_B_BLOCK_BYTES of them, a multiple of 4 (the widest pass of
    columns, so that no block adds a narrower pass that reads A's rows
    again) and at least 4."""
    cdef Py_ssize_t column_bytes = K * <Py_ssize_t>sizeof(real)
    if N * column_bytes <= FEW_DOTS_FAR_B_BYTES:
        return N
    return max(4, FEW_DOTS_B_BLOCK_BYTES // column_bytes // 4 * 4)


def few_dots_block_columns(Py_ssize_t N, Py_ssize_t K, dtype):
    """few_dots_block for N columns of depth K in ``dtype`` (tests)."""
    if np.dtype(dtype) == np.float32:
        return few_dots_block(N, K, <float*>NULL)
    if np.dtype(dtype) == np.float64:
        return few_dots_block(N, K, <double*>NULL)
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


def dots_take_vectors_of_sums(Py_ssize_t N, Py_ssize_t K, Py_ssize_t row_stride, dtype):
    """Whether the dot products sum a whole C of N columns on K steps, op(A)'s
    rows row_stride values apart, a vector of sums at a time
    (dots_adjacent_fits; tests)."""
    if np.dtype(dtype) == np.float32:
        return dots_adjacent_fits(N, K, N, row_stride, <float*>NULL)
    if np.dtype(dtype) == np.float64:
        return dots_adjacent_fits(N, K, N, row_stride, <double*>NULL)
    raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")


cdef inline void dot_columns(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                             const real* A, Py_ssize_t rsa,
                             const real* B, Py_ssize_t rsb, Py_ssize_t csb,
                             real* C, Py_ssize_t ldc, bint accumulate,
                             real* pack_b, int thread, int team) noexcept nogil:
    """C = op(A) @ op(B) (or +=) for a few columns, or δ@Wᵀ of a few rows
    (NARROW_DOTS): each element the dot product of a row of op(A) with a
    column of op(B), both read along K (tiles.h, cb_few_dots). op(B)'s
    columns are read as they lie when their steps are adjacent (δ@Wᵀ, or a
    single column), in blocks of few_dots_block columns, each for all of the
    thread's rows before the next; otherwise they are copied into pack_b, by
    the team's first thread, in panels of as many steps as the buffer holds
    for N columns: gemm_pack_b_size(N, K) holds NR columns of min(K,
    gemm_kc) steps, so N <= NR columns of NR gemm_kc / N steps (a panel as
    long as a tile's read A's rows in stripes, 1.2-1.4x slower on
    2000x2000x4 float64, bench/README.md). Each thread computes its share of
    C's rows, each element whole, so results do not depend on the team."""
    cdef Py_ssize_t first, last, pc = 0, kc, j, cols
    cdef Py_ssize_t panel = microkernel_nr(<real*>NULL) * gemm_kc(<real*>NULL) // N
    cdef Py_ssize_t block = few_dots_block(N, K, <real*>NULL)
    share(M, thread, team, &first, &last)
    if rsb == 1:
        if last > first:
            j = 0
            while j < N:
                cols = min(block, N - j)
                few_dots(last - first, cols, K, A + first * rsa, rsa, B + j * csb, csb,
                         C + first * ldc + j, ldc, not accumulate)
                j += cols
        return
    while pc < K:
        kc = min(panel, K - pc)
        if thread == 0:
            pack_columns(kc, N, B + pc * rsb, rsb, csb, pack_b)
        if team > 1:
            cbackprop_barrier()   # the panel packed
        if last > first:
            few_dots(last - first, N, kc, A + first * rsa + pc, rsa, pack_b, kc,
                     C + first * ldc, ldc, pc == 0 and not accumulate)
        if team > 1:
            cbackprop_barrier()   # the panel free to be repacked
        pc += kc


cdef inline void one_column(Py_ssize_t M, Py_ssize_t K, const real* A, Py_ssize_t csa,
                            const real* B, Py_ssize_t rsb, real* C, bint accumulate,
                            int thread, int team) noexcept nogil:
    """C (M values, adjacent) = op(A) @ op(B) (or +=) for one column, op(A)'s
    rows adjacent (NARROW_COLUMN): its transpose, the row Cᵀ = op(B)ᵀ op(A)ᵀ,
    adds each step's row of A (M adjacent values) times that step's value of
    B, A read once as it lies (tiles.h, cb_few_rows), where a tile would
    spend all but one of its NR columns on padding. Each thread takes whole
    vectors of the row, so results do not depend on the team."""
    cdef Py_ssize_t lanes = vector_lanes(<real*>NULL)
    cdef Py_ssize_t first, last
    share((M + lanes - 1) // lanes, thread, team, &first, &last)
    first = first * lanes
    last = min(last * lanes, M)
    if last > first:
        few_rows(1, last - first, K, B, 0, rsb, A + first, csa, C + first, 1, not accumulate)
