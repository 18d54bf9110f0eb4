# Minibatches in one nogil call: the loop of Network.fit's epochs, run in
# compiled chunks of about CHUNK_SECONDS each, so that Python runs only
# between chunks (the progress line, Ctrl-C's check). Each minibatch is the
# same train_step_pass a train_step call runs, and the buffers are swapped
# between steps as train_step swaps them, so a chunk of steps gives the same
# bits as a Python loop of train_step calls over the same batches.
#
# Ctrl-C: while a chunk runs in the main thread, a C handler of SIGINT only
# notes the signal; the loop stops after the step it interrupts, and the
# caller raises the signal again for Python's own handler once the chunk
# has returned.
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from *:
    """
    #include <signal.h>
    #include <string.h>
    static volatile sig_atomic_t cb_sigint_noted = 0;
    #ifdef _WIN32
    static int cb_note_sigint_start(void) { cb_sigint_noted = 0; return -1; }
    static void cb_note_sigint_stop(void) {}
    #else
    static struct sigaction cb_sigint_before;
    static void cb_note_sigint(int signum) { (void)signum; cb_sigint_noted = 1; }
    /* From here on SIGINT only sets cb_sigint_noted; 0 on success. */
    static int cb_note_sigint_start(void) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = cb_note_sigint;
        sigemptyset(&action.sa_mask);
        cb_sigint_noted = 0;
        return sigaction(SIGINT, &action, &cb_sigint_before);
    }
    /* Puts back the handler cb_note_sigint_start replaced. */
    static void cb_note_sigint_stop(void) { sigaction(SIGINT, &cb_sigint_before, NULL); }
    #endif
    /* total + value * weight, the product rounded on its own (never fused
     * into one FMA), as Python's `total += value * weight` computes it. */
    static double cb_add_product(double total, double value, double weight) {
        volatile double product = value * weight;
        return total + product;
    }
    """
    int cb_note_sigint_start() nogil
    void cb_note_sigint_stop() nogil
    int cb_sigint_noted
    double cb_add_product(double total, double value, double weight) nogil


cdef extern from "Python.h":
    # Whether SIGINT came since Python last ran its handlers; takes it (GIL held).
    int PyOS_InterruptOccurred()


cdef struct BatchRun:
    Py_ssize_t rows            # of X (and Y)
    const int64_t* order       # the epoch's order of the rows (a permutation), or NULL
    void* gathered             # batch_size rows of X, then of Y: a batch's rows in order
    int64_t* gathered_labels   # batch_size labels
    Py_ssize_t batch_size
    Py_ssize_t n_batches
    Py_ssize_t next_batch      # in: the first batch to run; out: the first not run
    long first_step            # the number (from 1) of the chunk's first step
    double seconds             # the chunk ends after the first step past this long
    bint watch_sigint          # stop after the step a SIGINT interrupts
    double total               # in/out: the running sum of batch loss x batch rows
    long steps                 # out: steps taken
    bint moments_swapped       # out: whether the spares hold the moments now (an odd
                               # count of steps taken in the spares)
    double value               # out: the loss of the step that stopped the chunk
    int outcome                # out: the StepOutcome of the last step run


cdef inline double seconds_now() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + 1e-9 * now.tv_nsec


