# One call at a time per network: the compiled Network's lock.
#
# A reentrant lock with threading.RLock's behaviour for Python code (`with
# net._lock:`, acquire, release), that the engine's own methods take and
# give at C speed. A `with` statement on a threading.RLock costs more than
# a small network's whole engine call (on the Zen 4 a [2, 2, 1] train_step
# was 0.72 µs, 0.36 of it the engine call and 0.29 the `with`), so the
# methods that hand a ready batch to the engine (train_step_if_ready, ...)
# take this lock themselves, in C, where no Python code runs between taking
# it and the try that gives it back (a Ctrl-C cannot leave it taken).
#
# The owner and depth are read and written with the GIL held; the mutex is
# held while any thread owns the lock, so a thread that finds it taken
# waits on the mutex without the GIL.
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
    ``acquire(blocking=True, timeout=-1)``, ``release()``. The compiled
    engine's methods take it in C."""
    cdef PyThread_type_lock mutex
    cdef unsigned long owner
    cdef Py_ssize_t depth

    def __cinit__(self):
        self.mutex = PyThread_allocate_lock()
        if self.mutex == NULL:
            raise MemoryError("cannot allocate a lock")
        self.depth = 0

    def __dealloc__(self):
        if self.mutex != NULL:
            PyThread_free_lock(self.mutex)

    cdef int take(self, double timeout=-1) except -1:
        """Take the lock (waiting at most ``timeout`` seconds when >= 0); 1 if
        taken, 0 if the time ran out. Signal handlers run while it waits,
        and their exceptions propagate."""
        cdef unsigned long me = PyThread_get_thread_ident()
        cdef PyLockStatus status
        cdef long long slice_us
        cdef double waited = 0, left_us
        if self.depth > 0 and self.owner == me:
            self.depth += 1
            return 1
        status = PyThread_acquire_lock_timed(self.mutex, 0, 0)
        while status != PY_LOCK_ACQUIRED:
            if 0 <= timeout <= waited:
                return 0
            slice_us = LOCK_WAIT_SLICE_US
            left_us = (timeout - waited) * 1e6
            if timeout >= 0 and left_us < LOCK_WAIT_SLICE_US:   # (an infinite one is not cast)
                slice_us = max(<long long>1, <long long>left_us)
            with nogil:
                status = PyThread_acquire_lock_timed(self.mutex, slice_us, 0)
            waited += slice_us * 1e-6
            if status != PY_LOCK_ACQUIRED and PyErr_CheckSignals() < 0:
                return -1
        self.owner = me
        self.depth = 1
        return 1

    cdef void give(self) noexcept:
        """Give back one level of a lock this thread holds."""
        self.depth -= 1
        if self.depth == 0:
            self.owner = 0
            PyThread_release_lock(self.mutex)

    def acquire(self, blocking=True, timeout=-1):
        """As ``threading.RLock.acquire``: True when taken."""
        timeout = float(timeout)
        if timeout != timeout:
            raise ValueError("Invalid value NaN (not a number)")
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return self.take(0) == 1
        if timeout != -1 and timeout < 0:
            raise ValueError("timeout value must be a non-negative number")
        return self.take(timeout) == 1

    def release(self):
        """As ``threading.RLock.release``."""
        if self.depth == 0 or self.owner != PyThread_get_thread_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self.give()

    def __enter__(self):
        return self.take() == 1

    def __exit__(self, *exc_info):
        self.release()

    def __reduce__(self):
        raise TypeError("cannot pickle a network's lock")
