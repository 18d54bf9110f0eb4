# The dense-layer kernels on caller-provided arrays: the compiled half of
# cbackprop.ops. cbackprop/ops.py checks every argument first (dtypes,
# shapes, C order, alignment, writable outputs, which outputs may alias
# which inputs; at C speed in _ops_ready.pxi when they pass as they are),
# so the op_* functions below trust them, as the Engine's methods do. Each
# releases the GIL and picks the float or double kernels once (an op of
# several kernels through its fused *_typed function).
# Included after _engine.pxi (it uses num_threads, Guards and data()).

include "_ops_ready.pxi"


# -- workspaces of one call ----------------------------------------------------------------
cdef class OpScratch:
    """GEMM panels of one op call, allocated per call, so that concurrent
    calls from several threads share nothing; guarded in a debug build like
    the Engine's workspace."""
    cdef cnp.ndarray panels
    cdef Guards guards
    cdef void* pack_a
    cdef void* pack_b
    cdef Py_ssize_t size_a         # elements of the A panel

    def __cinit__(self, int typenum, Py_ssize_t max_m, Py_ssize_t max_n, Py_ssize_t max_k):
        cdef Py_ssize_t size_a, size_b
        cdef cnp.npy_intp dims[1]
        if typenum == cnp.NPY_FLOAT:
            size_a = gemm_pack_a_size(max_m, max_k, <float*>NULL)
            size_b = gemm_pack_b_size(max_n, max_k, <float*>NULL)
        else:
            size_a = gemm_pack_a_size(max_m, max_k, <double*>NULL)
            size_b = gemm_pack_b_size(max_n, max_k, <double*>NULL)
        # Both panels on 64-byte lines, as in the Engine's workspace, so that
        # the ops (and bench/'s figures of op_gemm) pack where a training
        # step's products do, not wherever numpy's 16-byte aligned memory
        # falls (on the Zen 4 the products measured level either way:
        # 0.98-1.04, bench/README.md, "Kept: the ops' panels on cache lines").
        cdef Py_ssize_t b_start = round_up(size_a + GUARD, ALIGN), shift
        self.guards = Guards()
        self.size_a = size_a
        dims[0] = b_start + size_b + GUARD + ALIGN
        self.panels = cnp.PyArray_EMPTY(1, dims, typenum, 0)
        shift = elements_to_line(self.panels)
        self.pack_a = <char*>data(self.panels) + shift * cnp.PyArray_ITEMSIZE(self.panels)
        self.pack_b = <char*>self.pack_a + b_start * cnp.PyArray_ITEMSIZE(self.panels)
        self.guards.add(self.panels, shift + size_a, "the packed A panel")
        self.guards.add(self.panels, shift + b_start + size_b, "the packed B panel")

    cdef int verify(self, str where) except -1:
        if GUARD:
            self.guards.verify(where)
        return 0


def op_panel_offsets(dtype, Py_ssize_t max_m, Py_ssize_t max_n, Py_ssize_t max_k):
    """Where an op's panels lie for these sizes (tests): pack_a's and pack_b's
    byte offsets from a 64-byte line, pack_b's elements past pack_a, and the
    A panel's elements."""
    cdef OpScratch scratch = OpScratch(np.dtype(dtype).num, max_m, max_n, max_k)
    return (<size_t>scratch.pack_a % 64, <size_t>scratch.pack_b % 64,
            (<char*>scratch.pack_b - <char*>scratch.pack_a) // np.dtype(dtype).itemsize,
            scratch.size_a)


# -- the ops: arguments already checked by cbackprop/ops.py -----------------------------
def op_gemm(cnp.ndarray a, cnp.ndarray b, bint trans_a=False, bint trans_b=False,
            cnp.ndarray out=None, *, bint accumulate=False):
    """out = op(a) @ op(b), in a new array when ``out`` is None: the engine's one
    GEMM entry, behind cb.ops.gemm (which checks the arguments; this trusts
    them: C-contiguous 2-D arrays of one float dtype, inner dimensions that
    agree). The bench and the tests call it directly; ``accumulate`` (out +=
    op(a) @ op(b)) is internal, for the tests."""
    cdef Py_ssize_t M = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t N = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t rsa = 1 if trans_a else K, csa = M if trans_a else 1
    cdef Py_ssize_t rsb = 1 if trans_b else N, csb = K if trans_b else 1
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef cnp.npy_intp dims[2]
    if out is None:
        dims[0] = M
        dims[1] = N
        out = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    cdef OpScratch scratch = OpScratch(typenum, M, N, K)
    cdef void* pa = data(a)
    cdef void* pb = data(b)
    cdef void* c = data(out)
    cdef int n_threads = num_threads
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            gemm(M, N, K, <float*>pa, rsa, csa, <float*>pb, rsb, csb, <float*>c, N, accumulate,
                 <float*>scratch.pack_a, <float*>scratch.pack_b, n_threads)
        else:
            gemm(M, N, K, <double*>pa, rsa, csa, <double*>pb, rsb, csb, <double*>c, N, accumulate,
                 <double*>scratch.pack_a, <double*>scratch.pack_b, n_threads)
    scratch.verify("gemm")
    return out


