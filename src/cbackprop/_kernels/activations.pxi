# Activations, forward and backward. Most derivatives are written through
# the layer's output A (sigmoid: A(1-A), tanh: 1-A², relu/leaky: A > 0 iff
# Z > 0), so those hidden layers keep A alone and are activated in place;
# gelu, gelu_tanh and silu need Z, which the engine keeps for them.
#
# The codes are the registry's (cbackprop/_activations.py): an activation is
# its entry there plus its branch in activation_range and slope_range.
from cython.parallel cimport prange

include "vmath.pxi"
include "sums.pxi"

cdef enum Activation:
    ACT_SIGMOID = 0
    ACT_RELU = 1
    ACT_TANH = 2
    ACT_IDENTITY = 3
    ACT_LEAKY_RELU = 4
    ACT_SOFTMAX = 5
    ACT_GELU = 6
    ACT_GELU_TANH = 7
    ACT_SILU = 8

# The constants are C literals, not module globals: with Python's
# -fno-strict-aliasing a global might alias the arrays a loop writes, and
# would be re-read on every element, which stops the loop vectorising.
cdef extern from *:
    """
    #define CB_LEAKY_SLOPE 0.01
    #define CB_SQRT_HALF 0.7071067811865476        /* 1/sqrt(2) */
    #define CB_INV_SQRT_2PI 0.3989422804014327     /* 1/sqrt(2 pi) */
    #define CB_SQRT_2_OVER_PI 0.7978845608028654   /* sqrt(2/pi) */
    #define CB_GELU_CUBIC 0.044715
    #define CB_GELU_TANH_SQUARE_CAP 1e8                /* see gelu_tanh_slope_range */
    """
    const double LEAKY_SLOPE "CB_LEAKY_SLOPE"
    const double SQRT_HALF "CB_SQRT_HALF"
    const double INV_SQRT_2PI "CB_INV_SQRT_2PI"
    const double SQRT_2_OVER_PI "CB_SQRT_2_OVER_PI"
    const double GELU_CUBIC "CB_GELU_CUBIC"
    const double GELU_TANH_SQUARE_CAP "CB_GELU_TANH_SQUARE_CAP"

cdef enum:
    VECTOR_CHUNK = 256   # elements per stack buffer of the passes that call vmath.h


cdef inline real gelu_tanh_inner(real z) noexcept nogil:
    return <real>SQRT_2_OVER_PI * (z + <real>GELU_CUBIC * z * z * z)


