# The training passes: each strings the kernels into one nogil call over a
# network's parameters (flat arrays laid out W0, b0, W1, b1, ...) and its
# workspace (regions laid out by Workspace.reserve). run_pass picks the
# float or double instantiation once per pass.

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
    bint moments_in_place            # may steps write moments in place (state_bounds.pxi)
    StateBounds* bounds              # of the parameters and moments, for moments_in_place
    double* norm_partials            # scratch: one double per NORM_CHUNK parameters


cdef struct LossSettings:
    int kind
    double scale
    bint reduction_sum


# The next minibatch's rows, asked for while this one trains. Gathered after
# the step, in a shuffled epoch they come from anywhere in X: one miss per
# line, and a step of a small network waited on them (fit, [64, 32, 10],
# batch 32, X in L3: 0.8 us of 9). A share of rows is asked for at each of
# the step's points (before the forward pass, after the loss, after each
# layer's backward pass), so the misses overlap products instead of queueing
# behind each other: asked for all at once they filled the miss buffers and
# stalled the step.
cdef extern from *:
    """
    #include <stdint.h>
    /* The lines of [p, p + bytes) into the caches, hinted for L2 (prefetcht1):
     * in L1 they would evict the step's own operands. */
    static inline void cb_ask_for_lines(const void* p, ptrdiff_t bytes) {
        const char* line = (const char*)((uintptr_t)p & ~(uintptr_t)63);
        const char* end = (const char*)p + bytes;
        for (; line < end; line += 64)
            __builtin_prefetch(line, 0, 2);
    }
    """
    void cb_ask_for_lines(const void* p, Py_ssize_t n_bytes) nogil


cdef struct RowsAhead:
    const int64_t* rows        # the next batch's rows of X and of the targets
    Py_ssize_t n_rows
    Py_ssize_t asked           # rows asked for so far
    Py_ssize_t share           # rows asked for at each point of the step
    const char* X
    Py_ssize_t x_row_bytes
    const char* targets        # Y or the labels, or NULL
    Py_ssize_t target_row_bytes


cdef inline void ask_for_rows_ahead(RowsAhead* ahead) noexcept nogil:
    if ahead == NULL:
        return
    cdef Py_ssize_t r, last = min(ahead.asked + ahead.share, ahead.n_rows)
    for r in range(ahead.asked, last):
        cb_ask_for_lines(ahead.X + ahead.rows[r] * ahead.x_row_bytes, ahead.x_row_bytes)
        if ahead.targets != NULL:
            cb_ask_for_lines(ahead.targets + ahead.rows[r] * ahead.target_row_bytes,
                             ahead.target_row_bytes)
    ahead.asked = last


# -- passes ------------------------------------------------------------------------------
cdef void forward_pass(const Layout* L, Py_ssize_t m, const real* X, const real* params,
                       real* ws, bint output_activated) noexcept nogil:
    """Every layer's Z and A for X; the output layer's A only when
    ``output_activated`` (its logits always)."""
    cdef Py_ssize_t layer, n_in, n_out
    cdef const real* a_prev = X
    cdef real* a
    cdef real* z
    cdef int activation
    for layer in range(L.n_layers):
        n_in = L.sizes[layer]
        n_out = L.sizes[layer + 1]
        a = ws + L.output_offset[layer]
        z = ws + L.z_offset[layer]
        activation = L.activations[layer]
        if layer == L.n_layers - 1 and not output_activated:
            a = z
            activation = ACT_IDENTITY
        gemm(m, n_out, n_in, a_prev, n_in, 1, params + L.weight_offset[layer], n_out, 1,
             z, n_out, False, ws + L.pack_a_offset, ws + L.pack_b_offset, L.n_threads)
        bias_activation_forward(m, n_out, z, params + L.bias_offset[layer], a, activation,
                                L.n_threads)
        a_prev = a


