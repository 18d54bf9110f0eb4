/* The register-tiled kernels of the GEMM, one source for every CPU class.
 *
 * Written once with GCC vector extensions (GCC and Clang) and compiled once
 * per engine build: the build defines CB_ISA, which picks a row of the
 * blocking table below; the compiler flags of that build (-mavx2 -mfma,
 * -mavx512f ..., or none) decide which instructions a vector operation
 * becomes. One vector is CB_VECTOR_BYTES wide; a 64-byte vector compiled
 * without AVX-512 is split by the compiler into two 32-byte halves, which is
 * how the AVX-512 tile logic is tested on AVX2-only machines
 * (CBACKPROP_TEST_TILES=1, see setup.py). The one part of a build in asm,
 * tile_steps_avx512.h (CB_ASM_STEPS_<sfx> below), needs AVX-512 itself: that
 * test build runs the C steps it replaces, and only an AVX-512 CPU runs it.
 *
 * The interface every build provides, for each dtype suffix (f64, f32):
 *
 *   cb_microkernel_<sfx>(kc, a, a_rs, a_cs, b, b_rs, C, ldc, rows, cols, overwrite)
 *       C[:rows, :cols] (= or +=) op(A) sliver @ B sliver over kc steps;
 *       rows <= CB_MR, cols <= cb_nr_<sfx>. Row i of the A sliver at step p is
 *       a[i*a_rs + p*a_cs]; the B sliver's NR values of step p start at
 *       b[p*b_rs]. Rows past `rows` re-read the last row (results dropped);
 *       columns past `cols` of B must be readable (packing zero-pads them).
 *       Without `overwrite` C is added to; with it C is never read.
 *   cb_pack_a_transposed_<sfx>(kc, A, rsa, packed)    packed[p*MR + i] = A[i*rsa + p]
 *   cb_pack_b_transposed_<sfx>(kc, B, csb, packed)    packed[p*NR + j] = B[j*csb + p]
 *   cb_pack_a_panel_steps_<sfx>(kc, slivers, A, csa, packed)
 *       packed[s*MR*kc + p*MR + i] = A[p*csa + s*MR + i] for `slivers` adjacent
 *       slivers, step by step (cb_pack_b_panel_steps_<sfx>(kc, slivers, B, rsb,
 *       packed) the same with NR and rsb)
 *   cb_pack_ten_<sfx>(kc, cols, B, rsb, csb, packed), cb_ten_<sfx>(kc, a, a_rs,
 *       packed, C, ldc, rows, cols, overwrite)
 *       C[:rows, :cols] (=|+=) op(A) rows @ op(B) for 9 <= cols <= 10 and
 *       rows <= cb_ten_rows_<sfx>(), row i of A at a[i*a_rs + p] (its steps
 *       adjacent), from B packed by cb_pack_ten_<sfx> (at most 10 values per
 *       K step plus a vector: within the packing of a 10-column B sliver of
 *       width NR): every lane a real result; used where cb_ten_pays_<sfx>().
 *       A 64-byte build has them in whole and in half vectors;
 *       cb_set_halves_512(on) picks (cb_ten_lanes_<sfx>()).
 *   cb_few_rows_<sfx>(rows, n, k, a, a_rs, a_cs, b, b_rs, C, ldc, overwrite)
 *       C[:rows, :n] (=|+=) op(A) @ B for a few rows (any number, taken
 *       CB_FEW_ROWS at a time), op(A)[i, p] at a[i*a_rs + p*a_cs], B's row p
 *       at b[p*b_rs] with its n values adjacent: B streamed as it lies.
 *   cb_pack_columns_<sfx>(kc, n, B, rsb, csb, packed)
 *       op(B)'s n columns of kc steps into packed, each column's steps
 *       adjacent (the dot products' B when its steps are not).
 *   cb_few_dots_<sfx>(rows, n, k, a, a_rs, b, b_cs, C, ldc, overwrite)
 *       C[:rows, :n] (=|+=) A @ Bᵀ for a few rows: row i of A at a[i*a_rs]
 *       and row j of B at b[j*b_cs], each with its k values adjacent; every
 *       element a dot product, in vectors along k.
 *   cb_dots_adjacent_fits_<sfx>(n, k, ldc, a_rs)
 *       Whether cb_few_dots sums a C of n columns, ldc apart, on k steps
 *       with A's rows a_rs apart a vector of sums at a time (the same bits
 *       either way).
 *   cb_tall_<sfx>(rows, K, a, a_rs, b, rsb, csb, cols, C, ldc, overwrite)
 *       C[:rows, :cols] (=|+=) Σ_p a[i*a_rs + p] b[p*rsb + j*csb] for K of
 *       at most CB_TALL_MAX_K and cols <= lanes: op(B) held in registers
 *       (K of at most CB_TALL_SPELLED_K) or read from L1, rows CB_TALL_ROWS
 *       at a time (X@W of many rows on a few features).
 *   cb_tall_across_fits_<sfx>(rows, K, cols)
 *       Whether cb_tall takes such rows a vector's lanes at a time with
 *       the rows along the vector.
 *   cb_narrow_rows_<sfx>(K, a, a_cs, b, rsb, csb, cols, C, ldc, overwrite)
 *       C[:cb_narrow_rows_per_tile_<sfx>(), :cols] (=|+=) Σ_p a[p*a_cs + i] b[p*rsb + j*csb],
 *       cols <= CB_NARROW_COLS: vectors run down the rows of C (Xᵀ@δ of a
 *       narrow output layer, read in place).
 *   cb_narrow_short_rows_<sfx>(rows, K, a, a_cs, b, rsb, csb, cols, C, ldc, c_cs, overwrite)
 *       the same for rows <= cb_narrow_rows_per_tile_<sfx>() (one or two vectors, the
 *       last one partial but at a tile's rows), A read in place up to its last value,
 *       element (i, j) of C at
 *       C[i*ldc + j*c_cs]: c_cs = 1 for C itself, or ldc = 1 and c_cs C's row
 *       stride for Cᵀ (gemm.pxi, rows_of_ct).
 */
