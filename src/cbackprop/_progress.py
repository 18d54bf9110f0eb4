"""The progress display of ``fit(verbose=True)``.

While an epoch runs, one line is rewritten in place with ``\\r`` (a terminal
and Jupyter's output area both honour it); when the epoch ends it is replaced
by a final line that stays. Output that is neither a terminal nor a notebook
(a file, a pipe, a CI log) gets the final lines only, so logs stay readable.

Redraws are throttled by time: per batch, the training loop only compares
one clock read with ``next_draw``, so the display never slows training
measurably.
"""
import sys
import time

BAR_WIDTH = 20


def is_live(stream):
    """Whether ``stream`` shows ``\\r`` rewrites: a terminal or a Jupyter kernel's stdout."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def format_duration(seconds):
    """``0.4s``, ``12s``, ``3m05s``, ``1h02m``: short and of steady width."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_figures(figures):
    """``loss 0.0123  val_loss 0.0145  val_accuracy 0.9650`` from an epoch's figures."""
    parts = []
    for name, value in figures.items():
        text = f"{value:.4f}" if name.endswith("accuracy") else f"{value:<9.6g}"
        parts.append(f"{name} {text}")
    return "  ".join(parts)


class ProgressDisplay:
    """Epoch and batch progress of one ``fit`` call, written to ``stream``.

    ``stream`` defaults to ``sys.stdout`` at construction, and where that is
    None (pythonw, some services) nothing is written, as ``print`` does; ``clock`` (also
    read by the training loop) and ``live`` can be replaced in tests.
    ``interval`` is the least time between two redraws of the live line, in
    seconds.
    """

    def __init__(self, epochs, n_batches, stream=None, clock=time.monotonic, live=None,
                 interval=0.1):
        self._stream = sys.stdout if stream is None else stream
        self.clock = clock
        self._live = is_live(self._stream) if live is None else live
        self._interval = interval
        self._epochs = epochs
        self._n_batches = n_batches
        self._epoch = 0
        self._fit_start = self._epoch_start = self.next_draw = clock()
        self._drawn_width = 0   # characters of the live line on screen (0: none)

    def start_epoch(self, epoch):
        """Epoch ``epoch`` (0-based) begins."""
        self._epoch = epoch
        self._epoch_start = now = self.clock()
        self.next_draw = now + self._interval
        if self._live:
            self._draw(self._live_line(0, None, now))

    def draw_batch(self, batches_done, mean_loss):
        """Redraw the live line; the caller calls it once ``clock()`` has
        reached ``next_draw`` (a test in the training loop, cheaper than a call)."""
        now = self.clock()
        self.next_draw = now + self._interval
        if self._live:
            self._draw(self._live_line(batches_done, mean_loss, now))

    def end_epoch(self, figures):
        """Replace the live line by the epoch's final line: its figures and timing."""
        now = self.clock()
        done = self._epoch + 1
        timing = format_duration(now - self._epoch_start)
        if done < self._epochs:
            time_left = (now - self._fit_start) / done * (self._epochs - done)
            timing += f", ~{format_duration(time_left)} left"
        else:
            timing += f", {format_duration(now - self._fit_start)} in all"
        self._finish_line(f"{self._epoch_prefix()}: {format_figures(figures)}  [{timing}]")

    def note(self, text):
        """A line of its own (early stopping, interruption), below any live line."""
        self._finish_line(text)

    def close(self):
        """End a live line left open (an exception in the middle of an epoch)."""
        if self._drawn_width:
            self._write("\n")
            self._drawn_width = 0

    # -- drawing -----------------------------------------------------------------
    def _epoch_prefix(self):
        width = len(str(self._epochs))
        return f"epoch {self._epoch + 1:>{width}}/{self._epochs}"

    def _live_line(self, batches_done, mean_loss, now):
        n = self._n_batches
        filled = BAR_WIDTH * batches_done // n
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
        elapsed = now - self._epoch_start
        line = f"{self._epoch_prefix()} [{bar}] {batches_done:>{len(str(n))}}/{n}"
        if mean_loss is not None:
            line += f"  loss {mean_loss:.6g}"
        line += f"  {format_duration(elapsed)}"
        if batches_done:
            line += f", ~{format_duration(elapsed / batches_done * (n - batches_done))} left"
        return line

    def _draw(self, line):
        # Pad with blanks so a shorter line fully covers the previous one.
        self._write("\r" + line.ljust(self._drawn_width))
        self._drawn_width = len(line)

    def _finish_line(self, line):
        if self._drawn_width:
            line = "\r" + line.ljust(self._drawn_width)
            self._drawn_width = 0
        self._write(line + "\n")

    def _write(self, text):
        if self._stream is None:
            return
        self._stream.write(text)
        flush = getattr(self._stream, "flush", None)   # print asks only for write
        if flush is not None:
            flush()
