"""The engine's GEMM against numpy.matmul over many shapes, both dtypes and
all three transpose patterns of a dense layer (X @ W, Xᵀ @ δ, δ @ Wᵀ)."""
import math

import numpy as np
import pytest

import cbackprop as cb
from cbackprop._backend import engine
from engine_told import told_halves_512
from tile_rules import (DOTS_ONE_PASS_N, DOTS_TWO_PASS_MAX_A_BYTES, TINY_PRODUCT_MAX, dots_min_k,
                        dots_take_vectors_of_sums, dots_widest, rows_of_ct_most_rows,
                        takes_dots_before_tall,
                        takes_dots_depth, takes_few_dots, takes_few_rows, takes_rows_of_ct,
                        takes_tall)

# Edge sizes around every tile and block boundary: 1, MR/NR ± 1, MC (72 in float64,
# 144 in float32 on AVX2), KC (256; 192 in float64 on AVX-512; _tile_edges reads
# the running build's table).
SIZES = [1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31, 71, 73, 143, 145, 257]
TOL = {"float32": 2e-5, "float64": 1e-12}


def _operands(rng, M, N, K, trans_a, trans_b, dtype):
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    expected = (A.T if trans_a else A).astype(np.float64) @ (B.T if trans_b else B).astype(np.float64)
    return A, B, expected


def product(A, B, trans_a=False, trans_b=False, poison=True):
    """op(A) @ op(B) by the engine's GEMM entry, into a C filled with NaN: a
    GEMM that read C without accumulating would leak it into the result."""
    M = A.shape[1] if trans_a else A.shape[0]
    N = B.shape[0] if trans_b else B.shape[1]
    C = np.full((M, N), np.nan if poison else 0, dtype=A.dtype)
    assert engine.op_gemm(A, B, trans_a, trans_b, C) is C
    return C


def accumulate(A, B, trans_a, trans_b, C):
    """C += op(A) @ op(B)."""
    return engine.op_gemm(A, B, trans_a, trans_b, C, accumulate=True)


def _assert_close(C, expected, K, dtype):
    scale = np.sqrt(K) * max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(C, expected, rtol=0, atol=TOL[dtype] * scale)


def _assert_teams_agree(A, B, trans_a, trans_b, expected, C0, K, dtype, teams=(1, 2, 3)):
    """op(A) @ op(B), and the same added into C0, on teams of each size in
    ``teams`` (the first one's the reference): the same bits each time, and
    numpy's product to rounding."""
    products, sums = [], []
    for threads in teams:
        engine.set_num_threads(threads)
        products.append(product(A, B, trans_a, trans_b))
        sums.append(accumulate(A, B, trans_a, trans_b, C0.copy()))
    _assert_close(products[0], expected, K, dtype)
    _assert_close(sums[0], expected + C0, K, dtype)
    for threaded, threaded_sum in zip(products[1:], sums[1:]):
        np.testing.assert_array_equal(threaded, products[0])
        np.testing.assert_array_equal(threaded_sum, sums[0])


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("M", SIZES)
def test_matches_matmul_over_shapes(trans_a, trans_b, M, dtype):
    rng = np.random.default_rng(M)
    for N, K in [(1, 1), (3, 17), (9, 5), (10, 33), (12, 7), (13, 6), (17, 257), (31, 2), (145, 9)]:
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        C = product(A, B, trans_a, trans_b)
        assert C.dtype == np.dtype(dtype) and C.shape == (M, N)
        _assert_close(C, expected, K, dtype)


@pytest.mark.parametrize("shape", [(1000, 3, 600), (64, 4500, 5), (300, 300, 300), (90, 4200, 300)])
def test_multiple_blocks_in_every_loop(shape, dtype):
    """Shapes that cross MC, KC and NC blocks, where the K-blocks accumulate into C."""
    M, N, K = shape
    rng = np.random.default_rng(1)
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    _assert_close(product(A, B), expected, K, dtype)


def test_accumulates_into_c_when_given(dtype):
    rng = np.random.default_rng(2)
    A, B, expected = _operands(rng, 19, 23, 300, False, True, dtype)
    C0 = rng.standard_normal((19, 23)).astype(dtype)
    C = accumulate(A, B, False, True, C0.copy())
    _assert_close(C, expected + C0, 300, dtype)


def test_empty_inner_dimension_gives_zeros(dtype):
    A = np.empty((4, 0), dtype=dtype)
    B = np.empty((0, 3), dtype=dtype)
    np.testing.assert_array_equal(product(A, B), np.zeros((4, 3)))


def test_does_not_read_c_without_accumulate(dtype):
    """C starts as NaN (poison=True): a kernel that read it would leak NaN."""
    rng = np.random.default_rng(3)
    A, B, _ = _operands(rng, 7, 9, 11, False, False, dtype)
    assert np.isfinite(product(A, B)).all()


@pytest.fixture(params=[False, True], ids=["whole-512", "halves-512"])
def halves_512(request):
    """Both ways a 64-byte build takes its ten-column tiles (whole vectors, or
    half vectors for CPUs that halve 512-bit instructions) and sums float64's
    dot products in blocks of 4 rows (jointly, or each vector alone), on
    every build; the setting the import chose is put back."""
    with told_halves_512(request.param):
        yield request.param


def test_halves_512_picks_the_ten_column_tiles():
    """A 64-byte build has its ten-column tiles in vectors of 8 lanes (whole
    ones in float64, half ones in float32) and, told that the CPU halves
    512-bit instructions, in half vectors for both dtypes; other builds keep
    one set of tiles whatever they are told. Tiles of 8 lanes in a 64-byte
    build take products of 16 steps of K or more."""
    with told_halves_512(False):
        whole = engine.tile_table()
    with told_halves_512(True):
        half = engine.tile_table()
    assert (whole["halves_512"], half["halves_512"]) == (False, True)
    if whole["vector_bytes"] == 64:
        assert whole["ten_lanes"] == {"float64": 8, "float32": 8}
        assert half["ten_lanes"] == {"float64": 4, "float32": 8}
        assert whole["ten_min_k"] == {"float64": 16, "float32": 16}
        assert half["ten_min_k"]["float32"] == 16
        assert half["ten_min_k"]["float64"] == 1
    else:
        assert whole["ten_lanes"] == half["ten_lanes"] == whole["lanes"]
        assert whole["ten_min_k"] == half["ten_min_k"] == {"float64": 1, "float32": 1}


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("N", range(1, 12))
def test_narrow_products(trans_a, trans_b, N, dtype, halves_512):
    """Output-layer widths (the narrow kernels take N <= 10; dot products
    N <= 4, B packed panel by panel or read as it lies): row counts around
    their tiles (4 to 32 rows), K across panels (192 or 256), with and
    without accumulating into C, with either set of ten-column tiles."""
    rng = np.random.default_rng(N)
    for M, K in [(4, 3), (8, 300), (16, 64), (37, 530), (130, 257)]:
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        _assert_close(product(A, B, trans_a, trans_b), expected, K, dtype)
        C0 = rng.standard_normal((M, N)).astype(dtype)
        C = accumulate(A, B, trans_a, trans_b, C0.copy())
        _assert_close(C, expected + C0, K, dtype)


def test_which_narrow_kernel_takes_a_product(dtype):
    """Dot products take X@W and δ@Wᵀ of 1 to the build's most columns
    (fewer than a vector's lanes; 6 in float64 and 8 in float32 with
    AVX-512), once K is long enough for the FMAs a one-vector tile wastes
    on padding to outweigh their lane sums (from a K as short or shorter
    when it is whole vectors, "Dot products of whole vectors"), past 4
    columns on an A of at most 16 MiB (bench/README.md,
    "NARROW_DOTS_SUM_COST"). Xᵀ@δ of up to 10
    columns runs down the rows of C (on fewer rows than a tile, the short
    rows), of one column (a vector of rows or more) along the row of Cᵀ; 9
    or 10 columns of X@W take the ten-column tiles; a K of at most the
    table's tall_max_k and at most a vector of columns, the tall kernel
    (test_which_products_take_the_tall_kernel) but for those the dot
    products take first where they sum a vector of sums at a time (one
    column, or K of whole vectors: tile_rules.takes_dots_before_tall);
    anything else the
    blocked loops (on the 300 rows here: a few rows of X@W take the short
    rows of Cᵀ, test_which_products_take_the_rows_of_ct)."""
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    widest = dots_widest(table, dtype)
    assert table["dots_sum_cost"][dtype] >= 1 and 1 <= widest < lanes
    assert 1 <= table["dots_whole_sum_cost"][dtype] <= table["dots_sum_cost"][dtype]
    for N in range(1, widest + 1):
        shortest = dots_min_k(table, dtype, N)
        whole = dots_min_k(table, dtype, N, whole=True)
        # Every K up to past both thresholds: a K of whole vectors from the
        # one, any other from the other.
        for K in range(1, 4 * max(shortest, whole, lanes) + 2):
            if takes_tall(table, dtype, 300, K, N):
                assert engine.narrow_kernel(300, K, N, False, dtype) == "tall", (N, K)
                continue
            want = takes_dots_depth(table, dtype, N, K) or takes_dots_before_tall(table, dtype, K, N)
            assert (engine.narrow_kernel(300, K, N, False, dtype) == "dots") == want, (N, K)
        assert engine.narrow_kernel(300, shortest, N, True, dtype) == ("rows" if N >= 2 else "column")
    assert engine.narrow_kernel(300, 4096, widest + 1, False, dtype) != "dots"
    if widest > DOTS_ONE_PASS_N:
        K = 4096
        largest = DOTS_TWO_PASS_MAX_A_BYTES // (K * np.dtype(dtype).itemsize)
        assert engine.narrow_kernel(largest, K, DOTS_ONE_PASS_N + 1, False, dtype) == "dots"
        assert engine.narrow_kernel(largest + 1, K, DOTS_ONE_PASS_N + 1, False, dtype) is None
        assert engine.narrow_kernel(largest + 1, K, DOTS_ONE_PASS_N, False, dtype) == "dots"
    assert engine.narrow_kernel(300, 256, 12, False, dtype) is None
    assert engine.narrow_kernel(300, 256, 10, True, dtype) == "rows"
    # Fewer rows than a tile: the short rows (one column of a vector or more
    # of them stays a row of Cᵀ); one row takes the rules of adjacent steps.
    tile = engine.tile_table()["narrow_rows"][dtype]
    for M in sorted({2, 3, lanes - 1, tile - 1} - {1}):
        for N in (1, 2, 10):
            want = "column" if N == 1 and M >= lanes else "rows"
            if takes_few_rows(table, dtype, M, 5000, N):
                want = "few_rows"
            assert engine.narrow_kernel(M, 5000, N, True, dtype) == want
    assert engine.narrow_kernel(1, 5000, 2, True, dtype) != "rows"
    assert engine.narrow_kernel(lanes, 3, 1, True, dtype) == "column"
    assert engine.narrow_kernel(lanes - 1, 3, 1, True, dtype) != "column"
    if table["ten_lanes"][dtype]:
        assert engine.narrow_kernel(300, 256, 10, False, dtype) == "ten"
    with pytest.raises(ValueError, match="float32 or float64"):
        engine.narrow_kernel(300, 256, 1, False, "int64")


