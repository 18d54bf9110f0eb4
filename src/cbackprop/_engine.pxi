# The training engine: one network's parameters, optimizer state and
# workspace, and its passes, each one nogil call (_engine_passes.pxi).
#
# Parameters and gradients live in flat arrays, laid out W0, b0, W1, b1, ...;
# the optimizer's moments share the layout (_engine_state.pxi). Activations,
# deltas and GEMM panels live in one workspace sized for the largest batch
# seen so far (_engine_memory.pxi), so a steady-state step allocates nothing.
#
# The def methods trust their arguments (C-contiguous, the network's dtype,
# right shapes, finite values, labels in range): the Network checks them at
# its boundary, the value checks by one C pass (check_values).
cimport numpy as cnp
import numpy as np
cimport cython
from libc.math cimport fabs, isfinite
from libc.stdint cimport int64_t
from libc.string cimport memset

cnp.import_array()

# Every kernel's element type: one instantiation per dtype.
ctypedef fused real:
    float
    double

# The boundary's wording and tolerance, shared with the reference's checks.
from cbackprop._validation import (label_error, loss_not_finite_error, probability_error,
                                   probability_tolerance, unit_interval_error)
# The registries: the kernels' codes come from there, never from names here.
from cbackprop._activations import NEEDS_Z as _NEEDS_Z
from cbackprop._activations import REGISTRY as _ACTIVATIONS

include "_kernels/gemm.pxi"
include "_kernels/activations.pxi"
include "_kernels/losses.pxi"
include "_kernels/optimizers.pxi"
include "_kernels/state_bounds.pxi"
include "_kernels/checks.pxi"
include "_engine_passes.pxi"
include "_engine_batches.pxi"
include "_engine_memory.pxi"
include "_engine_state.pxi"
include "_engine_lock.pxi"

cdef enum:
    # A pass of at most this many multiply-adds (rows x weights) and
    # parameter updates keeps the GIL: handing it over and taking it back
    # cost more (Engine._keeps_gil).
    GIL_KEPT_MAX_WORK = 512

# -- the kernels' numbers against the registries' codes ------------------------------------
# The enums of _kernels/ repeat the registries' codes (C needs constants); a
# number that drifted would run another kernel without a word, so the engine
# refuses to import instead: a RuntimeError, not an ImportError, which
# cbackprop._backend would take for a build left out and pass over.
KERNEL_CODES = {
    "activation": {"sigmoid": ACT_SIGMOID, "relu": ACT_RELU, "tanh": ACT_TANH,
                   "identity": ACT_IDENTITY, "leaky_relu": ACT_LEAKY_RELU,
                   "softmax": ACT_SOFTMAX, "gelu": ACT_GELU, "gelu_tanh": ACT_GELU_TANH,
                   "silu": ACT_SILU},
    "loss": {"mse": LOSS_MSE, "bce": LOSS_BCE, "cross_entropy": LOSS_CROSS_ENTROPY},
    "optimizer": {"sgd": OPT_SGD, "adam": OPT_ADAM, "rmsprop": OPT_RMSPROP},
    # vmath.h's update loops, named by optimizer: the same numbers again.
    "vector update": {"adam": CB_UPDATE_ADAM, "rmsprop": CB_UPDATE_RMSPROP},
}


def kernel_code_mismatches(activation_codes, loss_codes, optimizer_codes):
    """``[]`` when KERNEL_CODES agree with the registries' ``{name: code}``
    maps; else one line per disagreement (a name either side lacks, or two
    numbers)."""
    wanted = {"activation": activation_codes, "loss": loss_codes,
              "optimizer": optimizer_codes,
              "vector update": {name: optimizer_codes.get(name)
                                for name in KERNEL_CODES["vector update"]}}
    mismatches = []
    for kind, codes in wanted.items():
        for name in sorted(set(codes) | set(KERNEL_CODES[kind])):
            kernel, registry = KERNEL_CODES[kind].get(name), codes.get(name)
            if kernel != registry:
                mismatches.append(f"{kind} {name!r}: kernel number {kernel}, registry code {registry}")
    return mismatches


def _check_kernel_codes():
    from cbackprop.losses import LOSSES
    from cbackprop.optimizers import OPTIMIZERS
    mismatches = kernel_code_mismatches({name: entry.code for name, entry in _ACTIVATIONS.items()},
                                        {name: cls.code for name, cls in LOSSES.items()},
                                        {name: cls.code for name, cls in OPTIMIZERS.items()})
    if mismatches:
        raise RuntimeError("cbackprop's compiled kernels disagree with its registries (a build "
                           "of other sources?): " + "; ".join(mismatches))


