"""Ctrl-C held back while a network's state is written, so an update is
never left half done.

A ``KeyboardInterrupt`` lands between any two Python bytecodes. Code that
writes several arrays that must change together (the reference Network's
parameters and moments after a step, ``set_params``) runs inside
:class:`sigint_deferred`: a SIGINT that arrives meanwhile is delivered again,
to whatever handler was installed before, once the block has finished.
"""
import signal
import threading


class sigint_deferred:
    """Context manager: SIGINT arriving inside the block is re-raised after it.

    Only the main thread receives signals, so elsewhere, and when SIGINT's
    handler is not a Python callable (ignored, or the default action), it
    changes nothing.
    """

    __slots__ = ("_previous", "_pending")

    def __enter__(self):
        self._previous = None
        self._pending = False
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self._pending = True

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            if self._pending:
                # Delivered to the restored handler at the next bytecode.
                signal.raise_signal(signal.SIGINT)
        return False
