# Optimizer state of one network: two moment buffers in the parameters'
# layout (Adam: m and v; RMSprop: v and the momentum buffer; SGD: the
# velocities), two spare buffers a step writes its new moments into (swapped
# in when the step is taken), the count of steps taken, and the kernel's
# settings derived from the optimizer object.

cdef class OptimizerState:
    cdef cnp.ndarray moment1, moment2
    cdef cnp.ndarray spare1, spare2    # None until an optimizer needs them
    cdef Guards guards
    cdef readonly Py_ssize_t n_params
    cdef readonly long step_count
    cdef OptimizerSettings settings    # of settings_of at settings_version
    cdef object settings_of, settings_version

    def __cinit__(self, Py_ssize_t n_params, dtype, Guards guards):
        self.n_params = n_params
        self.moment1 = aligned_zeros(n_params + GUARD, dtype)
        self.moment2 = aligned_zeros(n_params + GUARD, dtype)
        self.guards = guards
        # (Steps swap moments with spares: the name covers either.)
        guards.add(self.moment1, n_params, "moments, velocities or their spares")
        guards.add(self.moment2, n_params, "moments, velocities or their spares")
        self.step_count = 0

    cdef OptimizerSettings next_step(self, optimizer):
        """The kernel's settings of the next step: what every optimizer has is
        read here, the rest is the optimizer's own (``_kernel_settings``).
        Kept from step to step until the optimizer or one of its settings
        changes: converting a dict to the struct on every step adds about a
        third to a tiny network's step (bench/README.md, "The engine's
        thresholds")."""
        cdef OptimizerSettings opt
        # The version before the settings: _kernel_settings runs Python, in
        # which another thread may change one; the next step then reads again.
        version = optimizer._version
        if optimizer is not self.settings_of or version != self.settings_version:
            opt = {**OPTIMIZER_DEFAULTS, **optimizer._kernel_settings()}
            opt.kind = optimizer.code
            opt.lr = optimizer.lr
            opt.weight_decay = optimizer.weight_decay
            clip_norm, clip_value = optimizer.clip_norm, optimizer.clip_value
            opt.clip_norm = 0.0 if clip_norm is None else clip_norm
            opt.clip_value = INFINITY if clip_value is None else clip_value
            self.settings = opt
            self.settings_of = optimizer
            self.settings_version = version
        opt = self.settings
        start_step(&opt, self.step_count + 1)
        return opt

    cdef void reserve_spares(self, int count):
        """The first ``count`` spare buffers, allocated on the first step that
        writes them (SGD without momentum needs none)."""
        if count >= 1 and self.spare1 is None:
            self.spare1 = aligned_zeros(self.n_params + GUARD, self.moment1.dtype)
            self.guards.add(self.spare1, self.n_params, "moments, velocities or their spares")
        if count >= 2 and self.spare2 is None:
            self.spare2 = aligned_zeros(self.n_params + GUARD, self.moment1.dtype)
            self.guards.add(self.spare2, self.n_params, "moments, velocities or their spares")

    cdef void swap_in_spares(self, int count):
        """A step left its new moments in the first ``count`` spare buffers."""
        if count >= 1:
            self.moment1, self.spare1 = self.spare1, self.moment1
        if count >= 2:
            self.moment2, self.spare2 = self.spare2, self.moment2

    def reset(self):
        self.moment1[:self.n_params] = 0
        self.moment2[:self.n_params] = 0
        self.step_count = 0

    def snapshot(self):
        """``(moment1, moment2, step_count)``: copies of the flat moment arrays
        (parameter layout, guard zones excluded) and the count of steps taken."""
        return (self.moment1[:self.n_params].copy(), self.moment2[:self.n_params].copy(),
                self.step_count)

    def restore(self, cnp.ndarray moment1 not None, cnp.ndarray moment2 not None,
                long step_count):
        """Put back, bit for bit, a state returned by ``snapshot``."""
        for name, moment in (("moment1", moment1), ("moment2", moment2)):
            if (moment.ndim != 1 or moment.shape[0] != self.n_params
                    or moment.dtype != self.moment1.dtype):
                raise ValueError(f"{name} must be a ({self.n_params},) array of {self.moment1.dtype}")
        if step_count < 0:
            raise ValueError(f"step_count must be >= 0, got {step_count}")
        self.moment1[:self.n_params] = moment1
        self.moment2[:self.n_params] = moment2
        self.step_count = step_count