#ifndef CBACKPROP_TILES_H
#define CBACKPROP_TILES_H

#include <stddef.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>   /* a broadcast and the masked loads and stores that vector
                            extensions cannot spell */
#endif

#if !defined(__GNUC__)
#error "cbackprop's kernels are written with GCC/Clang vector extensions"
#endif

#define CB_ISA_BASELINE 0
#define CB_ISA_AVX2 1
#define CB_ISA_AVX512 2

#ifndef CB_ISA
#define CB_ISA CB_ISA_BASELINE
#endif

/* How a tile reads A (cb_tile's LAYOUT):
 *   CB_A_PACKED    a packed sliver: row i of step p at a[p*a_cs + i], zero rows
 *                  past the edge
 *   CB_A_ROWS      in place, rows a_rs apart; those past `rows` re-read the
 *                  last real one
 *   CB_A_ADJACENT  in place, rows adjacent (a_rs = 1, op(A) = Xᵀ) and all
 *                  HEIGHT of them real: a[p*a_cs + i], as packed, from one
 *                  pointer. With a pointer per row (CB_A_ROWS) a 12-row tile
 *                  needs more registers than x86-64 has, and gcc reloaded
 *                  some of them every step (bench/README.md, "Kept: adjacent
 *                  rows of A from one pointer"). */
enum { CB_A_ROWS = 0, CB_A_PACKED = 1, CB_A_ADJACENT = 2 };

/* Whether full tiles whose rows of A are adjacent in memory take one pointer
 * for them (CB_A_ADJACENT); `bench/thresholds.py CB_ADJACENT_TILES=0 ...`
 * times the other way. */
#define CB_ADJACENT_TILES 1

/* Whether the ten-column packing takes a B with adjacent columns by its own
 * loop (ten_template.h, cb_pack_ten); `bench/thresholds.py
 * CB_PACK_TEN_ADJACENT=0 ...` times the other way. */
#define CB_PACK_TEN_ADJACENT 1

