# The register tiles and the blocking table of this engine build, from the one
# C source every build compiles (tiles.h; the build's CB_ISA macro picks the
# table row and its compiler flags the instructions), as fused-type helpers
# for gemm.pxi.

cdef extern from "tiles.h" nogil:
    const char* CB_ISA_NAME
    const Py_ssize_t CB_MR
    const Py_ssize_t CB_NC
    const Py_ssize_t CB_PANEL_ROWS_F64
    const Py_ssize_t CB_PANEL_ROWS_F32
    const Py_ssize_t CB_BLOCK_COLS_F64
    const Py_ssize_t CB_BLOCK_COLS_F32
    const double CB_PARALLEL_MIN_FLOPS
    const double CB_TEAM_ROWS_FIRST_MAX_FLOPS
    const Py_ssize_t CB_B_IN_PLACE_MAX_BYTES_F64
    const Py_ssize_t CB_B_IN_PLACE_MAX_M
    const Py_ssize_t CB_SMALL_B_IN_PLACE_MAX_M
    const Py_ssize_t CB_SMALL_B_MAX_BYTES
    const Py_ssize_t CB_VECTOR_BYTES
    const Py_ssize_t CB_NARROW_COLS
    const Py_ssize_t CB_NARROW_DOTS_SUM_COST_F64
    const Py_ssize_t CB_NARROW_DOTS_SUM_COST_F32
    const Py_ssize_t CB_NARROW_DOTS_WHOLE_SUM_COST_F64
    const Py_ssize_t CB_NARROW_DOTS_WHOLE_SUM_COST_F32
    const Py_ssize_t CB_NARROW_DOTS_MAX_N_F64
    const Py_ssize_t CB_NARROW_DOTS_MAX_N_F32
    const Py_ssize_t CB_FEW_DOTS_MAX_M_F64
    const Py_ssize_t CB_FEW_DOTS_MAX_M_F32
    Py_ssize_t cb_nr_f64() noexcept
    Py_ssize_t cb_nr_f32() noexcept
    Py_ssize_t cb_mc_f64() noexcept
    Py_ssize_t cb_mc_f32() noexcept
    Py_ssize_t cb_kc_f64() noexcept
    Py_ssize_t cb_kc_f32() noexcept
    bint cb_asm_steps_f64() noexcept
    bint cb_asm_steps_f32() noexcept
    Py_ssize_t cb_narrow_rows_per_tile_f64() noexcept
    Py_ssize_t cb_narrow_rows_per_tile_f32() noexcept
    void cb_microkernel_f64(Py_ssize_t kc, const double* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                            const double* b, Py_ssize_t b_rs, double* C, Py_ssize_t ldc,
                            Py_ssize_t rows, Py_ssize_t cols, int overwrite) noexcept
    void cb_microkernel_f32(Py_ssize_t kc, const float* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                            const float* b, Py_ssize_t b_rs, float* C, Py_ssize_t ldc,
                            Py_ssize_t rows, Py_ssize_t cols, int overwrite) noexcept
    void cb_microkernel_packed_f64(Py_ssize_t kc, const double* a, const double* b, Py_ssize_t b_rs,
                                   double* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                                   int overwrite) noexcept
    void cb_microkernel_packed_f32(Py_ssize_t kc, const float* a, const float* b, Py_ssize_t b_rs,
                                   float* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                                   int overwrite) noexcept
    void cb_pack_a_transposed_f64(Py_ssize_t kc, const double* A, Py_ssize_t rsa, double* packed) noexcept
    void cb_pack_a_transposed_f32(Py_ssize_t kc, const float* A, Py_ssize_t rsa, float* packed) noexcept
    void cb_pack_b_transposed_f64(Py_ssize_t kc, const double* B, Py_ssize_t csb, double* packed) noexcept
    void cb_pack_b_transposed_f32(Py_ssize_t kc, const float* B, Py_ssize_t csb, float* packed) noexcept
    void cb_pack_a_panel_steps_f64(Py_ssize_t kc, Py_ssize_t slivers, const double* A,
                                   Py_ssize_t csa, double* packed) noexcept
    void cb_pack_a_panel_steps_f32(Py_ssize_t kc, Py_ssize_t slivers, const float* A,
                                   Py_ssize_t csa, float* packed) noexcept
    void cb_pack_b_panel_steps_f64(Py_ssize_t kc, Py_ssize_t slivers, const double* B,
                                   Py_ssize_t rsb, double* packed) noexcept
    void cb_pack_b_panel_steps_f32(Py_ssize_t kc, Py_ssize_t slivers, const float* B,
                                   Py_ssize_t rsb, float* packed) noexcept
    void cb_narrow_rows_f64(Py_ssize_t K, const double* a, Py_ssize_t a_cs, const double* b,
                            Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, double* C,
                            Py_ssize_t ldc, int overwrite) noexcept
    void cb_narrow_rows_f32(Py_ssize_t K, const float* a, Py_ssize_t a_cs, const float* b,
                            Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, float* C,
                            Py_ssize_t ldc, int overwrite) noexcept
    void cb_narrow_short_rows_f64(Py_ssize_t rows, Py_ssize_t K, const double* a,
                                  Py_ssize_t a_cs, const double* b, Py_ssize_t rsb,
                                  Py_ssize_t csb, Py_ssize_t cols, double* C, Py_ssize_t ldc,
                                  Py_ssize_t c_cs, int overwrite) noexcept
    void cb_narrow_short_rows_f32(Py_ssize_t rows, Py_ssize_t K, const float* a,
                                  Py_ssize_t a_cs, const float* b, Py_ssize_t rsb,
                                  Py_ssize_t csb, Py_ssize_t cols, float* C, Py_ssize_t ldc,
                                  Py_ssize_t c_cs, int overwrite) noexcept
    void cb_pack_columns_f64(Py_ssize_t kc, Py_ssize_t n, const double* B, Py_ssize_t rsb,
                             Py_ssize_t csb, double* packed) noexcept
    void cb_pack_columns_f32(Py_ssize_t kc, Py_ssize_t n, const float* B, Py_ssize_t rsb,
                             Py_ssize_t csb, float* packed) noexcept
    void cb_few_rows_f64(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const double* a,
                         Py_ssize_t a_rs, Py_ssize_t a_cs, const double* b, Py_ssize_t b_rs,
                         double* C, Py_ssize_t ldc, int overwrite) noexcept
    void cb_few_rows_f32(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const float* a,
                         Py_ssize_t a_rs, Py_ssize_t a_cs, const float* b, Py_ssize_t b_rs,
                         float* C, Py_ssize_t ldc, int overwrite) noexcept
    void cb_few_dots_f64(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const double* a,
                         Py_ssize_t a_rs, const double* b, Py_ssize_t b_cs, double* C,
                         Py_ssize_t ldc, int overwrite) noexcept
    void cb_few_dots_f32(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const float* a,
                         Py_ssize_t a_rs, const float* b, Py_ssize_t b_cs, float* C,
                         Py_ssize_t ldc, int overwrite) noexcept
    bint cb_dots_adjacent_fits_f64(Py_ssize_t n, Py_ssize_t k, Py_ssize_t ldc,
                                   Py_ssize_t a_rs) noexcept nogil
    bint cb_dots_adjacent_fits_f32(Py_ssize_t n, Py_ssize_t k, Py_ssize_t ldc,
                                   Py_ssize_t a_rs) noexcept nogil
    Py_ssize_t cb_dots_adjacent_min_k_f64() noexcept nogil
    Py_ssize_t cb_dots_adjacent_min_k_f32() noexcept nogil
    const Py_ssize_t CB_TALL_MAX_K
    const Py_ssize_t CB_TALL_ROWS
    const Py_ssize_t CB_TALL_SPELLED_K
    const int CB_TALL_ACROSS
    const Py_ssize_t CB_DOTS_ADJACENT_MAX_ALIASED_ROWS
    bint cb_tall_across_fits_f64(Py_ssize_t rows, Py_ssize_t K, Py_ssize_t cols) noexcept nogil
    bint cb_tall_across_fits_f32(Py_ssize_t rows, Py_ssize_t K, Py_ssize_t cols) noexcept nogil
    void cb_tall_f64(Py_ssize_t rows, Py_ssize_t K, const double* a, Py_ssize_t a_rs,
                     const double* b, Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, double* C,
                     Py_ssize_t ldc, int overwrite) noexcept
    void cb_tall_f32(Py_ssize_t rows, Py_ssize_t K, const float* a, Py_ssize_t a_rs,
                     const float* b, Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, float* C,
                     Py_ssize_t ldc, int overwrite) noexcept
    bint cb_ten_pays_f64() noexcept
    bint cb_ten_pays_f32() noexcept
    Py_ssize_t cb_ten_min_k_f64() noexcept
    Py_ssize_t cb_ten_min_k_f32() noexcept
    Py_ssize_t cb_ten_rows_f64() noexcept
    Py_ssize_t cb_ten_rows_f32() noexcept
    Py_ssize_t cb_ten_lanes_f64() noexcept
    Py_ssize_t cb_ten_lanes_f32() noexcept
    int cb_halves_512
    void cb_set_halves_512(int on) noexcept
    void cb_pack_ten_f64(Py_ssize_t kc, Py_ssize_t cols, const double* B, Py_ssize_t rsb,
                         Py_ssize_t csb, double* packed) noexcept
    void cb_pack_ten_f32(Py_ssize_t kc, Py_ssize_t cols, const float* B, Py_ssize_t rsb,
                         Py_ssize_t csb, float* packed) noexcept
    void cb_ten_f64(Py_ssize_t kc, const double* a, Py_ssize_t a_rs,
                    const double* b, double* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                    int overwrite) noexcept
    void cb_ten_f32(Py_ssize_t kc, const float* a, Py_ssize_t a_rs,
                    const float* b, float* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                    int overwrite) noexcept
    double cb_fma_probe_f64(Py_ssize_t iterations) noexcept
    float cb_fma_probe_f32(Py_ssize_t iterations) noexcept
    Py_ssize_t cb_fma_probe_flops_f64(Py_ssize_t iterations) noexcept
    Py_ssize_t cb_fma_probe_flops_f32(Py_ssize_t iterations) noexcept


