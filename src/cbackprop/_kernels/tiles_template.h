/* The kernels of tiles.h for one dtype: included once per dtype with CB_REAL
 * (the element type), CB_SFX (its suffix), CB_MC and CB_KC defined. See tiles.h for
 * the interface and the blocking table.
 *
 * A tile is written as loops of compile-time trip count over arrays of
 * vectors; every caller passes literal heights and widths to an
 * always_inline body, so the compiler unrolls the loops and keeps the
 * accumulators in registers. `c += a * b` becomes one FMA where the build
 * has FMA (GCC and Clang contract by default in GNU C).
 */
#define CB_CAT_(a, b) a##_##b
#define CB_CAT(a, b) CB_CAT_(a, b)
#define CB_(name) CB_CAT(name, CB_SFX)

/* Element-aligned, so that a load or store at any element is one unaligned
 * vector instruction; may_alias, as vectors are read from plain arrays. */
typedef CB_REAL CB_(cb_vec) __attribute__((vector_size(CB_VECTOR_BYTES), aligned(sizeof(CB_REAL)), may_alias));
#define CB_VEC CB_(cb_vec)
#define CB_LANES ((ptrdiff_t)(CB_VECTOR_BYTES / sizeof(CB_REAL)))

static inline ptrdiff_t CB_(cb_nr)(void) { return CB_NV * CB_LANES; }
static inline ptrdiff_t CB_(cb_mc)(void) { return CB_MC; }
static inline ptrdiff_t CB_(cb_kc)(void) { return CB_KC; }
static inline ptrdiff_t CB_(cb_narrow_rows_per_tile)(void) { return CB_NARROW_NV * CB_LANES; }
/* Whether a whole packed tile runs its steps in asm (tile_steps_avx512.h),
 * as the CPU is told to run it now: not where it halves 512-bit
 * instructions, where the C steps ran 1.015-1.022x as fast (float64 on a
 * Zen 4, bench/README.md, "Kept: a packed tile's float64 steps in asm"). */
static inline int CB_(cb_asm_steps)(void) { return CB_ASM_STEPS && !cb_halves_512; }

static inline CB_VEC CB_(cb_splat)(CB_REAL x) {
    /* x - 0 is exact for every x (-0.0 included), so the compiler folds it
     * into one broadcast; x + 0 is not (-0.0 + 0 = +0.0) and costs an add. */
    return x - (CB_VEC){0};
}

static inline CB_VEC CB_(cb_load)(const CB_REAL* p) { return *(const CB_VEC*)p; }
static inline void CB_(cb_store)(CB_REAL* p, CB_VEC v) { *(CB_VEC*)p = v; }

#if CB_MASKED_EDGES
/* The first `lanes` values of a vector at p (0 <= lanes <= CB_LANES): AVX-512's
 * masked load and store, which neither read nor write past them. */
static inline __attribute__((always_inline)) CB_VEC CB_(cb_load_first)(const CB_REAL* p,
                                                                        ptrdiff_t lanes) {
    const unsigned mask = lanes >= CB_LANES ? ~0u : (1u << lanes) - 1;
    if (sizeof(CB_REAL) == 8)
        return (CB_VEC)_mm512_maskz_loadu_pd((__mmask8)mask, (const void*)p);
    return (CB_VEC)_mm512_maskz_loadu_ps((__mmask16)mask, (const void*)p);
}
static inline __attribute__((always_inline)) void CB_(cb_store_first)(CB_REAL* p, CB_VEC v,
                                                                       ptrdiff_t lanes) {
    const unsigned mask = lanes >= CB_LANES ? ~0u : (1u << lanes) - 1;
    if (sizeof(CB_REAL) == 8)
        _mm512_mask_storeu_pd((void*)p, (__mmask8)mask, (__m512d)v);
    else
        _mm512_mask_storeu_ps((void*)p, (__mmask16)mask, (__m512)v);
}
#endif

static inline void CB_(cb_store_corner)(const CB_REAL* tile, ptrdiff_t tile_ld, CB_REAL* C,
                                        ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols,
                                        int overwrite) {
    for (ptrdiff_t i = 0; i < rows; i++)
        for (ptrdiff_t j = 0; j < cols; j++)
            C[i * ldc + j] = overwrite ? tile[i * tile_ld + j] : C[i * ldc + j] + tile[i * tile_ld + j];
}

/* v into the first `lanes` values at out (= or, without overwrite, +=): by
 * the masked load and store where the build has them, else through a local
 * vector value by value. */
static inline __attribute__((always_inline)) void
CB_(cb_put_first)(CB_REAL* out, CB_VEC v, ptrdiff_t lanes, int overwrite) {
#if CB_MASKED_EDGES
    if (!overwrite)
        v += CB_(cb_load_first)(out, lanes);
    CB_(cb_store_first)(out, v, lanes);
#else
    CB_REAL part[CB_LANES];
    CB_(cb_store)(part, v);
    CB_(cb_store_corner)(part, CB_LANES, out, 1, 1, lanes, overwrite);
#endif
}

/* Asks for the lines of `count` values `ahead` values past p, to read: the
 * first and the last, which may be on the next line. The address is formed
 * as an integer: it may lie past the end of p's buffer, where C does not
 * let a pointer point (the request itself never faults). */
static inline void CB_(cb_prefetch_ahead)(const CB_REAL* p, ptrdiff_t ahead, ptrdiff_t count) {
    uintptr_t first = (uintptr_t)p + (uintptr_t)(ahead * (ptrdiff_t)sizeof(CB_REAL));
    __builtin_prefetch((const void*)first, 0, 3);
    __builtin_prefetch((const void*)(first + (uintptr_t)((count - 1) * (ptrdiff_t)sizeof(CB_REAL))),
                       0, 3);
}

/* Asks for the lines of one row of a tile of C (its first and last value). */
static inline void CB_(cb_prefetch_row)(const CB_REAL* row, ptrdiff_t cols) {
    __builtin_prefetch(row, 1);
    __builtin_prefetch(row + cols - 1, 1);
}

/* The most rows a tile body is given: a register tile's, or the narrow
 * kernel's columns of B (it is a tile of C transposed, see cb_narrow_rows). */
#define CB_TILE_ROWS (CB_MR > CB_NARROW_COLS ? CB_MR : CB_NARROW_COLS)
_Static_assert(CB_NARROW_NV <= CB_NV, "the narrow kernel's vectors fit a tile row");
/* A group of up to CB_NARROW_COLS columns always finds a height, and every
 * height fits a tile body. */
#define CB_IS_NARROW_COLS(H) +((H) == CB_NARROW_COLS)
#define CB_PAST_TILE_ROWS(H) +((H) > CB_TILE_ROWS)
_Static_assert(0 CB_NARROW_HEIGHTS(CB_IS_NARROW_COLS) == 1 &&
               0 CB_NARROW_HEIGHTS(CB_PAST_TILE_ROWS) == 0,
               "CB_NARROW_HEIGHTS holds CB_NARROW_COLS, and none above CB_TILE_ROWS");
#define CB_PAST_NARROW_COLS(H) +((H) > CB_NARROW_COLS)
_Static_assert(0 CB_SHORT_ROWS_HEIGHTS(CB_IS_NARROW_COLS) == 1 &&
               0 CB_SHORT_ROWS_HEIGHTS(CB_PAST_NARROW_COLS) == 0,
               "CB_SHORT_ROWS_HEIGHTS holds CB_NARROW_COLS, and none above it");
#undef CB_IS_NARROW_COLS
#undef CB_PAST_TILE_ROWS
#undef CB_PAST_NARROW_COLS

#if CB_ASM_STEPS
#include "tile_steps_avx512.h"
#endif

/* The tile body: HEIGHT x (WIDTH vectors), both compile-time constants at every
 * call; LAYOUT: how it reads A (tiles.h, CB_A_ROWS...). */