cdef inline Py_ssize_t rows_per_block(Py_ssize_t n) noexcept nogil:
    """Rows of width n whose exp goes to vmath.h in one call: narrow rows (a
    classifier's 10 classes) are many to a VECTOR_CHUNK, not a call each."""
    return max(<Py_ssize_t>1, VECTOR_CHUNK // max(n, <Py_ssize_t>1))


cdef void softmax_rows(Py_ssize_t m, Py_ssize_t n, const real* Z, real* A) noexcept nogil:
    """A = exp(Z - row max) / its row sum; A may be Z."""
    cdef Py_ssize_t i, j, first = 0, last, block = rows_per_block(n)
    cdef real row_max
    cdef double total
    while first < m:
        last = min(m, first + block)
        for i in range(first, last):
            row_max = maximum(n, Z + i * n)
            for j in range(n):
                A[i * n + j] = Z[i * n + j] - row_max
        vector_exp((last - first) * n, A + first * n, A + first * n)
        for i in range(first, last):
            total = sum_as_double(n, A + i * n)
            for j in range(n):
                A[i * n + j] = <real>(A[i * n + j] / total)
        first = last


cdef enum:
    # Element-wise passes over at least this many values are split across the
    # threads by rows or chunks; each value is still computed the same way.
    PARALLEL_MIN_ELEMENTS = 131072
    ELEMENT_CHUNK = 32768


cdef void bias_activation_forward(Py_ssize_t m, Py_ssize_t n, real* Z, const real* bias,
                                  real* A, int activation, int n_threads) noexcept nogil:
    """Z += bias (per column) and A = f(Z), row by row while the row is in
    cache; A may be Z itself."""
    cdef Py_ssize_t i
    if activation == ACT_SOFTMAX:
        bias_rows(0, m, n, Z, bias, Z, ACT_IDENTITY)
        softmax_rows(m, n, Z, A)
    elif n_threads > 1 and m * n >= PARALLEL_MIN_ELEMENTS:
        for i in prange(m, num_threads=cb_team(n_threads), schedule="static"):
            bias_rows(i, i + 1, n, Z, bias, A, activation)
    else:
        bias_rows(0, m, n, Z, bias, A, activation)


cdef enum:
    # bias_rows adds the bias to about this many elements of Z, then activates
    # them in one loop while they are still in L1: long loops for narrow layers.
    BIAS_BLOCK_ELEMENTS = 4096


cdef inline void bias_rows(Py_ssize_t first, Py_ssize_t last, Py_ssize_t n, real* Z,
                           const real* bias, real* A, int activation) noexcept nogil:
    cdef Py_ssize_t i, j, block_end, block_rows
    cdef real z
    # Bias and relu in place, or bias and a copy to A for identity, in one
    # pass over each row: a second pass over the layer's values cost more than
    # the relu itself on a small layer (bench/README.md, "Kept: bias and relu
    # in one pass"). The same values as the blocks below, which also serve
    # identity in place (activation_range has nothing left to do there).
    if activation == ACT_RELU and A == Z:
        for i in range(first, last):
            for j in range(n):
                z = Z[i * n + j] + bias[j]
                Z[i * n + j] = 0 if z <= 0 else z
        return
    if activation == ACT_IDENTITY and A != Z:
        for i in range(first, last):
            for j in range(n):
                z = Z[i * n + j] + bias[j]
                Z[i * n + j] = z
                A[i * n + j] = z
        return
    block_rows = max(<Py_ssize_t>1, BIAS_BLOCK_ELEMENTS // max(n, <Py_ssize_t>1))
    while first < last:
        block_end = min(last, first + block_rows)
        for i in range(first, block_end):
            for j in range(n):
                Z[i * n + j] += bias[j]
        activation_range(first * n, block_end * n, Z, A, activation)
        first = block_end


cdef void activation_forward(Py_ssize_t m, Py_ssize_t n, const real* Z, real* A,
                             int activation, int n_threads) noexcept nogil:
    """A = f(Z) (A may be Z), split over the threads in chunks when large."""
    cdef Py_ssize_t count = m * n
    cdef Py_ssize_t chunk, n_chunks = (count + ELEMENT_CHUNK - 1) // ELEMENT_CHUNK
    if activation == ACT_SOFTMAX:
        softmax_rows(m, n, Z, A)
    elif n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=cb_team(n_threads), schedule="static"):
            activation_range(chunk * ELEMENT_CHUNK,
                             min(count, (chunk + 1) * <Py_ssize_t>ELEMENT_CHUNK), Z, A, activation)
    else:
        activation_range(0, count, Z, A, activation)


cdef inline void activation_range(Py_ssize_t first, Py_ssize_t last, const real* Z, real* A,
                                  int activation) noexcept nogil:
    # One loop per activation, not a switch per element, so that each loop
    # vectorises; those with a transcendental run vmath.h's vector kernels.
    cdef Py_ssize_t i
    if activation == ACT_RELU:
        # max(z, 0) as np.maximum: NaN stays NaN (a diverged layer is not
        # turned into zeros that hide it from the loss), -0 becomes +0.
        for i in range(first, last):
            A[i] = 0 if Z[i] <= 0 else Z[i]
    elif activation == ACT_LEAKY_RELU:
        for i in range(first, last):
            A[i] = Z[i] if Z[i] > 0 else <real>LEAKY_SLOPE * Z[i]
    elif activation == ACT_SIGMOID:
        vector_sigmoid(last - first, Z + first, A + first)
    elif activation == ACT_TANH:
        vector_tanh(last - first, Z + first, A + first)
    elif activation == ACT_GELU:
        gelu_range(first, last, Z, A)
    elif activation == ACT_GELU_TANH:
        gelu_tanh_range(first, last, Z, A)
    elif activation == ACT_SILU:
        vector_silu(last - first, Z + first, A + first)
    elif A != Z:
        copy_values(last - first, Z + first, A + first)


cdef inline void copy_values(Py_ssize_t count, const real* source, real* target) noexcept nogil:
    """target[:count] = source[:count], by a loop the compiler vectorises
    rather than memcpy: glibc's memcpy (2.36, on an AVX2 EPYC) copied 128 KiB
    10-15x slower when the target started 8 to 24 bytes past the source
    modulo 4096, as arrays of one size allocated one after the other often
    do (bench/README.md, "Kept: out-of-place passes without memcpy"). The
    first values go one by one up to target's next 64-byte line, so that the
    vector stores never straddle two lines."""
    cdef Py_ssize_t i
    cdef Py_ssize_t head = min(count, <Py_ssize_t>((64 - <size_t>target % 64) % 64 // sizeof(real)))
    for i in range(head):
        target[i] = source[i]
    for i in range(head, count):
        target[i] = source[i]


cdef void activation_backward(Py_ssize_t count, const real* grad_in, real* grad, const real* A,
                              const real* Z, int activation, int n_threads) noexcept nogil:
    """grad = dL/dZ from grad_in = dL/dA (grad_in may be grad: in place): f'(Z)
    written through A = f(Z) (sigmoid A(1-A), tanh 1-A², relu/leaky A > 0 iff
    Z > 0), or read from Z for gelu, gelu_tanh and silu (Z may be A for the
    others)."""
    cdef Py_ssize_t chunk, n_chunks = (count + ELEMENT_CHUNK - 1) // ELEMENT_CHUNK
    if activation == ACT_IDENTITY:
        if grad_in != grad:
            copy_values(count, grad_in, grad)
        return
    if n_threads > 1 and count >= PARALLEL_MIN_ELEMENTS:
        for chunk in prange(n_chunks, num_threads=cb_team(n_threads), schedule="static"):
            slope_range_from(chunk * ELEMENT_CHUNK,
                             min(count, (chunk + 1) * <Py_ssize_t>ELEMENT_CHUNK), grad_in, grad,
                             A, Z, activation)
    else:
        slope_range_from(0, count, grad_in, grad, A, Z, activation)


cdef inline void slope_range_from(Py_ssize_t first, Py_ssize_t last, const real* grad_in,
                                  real* grad, const real* A, const real* Z,
                                  int activation) noexcept nogil:
    """slope_range on dL/dA read from grad_in: copied into grad VECTOR_CHUNK
    values at a time and scaled while they are in L1. The slope loops stay
    in place: a relu slope loop written from one array into another ran
    at 0.36-0.55 ns per value when the two were the same array, against 0.23
    for the in-place loop (a C probe, gcc 12, on an AVX2 EPYC)."""
    cdef Py_ssize_t start, end
    if grad_in == grad:
        slope_range(first, last, grad, A, Z, activation)
        return
    start = first
    while start < last:
        end = min(start + <Py_ssize_t>VECTOR_CHUNK, last)
        copy_values(end - start, grad_in + start, grad + start)
        slope_range(start, end, grad, A, Z, activation)
        start += VECTOR_CHUNK


cdef inline void slope_range(Py_ssize_t first, Py_ssize_t last, real* grad, const real* A,
                             const real* Z, int activation) noexcept nogil:
    cdef Py_ssize_t i
    if activation == ACT_RELU:
        # A product with 0 or 1, as the reference's: an infinite or NaN dL/dA
        # where the unit is off gives NaN, not a zero that hides it.
        for i in range(first, last):
            grad[i] = grad[i] * (<real>1 if A[i] > 0 else <real>0)
    elif activation == ACT_LEAKY_RELU:
        for i in range(first, last):
            grad[i] = grad[i] if A[i] > 0 else <real>LEAKY_SLOPE * grad[i]
    elif activation == ACT_SIGMOID:
        for i in range(first, last):
            grad[i] *= A[i] * (<real>1 - A[i])
    elif activation == ACT_TANH:
        for i in range(first, last):
            grad[i] *= <real>1 - A[i] * A[i]
    elif activation == ACT_GELU:
        gelu_slope_range(first, last, grad, Z)
    elif activation == ACT_GELU_TANH:
        gelu_tanh_slope_range(first, last, grad, Z)
    elif activation == ACT_SILU:
        silu_slope_range(first, last, grad, Z)


# Chunks of VECTOR_CHUNK elements: the transcendental of a chunk by vmath.h
# into a stack buffer, then the arithmetic around it in one vector loop.
cdef inline void normal_cdf_chunk(Py_ssize_t n, const real* Z, real* cdf) noexcept nogil:
    # Φ(z) = erfc(-z / sqrt 2) / 2: erfc keeps its digits where
    # (1 + erf(z / sqrt 2)) / 2 would cancel (z below about -2).
    cdef Py_ssize_t j
    for j in range(n):
        cdf[j] = -Z[j] * <real>SQRT_HALF
    vector_erfc(n, cdf, cdf)
    for j in range(n):
        cdf[j] *= <real>0.5


cdef inline void gelu_tanh_sigma_chunk(Py_ssize_t n, const real* Z, real* sigma) noexcept nogil:
    # σ(2u): z (1 + tanh(u)) / 2 is z σ(2u), and σ keeps its digits where
    # 1 + tanh(u) would cancel (z below about -3).
    cdef Py_ssize_t j
    for j in range(n):
        sigma[j] = <real>2 * gelu_tanh_inner(Z[j])
    vector_sigmoid(n, sigma, sigma)


cdef void gelu_range(Py_ssize_t first, Py_ssize_t last, const real* Z, real* A) noexcept nogil:
    # z Φ(z)
    cdef real cdf[VECTOR_CHUNK]
    cdef Py_ssize_t start, j, n
    start = first
    while start < last:
        n = min(<Py_ssize_t>VECTOR_CHUNK, last - start)
        normal_cdf_chunk(n, Z + start, cdf)
        for j in range(n):
            A[start + j] = Z[start + j] * cdf[j]
        start += VECTOR_CHUNK


cdef void gelu_slope_range(Py_ssize_t first, Py_ssize_t last, real* grad,
                           const real* Z) noexcept nogil:
    # d/dz z Φ(z) = Φ(z) + z φ(z), φ(z) = exp(-z²/2) / sqrt(2 pi)
    cdef real cdf[VECTOR_CHUNK]
    cdef real e[VECTOR_CHUNK]
    cdef real z
    cdef Py_ssize_t start, j, n
    start = first
    while start < last:
        n = min(<Py_ssize_t>VECTOR_CHUNK, last - start)
        normal_cdf_chunk(n, Z + start, cdf)
        for j in range(n):
            z = Z[start + j]
            e[j] = <real>-0.5 * z * z
        vector_exp(n, e, e)
        for j in range(n):
            grad[start + j] *= cdf[j] + Z[start + j] * <real>INV_SQRT_2PI * e[j]
        start += VECTOR_CHUNK


cdef void gelu_tanh_range(Py_ssize_t first, Py_ssize_t last, const real* Z,
                          real* A) noexcept nogil:
    # z σ(2u)
    cdef real s[VECTOR_CHUNK]
    cdef Py_ssize_t start, j, n
    start = first
    while start < last:
        n = min(<Py_ssize_t>VECTOR_CHUNK, last - start)
        gelu_tanh_sigma_chunk(n, Z + start, s)
        for j in range(n):
            A[start + j] = Z[start + j] * s[j]
        start += VECTOR_CHUNK


cdef void gelu_tanh_slope_range(Py_ssize_t first, Py_ssize_t last, real* grad,
                                const real* Z) noexcept nogil:
    # d/dz z σ(2u) = σ(2u) + 2 z σ(2u) (1 - σ(2u)) u'(z). u' grows as z²,
    # which overflows beyond sqrt of the largest value, into 0 x inf; from
    # |z| = 1e4 on, σ(2u) (1 - σ(2u)) is exactly 0 in both dtypes, so z² is
    # capped there, and z σ (1 - σ) is formed before 2 z can overflow.
    cdef real s[VECTOR_CHUNK]
    cdef real z
    cdef Py_ssize_t start, j, n
    start = first
    while start < last:
        n = min(<Py_ssize_t>VECTOR_CHUNK, last - start)
        gelu_tanh_sigma_chunk(n, Z + start, s)
        for j in range(n):
            z = Z[start + j]
            grad[start + j] *= (s[j] + <real>2 * (z * s[j] * (<real>1 - s[j]))
                                * <real>SQRT_2_OVER_PI * (<real>1 + <real>3 * <real>GELU_CUBIC
                                                          * min(z * z, <real>GELU_TANH_SQUARE_CAP)))
        start += VECTOR_CHUNK


cdef void silu_slope_range(Py_ssize_t first, Py_ssize_t last, real* grad,
                           const real* Z) noexcept nogil:
    cdef real s[VECTOR_CHUNK]
    cdef real z
    cdef Py_ssize_t start, j, n
    start = first
    while start < last:
        n = min(<Py_ssize_t>VECTOR_CHUNK, last - start)
        vector_sigmoid(n, Z + start, s)
        for j in range(n):
            z = Z[start + j]
            grad[start + j] *= s[j] * (<real>1 + z * (<real>1 - s[j]))
        start += VECTOR_CHUNK


cdef void softmax_backward(Py_ssize_t m, Py_ssize_t n, real* grad, const real* A) noexcept nogil:
    """grad (dL/dA) becomes dL/dZ = A * (grad - sum_j grad_j A_j), row by row."""
    cdef Py_ssize_t i, j
    cdef double dot
    for i in range(m):
        dot = dot_as_double(n, grad + i * n, A + i * n)
        for j in range(n):
            grad[i * n + j] = A[i * n + j] * <real>(grad[i * n + j] - dot)