def fma_peak_gflops(str dtype="float64", double seconds=0.05, int repeats=5):
    """This build's measured FMA peak on one core, in GFLOP/s: the best of
    ``repeats`` timed runs of independent vector FMA chains (``seconds`` each)."""
    import time
    cdef Py_ssize_t iterations = 1 << 16
    cdef Py_ssize_t flops
    cdef double elapsed, best = 0.0, sink = 0.0
    cdef bint is_float32 = dtype == "float32"
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    for attempt in range(repeats + 64):
        start = time.perf_counter()
        with nogil:
            if is_float32:
                sink += cb_fma_probe_f32(iterations)
            else:
                sink += cb_fma_probe_f64(iterations)
        elapsed = time.perf_counter() - start
        flops = cb_fma_probe_flops_f32(iterations) if is_float32 else cb_fma_probe_flops_f64(iterations)
        if elapsed < seconds and attempt < 64:   # calibrating: grow the run
            iterations *= 2
            continue
        best = max(best, flops / elapsed / 1e9)
        repeats -= 1
        if repeats == 0:
            break
    if sink != sink:   # uses the chains' results, so the compiler keeps them
        raise FloatingPointError("the FMA probe produced NaN")
    return best


def tile_gflops(str dtype="float64", double seconds=0.05, int repeats=5):
    """GFLOP/s of this build's full register tile alone, on one core: MR x NR
    tiles over KC steps of packed panels (A slivers from L2, one B sliver
    in L1), as the GEMM's inner loops run it, without packing or edges. Read
    against fma_peak_gflops: what the tile leaves on the table."""
    import time
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    cdef bint is_float32 = dtype == "float32"
    cdef Py_ssize_t mr = CB_MR, nr = cb_nr_f32() if is_float32 else cb_nr_f64()
    cdef Py_ssize_t kc = cb_kc_f32() if is_float32 else cb_kc_f64(), tiles = 32, calls = 1, call, t
    cdef cnp.ndarray a = np.full(mr * kc * tiles, 1e-3, dtype=dtype)
    cdef cnp.ndarray b = np.full(kc * nr, 1e-3, dtype=dtype)
    cdef cnp.ndarray c = np.zeros(mr * nr, dtype=dtype)
    cdef char* pa = <char*>cnp.PyArray_DATA(a)
    cdef char* pb = <char*>cnp.PyArray_DATA(b)
    cdef char* pc = <char*>cnp.PyArray_DATA(c)
    cdef double elapsed, best = 0.0
    while True:
        start = time.perf_counter()
        with nogil:
            for call in range(calls):
                for t in range(tiles):
                    if is_float32:
                        cb_microkernel_packed_f32(kc, <float*>pa + t * mr * kc, <float*>pb, nr,
                                                  <float*>pc, nr, mr, nr, 0)
                    else:
                        cb_microkernel_packed_f64(kc, <double*>pa + t * mr * kc, <double*>pb, nr,
                                                  <double*>pc, nr, mr, nr, 0)
        elapsed = time.perf_counter() - start
        if elapsed < seconds:     # calibrating: grow the run
            calls *= 2
            continue
        best = max(best, 2.0 * mr * nr * kc * tiles * calls / elapsed / 1e9)
        repeats -= 1
        if repeats == 0:
            return best


