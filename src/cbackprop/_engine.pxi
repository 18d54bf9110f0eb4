# The training engine: strings the kernels into forward, loss, backward and
# optimizer passes over one network's parameters, each pass one nogil call.
#
# Parameters, gradients and optimizer moments live in flat arrays with the
# same layout (W0, b0, W1, b1, ...). Activations, deltas and GEMM panels
# live in one workspace allocated for the largest batch seen so far and
# reused, so a steady-state training step allocates nothing.
#
# The def methods trust their arguments (C-contiguous, the network's dtype,
# right shapes, finite values, labels in range): the Network checks them at
# its boundary, the value checks by one C pass (check_values).
cimport numpy as cnp
import numpy as np
from libc.math cimport fabs, isfinite, pow
from libc.stdint cimport int64_t

cnp.import_array()

# The boundary's wording and tolerance, shared with the reference's checks.
from cbackprop._validation import label_error, probability_error, probability_tolerance
# The registries: the kernels' codes come from there, never from names here.
from cbackprop._activations import NEEDS_Z as _NEEDS_Z
from cbackprop._activations import REGISTRY as _ACTIVATIONS

include "_kernels/gemm.pxi"
include "_kernels/activations.pxi"
include "_kernels/losses.pxi"
include "_kernels/optimizers.pxi"
include "_kernels/checks.pxi"