def test_the_dot_products_rule_in_figures():
    """The rule's thresholds on the AVX-512 build, as bench/README.md lists
    them (the Zen 4's measurements): float64 takes 1-6 columns from K = 6,
    14, 24, 40, 67 and 120; float32 1-8 from K = 8, 16, 26, 38, 51, 68, 88
    and 112, and a K of whole vectors (16 steps each) from 4, 7, 12, 16,
    22, 29, 38 and 48: 1-4 columns from one vector, 5-6 from two and 7-8
    from three (measured on the Zen 4 and the Xeon, "Dot products of whole
    vectors")."""
    table = {"lanes": {"float64": 8, "float32": 16}, "dots_sum_cost": {"float64": 5, "float32": 7},
             "dots_whole_sum_cost": {"float64": 5, "float32": 3},
             "dots_max_n": {"float64": 6, "float32": 8}}
    assert [dots_min_k(table, "float64", N) for N in range(1, 7)] == [6, 14, 24, 40, 67, 120]
    assert [dots_min_k(table, "float64", N, whole=True) for N in range(1, 7)] == [6, 14, 24, 40, 67, 120]
    assert [dots_min_k(table, "float32", N) for N in range(1, 9)] == [8, 16, 26, 38, 51, 68, 88, 112]
    assert [dots_min_k(table, "float32", N, whole=True) for N in range(1, 9)] == [4, 7, 12, 16, 22, 29, 38, 48]
    assert [takes_dots_depth(table, "float32", 8, K) for K in (32, 48, 64, 100, 111, 112)] == [
        False, True, True, False, False, True]
    if engine.tile_table()["isa"] == "avx512":
        for key in ("dots_sum_cost", "dots_whole_sum_cost", "dots_max_n"):
            assert engine.tile_table()[key] == table[key]


