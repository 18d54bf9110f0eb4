"""The progress display of fit(verbose=True), driven by a fake clock."""
import io

import pytest

from cbackprop._progress import ProgressDisplay, format_duration, format_figures, is_live


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds, text", [(0.04, "0.0s"), (3.25, "3.2s"), (9.96, "10.0s"),
                                           (42.4, "42s"), (185, "3m05s"), (3725, "1h02m")])
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_figures():
    text = format_figures({"loss": 0.5, "val_loss": 1.25e-7, "val_accuracy": 0.96875})
    assert text.split() == ["loss", "0.5", "val_loss", "1.25e-07", "val_accuracy", "0.9688"]


def test_only_terminals_and_notebooks_are_live():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class KernelStream(io.StringIO):   # what Jupyter's stdout looks like by its module
        pass

    KernelStream.__module__ = "ipykernel.iostream"
    closed = io.StringIO()
    closed.close()
    assert is_live(Terminal()) and is_live(KernelStream())
    assert not is_live(io.StringIO()) and not is_live(closed) and not is_live(object())


def run_epoch(display, clock, n_batches, seconds_per_batch):
    """Drive the display as fit's loop does: a redraw once next_draw is reached."""
    for batch in range(1, n_batches + 1):
        clock.now += seconds_per_batch
        if clock() >= display.next_draw:
            display.draw_batch(batch, 1.0 / batch)


def test_live_line_is_throttled_and_replaced_by_the_epoch_line():
    stream, clock = io.StringIO(), FakeClock()
    display = ProgressDisplay(epochs=3, n_batches=100, stream=stream, clock=clock, live=True)
    display.start_epoch(0)
    run_epoch(display, clock, 100, 0.01)     # 1 s in all: about 10 redraws, not 100
    display.end_epoch({"loss": 0.25})
    *live, final = stream.getvalue().split("\r")
    assert 9 <= len(live) - 2 <= 11           # live[0] is "", live[1] the epoch start
    assert live[1].startswith("epoch 1/3 [>                   ]   0/100  0.0s")
    assert live[6].startswith("epoch 1/3 [==========>         ]  50/100  loss 0.02  0.5s, ~0.5s left")
    assert final.rstrip() + "\n" == "epoch 1/3: loss 0.25       [1.0s, ~2.0s left]\n"
    assert len(final) - 1 >= len(live[-1].rstrip())   # covers the live line


def test_a_shorter_line_is_padded_over_a_longer_one():
    stream, clock = io.StringIO(), FakeClock()
    display = ProgressDisplay(epochs=1, n_batches=10, stream=stream, clock=clock, live=True)
    display.start_epoch(0)
    display.draw_batch(5, 123456.789)
    display.note("stop")
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("stop ") and last.endswith("\n")
    assert len(last) - 1 == len(stream.getvalue().split("\r")[-2])


def test_not_live_shows_final_lines_only():
    stream, clock = io.StringIO(), FakeClock()
    display = ProgressDisplay(epochs=2, n_batches=10, stream=stream, clock=clock, live=False)
    for epoch in range(2):
        display.start_epoch(epoch)
        run_epoch(display, clock, 10, 0.5)
        display.end_epoch({"loss": 1.0 / (epoch + 1), "val_loss": 2.0})
    display.close()
    assert stream.getvalue().splitlines() == [
        "epoch 1/2: loss 1          val_loss 2          [5.0s, ~5.0s left]",
        "epoch 2/2: loss 0.5        val_loss 2          [5.0s, 10s in all]",
    ]


def test_close_ends_an_open_live_line():
    stream, clock = io.StringIO(), FakeClock()
    display = ProgressDisplay(epochs=1, n_batches=4, stream=stream, clock=clock, live=True)
    display.start_epoch(0)
    display.close()
    assert stream.getvalue().endswith("\n")
    display.close()
    assert stream.getvalue().count("\n") == 1


@pytest.mark.parametrize("Net", ["compiled", "reference"])
def test_verbose_fit_without_a_stdout_trains_silently(Net, monkeypatch):
    """Under pythonw (and some services) sys.stdout is None: fit(verbose=True)
    writes nothing, as print does, and trains as without verbose. It raised
    AttributeError after the first epoch, its steps taken and no history returned."""
    import numpy as np

    import cbackprop as cb
    Net = {"compiled": cb.Network, "reference": cb.reference.Network}[Net]
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 1))
    quiet, silent = (Net([3, 4, 1], ["tanh", "identity"], seed=2) for _ in range(2))
    want = quiet.fit(X, Y, epochs=3, batch_size=4, seed=1)
    monkeypatch.setattr("sys.stdout", None)
    got = silent.fit(X, Y, epochs=3, batch_size=4, seed=1, verbose=True, validation_data=(X, Y),
                     patience=1)
    assert got["loss"] == want["loss"]
    for a, b in zip(*(net.get_params()[0] for net in (silent, quiet))):
        np.testing.assert_array_equal(a, b)


def test_verbose_fit_writes_to_a_stdout_with_no_flush(Net, monkeypatch):
    """A stdout with only ``write`` (which is all print needs) takes fit's
    lines: it raised AttributeError after the first epoch, its steps taken."""
    import numpy as np


    class WriteOnly:
        def __init__(self):
            self.text = []

        def write(self, text):
            self.text.append(text)
            return len(text)

    X, Y = np.ones((8, 3)), np.zeros((8, 1))
    stream = WriteOnly()
    monkeypatch.setattr("sys.stdout", stream)
    history = Net([3, 1], ["identity"], seed=0).fit(X, Y, epochs=2, batch_size=4, verbose=True)
    assert len(history["loss"]) == 2
    assert "".join(stream.text).count("epoch") == 2


def test_the_live_line_after_a_short_last_batch_shows_the_epochs_loss(Net, monkeypatch):
    """The running loss on the live line is the mean over the rows seen so
    far: after the last batch (2 of 10 rows, batches of 4) it is the epoch's
    loss, not the sum over as many rows as full batches would hold."""
    import numpy as np

    import cbackprop as cb
    import cbackprop._training as training
    stream = io.StringIO()

    class EveryStep(ProgressDisplay):
        def __init__(self, epochs, n_batches):
            super().__init__(epochs, n_batches, stream=stream, live=True, interval=0.0)

    monkeypatch.setattr(training, "ProgressDisplay", EveryStep)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((10, 2)), rng.standard_normal((10, 1))
    net = Net([2, 1], ["identity"], optimizer=cb.SGD(lr=0.0), seed=0)
    history = net.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=True)
    last = [line for line in stream.getvalue().split("\r") if " 3/3  loss " in line]
    assert last, stream.getvalue()
    shown = float(last[-1].split(" 3/3  loss ")[1].split()[0])
    assert shown == pytest.approx(history["loss"][0], rel=1e-4)