cdef inline bint loss_reads_output(const LossSettings* loss) noexcept nogil:
    """Whether output_loss reads the output layer's A. BCE and cross-entropy
    work from the logits alone (losses.pxi), so a training pass skips their
    sigmoid or softmax: on digits' [64, 128, 10] softmax_rows held 1.2 % of
    fit's samples (bench/README.md, "Where digits' fit goes")."""
    return loss.kind != LOSS_BCE and loss.kind != LOSS_CROSS_ENTROPY


cdef enum:
    # forward_rows_pass runs a large input through the network this many rows
    # at a time, so the workspace never holds more (predict on a dataset).
    FORWARD_BLOCK_ROWS = 1024


cdef void forward_rows_pass(const Layout* L, Py_ssize_t m, const real* X, const real* params,
                            real* ws, real* out) noexcept nogil:
    """``out`` (m, k) = the network's output for X, forward_pass on blocks of at
    most FORWARD_BLOCK_ROWS rows, each block's output copied out."""
    cdef Py_ssize_t first = 0, rows, n_in = L.sizes[0], k = L.sizes[L.n_layers]
    while first < m:
        rows = min(<Py_ssize_t>FORWARD_BLOCK_ROWS, m - first)
        forward_pass(L, rows, X + first * n_in, params, ws, True)
        copy_values(rows * k, ws + L.output_offset[L.n_layers - 1], out + first * k)
        first += rows


cdef double output_loss(const Layout* L, Py_ssize_t m, const real* Y, const int64_t* labels,
                        const LossSettings* loss, real* ws) noexcept nogil:
    """The loss of the last forward pass; writes the output delta."""
    cdef Py_ssize_t last = L.n_layers - 1
    cdef Py_ssize_t k = L.sizes[L.n_layers]
    cdef real* A = ws + L.output_offset[last]
    cdef real* Z = ws + L.logits_offset
    cdef real* delta = ws + L.delta_offset[last % 2]
    if loss.kind == LOSS_BCE:
        return bce_loss(m * k, Z, Y, delta)
    if loss.kind == LOSS_CROSS_ENTROPY:
        return cross_entropy_loss(m, k, Z, Y, labels, delta)
    return mse_loss(m, k, A, Z, Y, loss.scale, loss.reduction_sum, L.activations[last], delta)


cdef enum:
    # Columns summed at once, their totals held in registers across the rows.
    SUM_BLOCK = 16


cdef void column_sums(Py_ssize_t m, Py_ssize_t n, const real* values, real* sums,
                      int n_threads) noexcept nogil:
    """sums = values.sum(axis=0), each column accumulated row by row in double;
    large ones split by column blocks, so every column is summed in the same
    order whatever the thread count."""
    cdef Py_ssize_t block, n_blocks = (n + 63) // 64
    if n_threads > 1 and m * n >= PARALLEL_MIN_ELEMENTS and n_blocks > 1:
        for block in prange(n_blocks, num_threads=cb_team(n_threads), schedule="static"):
            sum_columns(m, n, block * 64, min(n, (block + 1) * <Py_ssize_t>64), values, sums)
    else:
        sum_columns(m, n, 0, n, values, sums)