@pytest.mark.parametrize("trans_b", [False, True])
def test_dot_products_tail_keeps_an_infinite_product(trans_b, dtype):
    """The tail reads the last vector of K again and drops the lanes counted
    already from its products, not from A's values: an infinite B value in
    such a lane, times a finite A, is counted once, as inf (0 x inf would
    have made the sum NaN)."""
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    K = (max(dots_min_k(table, dtype, 1), lanes) // lanes + 1) * lanes + 1
    M = 301
    assert M * K > TINY_PRODUCT_MAX and engine.narrow_kernel(M, K, 1, False, dtype) == "dots"
    A = np.ones((M, K), dtype)
    B = np.ones((1, K) if trans_b else (K, 1), dtype)
    dropped = K - lanes      # in the last vector, counted with the whole ones
    B.reshape(-1)[dropped] = np.inf
    C = product(A, B, False, trans_b)
    assert np.all(C == np.inf), C[:, 0]
    B.reshape(-1)[dropped] = 1
    B.reshape(-1)[K - 1] = -np.inf   # the tail's own lane
    assert np.all(product(A, B, False, trans_b) == -np.inf)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("N", [1, 2, 3, 4, 5, 6, 7, 8])
def test_dot_products_at_every_depth_around_their_threshold(N, trans_b, dtype):
    """The dot products' sum across the lanes and their tail (the last
    vector of K again, its lanes counted already dropped): K from just below
    the shortest they take, through every remainder of a vector (past the
    first whole one; a K shorter than a vector is summed by a loop), to past two
    panels (B packed panel by panel when it is not read as it lies: NR x KC
    / N steps each), rows in groups of four and a remainder, with and
    without accumulating."""
    rng = np.random.default_rng(N)
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    panel = table["nr"][dtype] * table["kc"][dtype] // N
    shortest = dots_min_k(table, dtype, N) if N <= dots_widest(table, dtype) else 4 * lanes
    # Rows past those the short rows of Cᵀ take of a B as stored, in groups of four and a
    # remainder.
    beyond = rows_of_ct_most_rows(table, dtype, N) + 1
    for K in [shortest - 1, *range(shortest, shortest + lanes + 1), panel - 1, panel,
              panel + 1, 2 * panel + 3]:
        for M in sorted({9, 10, 11, 12, 29, beyond, beyond + 1, beyond + 2, beyond + 3}):
            A, B, expected = _operands(rng, M, N, K, False, trans_b, dtype)
            _assert_close(product(A, B, False, trans_b), expected, K, dtype)
            C0 = rng.standard_normal((M, N)).astype(dtype)
            C = accumulate(A, B, False, trans_b, C0.copy())
            _assert_close(C, expected + C0, K, dtype)


@pytest.mark.parametrize("N", [1, 2, 3, 5, 9, 10])
def test_short_rows_at_every_row_count_and_depth(N, dtype):
    """Xᵀ@δ of fewer rows than a narrow-rows tile, or those a taller product
    leaves over: one or two vectors, the last partial, read in place until
    the steps whose vector would run past A (a copy of those). Every row
    count up to two tiles, depths on both sides of the groups of sums, each
    within rounding of float64 NumPy, and added into a C when asked."""
    rng = np.random.default_rng(N)
    table = engine.tile_table()
    tile, lanes = table["narrow_rows"][dtype], table["lanes"][dtype]
    tol = 1e-4 if dtype == "float32" else 1e-12
    for M in range(2, 2 * tile + 2):
        for K in (TINY_PRODUCT_MAX // (M * N) + 1, 37, 300):
            A = rng.standard_normal((K, M)).astype(dtype)
            B = rng.standard_normal((K, N)).astype(dtype)
            want = A.T.astype(np.float64) @ B
            one_row_of_ct = N == 1 and M >= lanes
            assert engine.narrow_kernel(M, K, N, True, dtype) == ("column" if one_row_of_ct
                                                                  else "rows")
            np.testing.assert_allclose(engine.op_gemm(A, B, True, False), want, rtol=tol, atol=tol)
            C = rng.standard_normal((M, N)).astype(dtype)
            before = C.astype(np.float64)
            engine.op_gemm(A, B, True, False, C, accumulate=True)
            np.testing.assert_allclose(C, before + want, rtol=tol, atol=tol)


def test_which_products_take_few_dots(dtype):
    """δ@Wᵀ (B's rows adjacent along K) of up to the build's few_dots_max_m
    rows takes the dot products, of any number of columns, once K has a
    vector per row of A; one row more, or one step of K less, and columns
    no narrow kernel takes go to the blocked loops. X@W, and Xᵀ@δ of two
    rows or more, of those columns never take them."""
    table = engine.tile_table()
    lanes, most = table["lanes"][dtype], table["few_dots_max_m"][dtype]
    assert most >= 4
    for M in sorted({1, 2, 3, 4, 5, most // 2, most - 1, most, most + 1, 2 * most}):
        shortest = lanes * M
        for K in (shortest - 1, shortest, shortest + 1, 4 * shortest + 3):
            want = M <= most and K >= shortest
            for N in (11, 12, 64, 1000):
                kind = engine.narrow_kernel(M, K, N, False, dtype, trans_b=True)
                assert kind == ("dots" if want else None), (M, K, N)
                assert engine.narrow_kernel(M, K, N, False, dtype) not in ("dots", "ten")
                if M > 1:   # (one row of Aᵀ has its steps adjacent too)
                    assert engine.narrow_kernel(M, K, N, True, dtype, trans_b=True) != "dots"


def test_the_few_dots_rule_in_figures():
    """The most rows of δ@Wᵀ the dot products take, as bench/README.md lists
    them: 32 in both dtypes with AVX-512, 8 with AVX2, 16 on the baseline
    build; K from 8 steps a row in float64 (16 in float32) with AVX-512."""
    table = engine.tile_table()
    most = {"avx512": 32, "avx2": 8, "baseline": 16}[table["isa"]]
    assert table["few_dots_max_m"] == {"float64": most, "float32": most}
    avx512 = {"lanes": {"float64": 8, "float32": 16},
              "few_dots_max_m": {"float64": 32, "float32": 32}}
    assert takes_few_dots(avx512, "float64", 32, 256) and not takes_few_dots(avx512, "float64", 32, 255)
    assert takes_few_dots(avx512, "float32", 3, 48) and not takes_few_dots(avx512, "float32", 3, 47)
    assert not takes_few_dots(avx512, "float64", 33, 100000)


@pytest.mark.parametrize("N", [1, 7, 11, 37, 130])
def test_few_dots_at_every_row_count(N, dtype):
    """δ@Wᵀ in the dot products: every row count up to the most they take
    (groups of four rows and a remainder), K at the shortest they take for
    those rows, a vector more plus a tail, and long, B's rows 4 or 2 at a
    time and then one; within rounding of float64 NumPy, into a poisoned C
    and accumulating."""
    rng = np.random.default_rng(N)
    table = engine.tile_table()
    lanes, most = table["lanes"][dtype], table["few_dots_max_m"][dtype]
    ran = 0
    for M in range(1, most + 1):
        for K in sorted({lanes * M, lanes * (M + 1) + 3, 2000}):
            if M * N * K <= TINY_PRODUCT_MAX:
                continue
            assert engine.narrow_kernel(M, K, N, False, dtype, trans_b=True) == "dots"
            ran += 1
            A, B, expected = _operands(rng, M, N, K, False, True, dtype)
            _assert_close(product(A, B, False, True), expected, K, dtype)
            C0 = rng.standard_normal((M, N)).astype(dtype)
            _assert_close(accumulate(A, B, False, True, C0.copy()), expected + C0, K, dtype)
    assert ran >= most


def test_few_dots_take_b_a_block_at_a_time(dtype, restore_engine_threads):
    """δ@Wᵀ in the dot products reads a B beyond 1 MiB a block of columns at
    a time (about 256 KiB, a multiple of 4 columns, at least 4), every group
    of rows on one block before the next, and a smaller B whole
    (bench/README.md, "Few dots on a far B"): B of four blocks or more and a
    remainder, on one row up to the most the dot products take, every
    element within rounding of NumPy, into a poisoned C and accumulating,
    each the same bits as in a product of its column alone (a block's edge
    changes no sum), and on a team of 1-3 threads the same bits."""
    table = engine.tile_table()
    most, itemsize = table["few_dots_max_m"][dtype], np.dtype(dtype).itemsize
    assert engine.few_dots_block_columns(1000, 100, dtype) == 1000   # 800 KB or less: whole
    assert engine.few_dots_block_columns(4000, 100, dtype) == 256 * 1024 // (100 * itemsize) // 4 * 4
    assert engine.few_dots_block_columns(100, 70000, dtype) == 4      # a column beyond 64 KiB
    with pytest.raises(ValueError, match="float32 or float64"):
        engine.few_dots_block_columns(100, 100, "int64")
    for M, K in sorted({(1, 700), (5, 700), (most - 3, 700), (most, 700), (1, 70000)}):
        rng = np.random.default_rng(M)
        K = max(table["lanes"][dtype] * M, K)
        block = engine.few_dots_block_columns(10**6, K, dtype)
        # Four blocks and a remainder or more: past 1 MiB, and for the
        # largest M past the threading threshold (a team only splits
        # products above it).
        N = 4 * block + 5
        while (engine.few_dots_block_columns(N, K, dtype) == N
               or M == most and 2 * M * N * K < table["parallel_min_flops"]):
            N += block
        assert engine.few_dots_block_columns(N, K, dtype) == block < N
        assert engine.narrow_kernel(M, K, N, False, dtype, trans_b=True) == "dots"
        A, B, expected = _operands(rng, M, N, K, False, True, dtype)
        C = product(A, B, False, True)
        _assert_close(C, expected, K, dtype)
        for j in (0, block - 1, block, 2 * block + 1, N - 1):
            alone = product(A, np.ascontiguousarray(B[j:j + 1]), False, True)
            np.testing.assert_array_equal(C[:, j:j + 1], alone)
        if M == most:
            assert 2 * M * N * K >= table["parallel_min_flops"]
            _assert_teams_agree(A, B, False, True, expected,
                                rng.standard_normal((M, N)).astype(dtype), K, dtype)
        else:
            C0 = rng.standard_normal((M, N)).astype(dtype)
            _assert_close(accumulate(A, B, False, True, C0.copy()), expected + C0, K, dtype)


def test_few_dots_on_a_team_equal_one_thread(dtype, restore_engine_threads):
    """δ@Wᵀ that the dot products take above the threading threshold: the
    rows shared by a team, each element computed whole by one thread, so 1,
    2 and 3 threads give the same bits, with and without accumulating."""
    table = engine.tile_table()
    M, N = table["few_dots_max_m"][dtype], 64
    K = max(table["lanes"][dtype] * M, int(table["parallel_min_flops"] // (2 * M * N)) + 1)
    assert engine.narrow_kernel(M, K, N, False, dtype, trans_b=True) == "dots"
    rng = np.random.default_rng(5)
    A, B, expected = _operands(rng, M, N, K, False, True, dtype)
    _assert_teams_agree(A, B, False, True, expected, rng.standard_normal((M, N)).astype(dtype),
                        K, dtype)


def _dot_products_cases(dtype):
    """(M, K, N, trans_b) of products the dot products take: δ@Wᵀ of up to
    the most rows the few dots take (blocks of 4 rows and of the 1-3 left
    over, times 4, 2 and 1 columns), one row of one column past the plain
    loops, and X@W of 39 rows of each width the narrow dot products take."""
    table = engine.tile_table()
    lanes, most = table["lanes"][dtype], table["few_dots_max_m"][dtype]
    K = max(lanes * most, TINY_PRODUCT_MAX) + 3
    cases = [(most - short, K, N, True)
             for short, N in [(0, 16), (1, 7), (2, 5), (3, 6), (0, 3), (1, 2), (2, 1)]]
    return cases + [(39, 4 * dots_min_k(table, dtype, N) + 5, N, False)
                    for N in range(1, dots_widest(table, dtype) + 1)]


def test_dot_products_sum_each_element_alone(dtype, halves_512):
    """An element of the dot products has the same bits whichever rows and
    columns share its block: the lanes of half a vector's lanes of sums or
    more are added together (in runs of a vector's lanes), of fewer sums
    one vector at a time, each lane meeting the same partners in the same
    order. δ@Wᵀ against each row alone, and X@W against the same rows one
    row further on (blocks of four rows starting elsewhere). float32 with
    16 lanes sums jointly, and float64 with 8 lanes of 64-byte vectors when
    the engine is told the CPU runs them whole (halves_512 off: an Intel
    Xeon, a Zen 5; told either way here); elsewhere the test holds each
    vector summed alone to the same property."""
    rng = np.random.default_rng(11)
    for M, K, N, trans_b in _dot_products_cases(dtype):
        A, B, _ = _operands(rng, M, N, K, False, trans_b, dtype)
        assert engine.narrow_kernel(M, K, N, False, dtype, trans_b=trans_b) == "dots"
        if trans_b:
            assert engine.narrow_kernel(1, K, N, False, dtype, trans_b=True) == "dots"
            together = product(A, B, False, True)
            for i in range(M):
                np.testing.assert_array_equal(product(A[i:i + 1], B, False, True)[0],
                                              together[i], err_msg=f"row {i} of {M}, {N} columns")
        else:
            assert engine.narrow_kernel(M - 1, K, N, False, dtype) == "dots"
            np.testing.assert_array_equal(product(A[1:], B), product(A, B)[1:],
                                          err_msg=f"{N} columns")


def test_dot_products_same_bits_whether_512_bits_are_halved(dtype):
    """The dot products give the same bits whether the engine is told the
    CPU runs 512-bit instructions whole (float64's lanes then summed jointly
    on a 64-byte build) or in halves (each vector alone): a model trains to
    the same digits on an Intel Xeon and an AMD Zen 4."""
    rng = np.random.default_rng(12)
    for M, K, N, trans_b in _dot_products_cases(dtype):
        A, B, _ = _operands(rng, M, N, K, False, trans_b, dtype)
        assert engine.narrow_kernel(M, K, N, False, dtype, trans_b=trans_b) == "dots"
        with told_halves_512(False):
            whole = product(A, B, False, trans_b)
        with told_halves_512(True):
            halves = product(A, B, False, trans_b)
        np.testing.assert_array_equal(whole, halves, err_msg=f"{M}x{K}x{N}")


def test_dot_products_a_vector_of_sums_at_a_time(dtype, halves_512, restore_engine_threads):
    """Where the build sums the dot products a vector of sums at a time (a
    whole C of at most a quarter of a vector's lanes of columns), an
    element has the same bits whichever rows share its block: the last r
    rows of a product of 3 blocks + r rows (a block of r rows) against the
    same rows as the end of 3 whole blocks, on K of whole vectors, with a
    tail, and under a vector where the build takes that (float32),
    overwriting and accumulating; and a team that splits the rows anywhere
    gives the same bits. Such products of the tall kernel's K go to the dot
    products by tile_rules' rule."""
    table = engine.tile_table()
    lanes, shortest = table["lanes"][dtype], table["dots_adjacent_min_k"][dtype]
    if not shortest:
        pytest.skip("this build sums the dot products 4 rows at a time")
    rng = np.random.default_rng(31)
    checked = 0
    for N in range(1, lanes // 4 + 1):
        block = lanes // N
        for K in sorted({shortest, 3, lanes - 1, lanes, lanes + 3, 2 * lanes, 3 * lanes - 1, 96,
                         261}):
            if K < shortest:
                continue
            kernel = engine.narrow_kernel(3 * block, K, N, False, dtype)
            if K <= table["tall_max_k"]:
                assert (kernel == "dots") == takes_dots_before_tall(table, dtype, K, N), (K, N)
            if kernel != "dots":
                continue
            for r in range(1, block):
                M = 3 * block + r
                A, B, expected = _operands(rng, M, N, K, False, False, dtype)
                C0 = rng.standard_normal((M, N)).astype(dtype)
                assert engine.narrow_kernel(M, K, N, False, dtype) == "dots"
                whole = product(A, B)
                _assert_close(whole, expected, K, dtype)
                np.testing.assert_array_equal(whole[r:], product(A[r:], B),
                                              err_msg=f"{M}x{K}x{N}")
                added = accumulate(A, B, False, False, C0.copy())
                _assert_close(added, expected + C0, K, dtype)
                np.testing.assert_array_equal(added[r:],
                                              accumulate(A[r:], B, False, False, C0[r:].copy()))
                checked += 1
    assert checked > 0
    M, K, N = 50000 + 3, 32, 1      # past the table's parallel_min_flops: a team
    assert 2 * M * N * K >= table["parallel_min_flops"]
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    assert engine.narrow_kernel(M, K, N, False, dtype) == "dots"
    _assert_teams_agree(A, B, False, False, expected, rng.standard_normal((M, N)).astype(dtype),
                        K, dtype, teams=(1, 2, 3, 17))


def test_dot_products_a_vector_of_sums_at_a_time_stay_in_c(dtype, halves_512):
    """A block of the dot products a vector of sums at a time stores its
    live rows' sums only: with the rows left over in a block of fewer, the
    values just past C (C the head of a longer buffer) are untouched,
    overwriting and accumulating, on K under a vector (where the build
    takes it), with a tail and of whole vectors."""
    table = engine.tile_table()
    lanes, shortest = table["lanes"][dtype], table["dots_adjacent_min_k"][dtype]
    if not shortest:
        pytest.skip("this build sums the dot products 4 rows at a time")
    rng = np.random.default_rng(37)
    for N in range(1, lanes // 4 + 1):
        M = 3 * (lanes // N) + 1
        tailed = max(table["tall_max_k"], dots_min_k(table, dtype, N)) + 3
        depths = {tailed, 4 * lanes} | ({shortest} if N == 1 else set())
        for K in sorted(depths):
            A, B, expected = _operands(rng, M, N, K, False, False, dtype)
            assert engine.narrow_kernel(M, K, N, False, dtype) == "dots", (M, K, N)
            for accumulating in (False, True):
                memory = np.full(M * N + 2 * lanes, 7, dtype)
                C = memory[:M * N].reshape(M, N)
                C[...] = 0
                if accumulating:
                    accumulate(A, B, False, False, C)
                else:
                    assert engine.op_gemm(A, B, False, False, C) is C
                _assert_close(C, expected, K, dtype)
                assert np.all(memory[M * N:] == 7), (M, K, N, accumulating)


def test_dot_products_rows_on_one_page_offset(dtype, halves_512):
    """The dot products sum a vector of sums at a time only while at most the
    table's dots_adjacent_max_aliased_rows of a block's rows share an offset
    in a 4 KiB page (tile_rules' rule, over strides of every such sharing);
    where more of them would, as float32's 16 rows 4 KiB apart, the 4-row
    blocks take the product: it matches numpy, and its last rows alone
    give the same bits."""
    table = engine.tile_table()
    lanes, shortest = table["lanes"][dtype], table["dots_adjacent_min_k"][dtype]
    if not shortest:
        pytest.skip("this build sums the dot products 4 rows at a time")
    page = 4096 // np.dtype(dtype).itemsize
    strides = sorted({shortest, 100, page // 4, page // 2, page // 2 + 1, 3 * page // 4, page - 24,
                      page, 3 * page // 2, 2 * page, 5 * page})
    for N in range(1, lanes // 4 + 1):
        for stride in strides:
            K = min(stride, 3 * lanes)
            assert (engine.dots_take_vectors_of_sums(N, K, stride, dtype)
                    == dots_take_vectors_of_sums(table, dtype, N, K, stride)), (N, stride)
    with pytest.raises(ValueError, match="float32 or float64"):
        engine.dots_take_vectors_of_sums(1, 64, 64, "int64")
    aliased = lanes > table["dots_adjacent_max_aliased_rows"]
    assert engine.dots_take_vectors_of_sums(1, page, page, dtype) == (not aliased)
    assert engine.dots_take_vectors_of_sums(1, page - 24, page - 24, dtype)
    rng = np.random.default_rng(41)
    M, K = 3 * lanes + 5, page
    A, B, expected = _operands(rng, M, 1, K, False, False, dtype)
    assert engine.narrow_kernel(M, K, 1, False, dtype) == "dots"
    whole = product(A, B)
    _assert_close(whole, expected, K, dtype)
    np.testing.assert_array_equal(whole[5:], product(A[5:], B))


@pytest.mark.parametrize("N", [1000, 1003])
def test_few_rows_on_a_team_equal_one_thread(N, dtype, restore_engine_threads):
    """A few rows times a B streamed as it lies, above the threading
    threshold, stays on one thread (a team streamed B no faster): 1, 2 and 3
    threads give the same bits, with and without accumulating."""
    table = engine.tile_table()
    M, K = (4 if dtype == "float64" else 3), 1030
    assert 2 * M * K * N >= table["parallel_min_flops"]
    assert engine.narrow_kernel(M, K, N, False, dtype) == "few_rows"
    rng = np.random.default_rng(N)
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    _assert_teams_agree(A, B, False, False, expected, rng.standard_normal((M, N)).astype(dtype),
                        K, dtype)


def test_which_products_take_the_rows_of_ct(dtype):
    """X@W of 2 to a narrow-rows tile's columns runs along the rows of C, as
    the short rows of Cᵀ, while M lanes <= 24 (N - 1); so does Xᵀ@δ of one
    row or of more than 10 columns (the short rows of C take 2 rows or more
    and up to 10 columns, and those of a long K on a few rows the few-rows
    kernel); δ@Wᵀ, whose B has no adjacent columns (K > 1), never."""
    table = engine.tile_table()
    tile, lanes = table["narrow_rows"][dtype], table["lanes"][dtype]
    taken = 0
    for N in range(1, tile + 2):
        most = rows_of_ct_most_rows(table, dtype, N)
        for M in sorted(m for m in {1, 2, 3, most - 1, most, most + 1, most + 7} if m >= 1):
            want = takes_rows_of_ct(table, dtype, M, N)
            assert want == (M <= most)
            taken += want
            assert (engine.narrow_kernel(M, 5000, N, False, dtype) == "rows_of_ct") == want, (M, N)
            assert engine.narrow_kernel(M, 5000, N, False, dtype, trans_b=True) != "rows_of_ct"
            on_xt = engine.narrow_kernel(M, 5000, N, True, dtype)
            if M == 1 or N > 10:
                assert (on_xt == "rows_of_ct") == want
            elif takes_few_rows(table, dtype, M, 5000, N):
                assert on_xt == "few_rows"
            else:
                assert on_xt == ("column" if N == 1 and M >= lanes else "rows")
    assert taken > 0
    assert rows_of_ct_most_rows(table, dtype, 1) == 0
    assert rows_of_ct_most_rows(table, dtype, tile + 1) == 0


def test_the_rows_of_ct_rule_in_figures():
    """The most rows that take the short rows of Cᵀ per column count on the
    AVX-512 build, as bench/README.md lists them: float64 3 rows at 2
    columns, 3 more a column, 45 at 16; float32 1, 3 and 4 rows at 2, 3 and
    4 columns, 3 more every 2 columns, 46 at 32."""
    table = {"lanes": {"float64": 8, "float32": 16}, "narrow_rows": {"float64": 16, "float32": 32}}
    assert [rows_of_ct_most_rows(table, "float64", N) for N in range(1, 18)] == \
        [0] + [3 * (N - 1) for N in range(2, 17)] + [0]
    assert [rows_of_ct_most_rows(table, "float32", N) for N in range(1, 9)] == \
        [0, 1, 3, 4, 6, 7, 9, 10]
    assert rows_of_ct_most_rows(table, "float32", 32) == 46
    assert rows_of_ct_most_rows(table, "float32", 33) == 0
    if engine.tile_table()["isa"] == "avx512":
        for key in table:
            assert engine.tile_table()[key] == table[key]


def test_rows_of_ct_at_every_row_count_and_depth(dtype):
    """The short rows of Cᵀ: one or two vectors along each row of C, the
    last partial, B read in place and on past each row's end into the next
    one, the steps whose vector would run past B's end from a copy; the sums
    in sets, fewer steps than a group of them too; C's rows in groups of the
    narrow kernel's columns (every height of a group, and several groups).
    Within rounding of float64 NumPy, added into a C when asked, and with
    op(A) = Aᵀ (the same kernel on one row or more than 10 columns)."""
    rng = np.random.default_rng(7)
    table = engine.tile_table()
    tile, lanes, group = table["narrow_rows"][dtype], table["lanes"][dtype], table["narrow_cols"]
    tol = 1e-4 if dtype == "float32" else 1e-12
    ran, short, groups = 0, 0, 0
    for N in sorted({2, 3, 5, lanes - 1, lanes, lanes + 1, tile - 1, tile} - {0, 1}):
        most = rows_of_ct_most_rows(table, dtype, N)
        for M in sorted({*range(1, min(most, group + 1) + 1), 2 * group + 1, most}):
            if not 1 <= M <= most:
                continue
            for K in (2, 3, 4, 37, 300):
                if M * N * K <= TINY_PRODUCT_MAX:
                    continue
                assert engine.narrow_kernel(M, K, N, False, dtype) == "rows_of_ct"
                ran += 1
                short += K < 4
                groups += M > group
                A = rng.standard_normal((M, K)).astype(dtype)
                B = rng.standard_normal((K, N)).astype(dtype)
                want = A.astype(np.float64) @ B
                np.testing.assert_allclose(product(A, B), want, rtol=tol, atol=tol)
                C = rng.standard_normal((M, N)).astype(dtype)
                before = C.astype(np.float64)
                engine.op_gemm(A, B, False, False, C, accumulate=True)
                np.testing.assert_allclose(C, before + want, rtol=tol, atol=tol)
                np.testing.assert_allclose(product(A.T.copy(), B, True), want, rtol=tol, atol=tol)
    assert ran > 0 and groups > 0
    if group * tile * 3 > TINY_PRODUCT_MAX:   # else the short ones are all tiny
        assert short > 0


def test_rows_of_ct_on_a_team_equal_one_thread(dtype, restore_engine_threads):
    """A product the short rows of Cᵀ take above the threading threshold, of
    several groups of rows, each computed whole by one thread of the team:
    1, 2 and 3 threads give the same bits."""
    table = engine.tile_table()
    N = table["narrow_rows"][dtype]
    M = rows_of_ct_most_rows(table, dtype, N)
    assert M > 2 * table["narrow_cols"]
    K = int(table["parallel_min_flops"] // (2 * M * N)) + 1
    assert engine.narrow_kernel(M, K, N, False, dtype) == "rows_of_ct"
    rng = np.random.default_rng(3)
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    results = []
    for threads in (1, 2, 3):
        engine.set_num_threads(threads)
        results.append(product(A, B))
    _assert_close(results[0], expected, K, dtype)
    for threaded in results[1:]:
        np.testing.assert_array_equal(threaded, results[0])


def test_which_products_take_the_tall_kernel(dtype):
    """X@W and δ@Wᵀ of at least a pass of the tall kernel's rows (8), K of
    at most the build's tall_max_k (32 with AVX-512; 0, none, on the
    others) and at most a vector of columns take the tall kernel, one
    column on K of at most 15; on K past the 16 it spells out, at least
    half a vector of columns or, where the build takes rows along the
    vector (tall_across), 2 or more columns on at least a vector's lanes of
    rows; unless the short rows of Cᵀ take the X@W first (or, at K = 1, the
    kernels of Xᵀ@δ); Xᵀ@δ never takes it."""
    table = engine.tile_table()
    lanes, longest, least = table["lanes"][dtype], table["tall_max_k"], table["tall_rows"]
    assert longest == (32 if table["isa"] == "avx512" else 0) and least == 8
    assert table["tall_spelled_k"] == 16
    assert table["tall_across"] == (table["isa"] == "avx512")
    taken = stepped = 0
    for M in sorted({least - 1, least, least + 1, lanes - 1, lanes, 100, 5000}):
        for K in range(1, max(longest, 16) + 3):
            for N in sorted({1, 2, 3, lanes // 2 - 1, lanes // 2, lanes - 1, lanes, lanes + 1}):
                for trans_b in (False, True):
                    # (a Bᵀ of one step lies as a B does: the rows of Cᵀ may take it)
                    want = (takes_tall(table, dtype, M, K, N)
                            and ((trans_b and K > 1) or not takes_rows_of_ct(table, dtype, M, N)))
                    kind = engine.narrow_kernel(M, K, N, False, dtype, trans_b)
                    assert (kind == "tall") == want, (M, K, N, trans_b, kind)
                    taken += want
                    stepped += want and K > 16
                assert engine.narrow_kernel(M, K, N, True, dtype) != "tall"
    assert (taken > 0) == (longest > 0) and (stepped > 0) == (longest > 16)


@pytest.mark.parametrize("trans_b", [False, True])
def test_tall_products_at_every_depth(trans_b, dtype):
    """Every K the tall kernel spells out and every K it steps through (and
    past them), rows in passes of eight and a remainder, 1 to a vector of
    columns: numpy's product to rounding, into a C of NaN without
    accumulating and added into C with it. Whichever kernel takes each
    shape (the tall one where the build has it), the product is the same."""
    rng = np.random.default_rng(11)
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    tall = stepped = 0
    for K in range(1, max(table["tall_max_k"], 16) + 3):
        for M in (8, 9, 15, 16, 17, 23, 67):
            for N in sorted({1, 2, 3, lanes // 2, lanes - 1, lanes}):
                if M * N * K <= TINY_PRODUCT_MAX:
                    continue
                kind = engine.narrow_kernel(M, K, N, False, dtype, trans_b)
                tall += kind == "tall"
                stepped += kind == "tall" and K > table["tall_spelled_k"]
                A, B, expected = _operands(rng, M, N, K, False, trans_b, dtype)
                _assert_close(product(A, B, False, trans_b), expected, K, dtype)
                C0 = rng.standard_normal((M, N)).astype(dtype)
                _assert_close(accumulate(A, B, False, trans_b, C0.copy()), expected + C0, K,
                              dtype)
    assert (tall > 0) == (table["tall_max_k"] > 0)
    assert (stepped > 0) == (table["tall_max_k"] > table["tall_spelled_k"])


@pytest.mark.parametrize("trans_b", [False, True])
def test_tall_rows_along_the_vector_give_the_rows_bits(trans_b, dtype, restore_engine_threads):
    """Past the K the tall kernel spells out, a few columns take passes of a
    vector's lanes of rows along the vector and the rows left over the
    stepped rows: the same steps in the same order, so the same bits. A row
    computed either way (the last 3 rows of M = 2 lanes + 3 are left over;
    of the last 2 lanes rows alone, none is) is the same, and so is a product
    whose team splits its rows between the two ways (the shares are passes
    of eight rows: a float32 share may leave eight over)."""
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    if not table["tall_across"]:
        pytest.skip("this build takes no rows along the vector")
    rng = np.random.default_rng(23)
    for K in (17, 24, table["tall_max_k"] - 3, table["tall_max_k"]):
        for N in sorted({2, 3, lanes // 2}):
            if takes_dots_before_tall(table, dtype, K, N):
                continue
            M = 2 * lanes + 3
            A, B, expected = _operands(rng, M, N, K, False, trans_b, dtype)
            tail = np.ascontiguousarray(A[3:])
            assert engine.narrow_kernel(M, K, N, False, dtype, trans_b) == "tall"
            assert engine.narrow_kernel(M - 3, K, N, False, dtype, trans_b) == "tall"
            whole = product(A, B, False, trans_b)
            _assert_close(whole, expected, K, dtype)
            np.testing.assert_array_equal(whole[-3:], product(tail, B, False, trans_b)[-3:],
                                          err_msg=f"{M}x{K}x{N}")
    M, K, N = 40000 + 8, 29, 3      # past the table's parallel_min_flops: a team
    assert 2 * M * N * K >= table["parallel_min_flops"]
    A, B, expected = _operands(rng, M, N, K, False, trans_b, dtype)
    assert engine.narrow_kernel(M, K, N, False, dtype, trans_b) == "tall"
    _assert_teams_agree(A, B, False, trans_b, expected, rng.standard_normal((M, N)).astype(dtype),
                        K, dtype)


def test_tall_products_keep_the_padding_out_of_c(dtype):
    """The tall kernel's lanes past the columns hold zeros of B's padding:
    an infinite A in the last row makes them NaN (inf x 0), which reaches
    neither C nor the memory past it (C here the head of a longer buffer);
    an infinite B value reaches only its own column. On a K it spells out
    and on one it steps through."""
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    for K in (5, 24):
        _tall_padding_stays_out(table, 41, K, max(1, lanes - 3), dtype)


def _tall_padding_stays_out(table, M, K, N, dtype):
    lanes = table["lanes"][dtype]
    A = np.ones((M, K), dtype)
    B = np.ones((K, N), dtype)
    A[M - 1, 2] = np.inf
    B[4, N - 1] = -np.inf
    with np.errstate(invalid="ignore"):
        expected = A.astype(np.float64) @ B.astype(np.float64)
    if table["tall_max_k"] >= K:
        assert engine.narrow_kernel(M, K, N, False, dtype) == "tall"
    for accumulating in (False, True):
        memory = np.full(M * N + 2 * lanes, 7, dtype)
        C = memory[:M * N].reshape(M, N)
        C[...] = 0 if accumulating else np.nan
        if accumulating:
            accumulate(A, B, False, False, C)
        else:
            assert engine.op_gemm(A, B, False, False, C) is C
        np.testing.assert_array_equal(C, expected.astype(dtype))
        assert np.isnan(C).sum() == 1 and np.isnan(C[M - 1, N - 1])   # inf - inf, as numpy's
        assert np.all(memory[M * N:] == 7)


def test_tall_products_on_a_team_equal_one_thread(dtype, restore_engine_threads):
    """A tall product above the threading threshold, its passes of rows
    shared by the team, each row computed whole by one thread: 1, 2 and 3
    threads give the same bits, with and without accumulating."""
    table = engine.tile_table()
    K, N = 13, max(1, table["lanes"][dtype] - 3)
    M = int(table["parallel_min_flops"] // (2 * N * K)) + 7
    if table["tall_max_k"]:
        assert engine.narrow_kernel(M, K, N, False, dtype) == "tall"
    rng = np.random.default_rng(5)
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    _assert_teams_agree(A, B, False, False, expected, C0, K, dtype)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("N", [9, 10])
def test_ten_column_tiles_at_every_short_depth(N, trans_b, dtype, halves_512):
    """The ten-column tiles take K in groups of half a vector's lanes (1 to 4
    steps; the last group of a panel may be shorter, and A is never read
    past it): every depth up to three groups of the widest, around the
    shortest K they take (16 for groups of 4; a padded tile below), across
    the end of the running build's panels (tile_table's kc), row counts
    around a tile's, B read as stored or transposed, with and without
    accumulating into C. (δ@Wᵀ of as few rows as the dot products take
    with K long enough is theirs; a K short enough for the tall kernel, its
    own: the columns fit a vector in float32 with AVX-512.)"""
    rng = np.random.default_rng(N)
    table = engine.tile_table()
    kc = table["kc"][dtype]
    # Past the rows the short rows of Cᵀ take of a B as stored, and those the
    # dot products take of a B transposed.
    beyond = rows_of_ct_most_rows(table, dtype, N) + 1
    past_dots = table["few_dots_max_m"][dtype] + 1
    ten = 0
    for K in [*range(1, 20), kc - 1, kc, kc + 1, kc + 3, 2 * kc + 1]:
        for M in sorted({1, 5, 6, 8, 9, 17, beyond, beyond + 1, beyond + 3, beyond + 8,
                         past_dots, past_dots + 3}):
            # (K = 1: A's rows are adjacent as well, the narrow rows take it.)
            if trans_b and takes_few_dots(table, dtype, M, K):
                assert engine.narrow_kernel(M, K, N, False, dtype, trans_b) == "dots"
            elif (trans_b or M >= beyond) and takes_tall(table, dtype, M, K, N):
                assert engine.narrow_kernel(M, K, N, False, dtype, trans_b) == "tall"
            elif (M >= beyond and table["ten_lanes"][dtype]
                    and K >= max(2, table["ten_min_k"][dtype])):
                assert engine.narrow_kernel(M, K, N, False, dtype, trans_b) == "ten"
                ten += 1
            A, B, expected = _operands(rng, M, N, K, False, trans_b, dtype)
            _assert_close(product(A, B, False, trans_b), expected, K, dtype)
            C0 = rng.standard_normal((M, N)).astype(dtype)
            C = accumulate(A, B, False, trans_b, C0.copy())
            _assert_close(C, expected + C0, K, dtype)
    assert ten > 0 or not table["ten_lanes"][dtype]


def _at_offset(array, offset):
    """A C-contiguous copy of ``array`` starting ``offset`` elements past a
    64-byte line, so its address has any alignment the dtype allows."""
    per_line = 64 // array.itemsize
    buffer = np.empty(array.size + 2 * per_line, dtype=array.dtype)
    start = -(buffer.ctypes.data // array.itemsize) % per_line + offset
    view = buffer[start:start + array.size].reshape(array.shape)
    view[...] = array
    return view


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("offset_b", [0, 1, 2, 4, 8])
def test_operands_of_any_alignment(trans_a, trans_b, offset_b, dtype):
    """B is read in place or packed depending on its alignment and size, and
    a last row sliver takes a shorter tile (four rows or more): every
    combination gives the same product, with and without accumulating."""
    rng = np.random.default_rng(offset_b)
    for M, N, K in [(64, 64, 64), (70, 16, 300), (4, 24, 9), (94, 40, 64), (64, 400, 200)]:
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        A, B = _at_offset(A, 1), _at_offset(B, offset_b)
        _assert_close(product(A, B, trans_a, trans_b), expected, K, dtype)
        C0 = _at_offset(rng.standard_normal((M, N)).astype(dtype), 0)
        C = accumulate(A, B, trans_a, trans_b, C0.copy())
        _assert_close(C, expected + C0, K, dtype)


@pytest.fixture
def restore_engine_threads():
    before = engine.get_num_threads()
    yield
    engine.set_num_threads(before)


@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (True, True), (False, False),
                                             (False, True)])
@pytest.mark.parametrize("N", [1, 2, 4, 5, 9, 10])
def test_large_narrow_products_on_a_team_equal_one_thread(trans_a, trans_b, N, dtype,
                                                          halves_512, restore_engine_threads):
    """Narrow products above the threading threshold (3 MFLOP) keep their
    narrow kernels, their tiles shared by a team: Xᵀ@δ of a wide layer's
    output (vectors down the rows of C, rows left over for the short rows)
    and its X@W (the ten-column tiles, K across several panels, rows
    not a multiple of a tile's; dot products for 1-4 columns, the rows
    shared, B packed by the team's first thread); Xᵀ@δ of one column as the
    row of Cᵀ, its vectors shared; X@W of 5, which no narrow kernel takes,
    runs the blocked loops. 1, 2 and 3 threads give the same bits, with and
    without accumulating, and numpy's product to rounding."""
    rng = np.random.default_rng(N)
    # 2000 x 1000: one column above the threshold too (the others need N >= 2).
    assert 2 * 2000 * 1000 >= engine.tile_table()["parallel_min_flops"]
    for M, K in [(1000, 800), (263, 3000), (2000, 1000)]:
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        _assert_teams_agree(A, B, trans_a, trans_b, expected,
                            rng.standard_normal((M, N)).astype(dtype), K, dtype)


@pytest.mark.parametrize("K", [10, 64, 65, 300])
def test_threaded_products_equal_one_thread(K, dtype, restore_engine_threads):
    """Every micro-tile is computed whole by one thread, whichever thread
    that is (a thread done with its share steals the others' tiles) and
    whichever order the tiles run in (along the rows of C for short K), so
    a team's product is bit-identical to one thread's."""
    rng = np.random.default_rng(K)
    A, B, _ = _operands(rng, 389, 301, K, False, True, dtype)
    products = []
    for threads in (1, 2, 3):
        engine.set_num_threads(threads)
        products.append(product(A, B, False, True))
    for threaded in products[1:]:
        np.testing.assert_array_equal(threaded, products[0])


@pytest.mark.parametrize("slivers", [10, 3])
@pytest.mark.parametrize("trans_a", [False, True])
def test_panels_packed_step_by_step_on_a_team(trans_a, slivers, dtype, restore_engine_threads):
    """B's rows (X@W, Xᵀ@δ) and, for Xᵀ@δ, A's steps are packed one K step
    at a time across all the whole slivers of a thread's share of a panel;
    the partial sliver that ends a panel or a block of rows goes on its own.
    Small integers make every sum exact, so on 1-3 threads the product is
    numpy's to the bit: a value packed into the wrong sliver, step or share
    shows. The shapes leave a partial sliver at the end of the last block of
    rows and of the columns, cross a KC panel, and have too many rows for B
    to be read in place; with three B slivers, the third thread of three
    holds only the partial one."""
    table = engine.tile_table()
    mr, nr, mc, kc = table["mr"], table["nr"][dtype], table["mc"][dtype], table["kc"][dtype]
    M, N, K = (256 // mc + 1) * mc + mr + 5, slivers * nr - 1, kc + 7
    assert M > 256 and M % mc % mr and N % nr
    rng = np.random.default_rng(5)
    A = rng.integers(-8, 9, size=(K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.integers(-8, 9, size=(K, N)).astype(dtype)
    assert engine.narrow_kernel(M, K, N, trans_a, dtype) is None
    assert not engine.reads_b_in_place(M, B)
    expected = (A.T if trans_a else A) @ B
    for threads in (1, 2, 3):
        engine.set_num_threads(threads)
        np.testing.assert_array_equal(product(A, B, trans_a, False), expected)
        C0 = rng.integers(-8, 9, size=(M, N)).astype(dtype)
        np.testing.assert_array_equal(accumulate(A, B, trans_a, False, C0.copy()), expected + C0)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_blocks_of_either_order_on_a_team(trans_a, trans_b, dtype, restore_engine_threads):
    """The blocked loops in the order the build's table gives the dtype: rows
    first (panel_rows > 0: blocks of at most that many rows, M split evenly,
    each met by blocks of block_cols columns) or columns first (blocks of
    MC rows met by B's whole panel). The shapes take two blocks of rows
    (rows first: of equal height but for the second's last few rows), the
    second ending in a partial sliver, three blocks of block_cols columns (a
    team of T takes T blocks' worth at once), the last ending in a partial
    sliver, and two K panels; then too few columns for A to be packed, one
    B sliver (fewer than the threads: a team splitting the tiles by B
    slivers leaves the others to steal), and too few rows for B to be
    packed (read in place: the team splits by rows). Small integers make
    every sum exact: on 1-3 threads, with and without accumulating, numpy's
    product to the bit; random values, accumulated or not, give the same
    bits on 1, 2, 3 and 17 threads."""
    table = engine.tile_table()
    mr, nr, kc = table["mr"], table["nr"][dtype], table["kc"][dtype]
    rows_first = table["panel_rows"][dtype] > 0
    rows = table["panel_rows"][dtype] if rows_first else table["mc"][dtype]
    cols = table["block_cols"][dtype] if rows_first else 4 * nr
    assert rows % mr == 0 and cols % nr == 0
    line = 64 // np.dtype(dtype).itemsize     # B's rows on cache lines to be read in place
    shapes = [(rows + 2 * mr + 5, 2 * cols + nr + 3, kc + 7),   # every block edge
              (rows + 2 * mr + 5, 8 * nr - 3, kc + 7),          # A read in place
              (rows + 2 * mr + 5, max(nr - 3, 11), kc + 7),     # one B sliver
              (40, -(-(2 * cols + nr + 1) // line) * line, kc + 7)]   # B in place
    rng = np.random.default_rng(17)
    for M, N, K in shapes:
        A = rng.integers(-8, 9, size=(K, M) if trans_a else (M, K)).astype(dtype)
        B = rng.integers(-8, 9, size=(N, K) if trans_b else (K, N)).astype(dtype)
        B = _on_cache_lines(B)
        assert engine.narrow_kernel(M, K, N, trans_a, dtype, trans_b) is None
        if M == 40 and not trans_b:
            assert engine.reads_b_in_place(M, B)
        expected = (A.T if trans_a else A) @ (B.T if trans_b else B)
        C0 = rng.integers(-8, 9, size=(M, N)).astype(dtype)
        for threads in (1, 2, 3):
            engine.set_num_threads(threads)
            np.testing.assert_array_equal(product(A, B, trans_a, trans_b), expected,
                                          err_msg=f"{M}x{K}x{N} on {threads}")
            np.testing.assert_array_equal(accumulate(A, B, trans_a, trans_b, C0.copy()),
                                          expected + C0, err_msg=f"{M}x{K}x{N} on {threads}")
        # Rounded sums: the same bits on any team, past MAX_STEALING_TEAM (17:
        # the static split) too, so no tile is split or summed out of order.
        A, B = rng.standard_normal(A.shape).astype(dtype), rng.standard_normal(B.shape).astype(dtype)
        B = _on_cache_lines(B)
        expected = (A.T if trans_a else A).astype(np.float64) @ (B.T if trans_b else B)
        _assert_teams_agree(A, B, trans_a, trans_b, expected,
                            rng.standard_normal((M, N)).astype(dtype), K, dtype,
                            teams=(1, 2, 3, 17))


def test_rows_first_where_the_table_says():
    """The AVX-512 table runs float64 rows first and float32 columns first
    (bench/README.md, "Kept: float64 rows first"); the others columns first,
    as measured on an AVX2 EPYC."""
    table = engine.tile_table()
    if table["isa"] == "avx512":
        assert table["panel_rows"] == {"float64": 2040, "float32": 0}
        assert table["block_cols"]["float64"] == 192
    else:
        assert table["panel_rows"] == {"float64": 0, "float32": 0}


def test_a_team_runs_large_products_columns_first(dtype):
    """Where the table runs the blocked loops rows first, a team of threads
    runs a product of team_rows_first_max_flops or more columns first
    (bench/README.md, "Kept: a team columns first on large products"); one
    thread keeps the table's order, as a team does on a smaller product.
    The orders give the same bits: test_blocks_of_either_order_on_a_team
    takes both on its teams."""
    table = engine.tile_table()
    rows_first = table["panel_rows"][dtype] > 0
    limit = table["team_rows_first_max_flops"]
    big, mid = (512, 1024, 1024), (128, 256, 256)     # M, N, K: big's and deep's
    for team in (1, 2, 3):
        assert engine.runs_rows_first(dtype, *mid, team) == rows_first
        assert engine.runs_rows_first(dtype, *big, team) == (rows_first and team == 1)
    if rows_first:
        assert 2 * 128 * 256 * 256 < limit <= 2 * 512 * 1024 * 1024
        M, N = 96, 256
        K = math.ceil(limit / (2 * M * N)) - 1   # just below the limit, then at it
        assert 2 * M * N * K < limit <= 2 * M * N * (K + 1)
        assert engine.runs_rows_first(dtype, M, N, K, 2)
        assert not engine.runs_rows_first(dtype, M, N, K + 1, 2)
    with pytest.raises(ValueError, match="team must be at least 1"):
        engine.runs_rows_first(dtype, 8, 8, 8, 0)


def _tile_edges(dtype):
    """Sizes around every boundary of the running build's blocking table:
    the tile heights it compiles (MR and the shorter ones), NR and one
    vector of columns, MC, KC, and the A-packing threshold (more than 8 B
    slivers), each minus one, exact and plus one."""
    table = engine.tile_table()
    mr, nr, mc, kc = table["mr"], table["nr"][dtype], table["mc"][dtype], table["kc"][dtype]
    lanes = nr // 2
    rows = sorted({n for edge in (4, 8, mr, 2 * mr, mc) for n in (edge - 1, edge, edge + 1) if n > 0})
    cols = sorted({n for edge in (lanes, nr, 8 * nr) for n in (edge - 1, edge, edge + 1)})
    depths = [1, lanes - 1, lanes + 1, kc, kc + lanes + 3]
    return rows, cols, depths


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_edges_of_this_builds_tiles(trans_a, trans_b, dtype):
    """Every row, column and depth edge of the tile table of the build that
    runs (CI runs the suite on each build, the test-only 12-row one included),
    read in place and packed (the column counts cross the A-packing threshold),
    with and without accumulating."""
    rows, cols, depths = _tile_edges(dtype)
    rng = np.random.default_rng(len(rows))
    for M in rows:
        for N in cols:
            K = depths[(M + N) % len(depths)]
            A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
            _assert_close(product(A, B, trans_a, trans_b), expected, K, dtype)
            if (M + N) % 3 == 0:
                C0 = rng.standard_normal((M, N)).astype(dtype)
                _assert_close(accumulate(A, B, trans_a, trans_b, C0.copy()), expected + C0,
                              K, dtype)


def _rounding_values(rng, shape, dtype):
    """Values of few bits of mantissa (every product of two exact in
    ``dtype``) and exponents far apart (their sums round), so that a
    product's bits tell the order its elements were summed in."""
    bits, spread = (10, 30) if dtype == "float64" else (5, 12)
    mantissas = rng.integers(-(1 << bits), 1 << bits, size=shape)
    return np.ldexp(mantissas, rng.integers(-spread, spread, size=shape)).astype(dtype)


def _summed_in_the_order_of_k(A, B, trans_a, trans_b, kc, C0=None):
    """C = op(A) @ op(B) (C0 + it) summed as the blocked loops promise: each
    KC panel's products from zero in the order of k, the panel's sum then
    added into C (or C0), panel after panel."""
    a, b = (A.T if trans_a else A), (B.T if trans_b else B)
    C = None if C0 is None else C0.copy()
    for first in range(0, a.shape[1], kc):
        panel = np.zeros((a.shape[0], b.shape[1]), A.dtype)
        for k in range(first, min(first + kc, a.shape[1])):
            panel += np.multiply.outer(a[:, k], b[k])   # exact: only the sums round
        C = panel if C is None else C + panel
    return C


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_tiles_sum_in_the_order_of_k(trans_a, trans_b, dtype, halves_512):
    """The blocked loops' tiles, A packed (past 8 B slivers) or read in
    place, B packed or read in place (on cache lines, few rows), the whole
    packed tile in asm where the build's table says asm_steps (the AVX-512
    build's float64, told that the CPU runs 512-bit instructions whole), sum each
    element in the order of k within a KC panel and add the panels into C in
    turn: the same bits as that sum written out in numpy, on operands whose
    sums round. Depths cross the asm's pairs of steps (an odd last step),
    the pairs that ask for C's rows (the last 48 steps of a panel on
    AVX-512), and KC; rows cut the tile's height, columns its last vector."""
    table = engine.tile_table()
    assert table["asm_steps"] == {"float64": cb.kernel_path == "avx512" and not halves_512,
                                  "float32": False}
    kc, nr, mr = table["kc"][dtype], table["nr"][dtype], table["mr"]
    rng = np.random.default_rng(21)
    depths = (1, 2, 3, 10, 47, 49, 50, 97, kc - 1, kc, kc + 1, kc + 2, 2 * kc + 3)
    per_line = 64 // np.dtype(dtype).itemsize
    rows_on_lines = per_line * -(-9 * nr // per_line)   # at least 9 B slivers, rows of whole lines
    blocked, b_in_place = set(), set()
    for M in (mr - 3, mr - 1, mr, mr + 1, 2 * mr + 5, 100):
        for N in (4 * nr + 3, rows_on_lines, 9 * nr + 5, 12 * nr - 1):
            for K in depths:
                if (M * N * K <= TINY_PRODUCT_MAX or
                        engine.narrow_kernel(M, K, N, trans_a, dtype, trans_b) is not None):
                    continue
                blocked.add(K)
                A = _rounding_values(rng, (K, M) if trans_a else (M, K), dtype)
                B = _rounding_values(rng, (N, K) if trans_b else (K, N), dtype)
                if (M + K) % 2:
                    B = _on_cache_lines(B)
                if not trans_b:
                    b_in_place.add(_expect_b_in_place(M, B))
                np.testing.assert_array_equal(product(A, B, trans_a, trans_b),
                                              _summed_in_the_order_of_k(A, B, trans_a, trans_b, kc),
                                              err_msg=f"{M}x{K}x{N}")
                if K % 3 == 0:
                    C0 = _rounding_values(rng, (M, N), dtype)
                    np.testing.assert_array_equal(
                        accumulate(A, B, trans_a, trans_b, C0.copy()),
                        _summed_in_the_order_of_k(A, B, trans_a, trans_b, kc, C0),
                        err_msg=f"{M}x{K}x{N} accumulating")
    assert blocked == set(depths)   # each depth in the blocked loops at least once
    assert b_in_place == (set() if trans_b else {True, False})


def _on_cache_lines(array):
    """A copy of ``array`` starting on a 64-byte boundary."""
    block = np.empty(array.size + 64 // array.itemsize, dtype=array.dtype)
    shift = (-block.ctypes.data % 64) // array.itemsize
    copy = block[shift:shift + array.size].reshape(array.shape)
    copy[...] = array
    return copy


def _expect_b_in_place(M, B):
    """gemm.pxi's b_read_in_place, from the running build's table: B on cache
    lines, at most b_in_place_max_m rows, or small_b_in_place_max_m for a B
    of at most small_b_max_bytes, and a float64 B within its own limit."""
    table = engine.tile_table()
    on_lines = B.ctypes.data % 64 == 0 and B.strides[0] % 64 == 0
    few_rows = M <= table["b_in_place_max_m"] or (
        M <= table["small_b_in_place_max_m"] and B.nbytes <= table["small_b_max_bytes"])
    fits = B.dtype == np.float32 or B.nbytes <= table["b_in_place_max_bytes_f64"]
    return on_lines and few_rows and fits


@pytest.mark.parametrize("M,K,N", [(64, 300, 4208), (96, 784, 128), (7, 1030, 528),
                                   (250, 128, 528), (256, 200, 592), (97, 64, 400)])
def test_a_large_b_read_in_place(M, K, N, dtype):
    """Few rows of A and B's rows on cache lines: B is read in place, however
    large (the AVX-512 builds), or packed past CB_B_IN_PLACE_MAX_BYTES_F64
    (float64 on the others); across KC and NC blocks either way, and across
    MC blocks of A (in the AVX-512 build up to 256 rows read a B of at most
    1 MiB in place; in the others 96, and a float64 B of at most 256 KiB)."""
    rng = np.random.default_rng(M)
    A, B, expected = _operands(rng, M, N, K, False, False, dtype)
    B = _on_cache_lines(B)
    assert B.ctypes.data % 64 == 0 and B.strides[0] % 64 == 0
    assert engine.reads_b_in_place(M, B) == _expect_b_in_place(M, B)
    if engine.tile_table()["isa"] == "avx512" and M <= 256 and K * N * B.itemsize <= 1 << 20:
        assert engine.reads_b_in_place(M, B)
    _assert_close(product(A, B), expected, K, dtype)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    _assert_close(accumulate(A, B, False, False, C0.copy()), expected + C0, K, dtype)


def test_reads_b_in_place_refuses_what_gemm_never_reads_in_place():
    """The tests' view of the choice takes a C-contiguous float B only."""
    B = _on_cache_lines(np.ones((64, 64)))
    assert engine.reads_b_in_place(8, B)
    for bad in (B.T, B[:, :32], B.astype(np.int64), B[0]):
        with pytest.raises(ValueError, match="C-contiguous 2-D float32 or float64"):
            engine.reads_b_in_place(8, bad)


@pytest.mark.parametrize("M", [96, 97, 250, 256, 257])
def test_b_read_in_place_on_a_team_equals_one_thread(M, dtype, restore_engine_threads):
    """Around the most rows that read a B of at most 1 MiB in place (256 in
    the AVX-512 build, 96 in the others), over the threading threshold, with
    a partial last B sliver (packed even when the others are read in place):
    a team gives the product of one thread to the bit, with and without
    accumulating."""
    rng = np.random.default_rng(M)
    # Rows on cache lines, and (AVX-512 build) a last sliver of half a tile's width.
    N = 600 if np.dtype(dtype) == np.float64 else 592
    A, B, expected = _operands(rng, M, N, 200, False, False, dtype)
    A, B = _on_cache_lines(A), _on_cache_lines(B)
    table = engine.tile_table()
    assert table["isa"] != "avx512" or N % table["nr"][np.dtype(dtype).name] != 0
    assert engine.reads_b_in_place(M, B) == _expect_b_in_place(M, B)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    results = {}
    for threads in (1, 2):
        engine.set_num_threads(threads)
        results[threads] = (product(A, B), accumulate(A, B, False, False, C0.copy()))
    _assert_close(results[1][0], expected, 200, dtype)
    _assert_close(results[1][1], expected + C0, 200, dtype)
    for one, team in zip(results[1], results[2]):
        np.testing.assert_array_equal(team, one)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_tiny_products_on_both_sides_of_the_plain_loops(trans_a, trans_b, dtype):
    """Products of at most 256 multiply-adds (M N K) take three plain loops
    (a tiny network's every product), larger ones the blocked kernels: both,
    into a poisoned C and accumulating."""
    rng = np.random.default_rng(7)
    for M, N, K in [(4, 2, 2), (4, 1, 2), (2, 2, 4), (1, 1, 1), (4, 8, 8), (8, 8, 4), (16, 16, 1),
                    (256, 1, 1), (1, 256, 1), (8, 4, 8), (5, 7, 8), (4, 8, 9), (257, 1, 1)]:
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        _assert_close(product(A, B, trans_a, trans_b), expected, K, dtype)
        C0 = rng.standard_normal((M, N)).astype(dtype)
        _assert_close(accumulate(A, B, trans_a, trans_b, C0.copy()), expected + C0, K, dtype)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("M", range(1, 10))
def test_a_few_rows_stream_b_as_it_lies(trans_a, trans_b, M, dtype):
    """Products of a few rows: with B of at least 16384 values, up to 4
    (float64) or 3 (float32) rows times a B with adjacent rows and at least
    a vector of columns (more than a narrow-rows tile's, or too many rows
    for the short rows of Cᵀ) take the few-rows kernel (tiles.h: B's rows in
    groups of 2, 4 or 8 steps, then single steps; its columns in blocks of
    2 KB, then a scalar tail); up to the build's few_dots_max_m rows
    with adjacent steps times Bᵀ of any size, K at least a vector per row,
    the dot products (B's rows 4 or 2 at a time, then one; vectors along K,
    then a scalar tail); the rest the tiles. Both sides of every boundary, into a
    poisoned C and accumulating."""
    rng = np.random.default_rng(M)
    table = engine.tile_table()
    for K, N in [(300, 131), (17, 1000), (40, 1000), (1030, 528), (4101, 4), (7, 2500),
                 (2049, 9), (300, 8), (129, 16), (64, 33), (1000, 33)]:
        kind = engine.narrow_kernel(M, K, N, trans_a, dtype, trans_b)
        # (X@W, and Xᵀ@δ of one row or past the narrow rows' 10 columns, may
        # take the short rows of Cᵀ instead.)
        rows_of_ct = takes_rows_of_ct(table, dtype, M, N) and (not trans_a or M == 1 or N > 10)
        streams = not trans_b and takes_few_rows(table, dtype, M, K, N) and not rows_of_ct
        assert (kind == "few_rows") == streams, (M, K, N, kind)
        A, B, expected = _operands(rng, M, N, K, trans_a, trans_b, dtype)
        _assert_close(product(A, B, trans_a, trans_b), expected, K, dtype)
        C0 = rng.standard_normal((M, N)).astype(dtype)
        _assert_close(accumulate(A, B, trans_a, trans_b, C0.copy()), expected + C0, K, dtype)