/* The blocking table: one row per CPU class.
 *
 *   CB_VECTOR_BYTES  width of one vector register
 *   CB_VECTOR_REGISTERS  how many the ISA has (ten_template.h sizes the
 *                    tiles of ten columns by it)
 *   CB_LANES_<sfx>   its lanes per dtype (literals, for the shuffle tables)
 *   CB_MR            rows of a register tile (both dtypes)
 *   CB_NV            vectors per tile row: NR = CB_NV * lanes (a tile holds
 *                    MR * NV accumulators, which must fit the register file
 *                    with NV B vectors and one broadcast beside them)
 *   CB_HEIGHTS(X)    the tile heights compiled, ascending, CB_MR last: an
 *                    edge sliver of r rows takes the smallest height >= r
 *   CB_WIDTHS(X, H)  the widths (in vectors) compiled for height H,
 *                    ascending, CB_NV last: an edge sliver of c columns takes
 *                    the narrowest width >= c
 *   CB_MC_<sfx>      rows of A packed at once (a multiple of CB_MR)
 *   CB_KC_<sfx>      K steps per packed panel
 *   CB_NC            columns of B packed at once (a multiple of every NR)
 *   CB_PANEL_ROWS_<sfx>  0: the blocked loops run columns first (BLIS's
 *                    order: each panel of B packed once, met by blocks of
 *                    CB_MC rows); else rows first, in blocks of at most this
 *                    many rows (a multiple of CB_MR), each panel of A packed
 *                    once and met by blocks of CB_BLOCK_COLS_<sfx> columns
 *                    (a multiple of NR; gemm.pxi, gemm_blocks)
 *   CB_TEAM_ROWS_FIRST_MAX_FLOPS  a team of threads runs a product of this
 *                    many flops or more columns first whatever
 *                    CB_PANEL_ROWS_<sfx> says (gemm.pxi, blocks_rows_first)
 *   CB_PARALLEL_MIN_FLOPS  products below this many flops run on one thread
 *                    (a fork and its barriers cost more than they save)
 *   CB_B_IN_PLACE_MAX_M, CB_SMALL_B_IN_PLACE_MAX_M, CB_SMALL_B_MAX_BYTES,
 *   CB_B_IN_PLACE_MAX_BYTES_F64  when a row-major B is read in place rather
 *                    than packed: the rule is gemm.pxi's b_read_in_place (the
 *                    small-B columns change nothing where their row limit is
 *                    CB_B_IN_PLACE_MAX_M's)
 *   CB_NARROW_COLS   columns of B per group of the narrow kernel (a tile of
 *                    Cᵀ: this many rows of NARROW_NV vectors)
 *   CB_NARROW_HEIGHTS(X)  the heights of those tiles compiled, ascending,
 *                    CB_NARROW_COLS last: a group of c columns takes the
 *                    lowest >= c; every height a group may need, but 3 with
 *                    AVX-512, where the 4-row tile ran faster on 3 columns
 *                    (bench/README.md, "Narrow heights for every width")
 *   CB_SHORT_ROWS_HEIGHTS(X)  the same for the short rows, finer: their
 *                    columns are the rows of C of X@W on a few samples
 *                    (gemm.pxi, rows_of_ct), where one row on a height of
 *                    2 spent half its FMAs on a copy of its column
 *   CB_NARROW_DOTS_SUM_COST_<sfx>  what an element of dot products (gemm.pxi,
 *                    NARROW_DOTS) costs beyond its FMAs, its lane sum and
 *                    store, in vectors of K: a product of N < lanes columns
 *                    takes them once the FMAs a one-vector tile spends on
 *                    padding, (K / lanes) (lanes - N) / N per element, reach
 *                    that (bench/README.md, "NARROW_DOTS_SUM_COST"), for a
 *                    K that ends in part of a vector (the last vector read
 *                    again, or a loop when K is shorter than one)
 *   CB_NARROW_DOTS_WHOLE_SUM_COST_<sfx>  the same for a K of whole vectors,
 *                    at most the above (bench/README.md, "Dot products of
 *                    whole vectors")
 *   CB_NARROW_DOTS_MAX_N_<sfx>  the most columns they take, fewer than the
 *                    lanes: with more, the tiles won on most shapes measured
 *   CB_FEW_DOTS_MAX_M_<sfx>  the most rows of δ@Wᵀ (B's rows adjacent along
 *                    K) that the same dot products take with B as it lies,
 *                    of any number of columns (gemm.pxi, narrow_kind): past
 *                    them the tiles, which pack Wᵀ once for all the rows,
 *                    won on most shapes measured, though not on all (a B
 *                    within L2 on 64 rows with AVX-512, or float32 of 8
 *                    columns on 9-32 rows with AVX2, ran faster in dots;
 *                    bench/README.md, "Few dots on more rows")
 *   CB_TALL_MAX_K    the longest K of the tall products (gemm.pxi, NARROW_TALL:
 *                    many rows, a vector of columns; past CB_TALL_SPELLED_K
 *                    at least half a vector of them), 0 where they do not
 *                    run: with 16 registers and no masked stores they lost
 *                    to the tiles on most shapes measured (bench/README.md,
 *                    "Tall products of a few columns", "Tall products on a
 *                    longer K")
 *   CB_C_PREFETCH_STEPS  a packed tile asks for its rows of C, one per K
 *                    step, from this many steps before its last (CB_KC_<sfx> or
 *                    more: from its first step; bench/README.md, "Kept: C's
 *                    lines asked for late")
 *   CB_A_PREFETCH_STEPS_<sfx>, CB_B_PREFETCH_STEPS_<sfx>  a packed tile asks for the
 *                    lines of its A sliver (B sliver) this many K steps
 *                    ahead of the FMAs that read them; 0: it does not ask
 *                    (bench/README.md, "Kept: A and B slivers asked for ahead")
 *   CB_ASM_STEPS_<sfx>  1: a packed tile of the full 12 x 2 body (edge tiles
 *                    of fewer rows or columns included) runs its K steps in
 *                    pairs in the asm of tile_steps_avx512.h, an odd last step
 *                    in C (on an AVX-512 build of that tile only, CB_ASM_TILE;
 *                    the same bits as the C steps, which gcc contracts into
 *                    FMAs at the build's -O3); 0: every step in cb_tile's C
 *                    (bench/README.md, "Kept: a packed tile's float64 steps in
 *                    asm")
 */