cdef inline void sum_columns(Py_ssize_t m, Py_ssize_t n, Py_ssize_t first, Py_ssize_t last,
                             const real* values, real* sums) noexcept nogil:
    """Columns [first, last) SUM_BLOCK at a time, the totals in locals: a total
    kept in memory would be stored and loaded again for every row."""
    cdef double totals[SUM_BLOCK]
    cdef Py_ssize_t i, j, start = first, width
    cdef const real* row
    while start < last:
        width = min(<Py_ssize_t>SUM_BLOCK, last - start)
        for j in range(SUM_BLOCK):
            totals[j] = 0
        if width == SUM_BLOCK:   # a constant trip count: vectorised, unrolled, in registers
            for i in range(m):
                row = values + i * n + start
                for j in range(SUM_BLOCK):
                    totals[j] += row[j]
        else:
            for i in range(m):
                row = values + i * n + start
                for j in range(width):
                    totals[j] += row[j]
        for j in range(width):
            sums[start + j] = <real>totals[j]
        start += width


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
    column_sums(m, n_out, delta, grads + L.bias_offset[layer], L.n_threads)
    if layer > 0:
        delta_prev = ws + L.delta_offset[(layer - 1) % 2]
        # delta_prev = (delta @ Wᵀ) ⊙ f'(Z_prev), W read transposed.
        gemm(m, n_in, n_out, delta, n_out, 1, params + L.weight_offset[layer], 1, n_out,
             delta_prev, n_in, False, pack_a, pack_b, L.n_threads)
        activation_backward(m * n_in, delta_prev, delta_prev, a_prev, ws + L.z_offset[layer - 1],
                            L.activations[layer - 1], L.n_threads)


cdef double loss_and_gradients_pass(const Layout* L, Py_ssize_t m, const real* X, const real* Y,
                                    const int64_t* labels, const LossSettings* loss,
                                    const real* params, real* grads, real* ws) noexcept nogil:
    cdef Py_ssize_t layer
    forward_pass(L, m, X, params, ws, loss_reads_output(loss))
    cdef double value = output_loss(L, m, Y, labels, loss, ws)
    for layer in range(L.n_layers - 1, -1, -1):
        backward_layer(L, m, layer, X, params, grads, ws)
    return value


cdef enum StepOutcome:
    STEP_UPDATE_OVERFLOWS = 1        # a new parameter or moment would not be finite
    STEP_GRADIENT_NOT_FINITE = 2     # clip_norm is set and the gradient norm is not finite
    STEP_TAKEN_IN_SPARE_BUFFERS = 3  # the new values are in grads and the spares: swap them in
    STEP_LOSS_NOT_FINITE = 4         # nothing computed beyond the loss
    STEP_TAKEN_IN_PLACE = 5          # the new parameters are in grads (swap them in), the
                                     # new moments in place of the old


cdef inline bint step_taken(int outcome) noexcept nogil:
    return outcome == STEP_TAKEN_IN_SPARE_BUFFERS or outcome == STEP_TAKEN_IN_PLACE


cdef double train_step_pass(const Layout* L, Py_ssize_t m, const real* X, const real* Y,
                            const int64_t* labels, const LossSettings* loss,
                            const OptimizerSettings* opt, const real* params, real* grads,
                            const real* moment1, const real* moment2, real* spare1,
                            real* spare2, real* ws, int* outcome,
                            RowsAhead* ahead) noexcept nogil:
    """Forward, loss, backward, then the update of every layer (with clipped
    gradients when the settings ask for it), written into the spare buffers:
    the new parameters into ``grads``, the new optimizer state into ``spare1``
    and ``spare2`` (optimizers.pxi) or, for an Adam or RMSprop step proved
    not to overflow, in place (state_bounds.pxi). The caller swaps them in
    when the step is taken (step_taken: the parameters always, the spares
    for STEP_TAKEN_IN_SPARE_BUFFERS); the step is refused when the loss is
    not finite, when the gradient norm that clip_norm needs is not, or when
    a new parameter or moment would not be. A diverging step leaves the
    network as it was. ``ahead``, if not NULL, is the next batch's rows."""
    cdef Py_ssize_t layer
    outcome[0] = STEP_LOSS_NOT_FINITE
    ask_for_rows_ahead(ahead)
    forward_pass(L, m, X, params, ws, loss_reads_output(loss))
    cdef double value = output_loss(L, m, Y, labels, loss, ws)
    if not isfinite(value):
        return value
    ask_for_rows_ahead(ahead)
    for layer in range(L.n_layers - 1, -1, -1):
        backward_layer(L, m, layer, X, params, grads, ws)
        ask_for_rows_ahead(ahead)
    outcome[0] = update_pass(L, opt, params, grads, moment1, moment2, spare1, spare2)
    return value


