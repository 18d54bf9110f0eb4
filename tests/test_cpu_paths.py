"""Every compiled engine build passes the whole suite: the test run itself
uses the fastest build this CPU supports; this file reruns every other test
file in a subprocess with each other build the CPU can run forced, and
checks how a path is chosen and refused."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cbackprop as cb
from cbackprop import _backend

AUTO = os.environ.get("CBACKPROP_CPU", "auto").strip().lower() in ("", "auto")
# Only a run on the automatic choice reruns the others (a forced run is one of those reruns,
# or CI's run of a test-only build).
OTHER_PATHS = [path for path in _backend.available_paths() if AUTO and path != cb.kernel_path]


def _forced(path, code):
    env = dict(os.environ, CBACKPROP_CPU=path)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("path", OTHER_PATHS)
def test_suite_passes_on_every_other_engine_build(path):
    tests = Path(__file__).parent
    probe = _forced(path, "import cbackprop; print(cbackprop.kernel_path)")
    assert probe.returncode == 0 and probe.stdout.strip() == path, probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(tests),
         "--ignore", __file__],
        env=dict(os.environ, CBACKPROP_CPU=path), capture_output=True, text=True, cwd=tests.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.skipif(not AUTO, reason="CBACKPROP_CPU forces a build for this run")
def test_auto_picks_the_fastest_build_the_cpu_runs():
    assert cb.kernel_path == _backend.available_paths()[0]
    assert "baseline" in _backend.available_paths()
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        flags = set(Path("/proc/cpuinfo").read_text().split())
        has_avx512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags
        has_avx2 = {"avx2", "fma"} <= flags
        expected = "avx512" if has_avx512 else "avx2" if has_avx2 else "baseline"
        assert cb.kernel_path == expected


def test_halves_512_is_read_off_the_cpu():
    """AMD family 19h with AVX-512 (Zen 4) is the CPU class known to halve
    512-bit instructions; the engine that runs is told at import."""
    expected = False
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        expected = (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
                    and "avx512f" in fields.get("flags", "").split())
    assert _backend._engine_baseline.cpu_halves_512() is expected
    assert _backend.engine.tile_table()["halves_512"] is expected


def test_each_build_reports_its_own_tile_table():
    shapes = {"avx512": (64, 12), "avx2": (32, 6), "baseline": (16, 4)}
    for path in _backend.available_paths():
        table = _backend._import(path).tile_table()
        assert table["isa"] == path
        assert (table["vector_bytes"], table["mr"]) == shapes[path]
        for dtype, size in (("float64", 8), ("float32", 4)):
            assert table["lanes"][dtype] * size == table["vector_bytes"]
            assert table["nr"][dtype] == 2 * table["lanes"][dtype]
            assert table["mc"][dtype] % table["mr"] == 0
            assert table["nc"] % table["nr"][dtype] == 0


def test_unknown_cpu_request_is_refused():
    result = _forced("sse9", "import cbackprop")
    assert result.returncode != 0 and "CBACKPROP_CPU" in result.stderr


def test_an_unknown_request_names_every_accepted_value():
    result = _forced("sse9", "import cbackprop")
    for name in ("'auto'", *map(repr, _backend.PATHS), *map(repr, _backend.TEST_PATHS)):
        assert name in result.stderr


def test_a_test_build_not_built_is_refused_by_name(monkeypatch):
    """The test-only builds exist only in a CBACKPROP_TEST_TILES=1 build:
    forcing one that is absent says so, rather than show the import's own
    error (which read as a circular import)."""
    def not_built(path):
        raise ImportError(f"cannot import name '_engine_{path}' from partially initialized "
                          "module 'cbackprop' (most likely due to a circular import)")

    monkeypatch.setattr(_backend, "_import", not_built)
    for path in _backend.TEST_PATHS:
        monkeypatch.setenv("CBACKPROP_CPU", path)
        if not _backend._engine_baseline.cpu_runs(_backend.TEST_PATHS[path]):
            continue
        with pytest.raises(ImportError, match=rf"CBACKPROP_CPU={path} asks for a test build.*"
                                              r"CBACKPROP_TEST_TILES=1"):
            _backend._choose()
    monkeypatch.setenv("CBACKPROP_CPU", "avx2")
    if _backend._engine_baseline.cpu_runs("avx2"):
        with pytest.raises(ImportError, match="circular import"):   # a build that should be there
            _backend._choose()


def test_a_build_the_cpu_cannot_run_is_refused(monkeypatch):
    """As on a CPU without AVX-512: forcing it names the build and what is missing."""
    features = dict(_backend._engine_baseline.cpu_features(), avx512f=False)

    class WithoutAvx512:
        @staticmethod
        def cpu_runs(build):
            return build != "avx512"

        @staticmethod
        def cpu_features():
            return features

    monkeypatch.setattr(_backend, "_engine_baseline", WithoutAvx512)
    monkeypatch.setenv("CBACKPROP_CPU", "avx512")
    with pytest.raises(ImportError, match=r"CBACKPROP_CPU=avx512.*avx512f"):
        _backend._choose()
    monkeypatch.setenv("CBACKPROP_CPU", "auto")
    assert _backend._choose()[1] != "avx512"


def test_python_m_cbackprop_names_the_path_and_the_cpu_flags():
    result = subprocess.run([sys.executable, "-m", "cbackprop"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"kernel path: {cb.kernel_path}" in result.stdout
    assert "avx512f=" in result.stdout and "os_zmm=" in result.stdout


@pytest.mark.parametrize("probe", ["fma_peak_gflops", "tile_gflops"])
def test_the_speed_probes_of_every_build_run(probe):
    """The bench's FMA peak and register-tile probes answer a positive rate in
    both dtypes on every build (their figures are the bench's business), and
    refuse an unknown dtype."""
    for path in _backend.available_paths():
        measure = getattr(_backend._import(path), probe)
        for dtype in ("float64", "float32"):
            gflops = measure(dtype, seconds=0.002, repeats=1)
            assert 0 < gflops < float("inf")
        with pytest.raises(ValueError, match="dtype"):
            measure("int8")
