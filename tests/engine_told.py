"""The running engine told how the CPU runs 512-bit instructions, for a test
that exercises both ways on any CPU: whole vectors (an Intel Xeon), or two
halves (AMD Zen 4: half-vector ten-column tiles, square roots by the
instruction but for a third of float64's in Adam and RMSprop). What the
import read from the CPU is put back afterwards."""
import contextlib

from cbackprop._backend import engine


@contextlib.contextmanager
def told_halves_512(halves_512):
    """The engine told ``halves_512`` (True: the CPU halves 512-bit
    instructions) inside the ``with``; the import's reading put back after,
    whatever happens inside."""
    before = engine.tile_table()["halves_512"]
    engine.set_halves_512(halves_512)
    try:
        yield halves_512
    finally:
        engine.set_halves_512(before)