static inline __attribute__((always_inline)) void
CB_(cb_tile)(const int HEIGHT, const int WIDTH, const int LAYOUT, ptrdiff_t kc,
             const CB_REAL* a, ptrdiff_t a_rs, ptrdiff_t a_cs,
             const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,
             ptrdiff_t rows, ptrdiff_t cols, int overwrite) {
    const int PACKED = LAYOUT == CB_A_PACKED;
    CB_VEC acc[CB_TILE_ROWS][CB_NV];
    const CB_REAL* row[CB_TILE_ROWS];    /* CB_A_ROWS: where each row starts */
    CB_UNROLLED for (int i = 0; i < HEIGHT; i++) {
        row[i] = a + (i < rows ? i : rows - 1) * a_rs;
        CB_UNROLLED for (int j = 0; j < WIDTH; j++)
            acc[i][j] = (CB_VEC){0};
    }
    /* A large C is not in cache: its lines are asked for before the final
     * stores need them. A packed tile streams its A and B slivers through
     * L1, which would evict them again if asked for at the start: it asks
     * for one row of C per step from CB_C_PREFETCH_STEPS steps before its
     * last (all rows at once left the last ones to miss: 4-12 % slower in
     * float64 on the Zen 5; the AVX2 row of the table asks from the first
     * step, faster on a Zen 3). Tiles that read A in place serve small
     * products, which were faster asking at the start. */
    const ptrdiff_t prefetch_at = kc > CB_C_PREFETCH_STEPS ? kc - CB_C_PREFETCH_STEPS : 0;
    if (!PACKED)
        for (ptrdiff_t i = 0; i < rows; i++)
            CB_(cb_prefetch_row)(C + i * ldc, cols);
    ptrdiff_t k = 0;
    ptrdiff_t p = 0;
#if CB_ASM_STEPS
    if (PACKED && HEIGHT == CB_MR && WIDTH == CB_NV && a_cs == CB_MR && kc >= 2
        && !cb_halves_512) {
        /* The steps in pairs (an odd last one below); C's rows asked for
         * two a pair from the pair of step prefetch_at on. */
        const ptrdiff_t pairs = kc / 2;
        const ptrdiff_t before = prefetch_at / 2 < pairs ? prefetch_at / 2 : pairs;
        const ptrdiff_t asking = (rows + 1) / 2 < pairs - before ? (rows + 1) / 2 : pairs - before;
        CB_VEC out[CB_MR][CB_NV] __attribute__((aligned(64)));
        CB_(cb_packed_steps)(before, asking, pairs - before - asking, a, b, b_rs, C, ldc,
                             (cols - 1) * (ptrdiff_t)sizeof(CB_REAL), &out[0][0]);
        CB_UNROLLED for (int i = 0; i < CB_MR; i++)
            CB_UNROLLED for (int j = 0; j < CB_NV; j++)
                acc[i][j] = out[i][j];
        p = 2 * pairs;
        k = p * a_cs;
        b += p * b_rs;
    }
#endif
    for (; p < kc; p++) {
        if (PACKED && (size_t)(p - prefetch_at) < (size_t)rows)
            CB_(cb_prefetch_row)(C + (p - prefetch_at) * ldc, cols);
        /* The A sliver streams from L2 through L1 once per tile, and a B
         * sliver read in place has its steps a row of B apart: the hardware
         * prefetchers leave both late on an Intel Xeon. (A packed B sliver
         * is asked for too: neutral there, and no test in the loop.) */
#if CB_A_PREFETCH_STEPS > 0
        if (PACKED)
            CB_(cb_prefetch_ahead)(a + k, CB_A_PREFETCH_STEPS * a_cs, CB_MR);
#endif
#if CB_B_PREFETCH_STEPS > 0
        if (PACKED)
            CB_(cb_prefetch_ahead)(b, CB_B_PREFETCH_STEPS * b_rs, CB_NV * CB_LANES);
#endif
        CB_VEC bv[CB_NV];
        for (int j = 0; j < WIDTH; j++)
            bv[j] = CB_(cb_load)(b + j * CB_LANES);
        for (int i = 0; i < HEIGHT; i++) {
            /* A packed sliver's rows are adjacent: one pointer, constant offsets. */
            CB_VEC ai = CB_(cb_splat)(LAYOUT != CB_A_ROWS ? a[k + i] : row[i][k]);
            for (int j = 0; j < WIDTH; j++)
                acc[i][j] += ai * bv[j];
        }
        k += a_cs;
        b += b_rs;
    }
    if (cols == WIDTH * CB_LANES) {
        /* Whole rows (a full tile, or the last rows of C): straight into C. */
        CB_UNROLLED for (int i = 0; i < HEIGHT; i++) {
            if (i >= rows)
                break;
            CB_UNROLLED for (int j = 0; j < WIDTH; j++) {
                CB_REAL* out = C + i * ldc + j * CB_LANES;
                CB_VEC result = acc[i][j];
                if (!overwrite)
                    result += CB_(cb_load)(out);
                CB_(cb_store)(out, result);
            }
        }
        return;
    }
#if CB_MASKED_EDGES
    /* Tiles cut by the last columns: each vector of a row stored with a mask
     * of its columns in C. */
    CB_UNROLLED for (int i = 0; i < HEIGHT; i++) {
        if (i >= rows)
            break;
        CB_UNROLLED for (int j = 0; j < WIDTH; j++) {
            const ptrdiff_t lanes = cols - j * CB_LANES;
            if (lanes <= 0)
                break;
            CB_(cb_put_first)(C + i * ldc + j * CB_LANES, acc[i][j], lanes, overwrite);
        }
    }
    return;
#endif
    /* Tiles cut by the last columns: the whole tile into a local one, at
     * constant indices, then its corner into C. Storing the whole vectors
     * straight into C and only the partial one through a local vector (the
     * cut column's index known at run time) made gcc keep every tile's
     * accumulators on the stack: each tile, cut or not, wrote them there
     * and read them back, 150 cycles a tile on a Zen 4, 8 % of a 64^3
     * product (bench/README.md, "Kept: accumulators in registers"). */
    CB_REAL part[CB_TILE_ROWS][CB_NV * CB_LANES];
    CB_UNROLLED for (int i = 0; i < HEIGHT; i++)
        CB_UNROLLED for (int j = 0; j < WIDTH; j++)
            CB_(cb_store)(&part[i][j * CB_LANES], acc[i][j]);
    CB_(cb_store_corner)(&part[0][0], CB_NV * CB_LANES, C, ldc, rows, cols, overwrite);
}

/* One function per (height, width) the table lists, for each A layout. */
#define CB_DEFINE_TILE(H, W)                                                                  \
    static void CB_CAT(CB_(cb_tile_packed), H##x##W)(ptrdiff_t kc, const CB_REAL* a,          \
        ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,          \
        ptrdiff_t rows, ptrdiff_t cols, int overwrite) {                                      \
        CB_(cb_tile)(H, W, CB_A_PACKED, kc, a, 1, a_cs, b, b_rs, C, ldc, rows, cols,          \
                     overwrite); }                                                            \
    static void CB_CAT(CB_(cb_tile_strided), H##x##W)(ptrdiff_t kc, const CB_REAL* a,         \
        ptrdiff_t a_rs, ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C,         \
        ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols, int overwrite) {                       \
        CB_(cb_tile)(H, W, CB_A_ROWS, kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols,         \
                     overwrite); }                                                            \
    static void CB_CAT(CB_(cb_tile_adjacent), H##x##W)(ptrdiff_t kc, const CB_REAL* a,        \
        ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,          \
        ptrdiff_t cols, int overwrite) {                                                      \
        CB_(cb_tile)(H, W, CB_A_ADJACENT, kc, a, 1, a_cs, b, b_rs, C, ldc, H, cols,           \
                     overwrite); }
#define CB_DEFINE_TILES_OF_HEIGHT(H) CB_WIDTHS(CB_DEFINE_TILE, H)
CB_HEIGHTS(CB_DEFINE_TILES_OF_HEIGHT)
#undef CB_DEFINE_TILES_OF_HEIGHT
#undef CB_DEFINE_TILE

/* An edge sliver of r rows takes the smallest height >= r, and one of c
 * columns the narrowest width >= c (an output layer of 10 in float64 on AVX2
 * is 8 + 2 columns: a two-vector tile and a one-vector one, not 8 + 8). */
#define CB_PICK_WIDTH(H, W)                                                                   \
    if (width <= W) {                                                                         \
        CB_PICKED(H, W);                                                                      \
        return;                                                                               \
    }
#define CB_PICK_HEIGHT(H)                                                                     \
    if (rows <= H) {                                                                          \
        CB_WIDTHS(CB_PICK_WIDTH, H)                                                           \
    }