_check_kernel_codes()

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


def threads_have_run():
    """Whether a team of threads has run a pass in this process (gemm.pxi, cb_team)."""
    return bool(cb_team_ran)


def have_openmp():
    """Whether this build runs passes on threads (set_num_threads is else ignored)."""
    return bool(cbackprop_have_openmp())



cdef LossSettings loss_settings_of(loss):
    """What the loss kernels read of a loss object (cbackprop/losses.py)."""
    cdef LossSettings settings
    settings.kind = loss.code
    settings.scale = 1.0
    settings.reduction_sum = False
    if settings.kind == LOSS_MSE:
        settings.scale = loss.scale
        settings.reduction_sum = loss.reduction == "sum"
    return settings


cdef object step_error(int outcome, double value, bint is_float32):
    """The FloatingPointError of a step refused with this StepOutcome."""
    if outcome == STEP_LOSS_NOT_FINITE:
        return loss_not_finite_error(value)
    if outcome == STEP_GRADIENT_NOT_FINITE:
        return FloatingPointError(
            f"the global gradient norm is not finite (loss {value:.6g}; training diverged); "
            "parameters were not updated")
    if outcome == STEP_UPDATE_OVERFLOWS:
        return FloatingPointError(
            f"the update of this step overflows {'float32' if is_float32 else 'float64'} "
            f"(loss {value:.6g}; training diverged); parameters were not updated")
    return None