def tile_table():
    """This build's blocking table: ISA, vector bytes and the lanes per dtype,
    MR, NR, MC and KC per dtype, NC, the blocked loops' rows-first blocks
    per dtype (panel_rows, block_cols; 0: columns first) and the flops from
    which a team runs columns first anyway (team_rows_first_max_flops);
    whether it treats 512-bit instructions as halved (set_halves_512), and the
    lanes of its ten-column tiles per dtype (0 where the padded tile serves
    products of 9-10 columns instead) and the shortest K they take, and
    what a dot product's element costs beyond its FMAs and the most columns
    they take (gemm.pxi, NARROW_DOTS) and the shortest K on which they sum
    a vector of sums at a time into a C of few columns (0: never) and the
    most rows of such a block on one offset in a 4 KiB page, the most rows
    of δ@Wᵀ they take of any width, and the rows of a tile of the narrow
    rows per dtype (fewer take the short rows) and its most columns (a
    group's; the rows of C per group in the short rows of Cᵀ), and the
    longest K of the tall products (0: none), their rows per pass, the
    longest K whose steps they spell out (past it, read from L1) and
    whether past it they take few columns with the rows along a vector, and
    per dtype whether a whole packed tile runs its steps in asm."""
    return {"isa": CB_ISA_NAME.decode(), "vector_bytes": CB_VECTOR_BYTES, "mr": CB_MR,
            "lanes": {"float64": vector_lanes(<double*>NULL), "float32": vector_lanes(<float*>NULL)},
            "nr": {"float64": cb_nr_f64(), "float32": cb_nr_f32()},
            "mc": {"float64": cb_mc_f64(), "float32": cb_mc_f32()},
            "kc": {"float64": cb_kc_f64(), "float32": cb_kc_f32()}, "nc": CB_NC,
            "panel_rows": {"float64": CB_PANEL_ROWS_F64, "float32": CB_PANEL_ROWS_F32},
            "block_cols": {"float64": CB_BLOCK_COLS_F64, "float32": CB_BLOCK_COLS_F32},
            "parallel_min_flops": CB_PARALLEL_MIN_FLOPS,
            "team_rows_first_max_flops": CB_TEAM_ROWS_FIRST_MAX_FLOPS,
            "b_in_place_max_m": CB_B_IN_PLACE_MAX_M,
            "small_b_in_place_max_m": CB_SMALL_B_IN_PLACE_MAX_M,
            "small_b_max_bytes": CB_SMALL_B_MAX_BYTES,
            "b_in_place_max_bytes_f64": CB_B_IN_PLACE_MAX_BYTES_F64,
            "halves_512": bool(cb_halves_512),
            "ten_lanes": {"float64": cb_ten_lanes_f64() if cb_ten_pays_f64() else 0,
                          "float32": cb_ten_lanes_f32() if cb_ten_pays_f32() else 0},
            "ten_min_k": {"float64": cb_ten_min_k_f64(), "float32": cb_ten_min_k_f32()},
            "dots_sum_cost": {"float64": narrow_dots_sum_cost(False, <double*>NULL),
                              "float32": narrow_dots_sum_cost(False, <float*>NULL)},
            "dots_whole_sum_cost": {"float64": narrow_dots_sum_cost(True, <double*>NULL),
                                    "float32": narrow_dots_sum_cost(True, <float*>NULL)},
            "dots_max_n": {"float64": narrow_dots_max_n(<double*>NULL),
                           "float32": narrow_dots_max_n(<float*>NULL)},
            "dots_adjacent_min_k": {"float64": dots_adjacent_min_k(<double*>NULL),
                                    "float32": dots_adjacent_min_k(<float*>NULL)},
            "dots_adjacent_max_aliased_rows": CB_DOTS_ADJACENT_MAX_ALIASED_ROWS,
            "few_dots_max_m": {"float64": few_dots_max_m(<double*>NULL),
                               "float32": few_dots_max_m(<float*>NULL)},
            "narrow_rows": {"float64": narrow_rows_per_tile(<double*>NULL),
                            "float32": narrow_rows_per_tile(<float*>NULL)},
            "narrow_cols": CB_NARROW_COLS, "tall_max_k": CB_TALL_MAX_K,
            "tall_rows": CB_TALL_ROWS, "tall_spelled_k": CB_TALL_SPELLED_K,
            "tall_across": bool(CB_TALL_ACROSS) and CB_TALL_MAX_K > CB_TALL_SPELLED_K,
            "asm_steps": {"float64": cb_asm_steps_f64(), "float32": cb_asm_steps_f32()}}


