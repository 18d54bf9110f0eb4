# The dense-layer kernels on caller-provided arrays: the compiled half of
# cbackprop.ops. cbackprop/ops.py checks every argument first (dtypes,
# shapes, C order, alignment, writable outputs, which outputs may alias
# which inputs), so the op_* functions below trust them, as the Engine's
# methods do. Each releases the GIL and picks the float or double kernel
# once. Included after _engine.pxi (it uses num_threads, Guards and data()).
from libc.math cimport exp, fabs, log, log1p
from libc.string cimport memcpy


# -- kernels the training passes do not need --------------------------------------------
cdef double bce_from_logits(Py_ssize_t count, const real* Z, const real* Y,
                            real* delta) noexcept nogil:
    """bce_loss without a stored sigmoid output: each element is read before its
    delta is written, so delta may be Z (or Y) itself."""
    cdef Py_ssize_t i
    cdef double total = 0, z64
    cdef real z, y
    for i in range(count):
        z = Z[i]
        y = Y[i]
        z64 = z
        total += (z64 if z64 > 0 else 0.0) - <double>y * z64 + log1p(exp(-fabs(z64)))
        delta[i] = (sigmoid(z) - y) / <real>count
    return total / count


cdef double cross_entropy_from_logits(Py_ssize_t m, Py_ssize_t k, const real* Z, const real* Y,
                                      const int64_t* labels, real* delta) noexcept nogil:
    """cross_entropy_loss row by row, with softmax(Z) written straight into delta:
    each row's loss is taken before its softmax, so delta may be Z itself."""
    cdef Py_ssize_t i, j, row, label
    cdef double total = 0, row_max, exp_sum, log_sum_exp, target_sum, row_loss
    cdef real a_label
    for i in range(m):
        row = i * k
        row_max = Z[row]
        for j in range(1, k):
            if Z[row + j] > row_max:
                row_max = Z[row + j]
        exp_sum = 0
        for j in range(k):
            exp_sum += exp(<double>Z[row + j] - row_max)
        log_sum_exp = row_max + log(exp_sum)
        if Y == NULL:
            label = labels[i]
            total += log_sum_exp - <double>Z[row + label]
            softmax_rows(1, k, Z + row, delta + row)
            a_label = delta[row + label]
            for j in range(k):
                delta[row + j] = delta[row + j] / <real>m
            delta[row + label] = (a_label - 1) / <real>m
        else:
            target_sum = 0
            row_loss = 0
            for j in range(k):
                target_sum += Y[row + j]
                row_loss += <double>Y[row + j] * (log_sum_exp - <double>Z[row + j])
            total += row_loss
            softmax_rows(1, k, Z + row, delta + row)
            for j in range(k):
                delta[row + j] = (delta[row + j] * <real>target_sum - Y[row + j]) / <real>m
    return total / m


# -- workspaces of one call ----------------------------------------------------------------
cdef class OpScratch:
    """GEMM panels (and column totals) of one op call, allocated per call, so
    that concurrent calls from several threads share nothing; guarded in a
    debug build like the Engine's workspace."""
    cdef cnp.ndarray panels, totals
    cdef Guards guards
    cdef void* pack_a
    cdef void* pack_b
    cdef double* column_totals

    def __cinit__(self, int typenum, Py_ssize_t max_m, Py_ssize_t max_n, Py_ssize_t max_k,
                  Py_ssize_t n_totals=0):
        cdef Py_ssize_t size_a, size_b
        cdef cnp.npy_intp dims[1]
        if typenum == cnp.NPY_FLOAT:
            size_a = gemm_pack_a_size(max_m, max_k, <float*>NULL)
            size_b = gemm_pack_b_size(max_n, max_k, <float*>NULL)
        else:
            size_a = gemm_pack_a_size(max_m, max_k, <double*>NULL)
            size_b = gemm_pack_b_size(max_n, max_k, <double*>NULL)
        self.guards = Guards()
        dims[0] = size_a + size_b + 2 * GUARD
        self.panels = cnp.PyArray_EMPTY(1, dims, typenum, 0)
        self.guards.add(self.panels, size_a, "the packed A panel")
        self.guards.add(self.panels, size_a + GUARD + size_b, "the packed B panel")
        self.pack_a = data(self.panels)
        self.pack_b = <char*>self.pack_a + (size_a + GUARD) * cnp.PyArray_ITEMSIZE(self.panels)
        dims[0] = n_totals + GUARD
        self.totals = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        self.guards.add(self.totals, n_totals, "the column totals")
        self.column_totals = <double*>data(self.totals)

    cdef int verify(self, str where) except -1:
        if GUARD:
            self.guards.verify(where)
        return 0