cdef class Engine:
    """Parameters, optimizer state and workspace of one network, and its passes.

    ``Engine(sizes, activations, dtype, loss, lock, optimizer)``: the
    network's layers, and its loss, lock and optimizer, which its network
    calls use (network_call; use_optimizer replaces the optimizer). Not
    thread-safe by itself: the Network serialises calls on one engine.
    """
    cdef Layout layout
    cdef StateBounds bounds            # the layout's (state_bounds.pxi)
    cdef readonly bint is_float32
    cdef readonly cnp.ndarray params
    cdef readonly cnp.ndarray grads
    cdef readonly Py_ssize_t n_params
    cdef OptimizerState state
    cdef Workspace ws
    cdef Guards param_guards
    cdef LossSettings loss_settings
    cdef Py_ssize_t n_weights          # multiply-adds of one row's forward pass
    cdef object loss_of, loss_version  # the loss object loss_settings were read from, and when
    cdef double target_tolerance       # of cross-entropy target row sums
    # The arrays behind the layout's pointers, and what it is laid out from.
    cdef cnp.ndarray _sizes, _activations, _weight_offset, _bias_offset, _output_offset, _z_offset
    cdef cnp.ndarray _norm_partials
    cdef list _needs_z                 # per layer: does its activation's derivative read Z
    cdef cnp.ndarray _gathered, _gathered_labels   # train_batches' rows of one batch
    # The network's lock, loss and optimizer, for its network calls: held
    # here, they cost no attribute lookups on the network per call (three
    # of them were about 7 % of a [2, 2, 1] train_step on the Zen 4).
    cdef object network_lock
    cdef NetworkLock own_lock          # network_lock if of this build's NetworkLock, else None
    cdef object network_loss, network_optimizer

    def __cinit__(self, sizes, activations, dtype, loss, lock, optimizer):
        cdef Py_ssize_t layer, cursor = 0
        cdef Layout* L = &self.layout
        n_layers = len(sizes) - 1
        self.is_float32 = np.dtype(dtype) == np.float32
        self._use_loss(loss)
        self.network_loss = loss
        self.network_lock = lock
        self.own_lock = lock if type(lock) is NetworkLock else None
        self.network_optimizer = optimizer
        self.target_tolerance = probability_tolerance(dtype, sizes[n_layers])
        self._sizes = np.array(sizes, dtype=np.intp)
        self._activations = np.array([_ACTIVATIONS[a].code for a in activations], dtype=np.intc)
        self._needs_z = [a in _NEEDS_Z for a in activations]
        self._weight_offset = np.zeros(n_layers, dtype=np.intp)
        self._bias_offset = np.zeros(n_layers, dtype=np.intp)
        self._output_offset = np.zeros(n_layers, dtype=np.intp)
        self._z_offset = np.zeros(n_layers, dtype=np.intp)
        self.n_weights = 0
        for layer in range(n_layers):
            self._weight_offset[layer] = cursor
            cursor += sizes[layer] * sizes[layer + 1]
            self.n_weights += sizes[layer] * sizes[layer + 1]
            self._bias_offset[layer] = cursor
            cursor += sizes[layer + 1]
        self.n_params = cursor
        self.param_guards = Guards()
        self.params = aligned_zeros(cursor + GUARD, dtype)
        self.grads = aligned_zeros(cursor + GUARD, dtype)
        # (Steps swap parameters with gradients: the name covers either.)
        self.param_guards.add(self.params, cursor, "parameters or gradients")
        self.param_guards.add(self.grads, cursor, "parameters or gradients")
        self.state = OptimizerState(cursor, dtype, self.param_guards)
        self.ws = Workspace()
        n_chunks = (cursor + NORM_CHUNK - 1) // NORM_CHUNK
        self._norm_partials = np.zeros(n_chunks + GUARD, dtype=np.float64)
        self.param_guards.add(self._norm_partials, n_chunks, "the partial sums of the gradient norm")
        L.n_layers = n_layers
        L.sizes = <Py_ssize_t*>data(self._sizes)
        L.activations = <int*>data(self._activations)
        L.weight_offset = <Py_ssize_t*>data(self._weight_offset)
        L.bias_offset = <Py_ssize_t*>data(self._bias_offset)
        L.output_offset = <Py_ssize_t*>data(self._output_offset)
        L.z_offset = <Py_ssize_t*>data(self._z_offset)
        L.norm_partials = <double*>data(self._norm_partials)
        L.moments_in_place = moments_in_place_pay(cursor * self.params.itemsize)
        self.bounds.known = False
        self.bounds.steps_in_place = 0
        L.bounds = &self.bounds

    # -- parameters and state in and out ------------------------------------------------
    def parameter_views(self):
        """``(weights, biases)``: lists of views into the flat parameter array.
        Valid until the next step: steps swap the parameter and gradient
        buffers. (What is written through them is not bounded: the next step
        goes through the spare buffers, state_bounds.pxi.)"""
        self.bounds.known = False
        return self._views(self.params)

    def gradient_copies(self):
        """``[(dW, db), ...]`` copied out of the gradient array (meaningful right
        after loss_and_gradients: a step leaves other values there): views of
        one copy of it, which no step touches (one copy, not one per array)."""
        weights, biases = self._views(self.grads.copy())
        return list(zip(weights, biases))

    def _views(self, flat):
        sizes = self._sizes
        weights, biases = [], []
        for layer in range(self.layout.n_layers):
            w, b = self._weight_offset[layer], self._bias_offset[layer]
            weights.append(flat[w:b].reshape(sizes[layer], sizes[layer + 1]))
            biases.append(flat[b:b + sizes[layer + 1]])
        return weights, biases

    @property
    def workspace(self):
        """The workspace array (for the debug build's tests)."""
        return self.ws.array

    @property
    def moments_in_place(self):
        """Whether Adam's and RMSprop's steps may write their moments in place
        once the state's bounds prove they cannot overflow (state_bounds.pxi):
        set from the parameters' size; the tests set it to run both ways."""
        return self.layout.moments_in_place

    @moments_in_place.setter
    def moments_in_place(self, bint value):
        self.layout.moments_in_place = value
        self.bounds.known = False

    @property
    def state_bounds(self):
        """Upper bounds of the state that steps in place rely on, or None when
        they are not known (for the tests): ``(|parameter|, |m|, v)`` for
        Adam, ``(|parameter|, v, |buffer|)`` for RMSprop."""
        if not self.bounds.known:
            return None
        return self.bounds.param, self.bounds.moment1, self.bounds.moment2

    @property
    def steps_in_place(self):
        """How many steps wrote their moments in place (for the tests)."""
        return self.bounds.steps_in_place

    @property
    def step_count(self):
        return self.state.step_count

    def reset_optimizer_state(self):
        self.bounds.known = False
        self.state.reset()

    def optimizer_state(self):
        """``(moment1, moment2, step_count)``, copied (Network.trace undoes a trial step)."""
        return self.state.snapshot()

    def restore_optimizer_state(self, moment1, moment2, step_count):
        """Put back, bit for bit, a state returned by ``optimizer_state``."""
        self.bounds.known = False
        self.state.restore(moment1, moment2, step_count)

    # -- the passes ----------------------------------------------------------------------
    cdef Call _call(self, cnp.ndarray X, cnp.ndarray Y):
        """The pointers of one call on the batch X (and targets Y, or None)."""
        cdef Call c
        c.m = X.shape[0]
        c.rows = c.m
        c.out = NULL
        c.X = data(X)
        c.Y = NULL
        c.labels = NULL
        if Y is not None:
            if cnp.PyArray_TYPE(Y) == cnp.NPY_INT64:
                c.labels = <int64_t*>data(Y)
            else:
                c.Y = data(Y)
        c.params = c.grads = c.moment1 = c.moment2 = c.spare1 = c.spare2 = c.ws = NULL   # set by _run
        c.loss = &self.loss_settings
        c.optimizer = NULL
        c.batches = NULL
        c.target_tolerance = self.target_tolerance
        c.outcome = 0
        c.check = CHECK_OK
        c.bad_index = -1
        return c

    cdef inline int _use_loss(self, loss) except -1:
        """loss_settings from this loss object, read again only when it is
        another object or one of its settings changed (its ``_version``)."""
        version = loss._version   # before the settings, as in OptimizerState.next_step
        if loss is not self.loss_of or version != self.loss_version:
            self.loss_settings = loss_settings_of(loss)
            self.loss_of = loss
            self.loss_version = version
        return 0

    cdef int _run(self, Pass which, Call* c, str where) except -1:
        """Size the workspace for the batch, run one pass without the GIL, and
        check the guard zones of a debug build."""
        if c.m > self.ws.capacity:   # (the call's arguments cost more than this test)
            self.ws.reserve(&self.layout, c.m, self._needs_z,
                            <Py_ssize_t*>data(self._output_offset),
                            <Py_ssize_t*>data(self._z_offset), self.params.dtype)
        self.layout.n_threads = num_threads
        c.params = data(self.params)
        c.grads = data(self.grads)
        c.moment1 = data(self.state.moment1)
        c.moment2 = data(self.state.moment2)
        c.spare1 = data(self.state.spare1) if self.state.spare1 is not None else NULL
        c.spare2 = data(self.state.spare2) if self.state.spare2 is not None else NULL
        c.ws = self.ws.base()
        if self._keeps_gil(which, c):
            run_pass(which, &self.layout, c, self.is_float32)
        else:
            with nogil:
                run_pass(which, &self.layout, c, self.is_float32)
        if GUARD:
            self.param_guards.verify(where)
            self.ws.guards.verify(where)
        return 0

    cdef inline bint _keeps_gil(self, Pass which, const Call* c):
        """Whether a pass runs with the GIL held: one of at most
        GIL_KEPT_MAX_WORK multiply-adds and parameter updates, shorter than
        handing the GIL over and taking it back (bench/README.md, "Kept: the
        GIL kept through a tiny pass"). fit's chunks always hand it over."""
        cdef Py_ssize_t rows = c.rows if which == PASS_FORWARD else c.m
        return (which != PASS_BATCHES
                and rows * self.n_weights + self.n_params <= GIL_KEPT_MAX_WORK)

    def keeps_gil(self, Py_ssize_t rows, bint fit=False):
        """Whether a pass on ``rows`` rows (fit's chunks: ``fit``) runs with
        the GIL held (tests)."""
        cdef Call c
        memset(&c, 0, sizeof(Call))
        c.m = rows
        return self._keeps_gil(PASS_BATCHES if fit else PASS_STEP, &c)

    def check_values(self, cnp.ndarray X, cnp.ndarray Y=None):
        """Raise ValueError for NaN/inf in X or Y, labels out of range, or BCE
        targets outside [0, 1]: the value checks of the boundary, at C speed."""
        cdef Call c = self._call(X, Y)
        self._check_call(&c, Y)

    cdef int _check_call(self, Call* c, Y) except -1:
        """check_values on the call's batch (its c.m rows), with the GIL held
        where a pass on those rows keeps it (_keeps_gil): a check reads less."""
        if self._keeps_gil(PASS_CHECK, c):
            run_pass(PASS_CHECK, &self.layout, c, self.is_float32)
        else:
            with nogil:
                run_pass(PASS_CHECK, &self.layout, c, self.is_float32)
        return self._raise_for_check(c.outcome, c.bad_index, Y)

    cdef int _raise_for_check(self, int check, Py_ssize_t bad_index, Y) except -1:
        """The ValueError of a batch that failed the value checks (CheckResult)."""
        if check == CHECK_X_NOT_FINITE:
            raise ValueError("X contains NaN or infinity")
        if check == CHECK_Y_NOT_FINITE:
            raise ValueError("Y contains NaN or infinity")
        if check == CHECK_LABEL_OUT_OF_RANGE:
            raise label_error(Y, bad_index, self.layout.sizes[self.layout.n_layers])
        if check == CHECK_TARGET_OUTSIDE_UNIT:
            raise unit_interval_error(Y)
        if check == CHECK_TARGET_NOT_PROBABILITY:
            raise probability_error(Y, bad_index)
        return 0

    def forward(self, cnp.ndarray X):
        """Output activations of the batch X, as a new (m, k) array."""
        cdef Call c = self._call(X, None)
        return self._forward_of(&c)

    cdef cnp.ndarray _forward_of(self, Call* c):
        """Output activations of the call's c.m rows, as a new (m, k) array."""
        cdef cnp.npy_intp shape[2]
        shape[0] = c.m
        shape[1] = self.layout.sizes[self.layout.n_layers]
        # Made in C: np.empty through Python took 0.13 µs on the Zen 4, a fifth
        # of a [2, 2, 1] forward on 4 rows.
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, cnp.PyArray_TYPE(self.params), 0)
        c.rows = c.m
        c.m = min(c.m, <Py_ssize_t>FORWARD_BLOCK_ROWS)
        c.out = data(out)
        self._run(PASS_FORWARD, c, "forward")
        return out

    def forward_if_ready(self, X):
        """``forward`` of a batch X already in the engine's form (as _is_batch
        takes it), or of one such sample as a 1-D row (its (k,) outputs), after
        the boundary's value check of X (check_values' error); None (nothing
        done) when X needs converting or reshaping."""
        return self._forward_if_ready(X)

    cdef object _forward_if_ready(self, X):
        cdef int ndim = 1 if self._is_input(X, 1) else 2
        if ndim == 2 and not self._is_input(X, 2):
            return None
        cdef Call c = self._call(<cnp.ndarray>X, None)
        if ndim == 1:
            c.m = c.rows = 1
        self._check_call(&c, None)
        out = self._forward_of(&c)
        return out[0] if ndim == 1 else out

    def loss(self, cnp.ndarray X, cnp.ndarray Y, loss):
        """The loss of the batch (forward pass and loss only)."""
        cdef Call c = self._call(X, Y)
        self._use_loss(loss)
        self._run(PASS_LOSS, &c, "loss")
        return c.value

    def loss_if_ready(self, X, Y, loss):
        """``loss`` of a batch already in the engine's form (as train_step_if_ready
        takes it), after the boundary's value checks (check_values' errors); None
        (nothing done) when X or Y need converting."""
        return self._checked_pass_if_ready(X, Y, loss, PASS_LOSS, "loss")

    cdef object _checked_pass_if_ready(self, X, Y, loss, Pass which, str where):
        """One pass (the loss, or the loss and gradients) on a batch in the
        engine's form, after check_values' checks; its loss, or None."""
        if not self._is_batch(X, Y):
            return None
        cdef Call c = self._call(X, Y)
        self._check_call(&c, Y)
        self._use_loss(loss)
        self._run(which, &c, where)
        return c.value

    def loss_and_gradients(self, cnp.ndarray X, cnp.ndarray Y, loss):
        """The loss; the gradients are left in ``grads``."""
        cdef Call c = self._call(X, Y)
        self._use_loss(loss)
        self._run(PASS_GRADIENTS, &c, "loss_and_gradients")
        return c.value

    def loss_and_gradients_if_ready(self, X, Y, loss):
        """``loss_and_gradients`` as loss_if_ready does ``loss``."""
        return self._checked_pass_if_ready(X, Y, loss, PASS_GRADIENTS, "loss_and_gradients")

    def train_step(self, cnp.ndarray X, cnp.ndarray Y, loss, optimizer):
        """One optimizer step; returns the loss before it (not finite: nothing changed)."""
        return self._step(X, Y, loss, optimizer, PASS_STEP)

    cdef double _step(self, cnp.ndarray X, cnp.ndarray Y, loss, optimizer,
                      Pass which) except? -1:
        cdef Call c = self._call(X, Y)
        self._use_loss(loss)
        cdef OptimizerSettings opt = self.state.next_step(optimizer)
        self.state.reserve_spares(moments_written(&opt))
        c.optimizer = &opt
        self._run(which, &c, "train_step")
        if c.check != CHECK_OK:
            self._raise_for_check(c.check, c.bad_index, Y)
        self._take_step(&c, &opt)
        return c.value

    def apply_update(self, optimizer):
        """The optimizer's step from the gradients now in ``grads`` (the update
        pass of train_step alone, for bench/ to time: it leaves the old
        parameters in ``grads``)."""
        cdef Call c
        memset(&c, 0, sizeof(Call))
        cdef OptimizerSettings opt = self.state.next_step(optimizer)
        self.state.reserve_spares(moments_written(&opt))
        c.optimizer = &opt
        c.value = 0.0
        self._run(PASS_UPDATE, &c, "apply_update")
        self._take_step(&c, &opt)

    def train_batches(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray order,
                      Py_ssize_t next_batch, Py_ssize_t batch_size, double total, loss,
                      optimizer, double seconds, ctrl_c):
        """Steps on the minibatches ``next_batch, next_batch + 1, ...`` of the
        epoch, in one nogil call of about ``seconds``, as Network.fit's loop
        of train_step calls would take them: X and Y already in the engine's
        form and checked; ``order`` None (the rows as they are) or the
        epoch's permutation of them (int64), each batch's rows gathered as
        ``X[order][start:stop]`` would hold them. ``total`` is the epoch's
        running sum of batch loss x batch rows. ``ctrl_c`` is None or fit's
        watch of Ctrl-C (_training._CtrlCStopsAfterStep): while it watches
        (main thread), a SIGINT ends the call after the step it interrupts,
        and one it was told of before the call takes no step.

        Returns ``(next_batch, total, error, interrupted)``: the first batch
        not run, the new total, the FloatingPointError of a refused step (None
        when every step was taken; the network is as after the previous
        step) and whether a SIGINT came (the caller raises it again)."""
        global cb_sigint_noted
        cdef Call c = self._call(X, Y)
        cdef BatchRun run
        cdef Py_ssize_t m = X.shape[0]
        # Network._run_epoch gives a larger request as batch_size = m; here it
        # would size the gathered rows' buffer.
        if not 1 <= batch_size <= m or next_batch < 0:
            raise ValueError(f"batch_size must be in [1, {m}] and next_batch >= 0, got "
                             f"{batch_size}, {next_batch}")
        self._use_loss(loss)
        cdef OptimizerSettings opt = self.state.next_step(optimizer)
        self.state.reserve_spares(moments_written(&opt))
        c.optimizer = &opt
        c.batches = &run
        c.m = batch_size   # the workspace's rows
        run.rows = m
        run.order = NULL
        run.gathered = NULL
        run.gathered_labels = NULL
        if order is not None:
            # Its values index X: the caller draws it (a permutation of
            # range(m)); its form is checked here.
            if (cnp.PyArray_TYPE(order) != cnp.NPY_INT64 or cnp.PyArray_NDIM(order) != 1
                    or order.shape[0] != m or not cnp.PyArray_IS_C_CONTIGUOUS(order)):
                raise ValueError("order must be a C-contiguous int64 permutation of the rows")
            run.order = <const int64_t*>data(order)
            self._reserve_gathered(batch_size)
            run.gathered = data(self._gathered)
            run.gathered_labels = <int64_t*>data(self._gathered_labels)
        run.batch_size = batch_size
        run.n_batches = (m + batch_size - 1) // batch_size
        run.next_batch = next_batch
        run.first_step = self.state.step_count + 1
        run.seconds = seconds
        run.total = total
        # Looked at here, not by the caller: Python's handler may run between
        # any two of its bytecodes, and once the note's handler is in place,
        # only after the chunk. A SIGINT that Python handled before the look
        # at the request below is fit's request; one still pending in Python
        # is taken from it; one after the note's handler is noted: each
        # stops the chunk before its next step.
        run.watch_sigint = (ctrl_c is not None and ctrl_c.watching
                            and cb_note_sigint_start() == 0)
        try:   # (the look may raise: a handler other than fit's runs in it)
            if ctrl_c is not None and ctrl_c.requested_here_or_outside:
                run.n_batches = next_batch   # no step
            elif run.watch_sigint and PyOS_InterruptOccurred():
                # (Where the look above ran the pending handler, as CPython
                # 3.11 does on entering it, nothing is left here.)
                cb_sigint_noted = 1   # reported: the caller raises it again for fit's handler
            self._run(PASS_BATCHES, &c, "fit")
        finally:
            if run.watch_sigint:
                cb_note_sigint_stop()
        if run.steps % 2:
            self.params, self.grads = self.grads, self.params
        if run.moments_swapped:
            self.state.swap_in_spares(moments_written(&opt))
        self.state.step_count += run.steps
        error = None
        if not step_taken(run.outcome):
            error = step_error(run.outcome, run.value, self.is_float32)
        return run.next_batch, run.total, error, bool(run.watch_sigint and cb_sigint_noted)

    cdef int _reserve_gathered(self, Py_ssize_t batch_size) except -1:
        """Room for one batch's rows of X and Y, and its labels (kept between calls)."""
        cdef Py_ssize_t n_in = self.layout.sizes[0], k = self.layout.sizes[self.layout.n_layers]
        if self._gathered is None or self._gathered_labels.shape[0] < batch_size + GUARD:
            # Both allocated before either is kept: a MemoryError leaves the old pair.
            gathered = aligned_zeros(batch_size * (n_in + k) + GUARD, self.params.dtype)
            gathered_labels = np.zeros(batch_size + GUARD, dtype=np.int64)
            self._gathered, self._gathered_labels = gathered, gathered_labels
            self.param_guards.add(self._gathered, batch_size * (n_in + k),
                                  "the gathered rows of a batch")
            self.param_guards.add(self._gathered_labels, batch_size,
                                  "the gathered labels of a batch")
        return 0

    cdef int _take_step(self, Call* c, OptimizerSettings* opt) except -1:
        """Swap in the buffers of a step taken; raise for one refused."""
        if step_taken(c.outcome):
            self.params, self.grads = self.grads, self.params
            if c.outcome == STEP_TAKEN_IN_SPARE_BUFFERS:
                self.state.swap_in_spares(moments_written(opt))
            self.state.step_count += 1
        elif c.outcome != STEP_LOSS_NOT_FINITE:
            raise step_error(c.outcome, c.value, self.is_float32)
        return 0

    cdef bint _is_input(self, object X, int ndim):
        """X already has the exact form the passes take, as a (m, n_in) batch
        with m >= 1 (ndim 2) or one (n_in,) sample (ndim 1): an ndarray of the
        network's dtype, aligned, C-contiguous (the Python boundary's
        conversions would all be no-ops). Checked at C speed."""
        cdef int typenum = cnp.NPY_FLOAT if self.is_float32 else cnp.NPY_DOUBLE
        if type(X) is not cnp.ndarray:
            return False
        return (cnp.PyArray_NDIM(X) == ndim and cnp.PyArray_TYPE(X) == typenum
                and cnp.PyArray_ISBEHAVED_RO(X) and cnp.PyArray_IS_C_CONTIGUOUS(X)
                and cnp.PyArray_DIMS(X)[ndim - 1] == self.layout.sizes[0]
                and cnp.PyArray_DIMS(X)[0] > 0)

    cdef bint _is_batch(self, object X, object Y):
        """X a batch in the engine's form (_is_input) and Y its targets in
        that form too: (m, k) of the dtype, or int64 labels (m,) for
        cross-entropy."""
        cdef Py_ssize_t m, k = self.layout.sizes[self.layout.n_layers]
        cdef int typenum = cnp.NPY_FLOAT if self.is_float32 else cnp.NPY_DOUBLE
        if not self._is_input(X, 2) or type(Y) is not cnp.ndarray:
            return False
        m = cnp.PyArray_DIMS(X)[0]
        if not (cnp.PyArray_ISBEHAVED_RO(Y) and cnp.PyArray_IS_C_CONTIGUOUS(Y)):
            return False
        if self.loss_settings.kind == LOSS_CROSS_ENTROPY and cnp.PyArray_NDIM(Y) == 1:
            return cnp.PyArray_TYPE(Y) == cnp.NPY_INT64 and cnp.PyArray_DIMS(Y)[0] == m
        return (cnp.PyArray_NDIM(Y) == 2 and cnp.PyArray_TYPE(Y) == typenum
                and cnp.PyArray_DIMS(Y)[0] == m and cnp.PyArray_DIMS(Y)[1] == k)

    def train_step_if_ready(self, X, Y, loss, optimizer):
        """``train_step`` for a batch already in the engine's form, with the value
        checks of the boundary, raising as Network.train_step does for a
        non-finite loss; None (nothing done) when X or Y need converting."""
        return self._train_step_if_ready(X, Y, loss, optimizer)

    def use_optimizer(self, optimizer):
        """The network's new optimizer, for its network calls (Network's
        optimizer setter, with the network's lock held)."""
        self.network_optimizer = optimizer

    # Network's fast paths: the network's lock taken in C (a NetworkLock),
    # as a `with net._lock:` around the *_if_ready call would, at a fraction
    # of its cost.
    def network_call(self, X, Y, int which):
        """The network's ``train_step(X, Y)``, ``forward(X)`` (Y unused) or
        ``loss(X, Y)``, as ``which`` says (a value of the module's
        NETWORK_CALLS, by those names), with its lock, loss and optimizer,
        when X and Y are ready (train_step_if_ready, forward_if_ready,
        loss_if_ready); None when they need converting. The compiled
        Network's methods reach it in C; this is their way into another
        build's Engine (bench/thresholds.py)."""
        if which not in NETWORK_CALLS.values():
            raise ValueError(f"which must be a NetworkCall, not {which}")
        return self._network_call(X, Y, <NetworkCall>which)

    cdef object _network_call(self, X, Y, NetworkCall which):
        if self.own_lock is None:
            # Another build's NetworkLock (bench/thresholds.py gives a network
            # the engine of another build), or any lock: its Python protocol.
            with self.network_lock:
                return self._network_call_locked(X, Y, which)
        self.own_lock.take()
        try:
            return self._network_call_locked(X, Y, which)
        finally:
            self.own_lock.give()

    cdef object _network_call_locked(self, X, Y, NetworkCall which):
        # The optimizer read with the lock held: the setter replaces it under it.
        if which == NETWORK_TRAIN_STEP:
            return self._train_step_if_ready(X, Y, self.network_loss, self.network_optimizer)
        if which == NETWORK_FORWARD:
            return self._forward_if_ready(X)
        return self._checked_pass_if_ready(X, Y, self.network_loss, PASS_LOSS, "loss")

    cdef object _train_step_if_ready(self, X, Y, loss, optimizer):
        if not self._is_batch(X, Y):
            return None
        cdef double value = self._step(X, Y, loss, optimizer, PASS_CHECKED_STEP)
        if not isfinite(value):
            raise loss_not_finite_error(value)
        return value