#if CB_ISA == CB_ISA_AVX512
#define CB_ISA_NAME "avx512"
#define CB_VECTOR_BYTES 64
#define CB_VECTOR_REGISTERS 32
#define CB_LANES_F64 8
#define CB_LANES_F32 16
#define CB_MR 12           /* 24 zmm accumulators of 32 */
#define CB_NV 2
#define CB_HEIGHTS(X) X(4) X(8) X(12)
#define CB_WIDTHS(X, H) X(H, 1) X(H, 2)
#define CB_MC_F64 96
#define CB_MC_F32 192
#define CB_KC_F64 192      /* 1.00-1.06x of 256 on an Intel Xeon (bench/README.md) */
#define CB_KC_F32 256
#define CB_NC 4096
#define CB_PANEL_ROWS_F64 2040  /* bench/README.md, "Kept: float64 rows first" */
#define CB_PANEL_ROWS_F32 0     /* rows first (2040, 384) 1-4 % slower */
/* bench/README.md, "Kept: a team columns first on large products" */
#define CB_TEAM_ROWS_FIRST_MAX_FLOPS 6.4e7
#define CB_BLOCK_COLS_F64 192
#define CB_BLOCK_COLS_F32 384
#define CB_PARALLEL_MIN_FLOPS 3.0e6
#define CB_B_IN_PLACE_MAX_M 96
#define CB_SMALL_B_IN_PLACE_MAX_M 256  /* bench/README.md, "Kept: a small B in place up to 256 rows" */
#define CB_SMALL_B_MAX_BYTES ((ptrdiff_t)1 << 20)
#define CB_B_IN_PLACE_MAX_BYTES_F64 ((ptrdiff_t)1 << 40)   /* no limit */
#define CB_C_PREFETCH_STEPS 48
#define CB_A_PREFETCH_STEPS_F64 16
#define CB_A_PREFETCH_STEPS_F32 0
#define CB_B_PREFETCH_STEPS_F64 8
#define CB_B_PREFETCH_STEPS_F32 8
#define CB_ASM_STEPS_F64 1
#define CB_ASM_STEPS_F32 0
#define CB_NARROW_COLS 10
#define CB_NARROW_HEIGHTS(X) X(2) X(4) X(5) X(6) X(7) X(8) X(9) X(10)
#define CB_SHORT_ROWS_HEIGHTS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(8) X(10)
#define CB_NARROW_DOTS_SUM_COST_F64 5
#define CB_NARROW_DOTS_SUM_COST_F32 7
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F64 5
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F32 3
#define CB_NARROW_DOTS_MAX_N_F64 6
#define CB_NARROW_DOTS_MAX_N_F32 8
#define CB_FEW_DOTS_MAX_M_F64 32
#define CB_FEW_DOTS_MAX_M_F32 32
#define CB_TALL_MAX_K 32
#elif CB_ISA == CB_ISA_AVX2
#define CB_ISA_NAME "avx2"
#define CB_VECTOR_BYTES 32
#define CB_VECTOR_REGISTERS 16
#define CB_LANES_F64 4
#define CB_LANES_F32 8
#define CB_MR 6            /* 12 ymm accumulators of 16 */
#define CB_NV 2
#define CB_HEIGHTS(X) X(4) X(6)
#define CB_WIDTHS(X, H) X(H, 1) X(H, 2)
#define CB_MC_F64 72
#define CB_MC_F32 144
#define CB_KC_F64 256
#define CB_KC_F32 256
#define CB_NC 4096
#define CB_PANEL_ROWS_F64 0     /* measured on an AVX2 EPYC: columns first */
#define CB_PANEL_ROWS_F32 0
#define CB_TEAM_ROWS_FIRST_MAX_FLOPS 0   /* (columns first throughout) */
#define CB_BLOCK_COLS_F64 0
#define CB_BLOCK_COLS_F32 0
#define CB_PARALLEL_MIN_FLOPS 3.0e6
#define CB_B_IN_PLACE_MAX_M 96
#define CB_SMALL_B_IN_PLACE_MAX_M 96
#define CB_SMALL_B_MAX_BYTES ((ptrdiff_t)1 << 20)
#define CB_B_IN_PLACE_MAX_BYTES_F64 (256 * 1024)
#define CB_C_PREFETCH_STEPS CB_KC
#define CB_A_PREFETCH_STEPS_F64 0
#define CB_A_PREFETCH_STEPS_F32 0
#define CB_B_PREFETCH_STEPS_F64 0
#define CB_B_PREFETCH_STEPS_F32 0
#define CB_ASM_STEPS_F64 0
#define CB_ASM_STEPS_F32 0
#define CB_NARROW_COLS 5
#define CB_NARROW_HEIGHTS(X) X(2) X(3) X(4) X(5)
#define CB_SHORT_ROWS_HEIGHTS(X) X(1) X(2) X(3) X(4) X(5)
#define CB_NARROW_DOTS_SUM_COST_F64 2
#define CB_NARROW_DOTS_SUM_COST_F32 2
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F64 2
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F32 2
#define CB_NARROW_DOTS_MAX_N_F64 3
#define CB_NARROW_DOTS_MAX_N_F32 6
#define CB_FEW_DOTS_MAX_M_F64 8
#define CB_FEW_DOTS_MAX_M_F32 8
#define CB_TALL_MAX_K 0
#else
#define CB_ISA_NAME "baseline"
#define CB_VECTOR_BYTES 16
#define CB_VECTOR_REGISTERS 16
#define CB_LANES_F64 2
#define CB_LANES_F32 4
#define CB_MR 4            /* 8 xmm accumulators of 16 */
#define CB_NV 2
#define CB_HEIGHTS(X) X(2) X(4)
#define CB_WIDTHS(X, H) X(H, 1) X(H, 2)
#define CB_MC_F64 72
#define CB_MC_F32 144
#define CB_KC_F64 256
#define CB_KC_F32 256
#define CB_NC 4096
#define CB_PANEL_ROWS_F64 0     /* measured on an AVX2 EPYC: columns first */
#define CB_PANEL_ROWS_F32 0
#define CB_TEAM_ROWS_FIRST_MAX_FLOPS 0   /* (columns first throughout) */
#define CB_BLOCK_COLS_F64 0
#define CB_BLOCK_COLS_F32 0
#define CB_PARALLEL_MIN_FLOPS 3.0e6
#define CB_B_IN_PLACE_MAX_M 96
#define CB_SMALL_B_IN_PLACE_MAX_M 96
#define CB_SMALL_B_MAX_BYTES ((ptrdiff_t)1 << 20)
#define CB_B_IN_PLACE_MAX_BYTES_F64 (256 * 1024)
#define CB_C_PREFETCH_STEPS 48
#define CB_A_PREFETCH_STEPS_F64 0
#define CB_A_PREFETCH_STEPS_F32 0
#define CB_B_PREFETCH_STEPS_F64 0
#define CB_B_PREFETCH_STEPS_F32 0
#define CB_ASM_STEPS_F64 0
#define CB_ASM_STEPS_F32 0
#define CB_NARROW_COLS 5
#define CB_NARROW_HEIGHTS(X) X(2) X(3) X(4) X(5)
#define CB_SHORT_ROWS_HEIGHTS(X) X(1) X(2) X(3) X(4) X(5)
#define CB_NARROW_DOTS_SUM_COST_F64 1
#define CB_NARROW_DOTS_SUM_COST_F32 1
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F64 1
#define CB_NARROW_DOTS_WHOLE_SUM_COST_F32 1
#define CB_NARROW_DOTS_MAX_N_F64 1
#define CB_NARROW_DOTS_MAX_N_F32 3
#define CB_FEW_DOTS_MAX_M_F64 16
#define CB_FEW_DOTS_MAX_M_F32 16
#define CB_TALL_MAX_K 0
#endif