# -- the ops: arguments already checked by cbackprop/ops.py -----------------------------
def op_gemm(cnp.ndarray a, cnp.ndarray b, bint trans_a, bint trans_b, cnp.ndarray out):
    """out = op(a) @ op(b)."""
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t rsa = 1 if trans_a else K, csa = M if trans_a else 1
    cdef Py_ssize_t rsb = 1 if trans_b else N, csb = K if trans_b else 1
    cdef int typenum = cnp.PyArray_TYPE(out)
    cdef OpScratch scratch = OpScratch(typenum, M, N, K)
    cdef void* pa = data(a)
    cdef void* pb = data(b)
    cdef void* c = data(out)
    cdef int n_threads = num_threads
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            gemm(M, N, K, <float*>pa, rsa, csa, <float*>pb, rsb, csb, <float*>c, N, False,
                 <float*>scratch.pack_a, <float*>scratch.pack_b, n_threads)
        else:
            gemm(M, N, K, <double*>pa, rsa, csa, <double*>pb, rsb, csb, <double*>c, N, False,
                 <double*>scratch.pack_a, <double*>scratch.pack_b, n_threads)
    scratch.verify("ops.gemm")
    return out


def op_dense_forward(cnp.ndarray a_prev, cnp.ndarray weights, cnp.ndarray bias, int activation,
                     cnp.ndarray out):
    """out = f(a_prev @ weights + bias): the GEMM, then bias and activation in one pass."""
    cdef Py_ssize_t m = a_prev.shape[0], n_in = a_prev.shape[1], n_out = weights.shape[1]
    cdef int typenum = cnp.PyArray_TYPE(out)
    cdef OpScratch scratch = OpScratch(typenum, m, n_out, n_in)
    cdef void* x = data(a_prev)
    cdef void* w = data(weights)
    cdef void* bs = data(bias)
    cdef void* z = data(out)
    cdef int n_threads = num_threads
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            gemm(m, n_out, n_in, <float*>x, n_in, 1, <float*>w, n_out, 1, <float*>z, n_out, False,
                 <float*>scratch.pack_a, <float*>scratch.pack_b, n_threads)
            if m * n_out > 0:
                bias_activation_forward(m, n_out, <float*>z, <float*>bs, <float*>z, activation,
                                        n_threads)
        else:
            gemm(m, n_out, n_in, <double*>x, n_in, 1, <double*>w, n_out, 1, <double*>z, n_out,
                 False, <double*>scratch.pack_a, <double*>scratch.pack_b, n_threads)
            if m * n_out > 0:
                bias_activation_forward(m, n_out, <double*>z, <double*>bs, <double*>z, activation,
                                        n_threads)
    scratch.verify("ops.dense_forward")
    return out