# -- threads ------------------------------------------------------------------------------
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cbackprop_default_threads(void) { return omp_get_max_threads(); }
    static int cbackprop_have_openmp(void) { return 1; }
    #else
    static int cbackprop_default_threads(void) { return 1; }
    static int cbackprop_have_openmp(void) { return 0; }
    #endif
    """
    int cbackprop_default_threads() nogil
    int cbackprop_have_openmp() nogil

# OpenMP's default honours OMP_NUM_THREADS; set_num_threads overrides it.
cdef int num_threads = cbackprop_default_threads()


def set_num_threads(int n):
    """Threads used by every later pass (1 without OpenMP support)."""
    global num_threads
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}")
    num_threads = n if cbackprop_have_openmp() else 1


def get_num_threads():
    return num_threads


cdef enum:
    ALIGN = 16  # workspace blocks start on 64-byte boundaries (16 floats)

# Debug builds (CBACKPROP_DEBUG_CYTHON=1) put a guard zone after every buffer
# region the kernels write, fill it with a NaN carrying a marker payload, and
# verify it after every pass: an out-of-bounds write becomes an error, and an
# out-of-bounds read brings NaN into the results.
cdef extern from *:
    """
    #ifndef CBACKPROP_DEBUG_GUARDS
    #define CBACKPROP_DEBUG_GUARDS 0
    #endif
    """
    const int CBACKPROP_DEBUG_GUARDS

cdef Py_ssize_t GUARD = 64 if CBACKPROP_DEBUG_GUARDS else 0
GUARD_BITS = {4: np.uint32(0x7FC0FFEE), 8: np.uint64(0x7FF8C0FFEE0BAD00)}


def debug_guards():
    """True in a debug build, where buffer overruns are detected."""
    return GUARD > 0


cdef class Guards:
    """Guard zones of one set of arrays (empty in release builds)."""
    cdef list zones   # (array, start, name)

    def __cinit__(self):
        self.zones = []

    cdef void add(self, cnp.ndarray array, Py_ssize_t start, str name):
        if GUARD:
            array[start:start + GUARD].view(GUARD_BITS[array.itemsize].dtype)[:] = GUARD_BITS[array.itemsize]
            self.zones.append((array, start, name))

    cdef int verify(self, str where) except -1:
        for array, start, name in self.zones:
            bits = array[start:start + GUARD].view(GUARD_BITS[array.itemsize].dtype)
            if not (bits == GUARD_BITS[array.itemsize]).all():
                raise AssertionError(f"out-of-bounds write past {name} during {where}")
        return 0


cdef struct Layout:
    Py_ssize_t n_layers
    const Py_ssize_t* sizes          # n_layers + 1 widths
    const int* activations           # one code per layer
    const Py_ssize_t* weight_offset  # into params / grads / moments
    const Py_ssize_t* bias_offset
    const Py_ssize_t* output_offset  # into the workspace: A of each layer
    const Py_ssize_t* z_offset       # Z of each layer: A itself for those activated in
                                     # place, the logits for the last layer
    Py_ssize_t logits_offset         # Z of the last layer (losses need it)
    Py_ssize_t delta_offset[2]       # ping-pong deltas of consecutive layers
    Py_ssize_t pack_a_offset
    Py_ssize_t pack_b_offset
    int n_threads                    # for the GEMMs of this call
    double* column_totals            # scratch of the widest layer's width
    double* norm_partials            # scratch: one double per NORM_CHUNK parameters


cdef struct LossSettings:
    int kind
    double scale
    bint reduction_sum


# -- passes ------------------------------------------------------------------------------
cdef void forward_pass(const Layout* L, Py_ssize_t m, const real* X, const real* params,
                       real* ws) noexcept nogil:
    cdef Py_ssize_t layer, n_in, n_out
    cdef const real* a_prev = X
    cdef real* a
    cdef real* z
    for layer in range(L.n_layers):
        n_in = L.sizes[layer]
        n_out = L.sizes[layer + 1]
        a = ws + L.output_offset[layer]
        z = ws + L.z_offset[layer]
        gemm(m, n_out, n_in, a_prev, n_in, 1, params + L.weight_offset[layer], n_out, 1,
             z, n_out, False, ws + L.pack_a_offset, ws + L.pack_b_offset, L.n_threads)
        bias_activation_forward(m, n_out, z, params + L.bias_offset[layer], a,
                                L.activations[layer], L.n_threads)
        a_prev = a


cdef double output_loss(const Layout* L, Py_ssize_t m, const real* Y, const int64_t* labels,
                        const LossSettings* loss, real* ws) noexcept nogil:
    """The loss of the last forward pass; writes the output delta."""
    cdef Py_ssize_t last = L.n_layers - 1
    cdef Py_ssize_t k = L.sizes[L.n_layers]
    cdef real* A = ws + L.output_offset[last]
    cdef real* Z = ws + L.logits_offset
    cdef real* delta = ws + L.delta_offset[last % 2]
    if loss.kind == LOSS_BCE:
        return bce_loss(m, k, Z, A, Y, delta)
    if loss.kind == LOSS_CROSS_ENTROPY:
        return cross_entropy_loss(m, k, Z, A, Y, labels, delta)
    return mse_loss(m, k, A, Z, Y, loss.scale, loss.reduction_sum, L.activations[last], delta)


cdef void column_sums(Py_ssize_t m, Py_ssize_t n, const real* values, real* sums,
                      double* totals, int n_threads) noexcept nogil:
    """sums = values.sum(axis=0), accumulated row by row in double (``totals``:
    n scratch); large ones split by column blocks, so every column is summed in
    the same order whatever the thread count."""
    cdef Py_ssize_t block, n_blocks = (n + 63) // 64
    if n_threads > 1 and m * n >= PARALLEL_MIN_ELEMENTS and n_blocks > 1:
        for block in prange(n_blocks, num_threads=n_threads, schedule="static"):
            sum_columns(m, n, block * 64, min(n, (block + 1) * <Py_ssize_t>64), values, sums,
                        totals)
    else:
        sum_columns(m, n, 0, n, values, sums, totals)


cdef inline void sum_columns(Py_ssize_t m, Py_ssize_t n, Py_ssize_t first, Py_ssize_t last,
                             const real* values, real* sums, double* totals) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(first, last):
        totals[j] = 0
    for i in range(m):
        for j in range(first, last):
            totals[j] += values[i * n + j]
    for j in range(first, last):
        sums[j] = <real>totals[j]


cdef void backward_layer(const Layout* L, Py_ssize_t m, Py_ssize_t layer, const real* X,
                         const real* params, real* grads, real* ws) noexcept nogil:
    """grad_W, grad_b of ``layer`` from its delta, and the delta of the layer below
    (computed with this layer's weights, before any update)."""
    cdef Py_ssize_t n_in = L.sizes[layer], n_out = L.sizes[layer + 1]
    cdef real* delta = ws + L.delta_offset[layer % 2]
    cdef const real* a_prev = X if layer == 0 else ws + L.output_offset[layer - 1]
    cdef real* delta_prev
    cdef real* pack_a = ws + L.pack_a_offset
    cdef real* pack_b = ws + L.pack_b_offset
    # grad_W = A_prevᵀ @ delta: A_prev read transposed through its strides.
    gemm(n_in, n_out, m, a_prev, 1, n_in, delta, n_out, 1,
         grads + L.weight_offset[layer], n_out, False, pack_a, pack_b, L.n_threads)
    column_sums(m, n_out, delta, grads + L.bias_offset[layer], L.column_totals, L.n_threads)
    if layer > 0:
        delta_prev = ws + L.delta_offset[(layer - 1) % 2]
        # delta_prev = (delta @ Wᵀ) ⊙ f'(Z_prev), W read transposed.
        gemm(m, n_in, n_out, delta, n_out, 1, params + L.weight_offset[layer], 1, n_out,
             delta_prev, n_in, False, pack_a, pack_b, L.n_threads)
        activation_backward(m * n_in, delta_prev, a_prev, ws + L.z_offset[layer - 1],
                            L.activations[layer - 1], L.n_threads)


cdef double loss_and_gradients_pass(const Layout* L, Py_ssize_t m, const real* X, const real* Y,
                                    const int64_t* labels, const LossSettings* loss,
                                    const real* params, real* grads, real* ws) noexcept nogil:
    cdef Py_ssize_t layer
    forward_pass(L, m, X, params, ws)
    cdef double value = output_loss(L, m, Y, labels, loss, ws)
    for layer in range(L.n_layers - 1, -1, -1):
        backward_layer(L, m, layer, X, params, grads, ws)
    return value


cdef enum StepOutcome:
    STEP_TAKEN = 0
    STEP_UPDATE_OVERFLOWS = 1        # a new parameter or moment would not be finite
    STEP_GRADIENT_NOT_FINITE = 2     # clip_norm is set and the gradient norm is not finite
    STEP_TAKEN_IN_SPARE_BUFFERS = 3  # SGD: the new values are in grads (and moment2): swap


cdef double train_step_pass(const Layout* L, Py_ssize_t m, const real* X, const real* Y,
                            const int64_t* labels, const LossSettings* loss,
                            const OptimizerSettings* opt, real* params, real* grads,
                            real* moment1, real* moment2, real* ws,
                            int* refused) noexcept nogil:
    """Forward, loss, backward, then the update of every layer (with clipped
    gradients when the settings ask for it). Nothing is written when the loss
    is not finite, or when the step is ``refused``: the gradient norm that
    clip_norm needs is not finite, or the update would make a parameter or
    moment non-finite. A diverging step leaves the network as it was.
    An SGD step leaves its new parameters in ``grads`` and its new velocities
    in ``moment2`` (STEP_TAKEN_IN_SPARE_BUFFERS): the caller swaps the buffers."""
    cdef Py_ssize_t layer
    cdef int attempt
    cdef bint write
    cdef double norm
    cdef OptimizerSettings step = opt[0]   # with this step's clipping factor
    refused[0] = STEP_TAKEN
    forward_pass(L, m, X, params, ws)
    cdef double value = output_loss(L, m, Y, labels, loss, ws)
    if not isfinite(value):
        return value
    for layer in range(L.n_layers - 1, -1, -1):
        backward_layer(L, m, layer, X, params, grads, ws)
    step.gradient_scale = 1
    if step.clip_norm > 0:
        # Every parameter's gradient: the flat array from W0 to the last bias.
        norm = gradient_norm(L.bias_offset[L.n_layers - 1] + L.sizes[L.n_layers], grads,
                             L.norm_partials, L.n_threads)
        if not isfinite(norm):
            refused[0] = STEP_GRADIENT_NOT_FINITE
            return value
        if norm > step.clip_norm:
            step.gradient_scale = step.clip_norm / norm
    if writes_spare_buffers(step.kind):
        # Into the spare buffers, checked as written; the caller swaps them in.
        for layer in range(L.n_layers):
            if not update_layer(L, layer, &step, params, grads, moment1, moment2, True):
                refused[0] = STEP_UPDATE_OVERFLOWS
                return value
        refused[0] = STEP_TAKEN_IN_SPARE_BUFFERS
        return value
    # In place: a dry run over every layer first; only a step that stays finite is written.
    for attempt in range(2):
        write = attempt == 1
        for layer in range(L.n_layers):
            if not update_layer(L, layer, &step, params, grads, moment1, moment2, write):
                refused[0] = STEP_UPDATE_OVERFLOWS
                return value
    return value


cdef inline bint update_layer(const Layout* L, Py_ssize_t layer, const OptimizerSettings* opt,
                              real* params, real* grads, real* moment1, real* moment2,
                              bint write) noexcept nogil:
    cdef Py_ssize_t w = L.weight_offset[layer], b = L.bias_offset[layer]
    return (optimizer_update(L.sizes[layer] * L.sizes[layer + 1], params + w, grads + w,
                             moment1 + w, moment2 + w, opt, opt.weight_decay, write, L.n_threads)
            and optimizer_update(L.sizes[layer + 1], params + b, grads + b, moment1 + b,
                                 moment2 + b, opt, 0.0, write, L.n_threads))


cdef int check_batch(const Layout* L, Py_ssize_t m, const real* X, const real* Y,
                     const int64_t* labels, int loss_kind, double tolerance,
                     Py_ssize_t* bad_index) noexcept nogil:
    cdef Py_ssize_t k = L.sizes[L.n_layers]
    if not all_finite(m * L.sizes[0], X):
        return CHECK_X_NOT_FINITE
    if labels != NULL:
        bad_index[0] = first_label_out_of_range(m, labels, k)
        return CHECK_LABEL_OUT_OF_RANGE if bad_index[0] >= 0 else CHECK_OK
    if Y != NULL and not all_finite(m * k, Y):
        return CHECK_Y_NOT_FINITE
    if Y != NULL and loss_kind == LOSS_BCE and not all_in_unit_interval(m * k, Y):
        return CHECK_TARGET_OUTSIDE_UNIT
    if Y != NULL and loss_kind == LOSS_CROSS_ENTROPY:
        bad_index[0] = first_bad_probability_row(m, k, Y, tolerance)
        if bad_index[0] >= 0:
            return CHECK_TARGET_NOT_PROBABILITY
    return CHECK_OK


# -- the Python-facing engine --------------------------------------------------------------
cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


cdef struct Buffers:
    # Raw pointers of one call, gathered with the GIL held.
    Py_ssize_t m
    const void* X
    const void* Y              # float targets, or NULL
    const int64_t* labels      # class labels, or NULL
    void* params
    void* grads
    void* moment1
    void* moment2
    void* ws


cdef cnp.ndarray aligned_zeros(Py_ssize_t n, object dtype):
    """n zeros starting on a 64-byte boundary (a view into a slightly larger
    array), so that the GEMM can read the first layer's weights in place: it
    does so only from rows that start on 64-byte cache lines."""
    itemsize = np.dtype(dtype).itemsize
    block = np.zeros(n + 64 // itemsize, dtype=dtype)
    shift = (-block.ctypes.data % 64) // itemsize
    return block[shift:shift + n]


cdef class Engine:
    """Parameters, optimizer state and workspaces of one network, and its passes.

    Not thread-safe by itself: the Network serialises calls on one engine.
    """
    cdef Layout layout
    cdef readonly bint is_float32
    cdef readonly cnp.ndarray params
    cdef readonly cnp.ndarray grads
    cdef cnp.ndarray moment1, moment2
    cdef readonly cnp.ndarray workspace
    cdef cnp.ndarray _sizes, _activations, _weight_offset, _bias_offset, _output_offset, _z_offset
    cdef object _needs_z               # per layer: does its activation's derivative read Z
    cdef cnp.ndarray _column_totals
    cdef cnp.ndarray _norm_partials
    cdef Py_ssize_t workspace_shift    # elements from the array start to the aligned base
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t n_params
    cdef Guards param_guards, workspace_guards
    cdef int loss_kind
    cdef double target_tolerance       # of cross-entropy target row sums
    cdef readonly long step_count
    cdef OptimizerSettings settings    # of settings_of at settings_version
    cdef object settings_of, settings_version

    def __cinit__(self, sizes, activations, dtype, loss):
        cdef Py_ssize_t layer, cursor = 0
        n_layers = len(sizes) - 1
        self.is_float32 = np.dtype(dtype) == np.float32
        self.loss_kind = loss.code
        self.target_tolerance = probability_tolerance(dtype, sizes[n_layers])
        self._sizes = np.array(sizes, dtype=np.intp)
        self._activations = np.array([_ACTIVATIONS[a].code for a in activations], dtype=np.intc)
        self._needs_z = [a in _NEEDS_Z for a in activations]
        self._weight_offset = np.zeros(n_layers, dtype=np.intp)
        self._bias_offset = np.zeros(n_layers, dtype=np.intp)
        self._output_offset = np.zeros(n_layers, dtype=np.intp)
        self._z_offset = np.zeros(n_layers, dtype=np.intp)
        for layer in range(n_layers):
            self._weight_offset[layer] = cursor
            cursor += sizes[layer] * sizes[layer + 1]
            self._bias_offset[layer] = cursor
            cursor += sizes[layer + 1]
        self.params = aligned_zeros(cursor + GUARD, dtype)
        self.grads = aligned_zeros(cursor + GUARD, dtype)
        self.moment1 = aligned_zeros(cursor + GUARD, dtype)
        self.moment2 = aligned_zeros(cursor + GUARD, dtype)
        self.n_params = cursor
        self.param_guards = Guards()
        # (SGD steps swap parameters with gradients, and velocities with the
        # second moments: the names cover either buffer of a pair.)
        for array, name in ((self.params, "parameters or gradients"),
                            (self.grads, "parameters or gradients"),
                            (self.moment1, "moments or velocities"),
                            (self.moment2, "moments or velocities")):
            self.param_guards.add(array, cursor, name)
        self.workspace_guards = Guards()
        self.layout.n_layers = n_layers
        self.layout.sizes = <Py_ssize_t*>data(self._sizes)
        self.layout.activations = <int*>data(self._activations)
        self.layout.weight_offset = <Py_ssize_t*>data(self._weight_offset)
        self.layout.bias_offset = <Py_ssize_t*>data(self._bias_offset)
        self.layout.output_offset = <Py_ssize_t*>data(self._output_offset)
        self.layout.z_offset = <Py_ssize_t*>data(self._z_offset)
        self._column_totals = np.zeros(max(sizes), dtype=np.float64)
        self.layout.column_totals = <double*>data(self._column_totals)
        n_chunks = (cursor + NORM_CHUNK - 1) // NORM_CHUNK
        self._norm_partials = np.zeros(n_chunks + GUARD, dtype=np.float64)
        self.param_guards.add(self._norm_partials, n_chunks, "the partial sums of the gradient norm")
        self.layout.norm_partials = <double*>data(self._norm_partials)
        self.capacity = 0
        self.step_count = 0

    def parameter_views(self):
        """``(weights, biases)``: lists of views into the flat parameter array.
        Valid until the next train_step: SGD steps swap the parameter and
        gradient buffers."""
        return self._views(self.params)

    def gradient_copies(self):
        """``[(dW, db), ...]`` copied out of the gradient array."""
        weights, biases = self._views(self.grads)
        return [(w.copy(), b.copy()) for w, b in zip(weights, biases)]

    def _views(self, flat):
        sizes = self._sizes
        weights, biases = [], []
        for layer in range(self.layout.n_layers):
            w, b = self._weight_offset[layer], self._bias_offset[layer]
            weights.append(flat[w:b].reshape(sizes[layer], sizes[layer + 1]))
            biases.append(flat[b:b + sizes[layer + 1]])
        return weights, biases

    def reset_optimizer_state(self):
        self.moment1[:self.n_params] = 0
        self.moment2[:self.n_params] = 0
        self.step_count = 0

    cdef int _verify(self, str where) except -1:
        if GUARD:
            self.param_guards.verify(where)
            self.workspace_guards.verify(where)
        return 0

    cdef int _reserve(self, Py_ssize_t m) except -1:
        """Make the workspace hold a batch of ``m`` rows (grows, never shrinks)."""
        if m <= self.capacity:
            return 0
        cdef Layout* L = &self.layout
        cdef Py_ssize_t layer, widest = 0, cursor = 0, pack_a, pack_b
        regions = []   # (start, size, name), for the guards of a debug build
        for layer in range(L.n_layers + 1):
            widest = max(widest, L.sizes[layer])
        for layer in range(L.n_layers):
            self._output_offset[layer] = cursor
            regions.append((cursor, m * L.sizes[layer + 1], f"the activations of layer {layer}"))
            cursor = round_up(cursor + m * L.sizes[layer + 1] + GUARD, ALIGN)
        L.logits_offset = cursor
        regions.append((cursor, m * L.sizes[L.n_layers], "the logits"))
        cursor = round_up(cursor + m * L.sizes[L.n_layers] + GUARD, ALIGN)
        # Hidden layers are activated in place unless their derivative needs Z.
        for layer in range(L.n_layers - 1):
            self._z_offset[layer] = self._output_offset[layer]
            if self._needs_z[layer]:
                self._z_offset[layer] = cursor
                regions.append((cursor, m * L.sizes[layer + 1], f"the pre-activations of layer {layer}"))
                cursor = round_up(cursor + m * L.sizes[layer + 1] + GUARD, ALIGN)
        self._z_offset[L.n_layers - 1] = L.logits_offset
        for layer in range(2):
            L.delta_offset[layer] = cursor
            regions.append((cursor, m * widest, f"delta buffer {layer}"))
            cursor = round_up(cursor + m * widest + GUARD, ALIGN)
        # GEMM shapes: M and K range over the batch and the widths, N over the widths.
        if self.is_float32:
            pack_a = gemm_pack_a_size(max(m, widest), max(m, widest), <float*>NULL)
            pack_b = gemm_pack_b_size(widest, max(m, widest), <float*>NULL)
        else:
            pack_a = gemm_pack_a_size(max(m, widest), max(m, widest), <double*>NULL)
            pack_b = gemm_pack_b_size(widest, max(m, widest), <double*>NULL)
        L.pack_a_offset = cursor
        L.pack_b_offset = round_up(cursor + pack_a + GUARD, ALIGN)
        regions.append((cursor, pack_a, "the packed A panel"))
        regions.append((L.pack_b_offset, pack_b, "the packed B panel"))
        cursor = L.pack_b_offset + pack_b + GUARD
        # One spare alignment block so that the base itself can be aligned.
        self.workspace = np.empty(cursor + ALIGN, dtype=self.params.dtype)
        cdef size_t address = <size_t>data(self.workspace)
        self.workspace_shift = (((address + 63) & ~(<size_t>63)) - address) // cnp.PyArray_ITEMSIZE(self.params)
        self.workspace_guards = Guards()
        for start, size, name in regions:
            self.workspace_guards.add(self.workspace, self.workspace_shift + start + size, name)
        self.capacity = m
        return 0

    cdef Buffers _prepare(self, cnp.ndarray X, cnp.ndarray Y) except *:
        """Size the workspace for the batch and gather the pointers of one call."""
        cdef Buffers b = self._data_pointers(X, Y)
        self._reserve(b.m)
        self.layout.n_threads = num_threads
        b.params = data(self.params)
        b.grads = data(self.grads)
        b.moment1 = data(self.moment1)
        b.moment2 = data(self.moment2)
        b.ws = <char*>data(self.workspace) + self.workspace_shift * cnp.PyArray_ITEMSIZE(self.params)
        return b

    cdef Buffers _data_pointers(self, cnp.ndarray X, cnp.ndarray Y):
        cdef Buffers b
        b.m = X.shape[0]
        b.X = data(X)
        b.Y = b.labels = b.params = b.grads = b.moment1 = b.moment2 = b.ws = NULL
        if Y is not None:
            if cnp.PyArray_TYPE(Y) == cnp.NPY_INT64:
                b.labels = <int64_t*>data(Y)
            else:
                b.Y = data(Y)
        return b

    def check_values(self, cnp.ndarray X, cnp.ndarray Y=None):
        """Raise ValueError for NaN/inf in X or Y, labels out of range, or BCE
        targets outside [0, 1]: the value checks of the boundary, at C speed."""
        cdef Buffers b = self._data_pointers(X, Y)
        cdef Py_ssize_t bad = -1
        cdef int result
        cdef Py_ssize_t k = self.layout.sizes[self.layout.n_layers]
        cdef double tolerance = self.target_tolerance
        with nogil:
            if self.is_float32:
                result = check_batch(&self.layout, b.m, <float*>b.X, <float*>b.Y, b.labels,
                                     self.loss_kind, tolerance, &bad)
            else:
                result = check_batch(&self.layout, b.m, <double*>b.X, <double*>b.Y, b.labels,
                                     self.loss_kind, tolerance, &bad)
        if result == CHECK_X_NOT_FINITE:
            raise ValueError("X contains NaN or infinity")
        if result == CHECK_Y_NOT_FINITE:
            raise ValueError("Y contains NaN or infinity")
        if result == CHECK_LABEL_OUT_OF_RANGE:
            raise label_error(Y, bad, k)
        if result == CHECK_TARGET_OUTSIDE_UNIT:
            raise ValueError("bce targets Y must lie in [0, 1]")
        if result == CHECK_TARGET_NOT_PROBABILITY:
            raise probability_error(Y, bad)

    cdef LossSettings _loss_settings(self, loss):
        cdef LossSettings settings
        settings.kind = self.loss_kind
        settings.scale = 1.0
        settings.reduction_sum = False
        if self.loss_kind == LOSS_MSE:
            settings.scale = loss.scale
            settings.reduction_sum = loss.reduction == "sum"
        return settings

    cdef OptimizerSettings _optimizer_settings(self, optimizer):
        """The kernel's settings of the next step: what every optimizer has is
        read here, the rest is the optimizer's own (``_kernel_settings``).
        Kept from step to step until the optimizer or one of its settings
        changes (a Python dict to C struct conversion costs ~0.4 µs a call)."""
        cdef OptimizerSettings opt
        if optimizer is not self.settings_of or optimizer._version != self.settings_version:
            opt = {**OPTIMIZER_DEFAULTS, **optimizer._kernel_settings()}
            opt.kind = optimizer.code
            opt.lr = optimizer.lr
            opt.weight_decay = optimizer.weight_decay
            clip_norm, clip_value = optimizer.clip_norm, optimizer.clip_value
            opt.clip_norm = 0.0 if clip_norm is None else clip_norm
            opt.clip_value = INFINITY if clip_value is None else clip_value
            self.settings = opt
            self.settings_of = optimizer
            self.settings_version = optimizer._version
        opt = self.settings
        start_step(&opt, self.step_count + 1)
        return opt

    def forward(self, cnp.ndarray X):
        """Output activations of the batch X, as a new (m, k) array."""
        cdef Buffers b = self._prepare(X, None)
        with nogil:
            if self.is_float32:
                forward_pass(&self.layout, b.m, <float*>b.X, <float*>b.params, <float*>b.ws)
            else:
                forward_pass(&self.layout, b.m, <double*>b.X, <double*>b.params, <double*>b.ws)
        self._verify("forward")
        cdef Py_ssize_t k = self.layout.sizes[self.layout.n_layers]
        cdef Py_ssize_t start = self.workspace_shift + self.layout.output_offset[self.layout.n_layers - 1]
        return self.workspace[start:start + b.m * k].reshape(b.m, k).copy()

    def loss(self, cnp.ndarray X, cnp.ndarray Y, loss):
        """The loss of the batch (forward pass and loss only)."""
        cdef Buffers b = self._prepare(X, Y)
        cdef LossSettings settings = self._loss_settings(loss)
        cdef double value
        with nogil:
            if self.is_float32:
                forward_pass(&self.layout, b.m, <float*>b.X, <float*>b.params, <float*>b.ws)
                value = output_loss(&self.layout, b.m, <float*>b.Y, b.labels, &settings, <float*>b.ws)
            else:
                forward_pass(&self.layout, b.m, <double*>b.X, <double*>b.params, <double*>b.ws)
                value = output_loss(&self.layout, b.m, <double*>b.Y, b.labels, &settings, <double*>b.ws)
        self._verify("loss")
        return value

    def loss_and_gradients(self, cnp.ndarray X, cnp.ndarray Y, loss):
        """The loss; the gradients are left in ``grads``."""
        cdef Buffers b = self._prepare(X, Y)
        cdef LossSettings settings = self._loss_settings(loss)
        cdef double value
        with nogil:
            if self.is_float32:
                value = loss_and_gradients_pass(&self.layout, b.m, <float*>b.X, <float*>b.Y, b.labels,
                                                &settings, <float*>b.params, <float*>b.grads,
                                                <float*>b.ws)
            else:
                value = loss_and_gradients_pass(&self.layout, b.m, <double*>b.X, <double*>b.Y, b.labels,
                                                &settings, <double*>b.params, <double*>b.grads,
                                                <double*>b.ws)
        self._verify("loss_and_gradients")
        return value

    def train_step(self, cnp.ndarray X, cnp.ndarray Y, loss, optimizer):
        """One optimizer step; returns the loss before it (not finite: nothing changed)."""
        cdef Buffers b = self._prepare(X, Y)
        cdef LossSettings settings = self._loss_settings(loss)
        cdef OptimizerSettings opt = self._optimizer_settings(optimizer)
        cdef double value
        cdef int refused
        with nogil:
            if self.is_float32:
                value = train_step_pass(&self.layout, b.m, <float*>b.X, <float*>b.Y, b.labels,
                                        &settings, &opt, <float*>b.params, <float*>b.grads,
                                        <float*>b.moment1, <float*>b.moment2, <float*>b.ws,
                                        &refused)
            else:
                value = train_step_pass(&self.layout, b.m, <double*>b.X, <double*>b.Y, b.labels,
                                        &settings, &opt, <double*>b.params, <double*>b.grads,
                                        <double*>b.moment1, <double*>b.moment2, <double*>b.ws,
                                        &refused)
        self._verify("train_step")
        if refused == STEP_TAKEN_IN_SPARE_BUFFERS:
            self.params, self.grads = self.grads, self.params
            if opt.momentum != 0:
                self.moment1, self.moment2 = self.moment2, self.moment1
        if refused == STEP_GRADIENT_NOT_FINITE:
            raise FloatingPointError(
                f"the global gradient norm is not finite (loss {value:.6g}; training diverged); "
                "parameters were not updated")
        if refused == STEP_UPDATE_OVERFLOWS:
            raise FloatingPointError(
                f"the update of this step overflows {'float32' if self.is_float32 else 'float64'} "
                f"(loss {value:.6g}; training diverged); parameters were not updated")
        if isfinite(value):
            self.step_count += 1
        return value

    cdef bint _is_batch(self, object X, object Y):
        """X and Y already have the exact form the passes take (so the Python
        boundary's conversions would all be no-ops): checked at C speed."""
        cdef Py_ssize_t m, k = self.layout.sizes[self.layout.n_layers]
        cdef int typenum = cnp.NPY_FLOAT if self.is_float32 else cnp.NPY_DOUBLE
        if type(X) is not np.ndarray or type(Y) is not np.ndarray:
            return False
        if not (cnp.PyArray_NDIM(X) == 2 and cnp.PyArray_TYPE(X) == typenum
                and cnp.PyArray_ISBEHAVED_RO(X) and cnp.PyArray_IS_C_CONTIGUOUS(X)
                and cnp.PyArray_DIMS(X)[1] == self.layout.sizes[0]):
            return False
        m = cnp.PyArray_DIMS(X)[0]
        if m == 0 or not (cnp.PyArray_ISBEHAVED_RO(Y) and cnp.PyArray_IS_C_CONTIGUOUS(Y)):
            return False
        if self.loss_kind == LOSS_CROSS_ENTROPY and cnp.PyArray_NDIM(Y) == 1:
            return cnp.PyArray_TYPE(Y) == cnp.NPY_INT64 and cnp.PyArray_DIMS(Y)[0] == m
        return (cnp.PyArray_NDIM(Y) == 2 and cnp.PyArray_TYPE(Y) == typenum
                and cnp.PyArray_DIMS(Y)[0] == m and cnp.PyArray_DIMS(Y)[1] == k)

    def train_step_if_ready(self, X, Y, loss, optimizer):
        """``train_step`` for a batch already in the engine's form, with the value
        checks of the boundary; None (nothing done) when X or Y need converting."""
        if not self._is_batch(X, Y):
            return None
        self.check_values(X, Y)
        return self.train_step(X, Y, loss, optimizer)

    # -- optimizer state out and back in (Network.trace undoes a trial step) --------------
    def optimizer_state(self):
        """``(moment1, moment2, step_count)``: copies of the flat moment arrays
        (parameter layout, guard zones excluded) and the count of steps taken."""
        return (self.moment1[:self.n_params].copy(), self.moment2[:self.n_params].copy(),
                self.step_count)

    def restore_optimizer_state(self, cnp.ndarray moment1 not None, cnp.ndarray moment2 not None,
                                long step_count):
        """Put back, bit for bit, a state returned by ``optimizer_state``."""
        for name, moment in (("moment1", moment1), ("moment2", moment2)):
            if moment.ndim != 1 or moment.shape[0] != self.n_params or moment.dtype != self.params.dtype:
                raise ValueError(f"{name} must be a ({self.n_params},) array of {self.params.dtype}")
        if step_count < 0:
            raise ValueError(f"step_count must be >= 0, got {step_count}")
        self.moment1[:self.n_params] = moment1
        self.moment2[:self.n_params] = moment2
        self.step_count = step_count


# -- twins of single kernels, for tests ----------------------------------------------------
def gemm_product(cnp.ndarray A, cnp.ndarray B, bint trans_a=False, bint trans_b=False,
                 cnp.ndarray C=None, bint poison=False):
    """op(A) @ op(B) by the engine's GEMM (``C +=`` when C is given), for tests
    and the benchmark. A and B: C-contiguous 2-D arrays of one float dtype.

    ``poison`` fills a new C with NaN first: a GEMM that read C without
    accumulating would leak it into the result.
    """
    cdef int typenum = cnp.PyArray_TYPE(A)
    if (A.ndim != 2 or B.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(A)
            or not cnp.PyArray_IS_C_CONTIGUOUS(B)):
        raise ValueError("A and B must be C-contiguous 2-D arrays")
    if cnp.PyArray_TYPE(B) != typenum or typenum not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE):
        raise TypeError("A and B must share a float32 or float64 dtype")
    cdef Py_ssize_t M = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t K = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t N = B.shape[0] if trans_b else B.shape[1]
    if (B.shape[1] if trans_b else B.shape[0]) != K:
        raise ValueError("inner dimensions differ")
    cdef Py_ssize_t rsa = 1 if trans_a else A.shape[1], csa = A.shape[1] if trans_a else 1
    cdef Py_ssize_t rsb = 1 if trans_b else B.shape[1], csb = B.shape[1] if trans_b else 1
    cdef bint accumulate = C is not None
    cdef cnp.npy_intp dims[2]
    if accumulate:
        if (cnp.PyArray_TYPE(C) != typenum or C.ndim != 2 or C.shape[0] != M or C.shape[1] != N
                or not cnp.PyArray_IS_C_CONTIGUOUS(C)):
            raise ValueError("C must be a C-contiguous (M, N) array of the same dtype")
    else:
        dims[0] = M
        dims[1] = N
        C = cnp.PyArray_EMPTY(2, dims, typenum, 0)
        if poison:
            C.fill(np.nan)
    cdef bint is_float32 = typenum == cnp.NPY_FLOAT
    cdef Py_ssize_t size_a, size_b
    if is_float32:
        size_a = gemm_pack_a_size(M, K, <float*>NULL)
        size_b = gemm_pack_b_size(N, K, <float*>NULL)
    else:
        size_a = gemm_pack_a_size(M, K, <double*>NULL)
        size_b = gemm_pack_b_size(N, K, <double*>NULL)
    dims[0] = size_a + size_b + 2 * GUARD
    cdef cnp.ndarray packs = cnp.PyArray_EMPTY(1, dims, typenum, 0)
    cdef Guards guards = Guards()
    guards.add(packs, size_a, "the packed A panel")
    guards.add(packs, size_a + GUARD + size_b, "the packed B panel")
    cdef void* a = data(A)
    cdef void* b = data(B)
    cdef void* c = data(C)
    cdef char* pa = <char*>data(packs)
    cdef char* pb = pa + (size_a + GUARD) * cnp.PyArray_ITEMSIZE(A)
    with nogil:
        if is_float32:
            gemm(M, N, K, <float*>a, rsa, csa, <float*>b, rsb, csb, <float*>c, N, accumulate,
                 <float*>pa, <float*>pb, num_threads)
        else:
            gemm(M, N, K, <double*>a, rsa, csa, <double*>b, rsb, csb, <double*>c, N, accumulate,
                 <double*>pa, <double*>pb, num_threads)
    if GUARD:
        guards.verify("gemm")
    return C