cdef void train_batches_pass(const Layout* L, Call* c, BatchRun* run,
                             const real* X) noexcept nogil:
    """Steps on batches next_batch, next_batch + 1, ... of X and Y (rows
    ``batch * batch_size`` on, the last one shorter; with an order, the rows
    ``order[batch * batch_size:]``), until the epoch ends,
    the time is up, a SIGINT came or a step is refused (its outcome and
    loss are left in ``run``; the network is as after the previous step)."""
    cdef Py_ssize_t start, rows, n_in = L.sizes[0], k = L.sizes[L.n_layers]
    cdef real* params = <real*>c.params
    cdef real* grads = <real*>c.grads
    cdef real* moment1 = <real*>c.moment1
    cdef real* moment2 = <real*>c.moment2
    cdef real* spare1 = <real*>c.spare1
    cdef real* spare2 = <real*>c.spare2
    cdef double now
    cdef const real* Y = <const real*>c.Y
    # With an order, each batch's rows are copied into the gathered buffers first.
    cdef real* gathered_X = <real*>run.gathered
    cdef real* gathered_Y = NULL if Y == NULL else gathered_X + run.batch_size * n_in
    cdef int64_t* gathered_labels = NULL if c.labels == NULL else run.gathered_labels
    cdef const real* batch_X = gathered_X
    cdef const real* batch_Y = gathered_Y
    cdef const int64_t* batch_labels = gathered_labels
    cdef OptimizerSettings opt = c.optimizer[0]
    cdef int written = moments_written(&opt)
    cdef double started = seconds_now(), deadline = started + run.seconds
    # The clock is read after the first step, then about every 0.1 ms of
    # steps: a tiny network's step is shorter than the read itself.
    cdef long steps_per_check = 1, next_check = 1
    # In a shuffled epoch, the next batch's rows are asked for during each step.
    cdef RowsAhead ahead
    cdef RowsAhead* next_rows
    ahead.X = <const char*>X
    ahead.x_row_bytes = n_in * sizeof(real)
    if Y != NULL:
        ahead.targets = <const char*>Y
        ahead.target_row_bytes = k * sizeof(real)
    elif c.labels != NULL:
        ahead.targets = <const char*>c.labels
        ahead.target_row_bytes = sizeof(int64_t)
    else:
        ahead.targets = NULL
        ahead.target_row_bytes = 0
    run.steps = 0
    run.moments_swapped = False
    run.outcome = STEP_TAKEN_IN_SPARE_BUFFERS
    while run.next_batch < run.n_batches:
        # Before each step: a SIGINT noted before the first (train_batches)
        # takes none.
        if run.watch_sigint and cb_sigint_noted:
            return
        start = run.next_batch * run.batch_size
        rows = min(run.batch_size, run.rows - start)
        if run.order == NULL:
            batch_X = X + start * n_in
            if Y != NULL:
                batch_Y = Y + start * k
            if c.labels != NULL:
                batch_labels = c.labels + start
        else:
            gather_rows(run.order + start, rows, n_in, k, X, Y, c.labels, gathered_X,
                        gathered_Y, gathered_labels)
        start_step(&opt, run.first_step + run.steps)
        if run.order != NULL and run.next_batch + 1 < run.n_batches:
            ahead.rows = run.order + start + run.batch_size
            ahead.n_rows = min(run.batch_size, run.rows - start - run.batch_size)
            ahead.asked = 0
            ahead.share = (ahead.n_rows + L.n_layers + 1) // (L.n_layers + 2)
            next_rows = &ahead
        else:
            next_rows = NULL
        run.value = train_step_pass(L, rows, batch_X, batch_Y, batch_labels, c.loss, &opt,
                                    params, grads, moment1, moment2, spare1, spare2,
                                    <real*>c.ws, &run.outcome, next_rows)
        if not step_taken(run.outcome):
            return
        params, grads = grads, params
        if run.outcome == STEP_TAKEN_IN_SPARE_BUFFERS:
            run.moments_swapped = not run.moments_swapped
            if written >= 1:
                moment1, spare1 = spare1, moment1
            if written >= 2:
                moment2, spare2 = spare2, moment2
        run.steps += 1
        run.total = cb_add_product(run.total, run.value, <double>rows)
        run.next_batch += 1
        if run.steps == next_check:
            now = seconds_now()
            if now >= deadline:
                return
            if run.steps == 1:
                steps_per_check = max(1, <long>(1e-4 / max(now - started, 1e-9)))
            next_check = run.steps + steps_per_check


cdef inline void gather_rows(const int64_t* rows_wanted, Py_ssize_t rows, Py_ssize_t n_in,
                             Py_ssize_t k, const real* X, const real* Y, const int64_t* labels,
                             real* batch_X, real* batch_Y, int64_t* batch_labels) noexcept nogil:
    """Rows ``rows_wanted[:rows]`` of X and of Y (or labels), packed in that order."""
    cdef Py_ssize_t r, j, row
    for r in range(rows):
        row = rows_wanted[r]
        for j in range(n_in):
            batch_X[r * n_in + j] = X[row * n_in + j]
        if Y != NULL:
            for j in range(k):
                batch_Y[r * k + j] = Y[row * k + j]
        if labels != NULL:
            batch_labels[r] = labels[row]