_Static_assert(CB_PANEL_ROWS_F64 % CB_MR == 0 && CB_PANEL_ROWS_F32 % CB_MR == 0
               && CB_BLOCK_COLS_F64 % (CB_NV * CB_LANES_F64) == 0
               && CB_BLOCK_COLS_F32 % (CB_NV * CB_LANES_F32) == 0
               && (CB_PANEL_ROWS_F64 == 0 || CB_BLOCK_COLS_F64 > 0)
               && (CB_PANEL_ROWS_F32 == 0 || CB_BLOCK_COLS_F32 > 0),
               "rows-first blocks are whole tiles of both dtypes (gemm.pxi, gemm_blocks)");
_Static_assert(CB_NARROW_DOTS_MAX_N_F64 < CB_LANES_F64 && CB_NARROW_DOTS_MAX_N_F32 < CB_LANES_F32,
               "the dot products take fewer columns than a vector's lanes (narrow_dots_min_k)");

/* Ten-column tiles that use half vectors (float32 on AVX-512) rather than
 * a tile padded to whole ones, on every CPU: 1.15-1.55x faster than the
 * padded tile on an Intel Xeon up to K = 784, level at 1024 (bench/README.md,
 * "The engine's thresholds"). On a Zen 5 the tiles before the groups of
 * steps were within noise of it; the present ones were not measured there.
 * CPUs that halve 512-bit instructions took them in half vectors anyway. */
