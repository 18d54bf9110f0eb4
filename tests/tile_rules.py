"""What the running build's tile table implies for which kernel takes a
product, computed here from the table's figures, so that the tests check the
engine's choice against the rule bench/README.md states rather than against
itself."""
import math

import numpy as np


def dots_min_k(table, dtype, N, whole=False):
    """The shortest K at which the dot products take an X@W of N columns
    (fewer than a vector's lanes): the FMAs a one-vector tile wastes per
    element on padding, (K / lanes) (lanes - N) / N vectors, reach the dot
    products' cost per element beyond their FMAs (bench/README.md,
    "NARROW_DOTS_SUM_COST"): for a K that ends in part of a vector, or,
    ``whole``, for a K of whole vectors ("Dot products of whole vectors")."""
    lanes = table["lanes"][dtype]
    cost = table["dots_whole_sum_cost" if whole else "dots_sum_cost"][dtype]
    return -(-cost * N * lanes // (lanes - N))


def takes_dots_depth(table, dtype, N, K):
    """Whether K is deep enough for the dot products to take N columns."""
    return K >= dots_min_k(table, dtype, N, whole=K % table["lanes"][dtype] == 0)


def dots_widest(table, dtype):
    """The most columns the dot products take (the build's table)."""
    return table["dots_max_n"][dtype]


# Past 4 columns (each group of A's rows read in two passes), the dot
# products take an A of at most this many bytes (bench/README.md,
# "NARROW_DOTS_SUM_COST").
DOTS_ONE_PASS_N = 4
DOTS_TWO_PASS_MAX_A_BYTES = 16 << 20

# δ@Wᵀ (B's rows adjacent along K, A's steps adjacent) of at most the
# table's few_dots_max_m rows takes the dot products with B as it lies, of
# any width, once K has this many vectors per row of A (bench/README.md,
# "Few dots on more rows").
FEW_DOTS_MIN_VECTORS_PER_ROW = 1


def takes_few_dots(table, dtype, M, K):
    """Whether δ@Wᵀ of M rows and depth K takes the dot products, by the
    rule above, whatever its columns."""
    lanes = table["lanes"][dtype]
    return M <= table["few_dots_max_m"][dtype] and K >= FEW_DOTS_MIN_VECTORS_PER_ROW * lanes * M


# Products of at most this many rows (per dtype) times a B of adjacent rows,
# of at least FEW_ROWS_MIN_B_VALUES values and a vector of columns, stream B
# as it lies (the few-rows kernel), unless the short rows of Cᵀ take them
# (bench/README.md, "The engine's thresholds").
FEW_ROWS_MAX_M = {"float64": 4, "float32": 3}
FEW_ROWS_MIN_B_VALUES = 16384


def takes_few_rows(table, dtype, M, K, N):
    """Whether op(A) @ B of M rows, B (K x N) of adjacent rows, streams B in
    the few-rows kernel, when the short rows of Cᵀ do not take it."""
    return (M <= FEW_ROWS_MAX_M[dtype] and K * N >= FEW_ROWS_MIN_B_VALUES
            and N >= table["lanes"][dtype])


# Products of at most this many multiply-adds (M N K) take gemm's plain
# loops, whatever narrow_kernel says of their shape.
TINY_PRODUCT_MAX = 256

# X@W of a few rows and 2 to a narrow-rows tile's columns runs along the
# rows of C, as the short rows of Cᵀ, while M lanes <= 24 (N - 1): past
# that boundary the dot products or the tiles won (bench/README.md, "Rows
# of Cᵀ").
ROWS_OF_CT_ROWS_PER_VECTOR = 24


def takes_rows_of_ct(table, dtype, M, N):
    """Whether an X@W of M rows and N columns (B's rows adjacent) takes the
    short rows of Cᵀ, by the rule above."""
    lanes = table["lanes"][dtype]
    return N <= table["narrow_rows"][dtype] and M * lanes <= ROWS_OF_CT_ROWS_PER_VECTOR * (N - 1)


def rows_of_ct_most_rows(table, dtype, N):
    """The most rows of an X@W of N columns that the short rows of Cᵀ take."""
    lanes = table["lanes"][dtype]
    return ROWS_OF_CT_ROWS_PER_VECTOR * (N - 1) // lanes if N <= table["narrow_rows"][dtype] else 0


# X@W or δ@Wᵀ (op(A)'s steps adjacent) of at least the table's tall_rows
# (a pass of the tall kernel), K of at most its tall_max_k (0 on builds
# without the tall kernel) and at most a vector of columns takes the tall
# kernel, unless the short rows of Cᵀ take it first; one column only on K of
# at most TALL_ONE_COLUMN_MAX_K, below which the dot products lost
# (bench/README.md, "Tall products of a few columns"); past the K its bodies
# spell out (tall_spelled_k), at least half a vector of columns or, where
# the build has tall_across, at least 2 on at least a vector's lanes of rows
# ("Tall products on a longer K").
TALL_ONE_COLUMN_MAX_K = 15
# A K of 1 makes op(A)'s rows adjacent as well: up to this many columns the
# kernels of Xᵀ@δ take it first (the narrow rows, or one column as a row).
NARROW_MAX_N = 10


# The build's dot products sum a vector of sums at a time (blocks of
# lanes // N rows) into a whole C of at most a quarter of a vector's lanes
# of columns, on K of at least the table's dots_adjacent_min_k (0 where they
# never do), while at most its dots_adjacent_max_aliased_rows of a block's
# rows lie on one offset in a 4 KiB page, the bits that pick an L1 set
# (bench/README.md, "Dot products summed a vector at a time").
def dots_take_vectors_of_sums(table, dtype, N, K, row_stride):
    """Whether the dot products sum a whole C of N columns on K steps, op(A)'s
    rows row_stride values apart, a vector of sums at a time (the rule above)."""
    lanes, shortest = table["lanes"][dtype], table["dots_adjacent_min_k"][dtype]
    if not (shortest > 0 and 4 * N <= lanes and K >= shortest):
        return False
    period = 4096 // math.gcd(row_stride * np.dtype(dtype).itemsize, 4096)
    return -(-(lanes // N) // period) <= table["dots_adjacent_max_aliased_rows"]


# Where they do, they take the tall kernel's products of one column, and of
# K of whole vectors from dots_min_k.
def takes_dots_before_tall(table, dtype, K, N):
    """Whether the dot products take a product the tall kernel would, by the
    rules above (C whole, op(A) C-contiguous)."""
    lanes = table["lanes"][dtype]
    return (dots_take_vectors_of_sums(table, dtype, N, K, K) and K <= table["tall_max_k"]
            and (N == 1 or (K % lanes == 0 and K >= dots_min_k(table, dtype, N, whole=True))))


def takes_tall(table, dtype, M, K, N):
    """Whether a product of M rows, depth K and N columns, op(A)'s steps
    adjacent, takes the tall kernel by the rule above (when the rows of Cᵀ
    do not take it first, nor the dot products)."""
    lanes = table["lanes"][dtype]
    return (not takes_dots_before_tall(table, dtype, K, N)
            and M >= table["tall_rows"] and 1 <= K <= table["tall_max_k"]
            and 1 <= N <= lanes and (N > 1 or K <= TALL_ONE_COLUMN_MAX_K)
            and (K <= table["tall_spelled_k"] or 2 * N >= lanes
                 or (table["tall_across"] and M >= lanes and N >= 2))
            and not (K == 1 and N <= NARROW_MAX_N))