cdef int update_pass(const Layout* L, const OptimizerSettings* opt, const real* params,
                     real* grads, const real* moment1, const real* moment2, real* spare1,
                     real* spare2) noexcept nogil:
    """The optimizer's step from the gradients in ``grads``, into the spare
    buffers (or in place) as train_step_pass says; returns its StepOutcome
    and keeps ``L.bounds`` true of the state the step leaves."""
    cdef double norm = 0
    # Every parameter: the flat arrays from W0 to the last bias.
    cdef Py_ssize_t n_params = L.bias_offset[L.n_layers - 1] + L.sizes[L.n_layers]
    cdef StateBounds after
    cdef OptimizerSettings step = opt[0]   # with this step's clipping factor
    step.gradient_scale = 1
    if step.clip_norm > 0:
        norm = gradient_norm(n_params, grads, L.norm_partials, L.n_threads)
        if not isfinite(norm):
            return STEP_GRADIENT_NOT_FINITE
        if norm > step.clip_norm:
            step.gradient_scale = step.clip_norm / norm
    cdef bint bounded = L.moments_in_place and bounds_moments(step.kind)
    # Bounds of this optimizer's state first, else the largest gradient is not
    # needed; with clip_norm the norm bounds every gradient, without a pass.
    if (bounded and L.bounds.known and L.bounds.kind == step.kind
            and moments_in_place_are_safe(
                &step, norm if step.clip_norm > 0 else largest_gradient(
                    n_params, grads, L.norm_partials, L.n_threads),
                L.bounds, overflow_limit(real is float), &after)):
        # Proved finite: the spares are the moments themselves.
        update_parameters(L, n_params, &step, params, grads, moment1, moment2,
                          <real*>moment1, <real*>moment2)
        L.bounds[0] = after
        return STEP_TAKEN_IN_PLACE
    if not update_parameters(L, n_params, &step, params, grads, moment1, moment2, spare1,
                             spare2):
        return STEP_UPDATE_OVERFLOWS   # nothing written that the caller swaps in
    if bounded:
        state_bounds(n_params, step.kind, grads, spare1, spare2, L.bounds)
    else:
        L.bounds.known = False
    return STEP_TAKEN_IN_SPARE_BUFFERS


cdef inline bint update_parameters(const Layout* L, Py_ssize_t n_params,
                                   const OptimizerSettings* opt, const real* params,
                                   real* grads, const real* moment1, const real* moment2,
                                   real* spare1, real* spare2) noexcept nogil:
    """Every parameter's update; whether every new value is finite. Only
    weight decay sets a layer's weights apart from its biases (which take
    none): without it the flat arrays go through in one call, the same
    values as two calls a layer (every element's update is its own), where
    on a small network the calls cost more than the arithmetic (Adam on
    [2, 2, 1]: four calls of two vectors' latency each)."""
    cdef Py_ssize_t layer
    if opt.weight_decay == 0:
        return optimizer_update(n_params, params, grads, moment1, moment2, spare1, spare2, opt,
                                0.0, L.n_threads)
    for layer in range(L.n_layers):
        if not update_layer(L, layer, opt, params, grads, moment1, moment2, spare1, spare2):
            return False
    return True


cdef inline bint update_layer(const Layout* L, Py_ssize_t layer, const OptimizerSettings* opt,
                              const real* params, real* grads, const real* moment1,
                              const real* moment2, real* spare1, real* spare2) noexcept nogil:
    cdef Py_ssize_t w = L.weight_offset[layer], b = L.bias_offset[layer]
    return (optimizer_update(L.sizes[layer] * L.sizes[layer + 1], params + w, grads + w,
                             moment1 + w, moment2 + w, spare1 + w, spare2 + w, opt,
                             opt.weight_decay, L.n_threads)
            and optimizer_update(L.sizes[layer + 1], params + b, grads + b, moment1 + b,
                                 moment2 + b, spare1 + b, spare2 + b, opt, 0.0, L.n_threads))


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