#define CB_TEN_HALF_VECTORS 1

/* Ten-column tiles of 8 lanes in a 64-byte build (groups of 4 steps of K:
 * float32 in half vectors, float64 in whole ones) take products of at least
 * this many steps; shorter ones, a padded tile (bench/README.md, "Kept: ten
 * columns from 16 steps"). The other ten-column tiles take any K. */
#define CB_TEN_MIN_K_BY_FOURS 16

/* The tall products (cb_tall): rows of A per pass (also the fewest rows
 * gemm.pxi gives them), and the K that its body is spelled out for, 1 to
 * CB_TALL_SPELLED_K, op(B) held in registers; a longer K, up to the
 * table's CB_TALL_MAX_K, runs its steps in a loop, asking for the next
 * pass's rows ahead when CB_TALL_PREFETCH, and with CB_TALL_ACROSS takes
 * at most half a vector of columns on passes of a vector's lanes of rows
 * with C's rows along the vector (bench/README.md, "Tall products on a
 * longer K"). */
#define CB_TALL_ROWS 8
#define CB_TALL_SPELLED_K 16
#define CB_TALL_STEPS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) \
    X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16)
#define CB_TALL_PREFETCH 1
#define CB_TALL_ACROSS 1

/* Dot products into a whole C of at most a quarter of a vector's lanes of
 * columns (X@W of a narrow output layer) take blocks of a vector's lanes
 * of sums, summed together and stored at once (tiles_template.h,
 * cb_dots_adjacent; builds that sum lanes jointly, i.e. 64-byte ones):
 * 1.2-2.2x faster at 1-4 columns (bench/README.md, "Dot products summed a
 * vector at a time"). */
#define CB_DOTS_ADJACENT 1
/* A 4-row block of the dot products that covers all of a whole C's columns
 * stores its vectors of sums as they lie (1.1-1.2x at 4 float64 columns,
 * the same bits; bench/README.md, "Dot products summed a vector at a time"). */
#define CB_DOTS_STORE_RUNS 1
/* ... as long as at most this many of a block's rows lie on one offset in
 * a 4 KiB page, the bits that pick a set of the L1 data cache (8 ways on a
 * Zen 4): float32 1000x1024x1, 16 rows 4 KiB apart, ran 1.5-1.9x slower in
 * those blocks than in 4-row ones on a Zen 4; 1000x512x1, 8 rows on each
 * of two offsets, level (bench/README.md, "Dot products summed a vector at
 * a time"). */
#define CB_DOTS_ADJACENT_MAX_ALIASED_ROWS 8

/* Of `rows` rows stride_bytes apart, the most that share one offset in a
 * 4 KiB page: the offsets repeat every 4096 / gcd(stride_bytes, 4096) rows. */
