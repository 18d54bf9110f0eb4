"""The compiled passes never read past (or before) the user's arrays: each
operand ends, then starts, at an inaccessible page (tests/guarded_reads.py,
run in a subprocess, where such a read is a segmentation fault). A tile that
read a few rows or columns too many passed every value test, since the lanes
it filled were never stored (a mutation review: the edge tiles' row clamps
and the ten-column packing's last column)."""
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("guarded_reads.py")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="mprotect'd pages through ctypes and libc: Linux")


@pytest.mark.parametrize("area", ["gemm", "layers", "networks"])
def test_no_read_strays_outside_the_operands(area, dtype):
    result = subprocess.run([sys.executable, str(SCRIPT), area, dtype], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok"