def op_dense_backward(cnp.ndarray delta, cnp.ndarray a_prev, cnp.ndarray weights,
                      cnp.ndarray grad_weights, cnp.ndarray grad_bias, cnp.ndarray grad_a_prev):
    """grad_weights = a_prevᵀ @ delta, grad_bias = delta summed over rows and, unless
    grad_a_prev is None, grad_a_prev = delta @ weightsᵀ (transposes read through strides)."""
    cdef Py_ssize_t m = delta.shape[0], n_out = delta.shape[1], n_in = a_prev.shape[1]
    cdef int typenum = cnp.PyArray_TYPE(delta)
    cdef bint need_grad_a_prev = grad_a_prev is not None
    # Panels for both products: (n_in x n_out, K = m) and (m x n_in, K = n_out).
    cdef OpScratch scratch = OpScratch(typenum, max(n_in, m), max(n_out, n_in), max(m, n_out),
                                       n_out)
    cdef void* d = data(delta)
    cdef void* x = data(a_prev)
    cdef void* w = data(weights)
    cdef void* gw = data(grad_weights)
    cdef void* gb = data(grad_bias)
    cdef void* gx = data(grad_a_prev) if need_grad_a_prev else NULL
    cdef int n_threads = num_threads
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            gemm(n_in, n_out, m, <float*>x, 1, n_in, <float*>d, n_out, 1, <float*>gw, n_out,
                 False, <float*>scratch.pack_a, <float*>scratch.pack_b, n_threads)
            column_sums(m, n_out, <float*>d, <float*>gb, scratch.column_totals, n_threads)
            if need_grad_a_prev:
                gemm(m, n_in, n_out, <float*>d, n_out, 1, <float*>w, 1, n_out, <float*>gx, n_in,
                     False, <float*>scratch.pack_a, <float*>scratch.pack_b, n_threads)
        else:
            gemm(n_in, n_out, m, <double*>x, 1, n_in, <double*>d, n_out, 1, <double*>gw, n_out,
                 False, <double*>scratch.pack_a, <double*>scratch.pack_b, n_threads)
            column_sums(m, n_out, <double*>d, <double*>gb, scratch.column_totals, n_threads)
            if need_grad_a_prev:
                gemm(m, n_in, n_out, <double*>d, n_out, 1, <double*>w, 1, n_out, <double*>gx,
                     n_in, False, <double*>scratch.pack_a, <double*>scratch.pack_b, n_threads)
    scratch.verify("ops.dense_backward")
    return grad_weights, grad_bias, grad_a_prev


def op_activation_forward(int activation, cnp.ndarray z, cnp.ndarray out):
    """out = f(z); out may be z."""
    cdef Py_ssize_t m = z.shape[0], n = z.shape[1]
    cdef void* zp = data(z)
    cdef void* ap = data(out)
    cdef int n_threads = num_threads
    with nogil:
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            activation_forward(m, n, <float*>zp, <float*>ap, activation, n_threads)
        else:
            activation_forward(m, n, <double*>zp, <double*>ap, activation, n_threads)
    return out


def op_activation_backward(int activation, cnp.ndarray grad_a, cnp.ndarray a, cnp.ndarray z,
                           cnp.ndarray out):
    """out = grad_a ⊙ f'(z), f' written through a = f(z) or read from z (which
    may be a for the activations that do not need it); out may be grad_a."""
    cdef Py_ssize_t m = a.shape[0], n = a.shape[1]
    cdef void* g = data(grad_a)
    cdef void* ap = data(a)
    cdef void* zp = data(z)
    cdef void* gz = data(out)
    cdef bint is_float32 = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT
    cdef int n_threads = num_threads
    with nogil:
        if gz != g and m * n > 0:
            memcpy(gz, g, m * n * (4 if is_float32 else 8))
        if m * n == 0:
            pass
        elif is_float32:
            if activation == ACT_SOFTMAX:
                softmax_backward(m, n, <float*>gz, <float*>ap)
            else:
                activation_backward(m * n, <float*>gz, <float*>ap, <float*>zp, activation, n_threads)
        else:
            if activation == ACT_SOFTMAX:
                softmax_backward(m, n, <double*>gz, <double*>ap)
            else:
                activation_backward(m * n, <double*>gz, <double*>ap, <double*>zp, activation,
                                    n_threads)
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
            value = mse_loss(m, n, <float*>ap, <float*>zp, <float*>yp, scale, reduction_sum, activation,
                             <float*>dp)
        else:
            value = mse_loss(m, n, <double*>ap, <double*>zp, <double*>yp, scale, reduction_sum, activation,
                             <double*>dp)
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
            value = bce_from_logits(count, <float*>zp, <float*>yp, <float*>dp)
        else:
            value = bce_from_logits(count, <double*>zp, <double*>yp, <double*>dp)
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
            value = cross_entropy_from_logits(m, k, <float*>zp, <float*>yp, labels, <float*>dp)
        else:
            value = cross_entropy_from_logits(m, k, <double*>zp, <double*>yp, labels, <double*>dp)
    return value, out