static inline ptrdiff_t cb_rows_on_one_page_offset(ptrdiff_t rows, ptrdiff_t stride_bytes) {
    ptrdiff_t g = 4096, r = stride_bytes % 4096;
    while (r != 0) {
        const ptrdiff_t t = g % r;
        g = r;
        r = t;
    }
    const ptrdiff_t period = 4096 / g;
    return (rows + period - 1) / period;
}

/* Set (cb_set_halves_512, at import) on CPUs that run each 512-bit
 * instruction as two 256-bit halves: a 64-byte build then takes its
 * ten-column tiles in half vectors, and sums float64's dot products in
 * blocks of 4 rows each vector alone (the same bits as jointly) unless
 * they are stored as runs (CB_DOTS_STORE_RUNS). Read only by 64-byte
 * builds. */
static int cb_halves_512 = 0;
static inline void cb_set_halves_512(int on) { cb_halves_512 = on != 0; }

/* Rows of A per pass of the few-rows and few-dots kernels over B
 * (tiles_template.h, which sizes their steps by CB_VECTOR_REGISTERS). */
#define CB_FEW_ROWS 4

/* The narrow kernel: vectors down the rows of C. */
#define CB_NARROW_NV 2
/* Its tiles of at most this many columns keep their sums in sets (as the
 * short rows do, tiles_template.h): 1.1-1.3x faster at 2 columns, 0.84-1.0x
 * at 5 and 10 (bench/README.md, "Short rows"). */
#define CB_NARROW_SETS_MAX_COLS 2

/* gcc cannot see that a local tile written through vector stores is
 * initialised before its corner is copied out. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/* Two-vector shuffles by a constant list of lane indices (GCC and Clang
 * spell them differently); CB_INTERLEAVE_<LO|HI>_<lanes> interleave the low
 * (high) halves of two vectors: [a0 b0 a1 b1 ...]. */
#if defined(__clang__)
#define CB_SHUFFLE(index_type, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define CB_SHUFFLE(index_type, a, b, ...) __builtin_shuffle(a, b, (index_type){__VA_ARGS__})
#endif
#define CB_INTERLEAVE_LO_2 0, 2
#define CB_INTERLEAVE_HI_2 1, 3
#define CB_INTERLEAVE_LO_4 0, 4, 1, 5
#define CB_INTERLEAVE_HI_4 2, 6, 3, 7
#define CB_INTERLEAVE_LO_8 0, 8, 1, 9, 2, 10, 3, 11
#define CB_INTERLEAVE_HI_8 4, 12, 5, 13, 6, 14, 7, 15
#define CB_INTERLEAVE_LO_16 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define CB_INTERLEAVE_HI_16 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
/* CB_FOLD_<lanes>_<w>: lane i takes lane w/2 + i % (w/2), so that adding the
 * shuffled vector sums the upper half of the first w lanes onto the lower. */
#define CB_FOLD_2_2 1, 1
#define CB_FOLD_4_4 2, 3, 2, 3
#define CB_FOLD_4_2 1, 1, 1, 1
#define CB_FOLD_8_8 4, 5, 6, 7, 4, 5, 6, 7
#define CB_FOLD_8_4 2, 3, 2, 3, 2, 3, 2, 3
#define CB_FOLD_8_2 1, 1, 1, 1, 1, 1, 1, 1
#define CB_FOLD_16_16 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15
#define CB_FOLD_16_8 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7
#define CB_FOLD_16_4 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3
#define CB_FOLD_16_2 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
#define CB_FOLD(lanes, w) CB_CAT2(CB_CAT2(CB_FOLD_, lanes), CB_CAT2(_, w))
/* CB_HALVES_<LO|HI>_<lanes>_<w>: of two vectors side by side, each in
 * groups of w lanes, the lower (upper) half of every group, the first
 * vector's groups then the second's: adding the two sums each group's
 * halves (tiles_template.h, cb_lane_sums). */
#define CB_HALVES_LO_8_8 0, 1, 2, 3, 8, 9, 10, 11
#define CB_HALVES_HI_8_8 4, 5, 6, 7, 12, 13, 14, 15
#define CB_HALVES_LO_8_4 0, 1, 4, 5, 8, 9, 12, 13
#define CB_HALVES_HI_8_4 2, 3, 6, 7, 10, 11, 14, 15
#define CB_HALVES_LO_8_2 0, 2, 4, 6, 8, 10, 12, 14
#define CB_HALVES_HI_8_2 1, 3, 5, 7, 9, 11, 13, 15
#define CB_HALVES_LO_16_16 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define CB_HALVES_HI_16_16 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define CB_HALVES_LO_16_8 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define CB_HALVES_HI_16_8 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
#define CB_HALVES_LO_16_4 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29
#define CB_HALVES_HI_16_4 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31
#define CB_HALVES_LO_16_2 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define CB_HALVES_HI_16_2 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define CB_HALVES(half, lanes, w) \
    CB_CAT2(CB_CAT2(CB_CAT2(CB_HALVES_, half), CB_CAT2(_, lanes)), CB_CAT2(_, w))