static void CB_(cb_microkernel_packed)(ptrdiff_t kc, const CB_REAL* a, const CB_REAL* b,
                                       ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,
                                       ptrdiff_t rows, ptrdiff_t cols, int overwrite) {
    const ptrdiff_t width = (cols + CB_LANES - 1) / CB_LANES;
#define CB_PICKED(H, W) \
    CB_CAT(CB_(cb_tile_packed), H##x##W)(kc, a, CB_MR, b, b_rs, C, ldc, rows, cols, overwrite)
    CB_HEIGHTS(CB_PICK_HEIGHT)
#undef CB_PICKED
}

static void CB_(cb_microkernel)(ptrdiff_t kc, const CB_REAL* a, ptrdiff_t a_rs, ptrdiff_t a_cs,
                                const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,
                                ptrdiff_t rows, ptrdiff_t cols, int overwrite) {
    const ptrdiff_t width = (cols + CB_LANES - 1) / CB_LANES;
#define CB_PICKED(H, W)                                                                       \
    if (CB_ADJACENT_TILES && a_rs == 1 && rows == H)                                          \
        CB_CAT(CB_(cb_tile_adjacent), H##x##W)(kc, a, a_cs, b, b_rs, C, ldc, cols, overwrite); \
    else                                                                                      \
        CB_CAT(CB_(cb_tile_strided), H##x##W)(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols,  \
                                              overwrite)
    CB_HEIGHTS(CB_PICK_HEIGHT)
#undef CB_PICKED
}
#undef CB_PICK_HEIGHT
#undef CB_PICK_WIDTH

/* Packing that transposes: W read as Wᵀ (B of δ@Wᵀ) and X read row by row
 * (A of X@W) have their K steps along memory, while a packed sliver wants
 * each step's NR (or MR) values side by side. Blocks of lanes x lanes are
 * loaded as vectors along K and transposed in registers; element by element
 * the packing of Wᵀ cost as much as the FMAs of a 64-row δ@Wᵀ. */
typedef CB_INDEX CB_(cb_index) __attribute__((vector_size(CB_VECTOR_BYTES)));

static inline __attribute__((always_inline)) void CB_(cb_transpose)(CB_VEC* r) {
    /* log2(lanes) rounds of interleaving row i with row i + lanes/2 turn
     * rows into columns: afterwards r[q][i] holds what r[i][q] held. */
    for (int round = 1; round < CB_LANES_N; round *= 2) {
        CB_VEC t[CB_LANES_N];
        for (int i = 0; i < CB_LANES_N / 2; i++) {
            t[2 * i] = CB_SHUFFLE(CB_(cb_index), r[i], r[i + CB_LANES_N / 2],
                                  CB_CAT2(CB_INTERLEAVE_LO_, CB_LANES_N));
            t[2 * i + 1] = CB_SHUFFLE(CB_(cb_index), r[i], r[i + CB_LANES_N / 2],
                                      CB_CAT2(CB_INTERLEAVE_HI_, CB_LANES_N));
        }
        for (int i = 0; i < CB_LANES_N; i++)
            r[i] = t[i];
    }
}

static void CB_(cb_pack_a_transposed)(ptrdiff_t kc, const CB_REAL* A, ptrdiff_t rsa,
                                      CB_REAL* packed) {
    ptrdiff_t p = 0;
    /* Rows go in groups of one vector's lanes (the last group repeats row
     * MR-1). A group that ends past row MR-1 still stores whole vectors: the
     * extra lanes land on the next step's first rows, which the first group
     * overwrites afterwards (groups run last to first); only the sliver's
     * last step stores lane by lane. */
    for (; p + CB_LANES_N <= kc; p += CB_LANES_N) {
        for (int group = (CB_MR - 1) / CB_LANES_N * CB_LANES_N; group >= 0; group -= CB_LANES_N) {
            CB_VEC r[CB_LANES_N];
            for (int i = 0; i < CB_LANES_N; i++)
                r[i] = CB_(cb_load)(A + (group + i < CB_MR ? group + i : CB_MR - 1) * rsa + p);
            CB_(cb_transpose)(r);
            for (int q = 0; q < CB_LANES_N; q++) {
                CB_REAL* out = packed + (p + q) * CB_MR + group;
                if (group + CB_LANES_N <= CB_MR || p + q + 1 < kc)
                    CB_(cb_store)(out, r[q]);
                else
                    for (int i = 0; i < CB_MR - group; i++)
                        out[i] = r[q][i];
            }
        }
    }
    for (; p < kc; p++)
        for (int i = 0; i < CB_MR; i++)
            packed[p * CB_MR + i] = A[i * rsa + p];
}

static void CB_(cb_pack_b_transposed)(ptrdiff_t kc, const CB_REAL* B, ptrdiff_t csb,
                                      CB_REAL* packed) {
    const ptrdiff_t nr = CB_NV * CB_LANES_N;
    ptrdiff_t p = 0;
    for (; p + CB_LANES_N <= kc; p += CB_LANES_N) {
        for (int group = 0; group < nr; group += CB_LANES_N) {
            CB_VEC r[CB_LANES_N];
            for (int j = 0; j < CB_LANES_N; j++)
                r[j] = CB_(cb_load)(B + (group + j) * csb + p);
            CB_(cb_transpose)(r);
            for (int q = 0; q < CB_LANES_N; q++)
                CB_(cb_store)(packed + (p + q) * nr + group, r[q]);
        }
    }
    for (; p < kc; p++)
        for (ptrdiff_t j = 0; j < nr; j++)
            packed[p * nr + j] = B[j * csb + p];
}

/* Packing whose K steps are a stride apart, with a step's values side by
 * side (B of X@W, A of Xᵀ@δ): a copy of constant width per step, in whole
 * vectors and, for a width that is not a multiple of the lanes (float32's
 * 12 rows of A in 16 lanes), a copy of constant size for the rest, which gcc
 * also does with vectors. Left to itself, gcc copied float32's 128 bytes
 * per step of B with a call to memmove, and A's twelve values one by one.
 * Several adjacent slivers go step by step, step p of every one before step
 * p + 1: each step of the operand is then read along memory, as the
 * hardware prefetchers follow it, where one sliver's steps are a stride
 * apart, each a new page for a wide operand (bench/README.md, "Kept: panels
 * packed a step at a time across slivers"). */
static inline __attribute__((always_inline)) void
CB_(cb_pack_steps)(const int WIDTH, ptrdiff_t kc, ptrdiff_t slivers,
                   const CB_REAL* __restrict__ source, ptrdiff_t stride,
                   CB_REAL* __restrict__ packed) {
    const int whole = WIDTH / CB_LANES * CB_LANES;
    for (ptrdiff_t p = 0; p < kc; p++) {
        for (ptrdiff_t s = 0; s < slivers; s++) {
            CB_REAL* out = packed + s * WIDTH * kc + p * WIDTH;
            const CB_REAL* in = source + p * stride + s * WIDTH;
            for (int j = 0; j < whole; j += CB_LANES)
                CB_(cb_store)(out + j, CB_(cb_load)(in + j));
            if (whole < WIDTH)
                __builtin_memcpy(out + whole, in + whole, (size_t)(WIDTH - whole) * sizeof(CB_REAL));
        }
    }
}
static void CB_(cb_pack_a_panel_steps)(ptrdiff_t kc, ptrdiff_t slivers, const CB_REAL* A,
                                       ptrdiff_t csa, CB_REAL* packed) {
    CB_(cb_pack_steps)(CB_MR, kc, slivers, A, csa, packed);
}
static void CB_(cb_pack_b_panel_steps)(ptrdiff_t kc, ptrdiff_t slivers, const CB_REAL* B,
                                       ptrdiff_t rsb, CB_REAL* packed) {
    CB_(cb_pack_steps)(CB_NV * CB_LANES, kc, slivers, B, rsb, packed);
}

/* The rows of a narrow product that fill no tile of cb_narrow_rows (fewer
 * than its CB_NARROW_NV vectors: Xᵀ@δ of a layer of a few inputs, or the
 * rows a taller one leaves over; and the columns of X@W on a few rows, up
 * to a tile's, as the rows of Cᵀ, gemm.pxi's rows_of_ct): as there,
 * vectors run down the rows of C, here V of them, the last one partial
 * unless the rows fill it. It reads on past the product's
 * last row, into A's next step, and those lanes are never stored; the
 * steps where it would read past the end of A take their row from a
 * zero-padded copy. With one or two vectors a column, each accumulator's
 * FMA would wait on the one before: step p adds into set p % SETS of
 * them, the steps past the last whole group of SETS into set 0, and the
 * sets are added in a fixed order at the end, so the sums depend on the
 * shape and A's row stride alone (never on a team of threads). */
#define CB_SHORT_ROWS_MAX_SETS 4
#define CB_SHORT_ROWS_ACCUMULATORS (CB_VECTOR_REGISTERS >= 32 ? 24 : 12)
#define CB_SHORT_ROWS_SETS(H, V)                                                \
    (4 * (H) * (V) <= CB_SHORT_ROWS_ACCUMULATORS ? 4                            \
     : 2 * (H) * (V) <= CB_SHORT_ROWS_ACCUMULATORS ? 2 : 1)

static inline __attribute__((always_inline)) void
CB_(cb_short_rows_step)(const int H, const int V, CB_VEC acc[][CB_NARROW_NV],
                        const CB_REAL* a, const CB_REAL* const* column, ptrdiff_t at) {
    CB_VEC av[CB_NARROW_NV];
    CB_UNROLLED for (int v = 0; v < V; v++) {
        /* One load for all H columns (folded into each FMA, it was read H
         * times, most often across two cache lines). */
        av[v] = CB_(cb_load)(a + v * CB_LANES);
        CB_IN_REGISTER(av[v]);
    }
    CB_UNROLLED for (int c = 0; c < H; c++) {
        CB_VEC bc = CB_(cb_splat)(column[c][at]);
        CB_UNROLLED for (int v = 0; v < V; v++)
            acc[c][v] += bc * av[v];
    }
}

static inline __attribute__((always_inline)) void
CB_(cb_short_rows_of)(const int H, const int V, ptrdiff_t rows, ptrdiff_t K, const CB_REAL* a,
                      ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t rsb, ptrdiff_t csb,
                      ptrdiff_t cols, CB_REAL* C, ptrdiff_t ldc, ptrdiff_t c_cs,
                      int overwrite) {
    const int SETS = CB_SHORT_ROWS_SETS(H, V);
    CB_VEC acc[CB_SHORT_ROWS_MAX_SETS][CB_NARROW_COLS][CB_NARROW_NV];
    const CB_REAL* column[CB_NARROW_COLS];   /* past `cols`: the last column again */
    CB_UNROLLED for (int c = 0; c < H; c++) {
        column[c] = b + (c < cols ? c : cols - 1) * csb;
        CB_UNROLLED for (int s = 0; s < SETS; s++)
            CB_UNROLLED for (int v = 0; v < V; v++)
                acc[s][c][v] = (CB_VEC){0};
    }
    /* Step p reads A up to p a_cs + V lanes - 1, within A while that is at
     * most its last value, (K - 1) a_cs + rows - 1. */
    const ptrdiff_t past_row = V * CB_LANES - rows;
    ptrdiff_t in_place = past_row <= 0 ? K : a_cs > 0 ? K - (past_row + a_cs - 1) / a_cs : 0;
    if (in_place < 0)
        in_place = 0;
    ptrdiff_t p = 0;
    for (; p + SETS <= in_place; p += SETS)
        CB_UNROLLED for (int s = 0; s < SETS; s++)
            CB_(cb_short_rows_step)(H, V, acc[s], a + (p + s) * a_cs, column, (p + s) * rsb);
    for (; p < K; p++) {
        CB_REAL padded[CB_NARROW_NV * CB_LANES];
        const CB_REAL* step = a + p * a_cs;
        if (p >= in_place) {
            for (ptrdiff_t i = 0; i < V * CB_LANES; i++)
                padded[i] = i < rows ? step[i] : 0;
            step = padded;
        }
        CB_(cb_short_rows_step)(H, V, acc[0], step, column, p * rsb);
    }
    CB_REAL t[CB_NARROW_COLS][CB_NARROW_NV * CB_LANES];
    CB_UNROLLED for (int c = 0; c < H; c++)
        CB_UNROLLED for (int v = 0; v < V; v++) {
            CB_VEC total = acc[0][c][v];
            if (SETS == 4)
                total = (acc[0][c][v] + acc[1][c][v]) + (acc[2][c][v] + acc[3][c][v]);
            else if (SETS == 2)
                total = acc[0][c][v] + acc[1][c][v];
            CB_(cb_store)(&t[c][v * CB_LANES], total);
        }
    for (ptrdiff_t i = 0; i < rows; i++)
        for (ptrdiff_t c = 0; c < cols; c++)
            C[i * ldc + c * c_cs] = overwrite ? t[c][i] : C[i * ldc + c * c_cs] + t[c][i];
}

/* Narrow products with op(A)'s rows adjacent in memory (op(A) = Xᵀ, the
 * dW = A_prevᵀ δ of an output layer of <= 10): vectors run down the rows of
 * C, so every lane holds a real result; each step loads NARROW_NV vectors of
 * A in place and broadcasts one value of each of `cols` columns of B (a
 * group takes the lowest tile of CB_NARROW_HEIGHTS that holds its columns,
 * and repeats its last column up to that height). */
static void CB_(cb_narrow_rows)(ptrdiff_t K, const CB_REAL* a, ptrdiff_t a_cs,
                                const CB_REAL* b, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t cols,
                                CB_REAL* C, ptrdiff_t ldc, int overwrite) {
    /* Cᵀ's tile: the columns of B take the place of A's rows (column j at
     * b[j*csb + p*rsb]) and NARROW_NV vectors of A's adjacent rows the place
     * of the B sliver. Row j of t is column j of C. */
    enum { ROWS_OF_C = CB_NARROW_NV * CB_VECTOR_BYTES / sizeof(CB_REAL) };
    _Static_assert(CB_NARROW_SETS_MAX_COLS <= CB_NARROW_COLS, "a tile in sets is a narrow tile");
    if (cols <= CB_NARROW_SETS_MAX_COLS) {
        CB_(cb_short_rows_of)(CB_NARROW_SETS_MAX_COLS, CB_NARROW_NV, ROWS_OF_C, K, a, a_cs, b,
                              rsb, csb, cols, C, ldc, 1, overwrite);
        return;
    }
    CB_REAL t[CB_TILE_ROWS][ROWS_OF_C];
    /* The lowest tile that holds the group's columns, rather than one that
     * computes repeats of its last column. */
#define CB_NARROW_OF_HEIGHT(H)                                                                \
    else if (cols <= H)                                                                       \
        CB_(cb_tile)(H, CB_NARROW_NV, CB_A_ROWS, K, b, csb, rsb, a, a_cs, &t[0][0], ROWS_OF_C,  \
                     cols, ROWS_OF_C, 1);
    if (0) {}
    CB_NARROW_HEIGHTS(CB_NARROW_OF_HEIGHT)
    else
        __builtin_unreachable();   /* cols <= CB_NARROW_COLS, the last height */
#undef CB_NARROW_OF_HEIGHT
    for (ptrdiff_t i = 0; i < ROWS_OF_C; i++)
        for (ptrdiff_t j = 0; j < cols; j++)
            C[i * ldc + j] = overwrite ? t[j][i] : C[i * ldc + j] + t[j][i];
}

static void CB_(cb_narrow_short_rows)(ptrdiff_t rows, ptrdiff_t K, const CB_REAL* a,
                                      ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t rsb,
                                      ptrdiff_t csb, ptrdiff_t cols, CB_REAL* C, ptrdiff_t ldc,
                                      ptrdiff_t c_cs, int overwrite) {
    _Static_assert(CB_NARROW_NV == 2, "the short rows take one or two vectors");
#define CB_SHORT_OF_HEIGHT(H)                                                                 \
    else if (cols <= H) {                                                                     \
        if (rows <= CB_LANES)                                                                 \
            CB_(cb_short_rows_of)(H, 1, rows, K, a, a_cs, b, rsb, csb, cols, C, ldc, c_cs,     \
                                  overwrite);                                                 \
        else                                                                                  \
            CB_(cb_short_rows_of)(H, 2, rows, K, a, a_cs, b, rsb, csb, cols, C, ldc, c_cs,     \
                                  overwrite);                                                 \
    }
    if (0) {}
    CB_SHORT_ROWS_HEIGHTS(CB_SHORT_OF_HEIGHT)
    else
        __builtin_unreachable();   /* cols <= CB_NARROW_COLS, the last height */
#undef CB_SHORT_OF_HEIGHT
}

/* The ten-column tiles (ten_template.h; products of 9 or 10 columns, an
 * output layer of 10 classes), in vectors of at most 8 lanes. A 64-byte build
 * also has them in half vectors, for CPUs that run each 512-bit instruction
 * as two 256-bit halves (AMD Zen 4): there the half-vector tiles need fewer
 * 512-bit shuffles per FMA and ran 1.2-1.4x faster (bench/README.md, "Which
 * engine build", Zen 4); cb_halves_512 picks, at run time. */
#define CB_TEN_VARIANT whole
#define CB_TEN_LANES (CB_LANES_N >= 8 ? 8 : CB_LANES_N)
#define CB_TEN_PAYS (CB_TEN_LANES == CB_LANES_N || CB_TEN_HALF_VECTORS)
#include "ten_template.h"
#if CB_VECTOR_BYTES == 64
#define CB_TEN_VARIANT half
#define CB_TEN_LANES (CB_LANES_N / 2)
#define CB_TEN_PAYS 1
#include "ten_template.h"
#define CB_TEN_(name) (cb_halves_512 ? CB_(name##_half) : CB_(name##_whole))
#else
#define CB_TEN_(name) CB_(name##_whole)
#endif

/* Whether products of 9-10 columns take the ten-column tiles, rather than
 * a tile padded to whole vectors. */
static inline int CB_(cb_ten_pays)(void) { return CB_TEN_(cb_ten_pays)(); }
/* ... and from which depth (K) on. */
static inline ptrdiff_t CB_(cb_ten_min_k)(void) { return CB_TEN_(cb_ten_min_k)(); }
/* Rows of C per ten-column tile. */
static inline ptrdiff_t CB_(cb_ten_rows)(void) { return CB_TEN_(cb_ten_rows)(); }
static inline void CB_(cb_pack_ten)(ptrdiff_t kc, ptrdiff_t cols, const CB_REAL* B, ptrdiff_t rsb,
                                    ptrdiff_t csb, CB_REAL* packed) {
    CB_TEN_(cb_pack_ten)(kc, cols, B, rsb, csb, packed);
}
static inline __attribute__((always_inline)) void
CB_(cb_ten)(ptrdiff_t kc, const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b, CB_REAL* C,
            ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols, int overwrite) {
    CB_TEN_(cb_ten)(kc, a, a_rs, b, C, ldc, rows, cols, overwrite);
}
/* The lanes of the ten-column tiles in use (tile_table). */
static inline ptrdiff_t CB_(cb_ten_lanes)(void) { return CB_TEN_(cb_ten_lanes)(); }
#undef CB_TEN_

/* Many rows of A on a short K times a B of at most a vector's columns (a
 * first layer on a few features, or predict, on many rows; δ@Wᵀ between
 * two narrow hidden layers): all of op(B) in K vectors (zero past `cols`), held beside the
 * rows' accumulators, and CB_TALL_ROWS rows of A at a time, each value
 * broadcast once; K is a literal of each body, so the steps are constant
 * offsets from each row. A register tile of one vector spent a tile's
 * setup, its C requests and its row pointers on a K loop of a few steps
 * (bench/README.md, "Tall products of a few columns"). Each element sums
 * its products in the order of p from 0, as the tiles do. */
static inline __attribute__((always_inline)) void
CB_(cb_tall_rows)(const int STEPS, const int ROWS, const CB_REAL* a, ptrdiff_t a_rs,
                  const CB_VEC* bv, CB_REAL* C, ptrdiff_t ldc, ptrdiff_t cols, int overwrite) {
    CB_VEC acc[CB_TALL_ROWS];
    CB_UNROLLED for (int r = 0; r < ROWS; r++)
        acc[r] = (CB_VEC){0};
    CB_UNROLLED for (int p = 0; p < STEPS; p++)
        CB_UNROLLED for (int r = 0; r < ROWS; r++)
            acc[r] += CB_(cb_splat)(a[r * a_rs + p]) * bv[p];
    CB_UNROLLED for (int r = 0; r < ROWS; r++)
        CB_(cb_put_first)(C + r * ldc, acc[r], cols, overwrite);
}

/* The same for a K past the spelled-out bodies (at most the table's
 * CB_TALL_MAX_K): op(B)'s vector of each step is read from L1, beside the
 * rows' broadcasts, and the rows of the next pass (`next`: this pass's own
 * where none follows) are asked for a line ahead of the steps, which a
 * product beyond L2 otherwise waits on (bench/README.md, "Tall products on
 * a longer K"). The same order of the steps as the bodies above. */
static inline __attribute__((always_inline)) void
CB_(cb_tall_rows_stepped)(ptrdiff_t K, const int ROWS, const CB_REAL* a, const CB_REAL* next,
                          ptrdiff_t a_rs, const CB_VEC* bv, CB_REAL* C, ptrdiff_t ldc,
                          ptrdiff_t cols, int overwrite) {
    CB_VEC acc[CB_TALL_ROWS];
    CB_UNROLLED for (int r = 0; r < ROWS; r++)
        acc[r] = (CB_VEC){0};
    for (ptrdiff_t p = 0; p < K; p++) {
        const CB_VEC step = bv[p];
        if (CB_TALL_PREFETCH && p % (64 / (ptrdiff_t)sizeof(CB_REAL)) == 0)
            CB_UNROLLED for (int r = 0; r < ROWS; r++)
                __builtin_prefetch(next + r * a_rs + p);
        CB_UNROLLED for (int r = 0; r < ROWS; r++)
            acc[r] += CB_(cb_splat)(a[r * a_rs + p]) * step;
    }
    CB_UNROLLED for (int r = 0; r < ROWS; r++)
        CB_(cb_put_first)(C + r * ldc, acc[r], cols, overwrite);
}

/* The first `lanes` values at p, zeros past them, reading nothing past them. */
static inline __attribute__((always_inline)) CB_VEC CB_(cb_get_first)(const CB_REAL* p,
                                                                       ptrdiff_t lanes) {
#if CB_MASKED_EDGES
    return CB_(cb_load_first)(p, lanes);
#else
    CB_REAL part[CB_LANES];
    for (ptrdiff_t l = 0; l < CB_LANES; l++)
        part[l] = l < lanes ? p[l] : 0;
    return CB_(cb_load)(part);
#endif
}

/* A pass of a vector's lanes of rows with C's rows along the vector, for
 * COLS columns (at most half a vector's: the tall kernel's vector of
 * columns would be at least half padding): each block of lanes x lanes
 * values of A (rows by steps; the last block's steps past K loaded as
 * zeros, not read) is transposed in registers, each step's vector of rows
 * meets the step's value of each column of B, broadcast, and the sums are
 * transposed back into rows of C. Each element sums its steps in order
 * from the first, one FMA a step, as the other tall bodies do: the same
 * bits (bench/README.md, "Tall products on a longer K"). */
static inline __attribute__((always_inline)) void
CB_(cb_tall_across_rows)(const int COLS, ptrdiff_t K, const CB_REAL* a, ptrdiff_t a_rs,
                         const CB_REAL* bp, CB_REAL* C, ptrdiff_t ldc, int overwrite) {
    CB_VEC acc[CB_LANES_N];
    CB_UNROLLED for (int j = 0; j < COLS; j++)
        acc[j] = (CB_VEC){0};
    for (ptrdiff_t p = 0; p < K; p += CB_LANES_N) {
        const ptrdiff_t steps = K - p < CB_LANES_N ? K - p : CB_LANES_N;
        CB_VEC r[CB_LANES_N];
        if (steps == CB_LANES_N)
            CB_UNROLLED for (int q = 0; q < CB_LANES_N; q++)
                r[q] = CB_(cb_load)(a + q * a_rs + p);
        else
            CB_UNROLLED for (int q = 0; q < CB_LANES_N; q++)
                r[q] = CB_(cb_get_first)(a + q * a_rs + p, steps);
        CB_(cb_transpose)(r);
        CB_UNROLLED for (int t = 0; t < CB_LANES_N; t++)
            if (t < steps)
                CB_UNROLLED for (int j = 0; j < COLS; j++)
                    acc[j] += r[t] * CB_(cb_splat)(bp[(p + t) * COLS + j]);
    }
    CB_UNROLLED for (int j = COLS; j < CB_LANES_N; j++)
        acc[j] = (CB_VEC){0};
    CB_(cb_transpose)(acc);
    CB_UNROLLED for (int q = 0; q < CB_LANES_N; q++)
        CB_(cb_put_first)(C + q * ldc, acc[q], COLS, overwrite);
}

/* Whether cb_tall takes `rows` rows of `cols` columns on K steps with the
 * rows along the vector (cb_tall_across_rows), a vector's lanes of them at
 * a time; gemm.pxi's rule asks it of the whole product. */
static inline int CB_(cb_tall_across_fits)(ptrdiff_t rows, ptrdiff_t K, ptrdiff_t cols) {
    return CB_TALL_ACROSS && CB_LANES_N >= 8 && K > CB_TALL_SPELLED_K && cols >= 2
           && cols <= CB_LANES / 2 && rows >= CB_LANES;
}

#define CB_TALL_ONE(K) +1
_Static_assert(0 CB_TALL_STEPS(CB_TALL_ONE) == CB_TALL_SPELLED_K,
               "cb_tall spells out its bodies for K of 1 to CB_TALL_SPELLED_K");
static void CB_(cb_tall)(ptrdiff_t rows, ptrdiff_t K, const CB_REAL* a, ptrdiff_t a_rs,
                         const CB_REAL* b, ptrdiff_t rsb, ptrdiff_t csb, ptrdiff_t cols,
                         CB_REAL* C, ptrdiff_t ldc, int overwrite) {
    ptrdiff_t i = 0;
#if CB_LANES_N >= 8   /* (builds of fewer lanes have no tall products: CB_TALL_MAX_K 0) */
    if (CB_(cb_tall_across_fits)(rows, K, cols)) {
        /* Passes of a vector's lanes of rows across; the rows left, below. */
        CB_REAL bp[(CB_TALL_MAX_K > CB_TALL_SPELLED_K ? CB_TALL_MAX_K : CB_TALL_SPELLED_K)
                   * CB_LANES / 2];
        for (ptrdiff_t p = 0; p < K; p++)
            for (ptrdiff_t j = 0; j < cols; j++)
                bp[p * cols + j] = b[p * rsb + j * csb];
#define CB_TALL_ACROSS_CASE(COLS)                                                            \
        case COLS:                                                                           \
            for (; i + CB_LANES <= rows; i += CB_LANES)                                      \
                CB_(cb_tall_across_rows)(COLS, K, a + i * a_rs, a_rs, bp, C + i * ldc, ldc,  \
                                         overwrite);                                         \
            break;
        switch (cols) {
        CB_TALL_ACROSS_CASE(2) CB_TALL_ACROSS_CASE(3) CB_TALL_ACROSS_CASE(4)
#if CB_LANES_N > 8
        CB_TALL_ACROSS_CASE(5) CB_TALL_ACROSS_CASE(6) CB_TALL_ACROSS_CASE(7)
        CB_TALL_ACROSS_CASE(8)
#endif
        default:
            break;
        }
#undef CB_TALL_ACROSS_CASE
    }
#endif
    if (i == rows)
        return;
    /* op(B) for the rows left: its steps as vectors of the columns, zero past them */
    CB_VEC bv[CB_TALL_MAX_K > CB_TALL_SPELLED_K ? CB_TALL_MAX_K : CB_TALL_SPELLED_K];
    for (ptrdiff_t p = 0; p < K; p++) {
        CB_REAL step[CB_LANES];
        for (ptrdiff_t j = 0; j < CB_LANES; j++)
            step[j] = j < cols ? b[p * rsb + j * csb] : 0;
        bv[p] = CB_(cb_load)(step);
    }
    if (K > CB_TALL_SPELLED_K) {
        for (; i + CB_TALL_ROWS <= rows; i += CB_TALL_ROWS) {
            const ptrdiff_t next = i + 2 * CB_TALL_ROWS <= rows ? i + CB_TALL_ROWS : i;
            CB_(cb_tall_rows_stepped)(K, CB_TALL_ROWS, a + i * a_rs, a + next * a_rs, a_rs, bv,
                                      C + i * ldc, ldc, cols, overwrite);
        }
        for (; i < rows; i++)
            CB_(cb_tall_rows_stepped)(K, 1, a + i * a_rs, a + i * a_rs, a_rs, bv, C + i * ldc,
                                      ldc, cols, overwrite);
        return;
    }
#define CB_TALL_CASE(STEPS)                                                                  \
    case STEPS:                                                                              \
        for (; i + CB_TALL_ROWS <= rows; i += CB_TALL_ROWS)                                  \
            CB_(cb_tall_rows)(STEPS, CB_TALL_ROWS, a + i * a_rs, a_rs, bv, C + i * ldc, ldc, \
                              cols, overwrite);                                              \
        for (; i < rows; i++)                                                                \
            CB_(cb_tall_rows)(STEPS, 1, a + i * a_rs, a_rs, bv, C + i * ldc, ldc, cols,      \
                              overwrite);                                                    \
        break;
    switch (K) {
    CB_TALL_STEPS(CB_TALL_CASE)
    default:
        __builtin_unreachable();   /* gemm.pxi gives 1 <= K <= CB_TALL_MAX_K */
    }
#undef CB_TALL_CASE
}
#undef CB_TALL_ONE

/* A few rows of A times a B whose rows are adjacent in memory (X@W with one
 * to a few samples: predict on one input). A register tile reads B a sliver
 * of NR columns at a time, one whole row of B apart at each step: on a wide
 * B not in L1 every step is a new page, which no hardware prefetcher
 * follows (1024x1024 float64 at one row: 7 GB/s, 0.12x numpy.matmul's
 * matrix-vector product). Here B is read as it lies, CB_FEW_ROWS_STEPS rows
 * at a time, each along CB_FEW_ROWS_COLS adjacent values, and those columns
 * of C (in L1) take each group of steps in one pass; B is read once for
 * every CB_FEW_ROWS rows of A. Each element of C still sums its products in
 * the order of p. */
#define CB_FEW_ROWS_COLS ((ptrdiff_t)(2048 / sizeof(CB_REAL)))   /* 2 KB of each row of B */
/* Steps of B per pass for ROWS rows of A: their broadcasts, a vector of B
 * per step and one of C fit the register file (CB_VECTOR_REGISTERS). One
 * row has registers for twice the steps where there are 32: C is loaded
 * and stored half as often. */
#define CB_FEW_ROWS_MAX_STEPS 8
#define CB_FEW_ROWS_STEPS(ROWS)                                                 \
    (CB_VECTOR_REGISTERS >= 32 ? ((ROWS) == 1 ? 8 : 4)                          \
     : (ROWS) * 4 + 4 + 1 <= CB_VECTOR_REGISTERS ? 4 : 2)

static inline __attribute__((always_inline)) void
CB_(cb_few_rows_steps)(const int ROWS, const int STEPS, ptrdiff_t width, const CB_REAL* a,
                       ptrdiff_t a_rs, ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs,
                       CB_REAL* C, ptrdiff_t ldc) {
    /* C[:ROWS, :width] += Σ over STEPS steps (from a and b) of a[i, q] b[q, :]. */
    CB_REAL x[CB_FEW_ROWS][CB_FEW_ROWS_MAX_STEPS];
    CB_VEC xv[CB_FEW_ROWS][CB_FEW_ROWS_MAX_STEPS];
    CB_UNROLLED for (int i = 0; i < ROWS; i++)
        CB_UNROLLED for (int q = 0; q < STEPS; q++) {
            x[i][q] = a[i * a_rs + q * a_cs];
            xv[i][q] = CB_(cb_splat)(x[i][q]);
        }
    const ptrdiff_t whole = width - width % CB_LANES;
    ptrdiff_t j = 0;
    for (; j < whole; j += CB_LANES) {
        CB_VEC bv[CB_FEW_ROWS_MAX_STEPS];
        CB_UNROLLED for (int q = 0; q < STEPS; q++)
            bv[q] = CB_(cb_load)(b + q * b_rs + j);
        CB_UNROLLED for (int i = 0; i < ROWS; i++) {
            CB_VEC c = CB_(cb_load)(C + i * ldc + j);
            CB_UNROLLED for (int q = 0; q < STEPS; q++)
                c += xv[i][q] * bv[q];
            CB_(cb_store)(C + i * ldc + j, c);
        }
    }
    for (; j < width; j++)
        CB_UNROLLED for (int i = 0; i < ROWS; i++) {
            CB_REAL c = C[i * ldc + j];
            CB_UNROLLED for (int q = 0; q < STEPS; q++)
                c += x[i][q] * b[q * b_rs + j];
            C[i * ldc + j] = c;
        }
}

static inline __attribute__((always_inline)) void
CB_(cb_few_rows_of)(const int ROWS, ptrdiff_t n, ptrdiff_t k, const CB_REAL* a, ptrdiff_t a_rs,
                    ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs, CB_REAL* C, ptrdiff_t ldc,
                    int overwrite) {
    for (ptrdiff_t j0 = 0; j0 < n; j0 += CB_FEW_ROWS_COLS) {
        const ptrdiff_t width = n - j0 < CB_FEW_ROWS_COLS ? n - j0 : CB_FEW_ROWS_COLS;
        if (overwrite)
            for (int i = 0; i < ROWS; i++)
                for (ptrdiff_t j = 0; j < width; j++)
                    C[i * ldc + j0 + j] = 0;
        const int steps = CB_FEW_ROWS_STEPS(ROWS);
        ptrdiff_t p = 0;
        for (; p + steps <= k; p += steps)
            CB_(cb_few_rows_steps)(ROWS, steps, width, a + p * a_cs, a_rs, a_cs,
                                   b + p * b_rs + j0, b_rs, C + j0, ldc);
        for (; p < k; p++)
            CB_(cb_few_rows_steps)(ROWS, 1, width, a + p * a_cs, a_rs, a_cs, b + p * b_rs + j0,
                                   b_rs, C + j0, ldc);
    }
}

/* Runs BODY(R) on the rows of A and C CB_FEW_ROWS at a time, R the literal
 * count of the group (so each count is its own unrolled body). */
_Static_assert(CB_FEW_ROWS == 4, "CB_BY_FEW_ROWS spells out groups of 1 to 4 rows");
#define CB_BY_FEW_ROWS(rows, a, a_rs, C, ldc, BODY)                                          \
    for (; rows > 0; rows -= CB_FEW_ROWS, a += CB_FEW_ROWS * a_rs, C += CB_FEW_ROWS * ldc) \
        switch (rows < CB_FEW_ROWS ? rows : CB_FEW_ROWS) {                                  \
        case 1: BODY(1); break;                                                             \
        case 2: BODY(2); break;                                                             \
        case 3: BODY(3); break;                                                             \
        default: BODY(4); break;                                                            \
        }

static void CB_(cb_few_rows)(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const CB_REAL* a,
                             ptrdiff_t a_rs, ptrdiff_t a_cs, const CB_REAL* b, ptrdiff_t b_rs,
                             CB_REAL* C, ptrdiff_t ldc, int overwrite) {
#define CB_FEW_ROWS_BODY(R) \
    CB_(cb_few_rows_of)(R, n, k, a, a_rs, a_cs, b, b_rs, C, ldc, overwrite)
    CB_BY_FEW_ROWS(rows, a, a_rs, C, ldc, CB_FEW_ROWS_BODY)
#undef CB_FEW_ROWS_BODY
}

/* A few rows of A, their steps adjacent, times Bᵀ whose rows (B's) are
 * adjacent along K: δ@Wᵀ on a few samples. Packing Wᵀ for a tile costs a
 * pass over W per call, as much as the product on one row (1024x1024
 * float64: 0.18x numpy.matmul's matrix-vector product). Here each element
 * of C is a dot product of a row of A with a row of B, CB_FEW_DOT_ROWS rows
 * of B at a time, read as they lie, in vectors along K, the lanes summed at
 * the end: products summed in another order than the tiles', so the digits
 * may differ from theirs in the last place. */
/* Columns of B per pass over a group of ROWS rows of A: four where ROWS x 4
 * accumulators, four B vectors and one of A fit the registers (up to
 * CB_FEW_DOT_WIDE_ROWS rows), else two. Each pass reads the group's rows of
 * A again, so wider passes read A fewer times (a narrow output layer's X@W,
 * dot_columns in gemm.pxi); the columns taken together never change an
 * element's sum. */
#ifndef CB_FEW_DOT_WIDE_ROWS_DEFINED
#define CB_FEW_DOT_WIDE_ROWS_DEFINED
#define CB_FEW_DOT_WIDE_ROWS (CB_VECTOR_REGISTERS >= 32 ? 4 : 2)
#endif
#define CB_FEW_DOT_ROWS(ROWS) ((ROWS) <= CB_FEW_DOT_WIDE_ROWS ? 4 : 2)

/* The sum of a vector's lanes in log2(lanes) folds, each adding the upper
 * half of the lanes still in play onto the lower: one shuffle and one add
 * each, where adding the lanes one by one was a chain of lanes - 1 scalar
 * adds (1.8x slower on 2000x64x1 float32, bench/README.md). */
static inline CB_REAL CB_(cb_lane_sum)(CB_VEC v) {
#if CB_LANES_N >= 16
    v += CB_SHUFFLE(CB_(cb_index), v, v, CB_FOLD(CB_LANES_N, 16));
#endif
#if CB_LANES_N >= 8
    v += CB_SHUFFLE(CB_(cb_index), v, v, CB_FOLD(CB_LANES_N, 8));
#endif
#if CB_LANES_N >= 4
    v += CB_SHUFFLE(CB_(cb_index), v, v, CB_FOLD(CB_LANES_N, 4));
#endif
    v += CB_SHUFFLE(CB_(cb_index), v, v, CB_FOLD(CB_LANES_N, 2));
    return v[0];
}

/* Lane sums together (cb_lane_sums) where vectors have 16 lanes, and
 * where 8 lanes fill a 64-byte vector on a CPU that runs it whole (float64
 * with AVX-512 on an Intel Xeon: cb_halves_512 picks at run time; where a
 * 512-bit shuffle is two, on the Zen 4, and with AVX2's 8 float32 lanes,
 * each vector summed alone ran as fast: bench/README.md, "Lane sums
 * together"). */
#define CB_JOINT_SUMS (CB_LANES_N == 16 || (CB_LANES_N == 8 && CB_VECTOR_BYTES == 64))
#if CB_JOINT_SUMS
/* Each group of `width` lanes of x and of y summed onto its lower half: x's
 * groups, so halved, in the lower half of the result, y's in the upper. */
#define CB_HALVES_SUMMED(W) \
    (CB_SHUFFLE(CB_(cb_index), x, y, CB_HALVES(LO, CB_LANES_N, W)) \
     + CB_SHUFFLE(CB_(cb_index), x, y, CB_HALVES(HI, CB_LANES_N, W)))
static inline __attribute__((always_inline)) CB_VEC
CB_(cb_halves_summed)(CB_VEC x, CB_VEC y, const int width) {
    switch (width) {
#if CB_LANES_N == 16
    case 16: return CB_HALVES_SUMMED(16);
#endif
    case 8: return CB_HALVES_SUMMED(8);
    case 4: return CB_HALVES_SUMMED(4);
    default: return CB_HALVES_SUMMED(2);
    }
}
#undef CB_HALVES_SUMMED

/* sums[e] = the sum of v[e]'s lanes, for 1 to a vector's lanes of vectors
 * at once (the caller gives it half of that or more): the
 * vectors two by two, each one's upper half of lanes added onto its lower
 * and the two halves side by side in one vector, until one vector holds
 * all n sums (n padded to a power of two with copies of v[0]), then the
 * upper half of each sum's lanes onto the lower until it is one lane: 16
 * sums of 16 lanes in 15 steps of two shuffles and an add, where summing
 * each vector alone (cb_lane_sum) takes log2(lanes) shuffles and adds per
 * sum, as many as the FMAs of a short K. With 32-byte vectors, on a CPU
 * that halves 512-bit ones, or for fewer than half a vector's lanes of
 * sums, that alone ran as fast (bench/README.md, "Lane sums together").
 * Every lane of an element meets the same partners in the same order as in
 * cb_lane_sum (the upper half of its lanes onto the lower, log2(lanes)
 * times), whatever n and whichever vectors share the reduction, so its
 * digits depend on its own products alone, and a team sharing the rows
 * gives the same bits. */
static inline __attribute__((always_inline)) CB_VEC
CB_(cb_lane_sums_vector)(const int n, const CB_VEC* v) {
    /* sum e in lane e, for e < n */
    CB_VEC w[CB_LANES];
    int padded = 1, width = CB_LANES;
    while (padded < n)
        padded *= 2;
    CB_UNROLLED for (int e = 0; e < padded; e++)
        w[e] = v[e < n ? e : 0];
    CB_UNROLLED for (int count = padded; count > 1; count /= 2, width /= 2)
        CB_UNROLLED for (int e = 0; e < count / 2; e++)
            w[e] = CB_(cb_halves_summed)(w[2 * e], w[2 * e + 1], width);
    /* w[0]: the padded count of sums, each in a group of `width` lanes */
    CB_UNROLLED for (; width > 1; width /= 2)
        w[0] = CB_(cb_halves_summed)(w[0], w[0], width);
    return w[0];
}

static inline __attribute__((always_inline)) void
CB_(cb_lane_sums)(const int n, const CB_VEC* v, CB_REAL* sums) {
    CB_REAL lanes[CB_LANES];
    CB_(cb_store)(lanes, CB_(cb_lane_sums_vector)(n, v));
    CB_UNROLLED for (int e = 0; e < n; e++)
        sums[e] = lanes[e];
}
#endif

/* acc[i * COLS + q] += the products of K's steps of row i of A (at row[i])
 * with column q of B (at b + q * b_cs), for ROWS rows and COLS columns, in
 * whole vectors; TAILED (k not a whole number of vectors, at least one
 * whole), then the last vector of K again, its products in the lanes
 * counted already dropped (the products, not A's values: 0 times an
 * infinite B would be NaN), rather than a scalar loop as long as that tail
 * for every element (1.3-1.4x on 2000x31x1 and 2000x40x2). A compile-time
 * variant: the code for it in the body that K of whole vectors runs cost
 * up to 1.5x there (bench/README.md). The steps of both blocks of the dot
 * products, whose bits must agree. */
static inline __attribute__((always_inline)) void
CB_(cb_dots_steps)(const int ROWS, const int COLS, const int TAILED, ptrdiff_t k,
                   const CB_REAL* const* row, const CB_REAL* b, ptrdiff_t b_cs, CB_VEC* acc) {
    const ptrdiff_t whole = k - k % CB_LANES;
    for (ptrdiff_t p = 0; p < whole; p += CB_LANES) {
        CB_VEC bv[4];   /* COLS <= 4 */
        CB_UNROLLED for (int q = 0; q < COLS; q++)
            bv[q] = CB_(cb_load)(b + q * b_cs + p);
        CB_UNROLLED for (int i = 0; i < ROWS; i++) {
            CB_VEC av = CB_(cb_load)(row[i] + p);
            CB_UNROLLED for (int q = 0; q < COLS; q++)
                acc[i * COLS + q] += av * bv[q];
        }
    }
    if (TAILED && whole > 0) {
        const ptrdiff_t tail = k - whole;
        CB_(cb_index) keep;
        CB_UNROLLED for (int l = 0; l < CB_LANES; l++)
            keep[l] = l >= CB_LANES - tail ? -1 : 0;
        CB_VEC bv[4];   /* COLS <= 4 */
        CB_UNROLLED for (int q = 0; q < COLS; q++)
            bv[q] = CB_(cb_load)(b + q * b_cs + k - CB_LANES);
        CB_UNROLLED for (int i = 0; i < ROWS; i++) {
            CB_VEC av = CB_(cb_load)(row[i] + k - CB_LANES);
            CB_UNROLLED for (int q = 0; q < COLS; q++)
                acc[i * COLS + q] += (CB_VEC)((CB_(cb_index))(av * bv[q]) & keep);
        }
    }
}

static inline __attribute__((always_inline)) void
CB_(cb_few_dots_block)(const int ROWS, const int JS, const int TAILED, ptrdiff_t k,
                       const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b, ptrdiff_t b_cs,
                       CB_REAL* C, ptrdiff_t ldc, int overwrite) {
    /* C[:ROWS, :JS] (=|+=) the dot products of ROWS rows of A with JS of B;
     * TAILED: k is not a whole number of vectors. */
    const ptrdiff_t whole = k - k % CB_LANES;
    CB_VEC acc[CB_FEW_ROWS * 4];
    const CB_REAL* row[CB_FEW_ROWS];
    CB_UNROLLED for (int i = 0; i < ROWS; i++) {
        row[i] = a + i * a_rs;
        CB_UNROLLED for (int q = 0; q < JS; q++)
            acc[i * JS + q] = (CB_VEC){0};
    }
    CB_(cb_dots_steps)(ROWS, JS, TAILED, k, row, b, b_cs, acc);
    CB_REAL totals[CB_FEW_ROWS * 4];
#if CB_JOINT_SUMS
    /* In runs of at most a vector's lanes of sums (a block of 4 x 4 sums
     * of 8 lanes is two). */
    const int sums = ROWS * JS, run = sums > CB_LANES ? CB_LANES : sums;
    /* The block's rows adjacent in C: each run of sums stored as it lies,
     * jointly summed even where the CPU halves 512-bit instructions (there
     * float64's 4 columns ran 1.1-1.2x faster so; other blocks' joint sums
     * 0.81-0.97x as fast as each vector alone, bench/README.md, "Dot
     * products summed a vector at a time"). */
    const int as_runs = CB_DOTS_STORE_RUNS && ldc == JS && !(TAILED && whole == 0);
    const int together = 2 * run >= CB_LANES && (CB_LANES_N == 16 || !cb_halves_512 || as_runs);
    if (together) {
        _Static_assert(CB_FEW_ROWS * 4 <= 2 * CB_LANES, "a block's sums fit two vectors");
        if (as_runs) {
            CB_(cb_put_first)(C, CB_(cb_lane_sums_vector)(run, acc), run, overwrite);
            if (sums > run)
                CB_(cb_put_first)(C + run, CB_(cb_lane_sums_vector)(sums - run, acc + run),
                                  sums - run, overwrite);
            return;
        }
        CB_(cb_lane_sums)(run, acc, totals);
        if (sums > run)
            CB_(cb_lane_sums)(sums - run, acc + run, totals + run);
    }
#else
    const int together = 0;
#endif
    CB_UNROLLED for (int i = 0; i < ROWS; i++)
        CB_UNROLLED for (int q = 0; q < JS; q++) {
            CB_REAL total = together ? totals[i * JS + q] : CB_(cb_lane_sum)(acc[i * JS + q]);
            if (TAILED && whole == 0)
                for (ptrdiff_t p = 0; p < k; p++)
                    total += a[i * a_rs + p] * b[q * b_cs + p];
            C[i * ldc + q] = overwrite ? total : C[i * ldc + q] + total;
        }
}

static inline __attribute__((always_inline)) void
CB_(cb_few_dots_of)(const int ROWS, const int JS, ptrdiff_t n, ptrdiff_t k, const CB_REAL* a,
                    ptrdiff_t a_rs, const CB_REAL* b, ptrdiff_t b_cs, CB_REAL* C, ptrdiff_t ldc,
                    int overwrite) {
    /* Passes of JS columns, then of 2, then of 1: each pass reads the rows
     * of A again, so the columns left after the widest passes take as few
     * as they can (2 or 3 columns in single-column passes after 4-column
     * ones ran 1.1-1.4x slower on the Zen 4, bench/README.md). K of whole
     * vectors and K with a remainder run separate bodies (TAILED). */
    const int TAILED = k % CB_LANES != 0;
#define CB_FEW_DOTS_PASS(WIDTH)                                                               \
    do {                                                                                      \
        if (TAILED)                                                                           \
            CB_(cb_few_dots_block)(ROWS, WIDTH, 1, k, a, a_rs, b + j * b_cs, b_cs, C + j, ldc, \
                                   overwrite);                                                \
        else                                                                                  \
            CB_(cb_few_dots_block)(ROWS, WIDTH, 0, k, a, a_rs, b + j * b_cs, b_cs, C + j, ldc, \
                                   overwrite);                                                \
    } while (0)
    ptrdiff_t j = 0;
    for (; j + JS <= n; j += JS)
        CB_FEW_DOTS_PASS(JS);
    if (JS > 2)
        for (; j + 2 <= n; j += 2)
            CB_FEW_DOTS_PASS(2);
    for (; j < n; j++)
        CB_FEW_DOTS_PASS(1);
#undef CB_FEW_DOTS_PASS
}

#if CB_JOINT_SUMS
/* The shortest K that cb_few_dots takes a vector of sums at a time: 3
 * steps with 16 lanes, each row read by a masked load under 16 (float32's
 * X@W of one column on K of 4 to 15 ran at 0.45-0.82x numpy.matmul in the
 * tall kernel, which spends an FMA of a vector on each step of each row;
 * on K = 2 the tall kernel stayed ahead, bench/README.md, "Dot products
 * summed a vector at a time"); a vector with 8, whose K under it the tall
 * kernel keeps. */
#define CB_DOTS_ADJACENT_MIN_K (CB_LANES_N == 16 ? 3 : CB_LANES)

/* C[:live, :COLS] (=|+=) the dot products of `live` (at most ROWS =
 * CB_LANES / COLS) rows of A with COLS columns of B, where C's rows are
 * COLS values apart (a whole narrow C): the ROWS x COLS sums are adjacent
 * in C, so they are summed together into one vector (cb_lane_sums_vector)
 * and stored at once (a masked store where the build has it), where
 * cb_few_dots_block takes 4 rows (of 1 or 2 columns, a vector's sums or
 * less). KIND: 0, K of whole vectors; 1, a tail past them (the last
 * vector read again, its lanes counted already dropped: cb_dots_steps for
 * both); 2, K under a vector (each row's K values, zeros past them). The
 * products, their order and the lanes' folds are cb_few_dots_block's for
 * K of a vector or more, so each element has the
 * same bits either way, and in every case the same whichever rows share
 * its block: a block of fewer live rows repeats its last row in the lanes
 * it does not store. */
static inline __attribute__((always_inline)) void
CB_(cb_dots_adjacent_block)(const int COLS, const int KIND, ptrdiff_t live, ptrdiff_t k,
                            const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b, ptrdiff_t b_cs,
                            CB_REAL* C, int overwrite) {
    const int ROWS = (int)CB_LANES / COLS;
    CB_VEC acc[CB_LANES];
    const CB_REAL* row[CB_LANES];
    CB_UNROLLED for (int i = 0; i < ROWS; i++) {
        row[i] = a + (i < live ? i : live - 1) * a_rs;
        CB_UNROLLED for (int q = 0; q < COLS; q++)
            acc[i * COLS + q] = (CB_VEC){0};
    }
    if (KIND == 2) {
        CB_VEC bv[CB_LANES / 4];
        CB_UNROLLED for (int q = 0; q < COLS; q++)
            bv[q] = CB_(cb_get_first)(b + q * b_cs, k);
        CB_UNROLLED for (int i = 0; i < ROWS; i++) {
            CB_VEC av = CB_(cb_get_first)(row[i], k);
            CB_UNROLLED for (int q = 0; q < COLS; q++)
                acc[i * COLS + q] += av * bv[q];
        }
    } else {
        CB_(cb_dots_steps)(ROWS, COLS, KIND, k, row, b, b_cs, acc);
    }
    CB_(cb_put_first)(C, CB_(cb_lane_sums_vector)(ROWS * COLS, acc), live * COLS, overwrite);
}

/* All `rows` rows, where cb_dots_adjacent_fits: blocks of ROWS rows, then
 * one of the rows left. */
static inline void CB_(cb_dots_adjacent)(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k,
                                         const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b,
                                         ptrdiff_t b_cs, CB_REAL* C, int overwrite) {
    const int kind = k < CB_LANES ? 2 : k % CB_LANES != 0;
#define CB_DOTS_ADJACENT_RUN(COLS, KIND)                                                      \
    do {                                                                                      \
        const ptrdiff_t block = CB_LANES / COLS, full = rows - rows % block;                  \
        for (ptrdiff_t i = 0; i < full; i += block)                                           \
            CB_(cb_dots_adjacent_block)(COLS, KIND, block, k, a + i * a_rs, a_rs, b, b_cs,    \
                                        C + i * COLS, overwrite);                             \
        if (full < rows)                                                                      \
            CB_(cb_dots_adjacent_block)(COLS, KIND, rows - full, k, a + full * a_rs, a_rs, b, \
                                        b_cs, C + full * COLS, overwrite);                    \
    } while (0)
#define CB_DOTS_ADJACENT_CASE(COLS)                                                           \
    case COLS:                                                                                \
        if (kind == 0)                                                                        \
            CB_DOTS_ADJACENT_RUN(COLS, 0);                                                    \
        else if (kind == 1)                                                                   \
            CB_DOTS_ADJACENT_RUN(COLS, 1);                                                    \
        else if (CB_DOTS_ADJACENT_MIN_K < CB_LANES)                                           \
            CB_DOTS_ADJACENT_RUN(COLS, 2);                                                    \
        break;
    switch (n) {
        CB_DOTS_ADJACENT_CASE(1)
        CB_DOTS_ADJACENT_CASE(2)
#if CB_LANES_N == 16
        CB_DOTS_ADJACENT_CASE(3)
        CB_DOTS_ADJACENT_CASE(4)
#endif
    default:
        __builtin_unreachable();   /* cb_dots_adjacent_fits: 4 n <= CB_LANES */
    }
#undef CB_DOTS_ADJACENT_CASE
#undef CB_DOTS_ADJACENT_RUN
}
#endif

/* Whether cb_few_dots takes the rows of a C of n columns, ldc apart, on k
 * steps in blocks of cb_dots_adjacent, A's rows a_rs apart: C whole, at
 * most a quarter of a vector's lanes of columns (at 3-4 float64 columns,
 * blocks of 2 rows ran 1.06-1.49x slower than cb_few_dots_block's 4;
 * bench/README.md, "Dot products summed a vector at a time"), K of at
 * least CB_DOTS_ADJACENT_MIN_K, a build that sums lanes jointly
 * (CB_JOINT_SUMS), and at most CB_DOTS_ADJACENT_MAX_ALIASED_ROWS of a
 * block's rows on one offset in a 4 KiB page. */
static inline int CB_(cb_dots_adjacent_fits)(ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldc,
                                             ptrdiff_t a_rs) {
#if CB_JOINT_SUMS
    return CB_DOTS_ADJACENT && ldc == n && 4 * n <= CB_LANES && k >= CB_DOTS_ADJACENT_MIN_K
           && cb_rows_on_one_page_offset(CB_LANES / n, a_rs * (ptrdiff_t)sizeof(CB_REAL))
                  <= CB_DOTS_ADJACENT_MAX_ALIASED_ROWS;
#else
    (void)n, (void)k, (void)ldc, (void)a_rs;
    return 0;
#endif
}

/* The shortest K on which cb_dots_adjacent_fits takes one column of
 * adjacent rows, as the CPU is told to run it now (0: none). */
static inline ptrdiff_t CB_(cb_dots_adjacent_min_k)(void) {
#if CB_JOINT_SUMS
    const ptrdiff_t k = CB_DOTS_ADJACENT_MIN_K;
    return CB_(cb_dots_adjacent_fits)(1, k, 1, k) ? k : 0;
#else
    return 0;
#endif
}

static void CB_(cb_few_dots)(ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k, const CB_REAL* a,
                             ptrdiff_t a_rs, const CB_REAL* b, ptrdiff_t b_cs, CB_REAL* C,
                             ptrdiff_t ldc, int overwrite) {
#if CB_JOINT_SUMS
    if (CB_(cb_dots_adjacent_fits)(n, k, ldc, a_rs)) {
        CB_(cb_dots_adjacent)(rows, n, k, a, a_rs, b, b_cs, C, overwrite);
        return;
    }
#endif
#define CB_FEW_DOTS_BODY(R) \
    CB_(cb_few_dots_of)(R, CB_FEW_DOT_ROWS(R), n, k, a, a_rs, b, b_cs, C, ldc, overwrite)
    CB_BY_FEW_ROWS(rows, a, a_rs, C, ldc, CB_FEW_DOTS_BODY)
#undef CB_FEW_DOTS_BODY
}
#undef CB_BY_FEW_ROWS

/* op(B)'s n columns (column j at B[j*csb], its steps rsb apart) copied
 * into packed, each as kc adjacent values, column by column: a stream of
 * adjacent stores (step by step, n stores a panel apart, ran 1.15-1.34x
 * slower). Four steps an iteration: with one, float64 1x5000x3's dot
 * products took 6.9-11.7 µs by build and compile, with four 6.6 (AVX-512)
 * and 7.4 (AVX2); the baseline build 16.6 against 15.2 (bench/README.md,
 * "Short rows"). */
static void CB_(cb_pack_columns)(ptrdiff_t kc, ptrdiff_t n, const CB_REAL* B, ptrdiff_t rsb,
                                 ptrdiff_t csb, CB_REAL* packed) {
    for (ptrdiff_t j = 0; j < n; j++) {
        const CB_REAL* column = B + j * csb;
        CB_REAL* out = packed + j * kc;
        ptrdiff_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            out[p] = column[p * rsb];
            out[p + 1] = column[(p + 1) * rsb];
            out[p + 2] = column[(p + 2) * rsb];
            out[p + 3] = column[(p + 3) * rsb];
        }
        for (; p < kc; p++)
            out[p] = column[p * rsb];
    }
}

/* The FMA peak of one core with this build's vectors: independent chains of
 * vector FMAs, enough of them to cover the latency of two FMA units.
 * Returns a value that depends on every chain, so none is optimised away;
 * a call performs iterations * CB_PROBE_CHAINS * lanes FMAs. */
#define CB_PROBE_CHAINS 12
static CB_REAL CB_(cb_fma_probe)(ptrdiff_t iterations) {
    CB_VEC acc[CB_PROBE_CHAINS];
    const CB_VEC scale = CB_(cb_splat)((CB_REAL)0.999999);
    const CB_VEC shift = CB_(cb_splat)((CB_REAL)1e-6);
    /* The starting values are hidden from the compiler: it would otherwise
     * fold a chain that starts at a fixed point of x * scale + shift (1.0
     * is one, in both dtypes) into a constant, run 11 chains and count 12:
     * the peak read 9 % high. */
    volatile CB_REAL hidden_zero = 0;
    for (int c = 0; c < CB_PROBE_CHAINS; c++)
        acc[c] = CB_(cb_splat)((CB_REAL)c + hidden_zero);
    for (ptrdiff_t it = 0; it < iterations; it++)
        for (int c = 0; c < CB_PROBE_CHAINS; c++)
            acc[c] = acc[c] * scale + shift;
    CB_REAL total = 0;
    for (int c = 0; c < CB_PROBE_CHAINS; c++)
        for (ptrdiff_t l = 0; l < CB_LANES; l++)
            total += acc[c][l];
    return total;
}
static inline ptrdiff_t CB_(cb_fma_probe_flops)(ptrdiff_t iterations) {
    return 2 * iterations * CB_PROBE_CHAINS * CB_LANES;
}

#undef CB_JOINT_SUMS
#undef CB_DOTS_ADJACENT_MIN_K
#undef CB_VEC
#undef CB_LANES
#undef CB_
#undef CB_CAT
#undef CB_CAT_
