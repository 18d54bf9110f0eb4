# The vectorised transcendentals of vmath.h (one C source compiled per engine
# build, like the tiles) as fused-type helpers for the activation and loss
# kernels, and vector_math, which applies one to an array (for the tests and
# the bench).

cdef extern from "vmath.h" nogil:
    void cb_vexp_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vexp_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vexpm1_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vexpm1_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vsigmoid_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vsigmoid_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vtanh_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vtanh_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vsilu_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vsilu_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vlog_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vlog_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vlog1p_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vlog1p_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_verfc_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_verfc_f32(Py_ssize_t n, const float* x, float* y) noexcept
    void cb_vsqrt_f64(Py_ssize_t n, const double* x, double* y) noexcept
    void cb_vsqrt_f32(Py_ssize_t n, const float* x, float* y) noexcept
    int cb_root_by_newton() noexcept
    int cb_update_roots_f64() noexcept
    int cb_update_roots_f32() noexcept
    enum:
        CB_ROOTS_BY_INSTRUCTION
        CB_ROOTS_BY_NEWTON
        CB_ROOTS_ONE_IN_THREE_BY_NEWTON
    enum:   # updates_template.h's numbers for the optimizers of optimizers.pxi
        CB_UPDATE_ADAM
        CB_UPDATE_RMSPROP

    ctypedef struct cb_update_factors:
        double rate, keep1, add1, keep2, add2, root_scale, eps, momentum
        double decay, scale, limit
        int clip
    bint cb_vadam_f64(Py_ssize_t n, const double* param, double* grad, const double* m,
                      const double* v, double* m_out, double* v_out,
                      const cb_update_factors* factors) noexcept
    bint cb_vadam_f32(Py_ssize_t n, const float* param, float* grad, const float* m,
                      const float* v, float* m_out, float* v_out,
                      const cb_update_factors* factors) noexcept
    bint cb_vrmsprop_f64(Py_ssize_t n, const double* param, double* grad, const double* v,
                         const double* buf, double* v_out, double* buf_out,
                         const cb_update_factors* factors) noexcept
    bint cb_vrmsprop_f32(Py_ssize_t n, const float* param, float* grad, const float* v,
                         const float* buf, float* v_out, float* buf_out,
                         const cb_update_factors* factors) noexcept


cdef inline void vector_exp(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vexp_f32(n, x, y)
    else:
        cb_vexp_f64(n, x, y)


cdef inline void vector_sigmoid(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vsigmoid_f32(n, x, y)
    else:
        cb_vsigmoid_f64(n, x, y)


cdef inline void vector_tanh(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vtanh_f32(n, x, y)
    else:
        cb_vtanh_f64(n, x, y)


cdef inline void vector_silu(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vsilu_f32(n, x, y)
    else:
        cb_vsilu_f64(n, x, y)


cdef inline void vector_expm1(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vexpm1_f32(n, x, y)
    else:
        cb_vexpm1_f64(n, x, y)


cdef inline void vector_log(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vlog_f32(n, x, y)
    else:
        cb_vlog_f64(n, x, y)


cdef inline void vector_log1p(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_vlog1p_f32(n, x, y)
    else:
        cb_vlog1p_f64(n, x, y)


cdef inline void vector_erfc(Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if real is float:
        cb_verfc_f32(n, x, y)
    else:
        cb_verfc_f64(n, x, y)


VECTOR_MATH = ("exp", "expm1", "sigmoid", "tanh", "silu", "log", "log1p", "erfc", "sqrt")


cdef void apply_vector_math(int which, Py_ssize_t n, const real* x, real* y) noexcept nogil:
    if which == 0:
        vector_exp(n, x, y)
    elif which == 1:
        vector_expm1(n, x, y)
    elif which == 2:
        vector_sigmoid(n, x, y)
    elif which == 3:
        vector_tanh(n, x, y)
    elif which == 4:
        vector_silu(n, x, y)
    elif which == 5:
        vector_log(n, x, y)
    elif which == 6:
        vector_log1p(n, x, y)
    elif which == 7:
        vector_erfc(n, x, y)
    elif real is float:
        cb_vsqrt_f32(n, x, y)
    else:
        cb_vsqrt_f64(n, x, y)


def vector_math(str name, cnp.ndarray x not None):
    """``name`` (one of VECTOR_MATH) of every element of a C-contiguous
    float32/float64 array, by this build's vector kernels: a new array."""
    if name not in VECTOR_MATH:
        raise ValueError(f"unknown function {name!r}: use one of {VECTOR_MATH}")
    if x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous:
        raise TypeError("x must be a C-contiguous float32 or float64 array")
    cdef cnp.ndarray y = np.empty_like(x)
    cdef Py_ssize_t n = x.size
    cdef int which = VECTOR_MATH.index(name)
    cdef void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    cdef bint single = x.dtype == np.float32
    with nogil:
        if single:
            apply_vector_math(which, n, <const float*>src, <float*>dst)
        else:
            apply_vector_math(which, n, <const double*>src, <double*>dst)
    return y


def root_by_newton():
    """Whether this build, on this CPU, takes vector_math's square roots by
    Newton steps on the FMA units rather than by the instruction: the
    AVX-512 build does unless told that the CPU runs 512-bit instructions as
    two halves (set_halves_512); no other build has those steps. Both ways
    round the same. Adam's and RMSprop's updates: update_roots."""
    return bool(cb_root_by_newton())


ROOT_WAYS = {CB_ROOTS_BY_INSTRUCTION: "instruction", CB_ROOTS_BY_NEWTON: "newton",
             CB_ROOTS_ONE_IN_THREE_BY_NEWTON: "one in three by newton"}


def update_roots():
    """How Adam's and RMSprop's updates take their square roots in each
    dtype, on this CPU: "newton" (all by Newton steps on the FMA units, the
    AVX-512 build's way), "instruction", or "one in three by newton" (a
    vector in three by Newton steps, the others by the instruction: the
    AVX-512 build's float64 way on a CPU that halves 512-bit instructions).
    Every way rounds the same."""
    return {"float64": ROOT_WAYS[cb_update_roots_f64()],
            "float32": ROOT_WAYS[cb_update_roots_f32()]}
