"""bench/alignment.py runs and prints its grid (its figures are timings, so
only their shape is checked; bench/run.py --quick runs in CI)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cbackprop as cb

BENCH = Path(__file__).resolve().parent.parent / "bench"
PACKAGE_ROOT = Path(cb.__file__).resolve().parent.parent


@pytest.mark.parametrize("dtype, shape", [("float64", "8x8x8t"), ("float32", "7x9x5T")])
def test_alignment_grid(dtype, shape, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(BENCH / "alignment.py"), dtype, shape, "--samples", "1"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("A+")]
    assert [row.split()[0] for row in rows] == ["A+0", "A+16", "A+32", "A+48"]
    for row in rows:
        cells = re.findall(r"([0-9.]+)/\s*([0-9.]+)", row)
        assert len(cells) == 4 and all(float(ours) > 0 and float(numpy) > 0 for ours, numpy in cells)