/* Whether the tiles store a vector cut by C's last columns with a mask
 * (AVX-512) rather than through a local tile copied value by value. */
#if defined(__AVX512F__) && CB_VECTOR_BYTES == 64
#define CB_MASKED_EDGES 1
#else
#define CB_MASKED_EDGES 0
#endif
/* Whether this build can run tile_steps_avx512.h: AVX-512 instructions and
 * the 12 x 2 tile it is written for (the table's CB_ASM_STEPS_<sfx> then
 * says, per dtype, whether it does). */
#if defined(__AVX512F__) && CB_VECTOR_BYTES == 64 && CB_MR == 12 && CB_NV == 2
#define CB_ASM_TILE 1
#else
#define CB_ASM_TILE 0
#endif
/* Makes the compiler treat a vector as computed in a register: a splat used
 * by a shuffle is then loaded by one broadcast from memory (a load-port
 * operation), instead of rebuilt lane by lane from the scalar with shuffles
 * that compete with the FMAs for their pipes. */
#if defined(__AVX512F__)
#define CB_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif (defined(__x86_64__) || defined(__i386__)) && CB_VECTOR_BYTES <= 32
#define CB_IN_REGISTER(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define CB_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define CB_IN_REGISTER(v) ((void)0)
#endif
/* Unrolls the loop it stands before, early and whole. A tile's
 * accumulators stay in registers only if gcc sees every access to them at a
 * constant index before it decides where they live. */
#if !defined(__clang__)
#define CB_UNROLLED _Pragma("GCC unroll 64")
#else
#define CB_UNROLLED _Pragma("unroll")
#endif
#define CB_CAT2_(a, b) a##b
#define CB_CAT2(a, b) CB_CAT2_(a, b)

#define CB_REAL double
#define CB_SFX f64
#define CB_MC CB_MC_F64
#define CB_KC CB_KC_F64
#define CB_A_PREFETCH_STEPS CB_A_PREFETCH_STEPS_F64
#define CB_B_PREFETCH_STEPS CB_B_PREFETCH_STEPS_F64
#define CB_ASM_STEPS (CB_ASM_TILE && CB_ASM_STEPS_F64)
#define CB_LANES_N CB_LANES_F64
#define CB_INDEX long long
#define CB_ASM_PACKED "pd"
#define CB_ASM_SCALAR "sd"
#define CB_ASM_BYTES "8"
#include "tiles_template.h"
#undef CB_REAL
#undef CB_SFX
#undef CB_MC
#undef CB_KC
#undef CB_A_PREFETCH_STEPS
#undef CB_B_PREFETCH_STEPS
#undef CB_ASM_STEPS
#undef CB_LANES_N
#undef CB_INDEX
#undef CB_ASM_PACKED
#undef CB_ASM_SCALAR
#undef CB_ASM_BYTES

#define CB_REAL float
#define CB_SFX f32
#define CB_MC CB_MC_F32
#define CB_KC CB_KC_F32
#define CB_A_PREFETCH_STEPS CB_A_PREFETCH_STEPS_F32
#define CB_B_PREFETCH_STEPS CB_B_PREFETCH_STEPS_F32
#define CB_ASM_STEPS (CB_ASM_TILE && CB_ASM_STEPS_F32)
#define CB_LANES_N CB_LANES_F32
#define CB_INDEX int
#define CB_ASM_PACKED "ps"
#define CB_ASM_SCALAR "ss"
#define CB_ASM_BYTES "4"
#include "tiles_template.h"
#undef CB_REAL
#undef CB_SFX
#undef CB_MC
#undef CB_KC
#undef CB_A_PREFETCH_STEPS
#undef CB_B_PREFETCH_STEPS
#undef CB_ASM_STEPS
#undef CB_LANES_N
#undef CB_INDEX
#undef CB_ASM_PACKED
#undef CB_ASM_SCALAR
#undef CB_ASM_BYTES

#pragma GCC diagnostic pop

#endif
