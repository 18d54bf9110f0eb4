"""Run the compiled passes on operands that end (or start) at an inaccessible
page: a read one element past the user's array is a segmentation fault here,
where an ordinary array's neighbour would hide it (the lanes it fills are
never stored, so no value shows it, and the debug build's guard zones
catch writes only). Run by tests/test_reads_stay_in_bounds.py in a
subprocess: ``python guarded_reads.py <area> <dtype>``, printing "ok".

Each operand is copied into pages of its own, flush against a PROT_NONE
page after it (and, in a second round, before it). The ops' fast paths,
which read the operands in place, are asserted to be the ones taken (a
copy on the way would read nothing near the guard), and GEMM's reading of B
in place (rows that start on a cache line) is among the cases; the results
are checked against NumPy.
"""
import ctypes
import mmap
import sys

import numpy as np

import cbackprop as cb
from cbackprop._backend import engine
from tile_rules import TINY_PRODUCT_MAX, dots_min_k, dots_widest, takes_rows_of_ct

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def guarded(values, flush):
    """A C-contiguous copy of ``values`` whose last byte ("end") or first
    byte ("start") touches an inaccessible page."""
    values = np.ascontiguousarray(values)
    data_pages = -(-max(values.nbytes, 1) // PAGE)
    mapping = mmap.mmap(-1, (data_pages + 2) * PAGE)
    base = ctypes.addressof((ctypes.c_char * len(mapping)).from_buffer(mapping))
    for page in (0, data_pages + 1):
        if _libc.mprotect(base + page * PAGE, PAGE, 0) != 0:   # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect failed")
    offset = PAGE if flush == "start" else (data_pages + 1) * PAGE - values.nbytes
    array = np.frombuffer(mapping, values.dtype, values.size, offset).reshape(values.shape)
    array[...] = values
    return array   # a view of the mapping, which it keeps alive


def edges(dtype):
    """Rows, columns and depths around the running build's tile boundaries,
    the ten-column outputs and the few-rows paths; columns of whole cache
    lines too (GEMM reads such a B in place, partial last sliver included)."""
    table = engine.tile_table()
    mr, nr, kc = table["mr"], table["nr"][dtype], table["kc"][dtype]
    line = 64 // np.dtype(dtype).itemsize
    rows = sorted({1, 2, 3, 5, 7, 13, mr - 1, mr, mr + 1, 2 * mr + 1} - {0})
    cols = sorted({1, 2, 3, 9, 10, 11, nr // 2 - 1, nr // 2 + 1, nr - 1, nr + 1, 2 * nr + 3,
                   2 * line, 3 * line, nr + line} - {0})
    depths = [1, 3, nr // 2 + 1, 64, kc + 5]
    return rows, cols, depths


def close(actual, expected, dtype):
    tol = 1e-4 if dtype == "float32" else 1e-10
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    assert np.allclose(actual, expected, rtol=tol, atol=tol * scale), (actual, expected)


def gemm(dtype, rng, flush):
    rows, cols, depths = edges(dtype)
    table = engine.tile_table()
    lanes = table["lanes"][dtype]
    shapes = [(M, N, depths[(i + j) % len(depths)])
              for i, M in enumerate(rows) for j, N in enumerate(cols)]
    # The dot products of a few columns: a tail after whole vectors of K
    # (the last vector read again), or K shorter than a vector; rows in
    # groups of four and a remainder.
    # Enough rows that no product falls to the plain loops of tiny ones.
    for N in range(1, dots_widest(table, dtype) + 1):
        shortest = dots_min_k(table, dtype, N)
        for K in [(max(shortest, lanes) // lanes + 1) * lanes + 3] + [shortest] * (shortest < lanes):
            shapes.append((max(13, TINY_PRODUCT_MAX // (N * K) + 1), N, K))
    # One column of Xᵀ@δ as the row of Cᵀ: a scalar tail after whole vectors.
    shapes += [(2 * lanes + 3, 1, 37)]
    # Xᵀ@δ in the short rows: a partial last vector, read in place up to the
    # steps that would run past A, alone or after the narrow rows' tiles.
    tile = table["narrow_rows"][dtype]
    shapes += [(M, N, 37) for M in (2, lanes - 1, lanes + 1, tile - 1, tile + 3) for N in (1, 2, 5)]
    shapes += [(max(2, tile - 1), 10, K) for K in (2, 3, 4)]   # fewer steps than a group of sets
    # X@W of a few rows as the short rows of Cᵀ: B read in place past each
    # row's end, up to the steps whose vector would run past B.
    few = [(M, N) for N in sorted({2, 3, lanes - 1, lanes + 1, tile - 1} - {0, 1})
           for M in (1, 2, table["narrow_cols"] + 1) if takes_rows_of_ct(table, dtype, M, N)]
    shapes += [(M, N, 37) for M, N in few] + [(M, N, 2) for M, N in few if M * N * 2 > TINY_PRODUCT_MAX]
    # Tall products: a pass of rows, passes and a remainder, a vector of
    # columns or less, K up to the longest the kernel takes (and three
    # short of it: the rows along a vector load a last block of steps in
    # part).
    passes = table["tall_rows"]
    shapes += [(M, N, K) for M in (passes, 2 * passes + 3) for N in (2, lanes - 1, lanes)
               for K in sorted({3, max(3, table["tall_max_k"] - 3), max(3, table["tall_max_k"])})]
    b_in_place, dots, column, dots_tail, dots_short, short_rows, rows_of_ct = 0, 0, 0, 0, 0, 0, 0
    wide_dots, tall, dots_blocks = 0, 0, 0
    for M, N, K in shapes:
        for trans_a in (False, True):
            for trans_b in (False, True):
                A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
                B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
                want = (A.T if trans_a else A).astype(np.float64) @ (B.T if trans_b else B)
                for a, b in ((guarded(A, flush), B), (A, guarded(B, flush))):
                    assert engine.gemm_ready(a, b, trans_a, trans_b, None)
                    close(cb.ops.gemm(a, b, trans_a, trans_b), want, dtype)
                if not trans_b and engine.reads_b_in_place(M, guarded(B, flush)):
                    b_in_place += 1
                if (M > 8 and M * N * K > TINY_PRODUCT_MAX
                        and engine.narrow_kernel(M, K, N, trans_a, dtype) == "dots"):
                    dots += 1
                    dots_tail += K > lanes and K % lanes != 0
                    dots_short += K < lanes
                    # whole blocks of a vector's lanes of sums, then rows left over
                    dots_blocks += (0 < table["dots_adjacent_min_k"][dtype] <= K
                                    and 4 * N <= lanes and M > lanes // N
                                    and M % (lanes // N) != 0)
                if (trans_b and not trans_a and M * N * K > TINY_PRODUCT_MAX
                        and N > dots_widest(table, dtype) and K % lanes != 0
                        and engine.narrow_kernel(M, K, N, False, dtype, True) == "dots"):
                    wide_dots += 1
                if M * K > TINY_PRODUCT_MAX and engine.narrow_kernel(M, K, N, trans_a, dtype) == "column":
                    column += 1
                if (M * N * K > TINY_PRODUCT_MAX and M % tile % lanes != 0
                        and engine.narrow_kernel(M, K, N, trans_a, dtype) == "rows"):
                    short_rows += 1
                if (M * N * K > TINY_PRODUCT_MAX and N % lanes != 0
                        and engine.narrow_kernel(M, K, N, trans_a, dtype, trans_b) == "rows_of_ct"):
                    rows_of_ct += 1
                if (M * N * K > TINY_PRODUCT_MAX and M % table["tall_rows"] != 0
                        and engine.narrow_kernel(M, K, N, trans_a, dtype, trans_b) == "tall"):
                    tall += 1
    assert b_in_place > 0, "no case reads B in place: edges() misses that path"
    assert dots > 0, "no case takes the dot products: edges() misses that path"
    assert dots_tail > 0, "no dot products with a tail after whole vectors of K"
    # (The tall kernel, where the build has it, takes every such K from its
    # least rows; on fewer rows the short rows of Cᵀ or the plain loops do.)
    if not table["tall_max_k"] and any(dots_min_k(table, dtype, N) < lanes
                                       for N in range(1, dots_widest(table, dtype) + 1)):
        assert dots_short > 0, "no dot products with K shorter than a vector"
    if table["dots_adjacent_min_k"][dtype]:
        assert dots_blocks > 0, "no dot products a vector of sums at a time, rows left over"
    assert wide_dots > 0, "no δ@Wᵀ of many columns in the dot products with a tail"
    assert column > 0, "no case takes Xᵀ@δ of one column as a row: edges() misses that path"
    assert short_rows > 0, "no case takes the short rows with a partial vector"
    assert rows_of_ct > 0, "no case takes the short rows of Cᵀ with a partial vector"
    if table["tall_max_k"]:
        assert tall > 0, "no case takes the tall kernel with a partial pass of rows"


def layers(dtype, rng, flush):
    """dense_forward / dense_backward with each operand guarded in turn."""
    rows, cols, _ = edges(dtype)
    K = 37
    for M in rows:
        for N in cols:
            X = rng.standard_normal((M, K)).astype(dtype)
            W = rng.standard_normal((K, N)).astype(dtype)
            b = rng.standard_normal(N).astype(dtype)
            delta = rng.standard_normal((M, N)).astype(dtype)
            want = X.astype(np.float64) @ W + b
            for x, w, bias in ((guarded(X, flush), W, b), (X, guarded(W, flush), b),
                               (X, W, guarded(b, flush))):
                assert engine.dense_forward_ready(x, w, bias, None)
                close(cb.ops.dense_forward(x, w, bias), want, dtype)
            for d, x, w in ((guarded(delta, flush), X, W), (delta, guarded(X, flush), W),
                            (delta, X, guarded(W, flush))):
                assert engine.dense_backward_ready(d, x, w, None, None, None, True)
                grad_w, grad_b, grad_x = cb.ops.dense_backward(d, x, w)
                close(grad_w, X.T.astype(np.float64) @ delta, dtype)
                close(grad_b, delta.astype(np.float64).sum(axis=0), dtype)
                close(grad_x, delta.astype(np.float64) @ W.T, dtype)


def networks(dtype, rng, flush):
    """A Network's passes read a C-contiguous X (and Y) of its dtype in place."""
    rows, _, _ = edges(dtype)
    for n_out, head, loss in ((9, "identity", "mse"), (10, "softmax", "cross_entropy"),
                              (11, "sigmoid", "bce"), (32, "identity", "mse")):
        compiled = cb.Network([64, 17, n_out], ["relu", head], loss=loss, dtype=dtype, seed=0)
        reference = cb.reference.Network([64, 17, n_out], ["relu", head], loss=loss,
                                         dtype=dtype, seed=0)
        for M in rows:
            X = rng.standard_normal((M, 64)).astype(dtype)
            if loss == "cross_entropy":
                Y = rng.integers(0, n_out, M)
            elif loss == "bce":
                Y = rng.integers(0, 2, (M, n_out)).astype(dtype)
            else:
                Y = rng.standard_normal((M, n_out)).astype(dtype)
            x, y = guarded(X, flush), guarded(Y, flush)
            close(compiled.forward(x), reference.forward(X), dtype)
            close(compiled.loss(x, y), reference.loss(X, Y), dtype)
            for (gw, gb), (rw, rb) in zip(compiled.loss_and_gradients(x, y)[1],
                                          reference.loss_and_gradients(X, Y)[1]):
                close(gw, rw, dtype)
                close(gb, rb, dtype)
            close(compiled.train_step(x, y), reference.train_step(X, Y), dtype)
        compiled.fit(guarded(X, flush), guarded(Y, flush), epochs=2, batch_size=5, seed=1)


AREAS = {"gemm": gemm, "layers": layers, "networks": networks}

if __name__ == "__main__":
    area, dtype = sys.argv[1], sys.argv[2]
    for flush in ("end", "start"):
        AREAS[area](dtype, np.random.default_rng(0), flush)
    print("ok")