def set_halves_512(bint on):
    """Tell this build whether the CPU runs each 512-bit instruction as two
    256-bit halves (AMD Zen 4). A 64-byte build then takes products of 9-10
    columns in ten-column tiles of half vectors, and square roots from the
    instruction rather than by Newton steps (root_by_newton; Adam's and
    RMSprop's in float64 a third by Newton steps: update_roots), and sums
    float64's dot products in blocks of 4 rows each alone rather than
    jointly unless a block's sums go to C as vectors (the same bits); other
    builds ignore it.
    Set once at import (``_backend``); not meant to change while products run."""
    cb_set_halves_512(on)


cdef inline Py_ssize_t microkernel_mr(real* kind) noexcept nogil:
    return CB_MR


cdef inline Py_ssize_t microkernel_nr(real* kind) noexcept nogil:
    return cb_nr_f32() if real is float else cb_nr_f64()


cdef inline Py_ssize_t vector_lanes(real* kind) noexcept nogil:
    """Values of this dtype in one of the build's vectors."""
    return CB_VECTOR_BYTES // sizeof(real)


cdef inline Py_ssize_t narrow_dots_sum_cost(bint whole, real* kind) noexcept nogil:
    """What an element of the dot products costs beyond its FMAs, in vectors
    of K: no more when K is whole vectors (no tail to read again)."""
    if whole:
        return CB_NARROW_DOTS_WHOLE_SUM_COST_F32 if real is float else CB_NARROW_DOTS_WHOLE_SUM_COST_F64
    return CB_NARROW_DOTS_SUM_COST_F32 if real is float else CB_NARROW_DOTS_SUM_COST_F64