cdef void dense_forward_typed(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, const real* x,
                             const void* weights, const void* bias, void* z, int activation,
                             OpScratch scratch, int n_threads) noexcept nogil:
    gemm(m, n_out, n_in, x, n_in, 1, <const real*>weights, n_out, 1, <real*>z, n_out, False,
         <real*>scratch.pack_a, <real*>scratch.pack_b, n_threads)
    if m * n_out > 0:
        bias_activation_forward(m, n_out, <real*>z, <const real*>bias, <real*>z, activation,
                                n_threads)


def op_dense_forward(cnp.ndarray a_prev, cnp.ndarray weights, cnp.ndarray bias, int activation,
                     cnp.ndarray out):
    """out = f(a_prev @ weights + bias): the GEMM, then bias and activation in one pass."""
    cdef Py_ssize_t m = a_prev.shape[0], n_in = a_prev.shape[1], n_out = weights.shape[1]
    cdef OpScratch scratch = OpScratch(cnp.PyArray_TYPE(out), m, n_out, n_in)
    cdef void* x = data(a_prev)
    cdef void* w = data(weights)
    cdef void* b = data(bias)
    cdef void* z = data(out)
    cdef int n_threads = num_threads
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            dense_forward_typed(m, n_in, n_out, <float*>x, w, b, z, activation, scratch, n_threads)
        else:
            dense_forward_typed(m, n_in, n_out, <double*>x, w, b, z, activation, scratch, n_threads)
    scratch.verify("ops.dense_forward")
    return out


cdef void dense_backward_typed(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, const real* delta,
                              const void* a_prev, const void* weights, void* grad_weights,
                              void* grad_bias, void* grad_a_prev, OpScratch scratch,
                              int n_threads) noexcept nogil:
    cdef real* pack_a = <real*>scratch.pack_a
    cdef real* pack_b = <real*>scratch.pack_b
    gemm(n_in, n_out, m, <const real*>a_prev, 1, n_in, delta, n_out, 1, <real*>grad_weights,
         n_out, False, pack_a, pack_b, n_threads)
    column_sums(m, n_out, delta, <real*>grad_bias, n_threads)
    if grad_a_prev != NULL:
        gemm(m, n_in, n_out, delta, n_out, 1, <const real*>weights, 1, n_out, <real*>grad_a_prev,
             n_in, False, pack_a, pack_b, n_threads)


def op_dense_backward(cnp.ndarray delta, cnp.ndarray a_prev, cnp.ndarray weights,
                      cnp.ndarray grad_weights, cnp.ndarray grad_bias, cnp.ndarray grad_a_prev):
    """grad_weights = a_prevᵀ @ delta, grad_bias = delta summed over rows and, unless
    grad_a_prev is None, grad_a_prev = delta @ weightsᵀ (transposes read through strides)."""
    cdef Py_ssize_t m = delta.shape[0], n_out = delta.shape[1], n_in = a_prev.shape[1]
    # Panels for both products: (n_in x n_out, K = m) and (m x n_in, K = n_out).
    cdef OpScratch scratch = OpScratch(cnp.PyArray_TYPE(delta), max(n_in, m), max(n_out, n_in),
                                       max(m, n_out))
    cdef void* d = data(delta)
    cdef void* x = data(a_prev)
    cdef void* w = data(weights)
    cdef void* gw = data(grad_weights)
    cdef void* gb = data(grad_bias)
    cdef void* gx = data(grad_a_prev) if grad_a_prev is not None else NULL
    cdef int n_threads = num_threads
    with nogil:
        if cnp.PyArray_TYPE(delta) == cnp.NPY_FLOAT:
            dense_backward_typed(m, n_in, n_out, <float*>d, x, w, gw, gb, gx, scratch, n_threads)
        else:
            dense_backward_typed(m, n_in, n_out, <double*>d, x, w, gw, gb, gx, scratch, n_threads)
    scratch.verify("ops.dense_backward")
    return grad_weights, grad_bias, grad_a_prev