# -- one dtype dispatch per pass -------------------------------------------------------
cdef enum Pass:
    PASS_FORWARD = 0
    PASS_LOSS = 1
    PASS_GRADIENTS = 2
    PASS_STEP = 3
    PASS_CHECK = 4
    PASS_UPDATE = 5     # the optimizer's step alone, from the gradients in grads
    PASS_BATCHES = 6    # steps on consecutive minibatches (_engine_batches.pxi)
    PASS_CHECKED_STEP = 7   # PASS_CHECK, then PASS_STEP when the batch passes


cdef struct Call:
    # Everything one pass reads or writes, gathered with the GIL held.
    Py_ssize_t m               # rows of the batch (the workspace is sized for them)
    Py_ssize_t rows            # PASS_FORWARD: rows of X, run in blocks of at most m
    void* out                  # PASS_FORWARD: the (rows, k) output
    const void* X
    const void* Y              # float targets, or NULL
    const int64_t* labels      # class labels, or NULL
    void* params
    void* grads
    void* moment1
    void* moment2
    void* spare1               # PASS_STEP: where the new moments go (optimizers.pxi)
    void* spare2
    void* ws
    const LossSettings* loss
    const OptimizerSettings* optimizer
    BatchRun* batches          # PASS_BATCHES: which batches, and how they went
    double target_tolerance    # PASS_CHECK: of cross-entropy target row sums
    double value               # out: the loss
    int outcome                # out: a StepOutcome, or a CheckResult for PASS_CHECK
    int check                  # out: PASS_CHECKED_STEP's CheckResult
    Py_ssize_t bad_index       # out: PASS_CHECK's first bad label or row


cdef void typed_pass(Pass which, const Layout* L, Call* c, const real* X) noexcept nogil:
    cdef const real* Y = <const real*>c.Y
    cdef real* params = <real*>c.params
    cdef real* grads = <real*>c.grads
    cdef real* ws = <real*>c.ws
    if which == PASS_FORWARD:
        forward_rows_pass(L, c.rows, X, params, ws, <real*>c.out)
    elif which == PASS_LOSS:
        forward_pass(L, c.m, X, params, ws, loss_reads_output(c.loss))
        c.value = output_loss(L, c.m, Y, c.labels, c.loss, ws)
    elif which == PASS_GRADIENTS:
        c.value = loss_and_gradients_pass(L, c.m, X, Y, c.labels, c.loss, params, grads, ws)
    elif which == PASS_CHECKED_STEP:
        c.check = check_batch(L, c.m, X, Y, c.labels, c.loss.kind, c.target_tolerance,
                              &c.bad_index)
        if c.check == CHECK_OK:
            typed_pass(PASS_STEP, L, c, X)
    elif which == PASS_STEP:
        c.value = train_step_pass(L, c.m, X, Y, c.labels, c.loss, c.optimizer, params, grads,
                                  <real*>c.moment1, <real*>c.moment2, <real*>c.spare1,
                                  <real*>c.spare2, ws, &c.outcome, NULL)
    elif which == PASS_BATCHES:
        train_batches_pass(L, c, c.batches, X)
    elif which == PASS_UPDATE:
        c.outcome = update_pass(L, c.optimizer, params, grads, <real*>c.moment1,
                                <real*>c.moment2, <real*>c.spare1, <real*>c.spare2)
    else:
        c.outcome = check_batch(L, c.m, X, Y, c.labels, c.loss.kind, c.target_tolerance,
                                &c.bad_index)


cdef inline void run_pass(Pass which, const Layout* L, Call* c, bint is_float32) noexcept nogil:
    if is_float32:
        typed_pass(which, L, c, <const float*>c.X)
    else:
        typed_pass(which, L, c, <const double*>c.X)