cdef inline Py_ssize_t narrow_dots_max_n(real* kind) noexcept nogil:
    return CB_NARROW_DOTS_MAX_N_F32 if real is float else CB_NARROW_DOTS_MAX_N_F64


cdef inline bint dots_adjacent_fits(Py_ssize_t n, Py_ssize_t k, Py_ssize_t ldc, Py_ssize_t a_rs,
                                    real* kind) noexcept nogil:
    """Whether the dot products take the rows of a C of n columns, ldc apart,
    on k steps of A's rows a_rs apart a vector of sums at a time
    (tiles_template.h, cb_dots_adjacent_fits)."""
    return (cb_dots_adjacent_fits_f32(n, k, ldc, a_rs) if real is float
            else cb_dots_adjacent_fits_f64(n, k, ldc, a_rs))


cdef inline Py_ssize_t dots_adjacent_min_k(real* kind) noexcept nogil:
    """The shortest K on which dots_adjacent_fits takes one column (0: none,
    as the CPU is told to run it now)."""
    return cb_dots_adjacent_min_k_f32() if real is float else cb_dots_adjacent_min_k_f64()


cdef inline bint tall_across_fits(Py_ssize_t rows, Py_ssize_t K, Py_ssize_t cols,
                                  real* kind) noexcept nogil:
    """Whether the tall kernel takes rows x cols on K steps with the rows
    along the vector (tiles_template.h, cb_tall_across_fits)."""
    return (cb_tall_across_fits_f32(rows, K, cols) if real is float
            else cb_tall_across_fits_f64(rows, K, cols))