# Engine.network_call's kinds, by the names of the Network methods they serve.
NETWORK_CALLS = {"train_step": NETWORK_TRAIN_STEP, "forward": NETWORK_FORWARD,
                 "loss": NETWORK_LOSS}


# The compiled Network's train_step, forward and loss (network.py takes them
# as its methods): a batch already in the engine's form reaches the engine
# with no Python frame between (on the Zen 4 a Python method around
# the engine's call cost 0.10 µs of a [2, 2, 1] step's 0.85-0.96);
# anything else goes back to the network's _converted_* hook, the Python
# boundary that converts it.
cdef object network_fast_path(net, X, Y, NetworkCall which):
    engine = net._engine
    if type(engine) is Engine:
        return (<Engine>engine)._network_call(X, Y, which)
    # Another build's Engine (bench/thresholds.py), through Python.
    return engine.network_call(X, Y, which)


@cython.embedsignature(False)   # the docstring of Network's method
def network_train_step_method(self, X, Y):
    """One optimizer step on this batch; returns the loss before the update.

    Raises FloatingPointError, with nothing changed, when the loss is not
    finite or the update would overflow the dtype.
    """
    loss = network_fast_path(self, X, Y, NETWORK_TRAIN_STEP)
    return self._converted_train_step(X, Y) if loss is None else loss


@cython.embedsignature(False)   # the docstring of Network's method
def network_forward_method(self, X):
    """Output activations ``(m, sizes[-1])``, or ``(sizes[-1],)`` for a 1-D ``X``."""
    out = network_fast_path(self, X, None, NETWORK_FORWARD)
    return self._converted_forward(X) if out is None else out


@cython.embedsignature(False)   # the docstring of Network's method
def network_loss_method(self, X, Y):
    """The loss on this batch as a Python float."""
    value = network_fast_path(self, X, Y, NETWORK_LOSS)
    return self._converted_loss(X, Y) if value is None else value