def op_activation_forward(int activation, cnp.ndarray z, cnp.ndarray out):
    """out = f(z); out may be z."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    cdef void* zp = data(z)
    cdef void* ap = data(out)
    cdef int n_threads = num_threads
    if m * n == 0:   # (softmax reads each row's first value for its maximum)
        return out
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            activation_forward(m, n, <float*>zp, <float*>ap, activation, n_threads)
        else:
            activation_forward(m, n, <double*>zp, <double*>ap, activation, n_threads)
    return out


cdef void activation_backward_typed(Py_ssize_t m, Py_ssize_t n, const void* grad_in, real* grad,
                                   const void* a, const void* z, int activation,
                                   int n_threads) noexcept nogil:
    if activation == ACT_SOFTMAX:
        if <const real*>grad_in != grad:
            copy_values(m * n, <const real*>grad_in, grad)
        softmax_backward(m, n, grad, <const real*>a)
    else:
        activation_backward(m * n, <const real*>grad_in, grad, <const real*>a, <const real*>z,
                            activation, n_threads)


def op_activation_backward(int activation, cnp.ndarray grad_a, cnp.ndarray a, cnp.ndarray z,
                           cnp.ndarray out):
    """out = grad_a ⊙ f'(z), f' written through a = f(z) or read from z (which
    may be a for the activations that do not need it); out may be grad_a."""
    cdef Py_ssize_t m = a.shape[0], n = a.shape[1]
    cdef void* g = data(grad_a)
    cdef void* ap = data(a)
    cdef void* zp = data(z)
    cdef void* gz = data(out)
    cdef int n_threads = num_threads
    if m * n == 0:
        return out
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            activation_backward_typed(m, n, g, <float*>gz, ap, zp, activation, n_threads)
        else:
            activation_backward_typed(m, n, g, <double*>gz, ap, zp, activation, n_threads)
    return out


def op_mse(cnp.ndarray a, cnp.ndarray y, cnp.ndarray z, double scale, bint reduction_sum,
           int activation, cnp.ndarray out):
    """The engine's MSE: the loss, and out = dL/dZ of an output layer with this
    activation (z: its pre-activation, or a when the derivative does not need it)."""
    cdef Py_ssize_t m = a.shape[0], n = a.shape[1]
    cdef void* ap = data(a)
    cdef void* zp = data(z)
    cdef void* yp = data(y)
    cdef void* dp = data(out)
    cdef double value
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            value = mse_loss(m, n, <float*>ap, <float*>zp, <float*>yp, scale, reduction_sum,
                             activation, <float*>dp)
        else:
            value = mse_loss(m, n, <double*>ap, <double*>zp, <double*>yp, scale, reduction_sum,
                             activation, <double*>dp)
    return value, out


def op_bce(cnp.ndarray z, cnp.ndarray y, cnp.ndarray out):
    """Binary cross-entropy of sigmoid(z); out = (sigmoid(z) - y) / N (out may be z)."""
    cdef Py_ssize_t count = cnp.PyArray_SIZE(z)
    cdef void* zp = data(z)
    cdef void* yp = data(y)
    cdef void* dp = data(out)
    cdef double value
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            value = bce_loss(count, <float*>zp, <float*>yp, <float*>dp)
        else:
            value = bce_loss(count, <double*>zp, <double*>yp, <double*>dp)
    return value, out


def op_cross_entropy(cnp.ndarray z, cnp.ndarray y, cnp.ndarray out):
    """Cross-entropy of softmax(z) against one-hot rows y (z's dtype) or int64
    labels y; out = (softmax(z) - y) / m (out may be z). Labels out of range
    raise ValueError before anything is written."""
    cdef Py_ssize_t m = z.shape[0], k = z.shape[1], bad
    cdef bint use_labels = cnp.PyArray_TYPE(y) == cnp.NPY_INT64
    cdef const int64_t* labels = <int64_t*>data(y) if use_labels else NULL
    cdef void* yp = NULL if use_labels else data(y)
    cdef void* zp = data(z)
    cdef void* dp = data(out)
    cdef double value
    if use_labels:
        with nogil:
            bad = first_label_out_of_range(m, labels, k)
        if bad >= 0:
            raise ValueError(f"class label {y[bad]} (sample {bad}) out of range [0, {k})")
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            value = cross_entropy_loss(m, k, <float*>zp, <float*>yp, labels, <float*>dp)
        else:
            value = cross_entropy_loss(m, k, <double*>zp, <double*>yp, labels, <double*>dp)
    return value, out