cdef inline Py_ssize_t few_dots_max_m(real* kind) noexcept nogil:
    return CB_FEW_DOTS_MAX_M_F32 if real is float else CB_FEW_DOTS_MAX_M_F64


cdef inline Py_ssize_t gemm_mc(real* kind) noexcept nogil:
    """Rows of A packed at once (a multiple of MR)."""
    return cb_mc_f32() if real is float else cb_mc_f64()


cdef inline Py_ssize_t gemm_kc(real* kind) noexcept nogil:
    """K steps per packed panel."""
    return cb_kc_f32() if real is float else cb_kc_f64()


cdef inline Py_ssize_t gemm_panel_rows(real* kind) noexcept nogil:
    """Most rows of A packed at once when the blocked loops run rows first; 0: columns first."""
    return CB_PANEL_ROWS_F32 if real is float else CB_PANEL_ROWS_F64


cdef inline Py_ssize_t gemm_block_cols(real* kind) noexcept nogil:
    """Columns of B packed at once when the blocked loops run rows first."""
    return CB_BLOCK_COLS_F32 if real is float else CB_BLOCK_COLS_F64


cdef inline Py_ssize_t narrow_rows_per_tile(real* kind) noexcept nogil:
    return cb_narrow_rows_per_tile_f32() if real is float else cb_narrow_rows_per_tile_f64()


