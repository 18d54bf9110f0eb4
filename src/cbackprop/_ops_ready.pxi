# The boundary's fast path: cbackprop/ops.py's checks, at C speed, for the
# calls whose arguments pass them as they are: float32 or float64 arrays of
# the right ranks and shapes, C-contiguous, aligned and in native byte order,
# and outputs writable and apart from the inputs. Each *_ready function says
# whether a call's arguments are such. True lets ops.py call the op_*
# function at once; False sends the call through the Python checks, which
# convert or raise: every error still comes from them, and nothing passes
# here that they would refuse. A small product's call went from 2.1 µs to
# about 0.5 (bench/README.md, "Kept: the ops' checks at C speed").


cdef bint plain(object x, int typenum, int ndim, const cnp.npy_intp* dims) noexcept:
    """x is an ndarray of this dtype (native byte order) and rank, of these
    dimensions (any, when dims is NULL), aligned and C-contiguous: nothing
    to convert."""
    if type(x) is not cnp.ndarray:   # exactly: a subclass goes through the Python checks
        return False
    cdef cnp.ndarray array = <cnp.ndarray>x
    cdef int i
    if cnp.PyArray_NDIM(array) != ndim or cnp.PyArray_TYPE(array) != typenum:
        return False
    if dims != NULL:
        for i in range(ndim):
            if cnp.PyArray_DIMS(array)[i] != dims[i]:
                return False
    return cnp.PyArray_ISBEHAVED_RO(array) and cnp.PyArray_IS_C_CONTIGUOUS(array)


cdef int float_type(object x) noexcept:
    """The type number of a float32 or float64 ndarray; -1 for anything else."""
    if type(x) is not cnp.ndarray:
        return -1
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>x)
    return typenum if typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE else -1


cdef bint overlap(object x, object y) noexcept:
    """Whether the bytes of two C-contiguous ndarrays overlap (the bounds test
    of np.may_share_memory, which ops.py makes). Both must have passed
    plain(): they are cast unchecked."""
    cdef char* a = <char*>data(<cnp.ndarray>x)
    cdef char* b = <char*>data(<cnp.ndarray>y)
    return (a < b + cnp.PyArray_NBYTES(<cnp.ndarray>y)
            and b < a + cnp.PyArray_NBYTES(<cnp.ndarray>x))


