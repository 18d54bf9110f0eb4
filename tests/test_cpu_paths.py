"""Both compiled engines pass the whole suite: the test run itself uses the
fastest engine this CPU supports; this test reruns every other test file
in a subprocess with the portable baseline engine forced."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cbackprop as cb


@pytest.mark.skipif(cb.kernel_path == "baseline", reason="this run already uses the baseline engine")
def test_suite_passes_on_the_baseline_engine():
    tests = Path(__file__).parent
    env = dict(os.environ, CBACKPROP_CPU="baseline")
    probe = subprocess.run([sys.executable, "-c", "import cbackprop; print(cbackprop.kernel_path)"],
                           env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "baseline"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(tests),
         "--ignore", __file__],
        env=env, capture_output=True, text=True, cwd=tests.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_unknown_cpu_request_is_refused():
    env = dict(os.environ, CBACKPROP_CPU="sse9")
    result = subprocess.run([sys.executable, "-c", "import cbackprop"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "CBACKPROP_CPU" in result.stderr
