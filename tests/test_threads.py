"""Threads: independent compiled networks train in parallel with bit-identical
results, the compiled train_step releases the GIL, and one network shared by
several threads stays consistent (every call is atomic)."""
import _thread
import os
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cbackprop as cb

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}


def run_threads(targets):
    """Run each callable in its own thread, all released together; re-raise
    the first exception of any of them in the calling thread."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(target):
        def run():
            try:
                barrier.wait()
                target()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


def flat_params(net):
    weights, biases = net.get_params()
    return weights + biases


def assert_same_params(a, b):
    pa, pb = flat_params(a), flat_params(b)
    assert len(pa) == len(pb)
    for i, (x, y) in enumerate(zip(pa, pb)):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), f"parameter {i} differs"


# --------------------------------------------------------------------------
# (a) two networks trained at once == trained one after the other
# --------------------------------------------------------------------------

# (sizes, activations, loss, optimizer factory, dtype, batch size, steps)
JOBS = {
    "small": [
        ([64, 128, 10], ["relu", "softmax"], "cross_entropy",
         lambda: cb.Adam(lr=1e-3), "float64", 64, 200),
        ([64, 128, 10], ["tanh", "identity"], "mse",
         lambda: cb.SGD(lr=0.01, momentum=0.9, nesterov=True), "float32", 64, 200),
    ],
    "big": [
        ([512, 1024, 256, 10], ["relu", "leaky_relu", "softmax"], "cross_entropy",
         lambda: cb.SGD(lr=0.01, momentum=0.9), "float32", 256, 8),
        ([512, 768, 512, 10], ["tanh", "relu", "identity"], "mse",
         lambda: cb.Adam(lr=1e-3, weight_decay=1e-4), "float64", 256, 8),
    ],
}


def make_job(spec, seed):
    sizes, activations, loss, optimizer, dtype, m, steps = spec
    net = cb.Network(sizes, activations, loss=loss, optimizer=optimizer(), dtype=dtype, seed=seed)
    rng = np.random.default_rng(100 + seed)
    batches = []
    for _ in range(8):
        X = rng.standard_normal((m, sizes[0])).astype(dtype)
        if loss == "cross_entropy":
            Y = rng.integers(0, sizes[-1], size=m)
        else:
            Y = rng.standard_normal((m, sizes[-1])).astype(dtype)
        batches.append((X, Y))
    losses = []

    def train():
        for step in range(steps):
            losses.append(net.train_step(*batches[step % len(batches)]))

    return net, losses, train


# The small case runs its kernels on one OpenMP thread each: with several
# OpenMP threads per call, tiny steps slow down a hundredfold when another
# process keeps a core busy (measured here: 30 ms a step instead of 0.1 ms).
# The big case uses the default thread count, so two OpenMP teams run at once.
@pytest.mark.parametrize("case, omp_threads", [("small", 1), ("big", None)])
def test_two_networks_in_parallel_match_sequential(case, omp_threads):
    parallel = [make_job(spec, seed) for seed, spec in enumerate(JOBS[case])]
    serial = [make_job(spec, seed) for seed, spec in enumerate(JOBS[case])]
    old_threads = cb.get_num_threads()
    if omp_threads is not None:
        cb.set_num_threads(omp_threads)
    try:
        run_threads([train for _, _, train in parallel])
        for _, _, train in serial:
            train()
    finally:
        cb.set_num_threads(old_threads)
    for (net_p, losses_p, _), (net_s, losses_s, _) in zip(parallel, serial):
        assert len(losses_p) == len(losses_s) == JOBS[case][0][-1]
        assert losses_p == losses_s
        assert_same_params(net_p, net_s)


# --------------------------------------------------------------------------
# (b) the compiled train_step releases the GIL
# --------------------------------------------------------------------------


def test_compiled_train_step_releases_the_gil():
    """While the main thread is inside one long compiled train_step, a Python
    thread spinning on a counter makes progress: it could not if the call held
    the GIL from start to end. (Only the compiled network: the reference runs
    NumPy, which releases the GIL only inside BLAS calls.)

    Limit of this check: the engine's value check of the batch (NaN/inf scan)
    also runs without the GIL, just before the compute, and a hand-over there
    alone could let the counter move. The test therefore proves that the call
    is not GIL-bound from start to end, not that every part of it releases
    the GIL; distinguishing those would need a timing comparison."""
    old_threads = cb.get_num_threads()
    cb.set_num_threads(1)
    try:
        net = cb.Network([1024, 1024, 1024], ["relu", "identity"], optimizer=cb.SGD(lr=1e-4), seed=3)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((512, 1024))  # C-contiguous float64: the engine's own form
        Y = rng.standard_normal((512, 1024))
        net.train_step(X, Y)  # allocate the workspace outside the measured call

        counter = [0]
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                counter[0] += 1

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        try:
            while counter[0] == 0:  # the spinner is running
                stop.wait(0.001)
            before = counter[0]
            loss = net.train_step(X, Y)
            after = counter[0]
        finally:
            stop.set()
            spinner.join(timeout=10)
        assert np.isfinite(loss)
        print(f"counter advanced by {after - before} during one train_step")
        assert after > before, "no Python code ran while train_step computed: the GIL was held"
    finally:
        cb.set_num_threads(old_threads)
    assert cb.get_num_threads() == old_threads


def test_a_tiny_pass_keeps_the_gil_and_a_larger_one_hands_it_over():
    """A pass of at most 512 multiply-adds (rows x weights) and parameter
    updates runs with the GIL held: handing it over and taking it back cost
    more than such a pass (bench/README.md, "Kept: the GIL kept through a
    tiny pass"). A larger pass hands it over, as does every chunk of fit
    (which may run for 50 ms)."""
    engine = cb.Network([2, 2, 1], ["relu", "identity"], seed=0)._engine   # 6 weights, 9 parameters
    most = (512 - 9) // 6
    assert engine.keeps_gil(4) and engine.keeps_gil(most)
    assert not engine.keeps_gil(most + 1)
    assert not engine.keeps_gil(4, fit=True)
    assert not cb.Network([64, 32, 10], ["relu", "identity"], seed=0)._engine.keeps_gil(1)


# --------------------------------------------------------------------------
# (c) one network, two threads: every step is atomic
# --------------------------------------------------------------------------


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("form", ["engine-form", "converted"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd-momentum"])
def test_one_network_two_threads_steps_are_atomic(impl, form, optimizer):
    """Both threads call train_step on the same net with the same batch N times;
    the result equals 2N sequential steps on that batch (the order of atomic
    steps does not matter), and the losses returned are those of the 2N states."""
    Net = IMPLEMENTATIONS[impl]
    n = 150
    make_opt = (lambda: cb.Adam(lr=1e-3)) if optimizer == "adam" else (lambda: cb.SGD(lr=0.01, momentum=0.9))
    shared = Net([16, 48, 32, 4], ["tanh", "relu", "identity"], optimizer=make_opt(),
                 dtype="float32", seed=5)
    serial = Net([16, 48, 32, 4], ["tanh", "relu", "identity"], optimizer=make_opt(),
                 dtype="float32", seed=5)
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((32, 16)), rng.standard_normal((32, 4))
    if form == "engine-form":
        X, Y = X.astype(np.float32), Y.astype(np.float32)
    losses = [[], []]

    def worker(i):
        def run():
            for _ in range(n):
                losses[i].append(shared.train_step(X, Y))
        return run

    run_threads([worker(0), worker(1)])
    expected = [serial.train_step(X, Y) for _ in range(2 * n)]
    assert len(losses[0]) == len(losses[1]) == n
    assert sorted(losses[0] + losses[1]) == sorted(expected)
    assert_same_params(shared, serial)
    # The optimizer state is consistent too: the next step is the same.
    assert shared.train_step(X, Y) == serial.train_step(X, Y)
    assert_same_params(shared, serial)


# --------------------------------------------------------------------------
# (d) concurrent reads never corrupt
# --------------------------------------------------------------------------


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_concurrent_forward_equals_serial(impl):
    """forward from 4 threads at once on one net (batches of different sizes,
    so the compiled workspace is resized meanwhile) gives the serial outputs."""
    Net = IMPLEMENTATIONS[impl]
    net = Net([32, 64, 64, 8], ["relu", "tanh", "softmax"], loss="cross_entropy", seed=2)
    rng = np.random.default_rng(4)
    batches = [rng.standard_normal((m, 32)) for m in (1, 7, 64, 200, 13, 129, 3, 300)]
    expected = [net.forward(X) for X in batches]
    results = {i: [] for i in range(4)}

    def worker(i):
        def run():
            for rep in range(60):
                j = (i + rep) % len(batches)
                results[i].append((j, net.forward(batches[j])))
        return run

    run_threads([worker(i) for i in range(4)])
    for i in range(4):
        assert len(results[i]) == 60
        for j, out in results[i]:
            assert out.shape == expected[j].shape
            assert np.array_equal(out, expected[j]), f"thread {i}, batch {j}: output corrupted"


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_concurrent_mixed_reads_equal_serial(impl):
    """forward, loss, loss_and_gradients and get_params from 4 threads at once
    (no training) all return exactly what they return when called serially."""
    Net = IMPLEMENTATIONS[impl]
    net = Net([12, 40, 5], ["sigmoid", "identity"], loss="mse", dtype="float32", seed=8)
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((m, 12)), rng.standard_normal((m, 5))) for m in (5, 400, 17, 256, 600)]
    want_forward = [net.forward(X) for X, _ in batches]
    want_loss = [net.loss(X, Y) for X, Y in batches]
    want_grads = [net.loss_and_gradients(X, Y) for X, Y in batches]
    want_params = flat_params(net)
    failures = []

    def worker(i):
        def run():
            for rep in range(80):
                j = (i + rep) % len(batches)
                X, Y = batches[j]
                kind = (i + rep) % 4
                if kind == 0:
                    ok = np.array_equal(net.forward(X), want_forward[j])
                elif kind == 1:
                    ok = net.loss(X, Y) == want_loss[j]
                elif kind == 2:
                    loss, grads = net.loss_and_gradients(X, Y)
                    ok = loss == want_grads[j][0] and all(
                        np.array_equal(a, c) and np.array_equal(b, d)
                        for (a, b), (c, d) in zip(grads, want_grads[j][1]))
                else:
                    ok = all(np.array_equal(p, q) for p, q in zip(flat_params(net), want_params))
                if not ok:
                    failures.append((i, rep, kind, j))
        return run

    run_threads([worker(i) for i in range(4)])
    assert failures == []


# --------------------------------------------------------------------------
# (e) the network's lock
# --------------------------------------------------------------------------


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_the_network_lock_is_reentrant_and_owned(impl):
    """Both implementations' locks behave as threading.RLock: taken again by
    the thread holding it (a method called from a callback under the lock),
    released only by it, refused or timed out for another thread."""
    net = IMPLEMENTATIONS[impl]([2, 2, 1], ["tanh", "identity"], seed=0)
    lock = net._lock
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    with lock:
        with lock:
            net.train_step(X, Y)     # the fast path takes it a third time
            assert net.predict(X).shape == (4, 1)
            assert np.isfinite(net.loss(X, Y))
        seen = {}

        def other():
            seen["blocking=False"] = lock.acquire(blocking=False)
            start = time.perf_counter()
            seen["timeout=0.05"] = lock.acquire(timeout=0.05)
            seen["waited"] = time.perf_counter() - start
            with pytest.raises(RuntimeError):
                lock.release()

        run_threads([other])
        assert seen["blocking=False"] is False and seen["timeout=0.05"] is False
        assert seen["waited"] >= 0.04
    with pytest.raises(RuntimeError):
        lock.release()
    # Free again: another thread takes it at once.
    taken = []
    run_threads([lambda: (taken.append(lock.acquire(blocking=False)), lock.release())])
    assert taken == [True]
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-2)
    with pytest.raises(ValueError):
        lock.acquire(timeout=float("nan"))
    with pytest.raises(OverflowError):
        lock.acquire(timeout=float("inf"))
    with pytest.raises(TypeError):
        lock.acquire(timeout="1")
    assert_free_for_another_thread(lock)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_the_network_lock_excludes_under_contention(impl):
    """Four threads take the network's lock every way, many times over: by
    ``with``, ``acquire()``, with a timeout, without blocking, and through
    the network's own calls, which take it inside (or alone). A counter
    read and written back inside, with a GIL switch between, loses no
    update; every step is taken; the lock ends free. (The compiled lock's
    uncontended take skips its mutex, which waiters take for the owner.)"""
    net = IMPLEMENTATIONS[impl]([2, 2, 1], ["tanh", "identity"], seed=0,
                                optimizer=cb.SGD(lr=1e-3, momentum=0.9))
    twin = IMPLEMENTATIONS[impl]([2, 2, 1], ["tanh", "identity"], seed=0,
                                 optimizer=cb.SGD(lr=1e-3, momentum=0.9))
    lock = net._lock
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    counter, held, alone = [0], [0] * 4, [0] * 4

    def worker(k):
        def run():
            for i in range(200):
                way = (i + k) % 5
                if way == 4:
                    net.train_step(X, Y)       # the network takes it alone
                    alone[k] += 1
                    continue
                if way == 0:
                    got = lock.acquire()
                elif way == 1:
                    got = lock.acquire(timeout=0.5)
                elif way == 2:
                    got = lock.acquire(blocking=False)
                else:
                    got = lock.__enter__()
                if not got:
                    continue
                try:
                    value = counter[0]
                    time.sleep(0)              # another thread runs here if it can
                    net.train_step(X, Y)       # taken again, inside
                    counter[0] = value + 1
                    held[k] += 1
                finally:
                    lock.release()
        return run

    run_threads([worker(k) for k in range(4)])
    assert counter[0] == sum(held) > 0
    for _ in range(sum(held) + sum(alone)):
        twin.train_step(X, Y)
    for ours, theirs in zip(sum(net.get_params(), []), sum(twin.get_params(), [])):
        np.testing.assert_array_equal(ours, theirs)
    assert_free_for_another_thread(lock)


def assert_free_for_another_thread(lock):
    """Nobody holds ``lock``: another thread takes it at once (this thread
    could take it again even while holding it)."""
    taken = []
    run_threads([lambda: (taken.append(lock.acquire(blocking=False)), lock.release())])
    assert taken == [True]


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_a_condition_waits_on_the_network_lock(impl):
    """threading.Condition(net._lock) works as on an RLock: wait gives the
    lock up whole (also when taken twice) and takes it back."""
    net = IMPLEMENTATIONS[impl]([2, 2, 1], ["tanh", "identity"], seed=0)
    condition = threading.Condition(net._lock)
    X = np.ones((4, 2))
    ready, woken = threading.Event(), []

    def waiter():
        with condition:
            with condition:
                ready.set()
                woken.append(condition.wait(10))
                net.predict(X)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert ready.wait(10)
    with condition:   # taken only once the waiter's wait has given it up
        condition.notify()
    thread.join(10)
    assert woken == [True]
    assert_free_for_another_thread(net._lock)


def test_a_fast_call_that_raises_gives_the_lock_back():
    """A ready batch whose values the engine refuses raises from inside the
    locked call: the lock is given back."""
    net = cb.Network([2, 2, 1], ["tanh", "identity"], seed=0)
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    X[1, 1] = np.nan
    for call in (lambda: net.train_step(X, Y), lambda: net.predict(X), lambda: net.loss(X, Y)):
        with pytest.raises(ValueError, match="NaN"):
            call()
        assert_free_for_another_thread(net._lock)


class CountedLock:
    """A threading.RLock that counts the ``with`` statements taking it."""

    def __init__(self):
        self.lock, self.entered = threading.RLock(), 0

    def __enter__(self):
        self.entered += 1
        return self.lock.__enter__()

    def __exit__(self, *exc_info):
        return self.lock.__exit__(*exc_info)

    def acquire(self, *args, **kwargs):
        return self.lock.acquire(*args, **kwargs)

    def release(self):
        self.lock.release()


def test_a_network_given_another_lock_takes_it_by_its_protocol():
    """A network whose lock is not its engine's NetworkLock (bench/thresholds.py
    gives a network another build's engine) has its engine take it by
    ``with``, once per call: the same results, and the lock free afterwards."""
    class CountedLockNetwork(cb.Network):
        _new_lock = staticmethod(CountedLock)

    nets = [cb.Network([3, 4, 2], ["tanh", "identity"], seed=1),
            CountedLockNetwork([3, 4, 2], ["tanh", "identity"], seed=1)]
    X, Y = np.linspace(-1, 1, 15).reshape(5, 3), np.ones((5, 2))   # the engine's form
    results = [[net.train_step(X, Y), net.predict(X).tobytes(), net.loss(X, Y)] for net in nets]
    assert results[0] == results[1]
    assert nets[1]._lock.entered == 3
    assert_free_for_another_thread(nets[1]._lock)


def test_a_compiled_call_waiting_for_the_network_can_be_interrupted():
    """The main thread waits for a network another thread holds; a Ctrl-C
    (here _thread.interrupt_main) raises KeyboardInterrupt in it within a
    slice of the wait, and the network is not left held by it: once the
    other thread lets go, train_step runs."""
    net = cb.Network([2, 2, 1], ["tanh", "identity"], seed=0)
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    held, finish = threading.Event(), threading.Event()

    def holder():
        with net._lock:
            held.set()
            finish.wait(10)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(10)
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.train_step(X, Y)
        assert time.perf_counter() - start < 5
    finally:
        timer.cancel()
        finish.set()
        thread.join(10)
    assert_free_for_another_thread(net._lock)   # not left taken by the interrupted wait
    assert np.isfinite(net.train_step(X, Y))


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_ctrl_c_while_a_condition_takes_the_lock_back(impl):
    """A Condition's wait, notified, waits to take the network's lock back
    from the thread that notified it; a Ctrl-C then (here
    _thread.interrupt_main) raises KeyboardInterrupt from the wait once the
    lock is taken back, so the waiter's `with` gives back a lock it holds
    (the compiled lock had raised at once, leaving the waiter as owner of a
    lock another thread held). The interrupt is sent while the other thread
    holds the lock the waiter needs to leave its wait: it always lands there."""
    net = IMPLEMENTATIONS[impl]([2, 2, 1], ["tanh", "identity"], seed=0)
    condition = threading.Condition(net._lock)
    order = []

    def holder():
        with condition:   # free once the waiter waits
            condition.notify()
            time.sleep(0.3)   # the waiter, notified, now waits for the lock
            _thread.interrupt_main()
            time.sleep(0.2)
            order.append("holder lets go")

    thread = threading.Thread(target=holder, daemon=True)
    with pytest.raises(KeyboardInterrupt):
        with condition:
            thread.start()
            condition.wait(10)
    order.append("waiter interrupted")
    thread.join(10)
    assert order == ["holder lets go", "waiter interrupted"]
    assert_free_for_another_thread(net._lock)


def test_the_network_lock_is_never_pickled():
    net = cb.Network([2, 2, 1], ["tanh", "identity"], seed=0)
    with pytest.raises(TypeError, match="lock"):
        pickle.dumps(net._lock)
    copy_ = pickle.loads(pickle.dumps(net))
    assert copy_._lock is not net._lock and type(copy_._lock) is type(net._lock)


FORK_CHILD = """
import os, sys
import numpy as np
import cbackprop as cb
X = np.random.default_rng(0).standard_normal((256, 512))

def step():   # a product large enough for a team of threads
    return cb.Network([512, 512, 512], ["relu", "identity"], seed=0).train_step(X, X)

cb.set_num_threads(2)
if sys.argv[1] == "small":   # products too small for a team: one thread ran
    cb.Network([2, 3, 1], ["relu", "identity"], seed=0).train_step(X[:4, :2], X[:4, :1])
parent = step() if sys.argv[1] == "trained" else None
pid = os.fork()
if pid == 0:
    child = step()
    try:
        cb.set_num_threads(2)
        refused = "no"
    except RuntimeError as exc:
        refused = "fork" in str(exc)
    print(parent is None or child == parent, cb.get_num_threads(), refused, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print(cb.get_num_threads())
"""


OPENMP = cb._backend.engine.have_openmp()


@pytest.mark.skipif(not hasattr(os, "fork") or not OPENMP, reason="fork(), OpenMP")
@pytest.mark.parametrize("parent", ["trained", "idle", "small"])
def test_a_process_forked_after_threaded_passes_runs_on_one_thread(parent):
    """GNU libgomp's thread pool does not survive fork(): a child forked after
    a team of threads ran a pass in its parent hung in its first step. It
    now steps on one thread (the same result: no result depends on the
    thread count) and refuses more with RuntimeError; a child of a parent
    that never ran a team (no pass, or passes too small for one) keeps its
    threads. In a subprocess, under a timeout."""
    out = subprocess.run([sys.executable, "-c", FORK_CHILD, parent], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split("\n")
    if parent == "trained":
        assert out[0] == "True 1 True" and out[1] == "2", out
    else:
        assert out[0] == "True 2 no" and out[1] == "2", out


@pytest.mark.skipif(not OPENMP, reason="OpenMP")
def test_omp_num_threads_beyond_the_cap_is_capped():
    """OMP_NUM_THREADS=3000 set a default set_num_threads refuses."""
    env = {**os.environ, "OMP_NUM_THREADS": "3000"}
    out = subprocess.run([sys.executable, "-c", "import cbackprop as cb; print(cb.get_num_threads())"],
                         capture_output=True, text=True, timeout=120, check=True, env=env).stdout
    assert int(out) == cb._backend.MAX_THREADS


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_save_writes_parameters_and_optimizer_of_one_moment(impl, tmp_path):
    """save read the parameters under the network's lock but the optimizer
    after it: an assignment from another thread in between paired them."""
    Net = IMPLEMENTATIONS[impl]
    net = Net([2, 1], ["identity"], optimizer=cb.SGD(lr=0.1), seed=0)
    real_get_params = net.get_params
    assigner = threading.Thread(target=lambda: setattr(net, "optimizer", cb.Adam(lr=0.5)))

    def get_params_while_another_thread_assigns():
        params = real_get_params()
        assigner.start()
        assigner.join(timeout=0.3)   # blocks on the lock save holds
        return params

    net.get_params = get_params_while_another_thread_assigns
    net.save(tmp_path / "net.npz")
    assigner.join()
    assert Net.load(tmp_path / "net.npz").optimizer == cb.SGD(lr=0.1)
    assert net.optimizer == cb.Adam(lr=0.5)


def test_a_loss_setting_changed_while_the_engine_reads_them_applies_on_the_next_call(monkeypatch):
    """As for the optimizer: the loss's version is read before its settings,
    so a change landing while they are read (here: as ``reduction`` is
    read, after ``scale``) is read again on the next call."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = cb.Network([3, 2], ["identity"], loss=cb.MSE(scale=1.0), seed=0)
    changed = []

    def reduction_while_another_thread_changes_scale(self):
        value = self.__dict__["reduction"]
        if not changed:
            changed.append(1)
            self.scale = 2.0
        return value

    monkeypatch.setattr(cb.MSE, "reduction", property(reduction_while_another_thread_changes_scale),
                        raising=False)
    net.loss_function.scale = 1.0   # a new version: the next call reads the settings
    first = net.loss(X, Y)        # read with scale 1, changed to 2 as it was read
    second = net.loss(X, Y)       # must use scale 2
    assert changed and second == pytest.approx(2 * first, rel=1e-14)


def test_a_setting_changed_while_the_engine_reads_them_applies_on_the_next_step(monkeypatch):
    """The engine caches the optimizer's settings by its _version, and read
    that version after the settings: a change another thread made while
    _kernel_settings ran (Python, so a thread switch may land in it) was
    cached as seen, and never applied."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = cb.Network([3, 2], ["identity"], optimizer=cb.SGD(lr=0.1, momentum=0.5), seed=0)
    reference = cb.reference.Network([3, 2], ["identity"], optimizer=cb.SGD(lr=0.1, momentum=0.5))
    reference.set_params(*net.get_params())
    original, changed = cb.SGD._kernel_settings, []

    def read_while_another_thread_changes_momentum(self):
        settings = original(self)
        if not changed:
            changed.append(1)
            self.momentum = 0.9
        return settings

    monkeypatch.setattr(cb.SGD, "_kernel_settings", read_while_another_thread_changes_momentum)
    net.train_step(X, Y)          # read with momentum 0.5, changed to 0.9 as it was read
    net.train_step(X, Y)          # must step with 0.9
    reference.train_step(X, Y)
    reference.optimizer.momentum = 0.9
    reference.train_step(X, Y)
    for got, want in zip(net.get_params(), reference.get_params()):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