cdef inline void microkernel(Py_ssize_t kc, const real* a, Py_ssize_t a_rs, Py_ssize_t a_cs,
                             const real* b, Py_ssize_t b_rs, real* C, Py_ssize_t ldc,
                             Py_ssize_t rows, Py_ssize_t cols, bint overwrite) noexcept nogil:
    if real is float:
        cb_microkernel_f32(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
    else:
        cb_microkernel_f64(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)


cdef inline void few_rows(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const real* a,
                          Py_ssize_t a_rs, Py_ssize_t a_cs, const real* b, Py_ssize_t b_rs,
                          real* C, Py_ssize_t ldc, bint overwrite) noexcept nogil:
    if real is float:
        cb_few_rows_f32(rows, n, k, a, a_rs, a_cs, b, b_rs, C, ldc, overwrite)
    else:
        cb_few_rows_f64(rows, n, k, a, a_rs, a_cs, b, b_rs, C, ldc, overwrite)


cdef inline void few_dots(Py_ssize_t rows, Py_ssize_t n, Py_ssize_t k, const real* a,
                          Py_ssize_t a_rs, const real* b, Py_ssize_t b_cs, real* C,
                          Py_ssize_t ldc, bint overwrite) noexcept nogil:
    if real is float:
        cb_few_dots_f32(rows, n, k, a, a_rs, b, b_cs, C, ldc, overwrite)
    else:
        cb_few_dots_f64(rows, n, k, a, a_rs, b, b_cs, C, ldc, overwrite)


cdef inline void microkernel_packed(Py_ssize_t kc, const real* a, const real* b, Py_ssize_t b_rs,
                                    real* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                                    bint overwrite) noexcept nogil:
    if real is float:
        cb_microkernel_packed_f32(kc, a, b, b_rs, C, ldc, rows, cols, overwrite)
    else:
        cb_microkernel_packed_f64(kc, a, b, b_rs, C, ldc, rows, cols, overwrite)


cdef inline void pack_a_transposed(Py_ssize_t kc, const real* A, Py_ssize_t rsa,
                                   real* packed) noexcept nogil:
    if real is float:
        cb_pack_a_transposed_f32(kc, A, rsa, packed)
    else:
        cb_pack_a_transposed_f64(kc, A, rsa, packed)


cdef inline void pack_a_panel_steps(Py_ssize_t kc, Py_ssize_t slivers, const real* A,
                                    Py_ssize_t csa, real* packed) noexcept nogil:
    if real is float:
        cb_pack_a_panel_steps_f32(kc, slivers, A, csa, packed)
    else:
        cb_pack_a_panel_steps_f64(kc, slivers, A, csa, packed)


cdef inline void pack_b_panel_steps(Py_ssize_t kc, Py_ssize_t slivers, const real* B,
                                    Py_ssize_t rsb, real* packed) noexcept nogil:
    if real is float:
        cb_pack_b_panel_steps_f32(kc, slivers, B, rsb, packed)
    else:
        cb_pack_b_panel_steps_f64(kc, slivers, B, rsb, packed)


cdef inline void pack_b_transposed(Py_ssize_t kc, const real* B, Py_ssize_t csb,
                                   real* packed) noexcept nogil:
    if real is float:
        cb_pack_b_transposed_f32(kc, B, csb, packed)
    else:
        cb_pack_b_transposed_f64(kc, B, csb, packed)


cdef inline void narrow_rows(Py_ssize_t K, const real* a, Py_ssize_t a_cs, const real* b,
                             Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, real* C,
                             Py_ssize_t ldc, bint overwrite) noexcept nogil:
    if real is float:
        cb_narrow_rows_f32(K, a, a_cs, b, rsb, csb, cols, C, ldc, overwrite)
    else:
        cb_narrow_rows_f64(K, a, a_cs, b, rsb, csb, cols, C, ldc, overwrite)


cdef inline void pack_columns(Py_ssize_t kc, Py_ssize_t n, const real* B, Py_ssize_t rsb,
                              Py_ssize_t csb, real* packed) noexcept nogil:
    if real is float:
        cb_pack_columns_f32(kc, n, B, rsb, csb, packed)
    else:
        cb_pack_columns_f64(kc, n, B, rsb, csb, packed)


cdef inline void narrow_short_rows(Py_ssize_t rows, Py_ssize_t K, const real* a,
                                   Py_ssize_t a_cs, const real* b, Py_ssize_t rsb,
                                   Py_ssize_t csb, Py_ssize_t cols, real* C, Py_ssize_t ldc,
                                   Py_ssize_t c_cs, bint overwrite) noexcept nogil:
    if real is float:
        cb_narrow_short_rows_f32(rows, K, a, a_cs, b, rsb, csb, cols, C, ldc, c_cs, overwrite)
    else:
        cb_narrow_short_rows_f64(rows, K, a, a_cs, b, rsb, csb, cols, C, ldc, c_cs, overwrite)


cdef inline void tall(Py_ssize_t rows, Py_ssize_t K, const real* a, Py_ssize_t a_rs,
                      const real* b, Py_ssize_t rsb, Py_ssize_t csb, Py_ssize_t cols, real* C,
                      Py_ssize_t ldc, bint overwrite) noexcept nogil:
    if real is float:
        cb_tall_f32(rows, K, a, a_rs, b, rsb, csb, cols, C, ldc, overwrite)
    else:
        cb_tall_f64(rows, K, a, a_rs, b, rsb, csb, cols, C, ldc, overwrite)


cdef inline bint ten_pays(real* kind) noexcept nogil:
    """Whether products of 9-10 columns take the ten-column tiles in this build."""
    return cb_ten_pays_f32() if real is float else cb_ten_pays_f64()


cdef inline Py_ssize_t ten_min_k(real* kind) noexcept nogil:
    """The shortest K the ten-column tiles take in this build."""
    return cb_ten_min_k_f32() if real is float else cb_ten_min_k_f64()


cdef inline Py_ssize_t ten_rows(real* kind) noexcept nogil:
    return cb_ten_rows_f32() if real is float else cb_ten_rows_f64()


cdef inline void pack_ten(Py_ssize_t kc, Py_ssize_t cols, const real* B, Py_ssize_t rsb,
                          Py_ssize_t csb, real* packed) noexcept nogil:
    if real is float:
        cb_pack_ten_f32(kc, cols, B, rsb, csb, packed)
    else:
        cb_pack_ten_f64(kc, cols, B, rsb, csb, packed)


cdef inline void ten_tile(Py_ssize_t kc, const real* a, Py_ssize_t a_rs, const real* b, real* C, Py_ssize_t ldc, Py_ssize_t rows, Py_ssize_t cols,
                          bint overwrite) noexcept nogil:
    if real is float:
        cb_ten_f32(kc, a, a_rs, b, C, ldc, rows, cols, overwrite)
    else:
        cb_ten_f64(kc, a, a_rs, b, C, ldc, rows, cols, overwrite)
