# One call at a time per network: the compiled Network's lock.
#
# A reentrant lock that behaves as threading.RLock for Python code (`with
# net._lock:`, acquire, release, threading.Condition's hooks), and that the
# engine takes and gives at C speed. A `with` statement on a
# threading.RLock cost more than a small network's whole engine call (on
# the Zen 4, a [2, 2, 1] train_step: the engine call 0.36-0.39 µs, the
# `with` 0.29), so the Engine's network calls (Engine._network_call) take
# this lock themselves, in C, where no Python code runs
# between taking it and the try that gives it back (a Ctrl-C cannot leave
# it taken).
#
# The owner, depth and count of waiters are read and written with the GIL
# held, and they alone decide an uncontended take: no atomic operation and
# no clock read (PyThread_acquire_lock_timed reads the monotonic clock even
# for a try, 3-4 % of a [2, 2, 1] train_step on the Zen 4). A thread that
# finds the lock held waits on the mutex without the GIL: the first to wait
# takes the mutex on the owner's behalf (the owner then holds it), and the
# owner's last give releases it, handing the lock to a waiter, which holds
# the mutex in turn. While waiters remain, a take waits with them.
cdef extern from "pythread.h":
    ctypedef void* PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock)
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, long long microseconds,
                                             int intr_flag) nogil
    void PyThread_release_lock(PyThread_type_lock) nogil
    unsigned long PyThread_get_thread_ident()

from cpython.exc cimport PyErr_CheckSignals
import numbers
from _thread import TIMEOUT_MAX as _TIMEOUT_MAX

cdef enum NetworkCall:
    # The calls Engine._network_call makes with a network's lock held.
    NETWORK_TRAIN_STEP
    NETWORK_FORWARD
    NETWORK_LOSS

cdef enum:
    # A waiting thread returns to Python this often to run signal handlers
    # (a Ctrl-C in the main thread while another holds the network).
    LOCK_WAIT_SLICE_US = 20000


cdef class NetworkLock:
    """A reentrant lock, as ``threading.RLock``: ``with lock:``,
    ``acquire(blocking=True, timeout=-1)``, ``release()``, and the hooks
    ``threading.Condition`` uses. The compiled engine takes it in C."""
    cdef PyThread_type_lock mutex
    cdef unsigned long owner
    cdef Py_ssize_t depth
    cdef Py_ssize_t waiters     # threads in take() that found the lock held
    cdef bint owner_has_mutex   # give releases the mutex to a waiter
    cdef object __weakref__

    def __cinit__(self):
        self.mutex = PyThread_allocate_lock()
        if self.mutex == NULL:
            raise MemoryError("cannot allocate a lock")
        self.depth = 0
        self.waiters = 0
        self.owner_has_mutex = False

    def __dealloc__(self):
        if self.mutex != NULL:
            PyThread_free_lock(self.mutex)

    cdef inline bint owned(self):
        return self.depth > 0 and self.owner == PyThread_get_thread_ident()

    cdef int take(self, double timeout=-1, bint interruptible=True) except -1:
        """Take the lock, waiting at most ``timeout`` seconds when it is >= 0
        (measured on the monotonic clock); 1 if taken, 0 if the time ran
        out. Signal handlers run while it waits (``interruptible``), and
        their exceptions propagate."""
        if self.owned():
            self.depth += 1
            return 1
        if self.depth == 0 and self.waiters == 0:
            self.owner = PyThread_get_thread_ident()
            self.depth = 1
            return 1
        return self.wait_to_take(timeout, interruptible)

    cdef int wait_to_take(self, double timeout, bint interruptible) except -1:
        """take() of a lock another thread holds, or that its last owner is
        handing to a waiter."""
        cdef PyLockStatus status
        cdef long long slice_us
        cdef double deadline = 0, left_us
        if self.depth > 0 and not self.owner_has_mutex:
            # Taken uncontended: the mutex is free (a waiter would have taken
            # it for the owner, a hand-over leaves the depth at 0).
            self.owner_has_mutex = PyThread_acquire_lock_timed(self.mutex, 0, 0) == PY_LOCK_ACQUIRED
        self.waiters += 1
        try:
            status = PyThread_acquire_lock_timed(self.mutex, 0, 0)
            if status != PY_LOCK_ACQUIRED and timeout > 0:
                deadline = seconds_now() + timeout
            while status != PY_LOCK_ACQUIRED:
                slice_us = LOCK_WAIT_SLICE_US
                if timeout >= 0:
                    left_us = (deadline - seconds_now()) * 1e6
                    if left_us <= 0:
                        return 0
                    if left_us < LOCK_WAIT_SLICE_US:
                        slice_us = max(<long long>1, <long long>left_us)
                with nogil:
                    status = PyThread_acquire_lock_timed(self.mutex, slice_us, 0)
                if status != PY_LOCK_ACQUIRED and interruptible and PyErr_CheckSignals() < 0:
                    return -1
        finally:
            self.waiters -= 1
        self.owner = PyThread_get_thread_ident()
        self.depth = 1
        self.owner_has_mutex = True
        return 1

    cdef void give(self) noexcept:
        """Give back one level of a lock this thread holds."""
        self.depth -= 1
        if self.depth == 0:
            self.owner = 0
            if self.owner_has_mutex:
                self.owner_has_mutex = False
                PyThread_release_lock(self.mutex)

    def acquire(self, blocking=True, timeout=-1):
        """As ``threading.RLock.acquire``: True when taken."""
        if not isinstance(timeout, numbers.Real):
            raise TypeError(f"timeout must be a number, got {type(timeout).__name__}")
        timeout = float(timeout)
        if timeout != timeout:
            raise ValueError("Invalid value NaN (not a number)")
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return self.take(0) == 1
        if timeout != -1 and timeout < 0:
            raise ValueError("timeout value must be a non-negative number")
        if timeout > _TIMEOUT_MAX:
            raise OverflowError("timeout value is too large")
        return self.take(timeout) == 1

    def release(self):
        """As ``threading.RLock.release``."""
        if not self.owned():
            raise RuntimeError("cannot release un-acquired lock")
        self.give()

    def __enter__(self):
        return self.take() == 1

    def __exit__(self, *exc_info):
        self.release()

    # threading.Condition's hooks, as threading.RLock has them.
    def _is_owned(self):
        return self.owned()

    def _recursion_count(self):
        return self.depth if self.owned() else 0

    def _release_save(self):
        if not self.owned():
            raise RuntimeError("cannot release un-acquired lock")
        state = (self.depth, self.owner)
        self.depth = 1
        self.give()
        return state

    def _acquire_restore(self, state):
        # Taken back even when a signal handler raises while this waits (a
        # Ctrl-C during Condition.wait): the exception comes once the lock is
        # held, as the waiter's `with` expects to give it back (RLock's
        # waits here cannot be interrupted at all).
        try:
            self.take()
        except BaseException:
            self.take(-1, False)
            raise
        finally:
            self.depth, self.owner = state

    def __reduce__(self):
        raise TypeError("cannot pickle a network's lock")