cdef bint free_output(object out, int typenum, int ndim, const cnp.npy_intp* dims,
                      tuple inputs) noexcept:
    """out is None, or a plain writable array of this dtype and shape that
    shares no memory with any of ``inputs`` (which have passed plain())."""
    if out is None:
        return True
    if not (plain(out, typenum, ndim, dims) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
        return False
    for x in inputs:
        if overlap(out, x):
            return False
    return True


def elementwise_ready(tuple inputs, object out, Py_ssize_t in_place):
    """Whether an element-wise op's arguments pass every check of
    cbackprop/ops.py as they are: ``inputs`` float32 or float64 2-D arrays of
    one dtype and shape needing no conversion, and ``out`` None or a
    writable, aligned, C-contiguous array like them that shares no memory
    with an input except by being ``inputs[in_place]`` itself (-1: none)."""
    if len(inputs) == 0:
        return False
    cdef int typenum = float_type(inputs[0])
    if typenum < 0 or cnp.PyArray_NDIM(<cnp.ndarray>inputs[0]) != 2:
        return False
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(<cnp.ndarray>inputs[0])
    for x in inputs:
        if not plain(x, typenum, 2, dims):
            return False
    if out is None:
        return True
    if not (plain(out, typenum, 2, dims) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
        return False
    # C-contiguous arrays of one shape and dtype are the same memory when
    # they start together.
    for i, x in enumerate(inputs):
        if overlap(out, x) and not (i == in_place and data(<cnp.ndarray>x) == data(<cnp.ndarray>out)):
            return False
    return True


def gemm_ready(object a, object b, object trans_a, object trans_b, object out):
    """ops.gemm's arguments as they are: ``a`` and ``b`` plain 2-D arrays of
    one float dtype whose op()s agree, the flags bools, ``out`` None or free
    for the product (free_output)."""
    cdef int typenum = float_type(a)
    if typenum < 0 or type(trans_a) is not bool or type(trans_b) is not bool:
        return False
    if not (plain(a, typenum, 2, NULL) and plain(b, typenum, 2, NULL)):
        return False
    cdef cnp.npy_intp* a_dims = cnp.PyArray_DIMS(<cnp.ndarray>a)
    cdef cnp.npy_intp* b_dims = cnp.PyArray_DIMS(<cnp.ndarray>b)
    cdef bint ta = trans_a, tb = trans_b
    cdef cnp.npy_intp dims[2]
    if a_dims[0 if ta else 1] != b_dims[1 if tb else 0]:
        return False
    dims[0] = a_dims[1 if ta else 0]
    dims[1] = b_dims[0 if tb else 1]
    return free_output(out, typenum, 2, dims, (a, b))


def dense_forward_ready(object a_prev, object weights, object bias, object out):
    """ops.dense_forward's arrays as they are: ``a_prev`` (m, n_in), ``weights``
    (n_in, n_out) and ``bias`` (n_out,) plain, of one float dtype, ``out``
    None or free for (m, n_out)."""
    cdef int typenum = float_type(a_prev)
    if typenum < 0 or not (plain(a_prev, typenum, 2, NULL) and plain(weights, typenum, 2, NULL)):
        return False
    cdef cnp.npy_intp* x_dims = cnp.PyArray_DIMS(<cnp.ndarray>a_prev)
    cdef cnp.npy_intp* w_dims = cnp.PyArray_DIMS(<cnp.ndarray>weights)
    cdef cnp.npy_intp dims[2]
    if w_dims[0] != x_dims[1] or not plain(bias, typenum, 1, &w_dims[1]):
        return False
    dims[0] = x_dims[0]
    dims[1] = w_dims[1]
    return free_output(out, typenum, 2, dims, (a_prev, weights, bias))


def dense_backward_ready(object delta, object a_prev, object weights, object grad_weights,
                         object grad_bias, object grad_a_prev, object need_grad_a_prev):
    """ops.dense_backward's arguments as they are: ``delta`` (m, n_out),
    ``a_prev`` (m, n_in) and ``weights`` (n_in, n_out) plain, of one float
    dtype; each output None or free for its shape; ``need_grad_a_prev`` a
    bool, and ``grad_a_prev`` None without it; no two outputs sharing memory."""
    cdef int typenum = float_type(delta)
    if typenum < 0 or type(need_grad_a_prev) is not bool:
        return False
    if not (plain(delta, typenum, 2, NULL) and plain(a_prev, typenum, 2, NULL)):
        return False
    cdef cnp.npy_intp* d_dims = cnp.PyArray_DIMS(<cnp.ndarray>delta)
    cdef cnp.npy_intp* x_dims = cnp.PyArray_DIMS(<cnp.ndarray>a_prev)
    cdef cnp.npy_intp w_dims[2]
    if x_dims[0] != d_dims[0]:
        return False
    w_dims[0] = x_dims[1]
    w_dims[1] = d_dims[1]
    if not plain(weights, typenum, 2, w_dims):
        return False
    inputs = (delta, a_prev, weights)
    if not (free_output(grad_weights, typenum, 2, w_dims, inputs)
            and free_output(grad_bias, typenum, 1, &d_dims[1], inputs)):
        return False
    if need_grad_a_prev:
        if not free_output(grad_a_prev, typenum, 2, x_dims, inputs):
            return False
    elif grad_a_prev is not None:
        return False
    outputs = [x for x in (grad_weights, grad_bias, grad_a_prev) if x is not None]
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            if overlap(outputs[i], outputs[j]):
                return False
    return True


def cross_entropy_ready(object z, object y, object out):
    """ops.cross_entropy's arguments as they are: ``z`` a plain, not empty
    (m, k) float array; ``y`` plain targets of its dtype and shape or (m,)
    int64 labels; ``out`` None, or free for (m, k) but for being ``z``
    itself (in place), and apart from ``y`` either way."""
    cdef int typenum = float_type(z)
    if typenum < 0 or not plain(z, typenum, 2, NULL) or cnp.PyArray_SIZE(<cnp.ndarray>z) == 0:
        return False
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(<cnp.ndarray>z)
    if not (plain(y, typenum, 2, dims) or plain(y, cnp.NPY_INT64, 1, dims)):
        return False
    if out is None:
        return True
    if not (plain(out, typenum, 2, dims) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
        return False
    return not overlap(out, y) and (not overlap(out, z) or data(<cnp.ndarray>out) == data(<cnp.ndarray>z))
