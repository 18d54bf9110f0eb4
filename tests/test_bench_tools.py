"""bench/alignment.py runs and prints its grid (its figures are timings, so
only their shape is checked; bench/run.py --quick runs in CI), and the pure
helpers of bench/run.py (in bench/benchlib/) give hand-computed answers."""
import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cbackprop as cb
from cbackprop import _backend
from engine_told import told_halves_512

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


def test_mixed_times_numpy_between_steps_at_each_thread_count(tmp_path):
    """bench/mixed.py (a smoke run): one line per thread count, with and
    without the NumPy product between steps; a round count below 1 is refused."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    script = [sys.executable, str(BENCH / "mixed.py")]
    result = subprocess.run(script + ["--rounds", "1", "--dtype", "float32"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split(":") for line in result.stdout.splitlines() if "ms per iteration" in line]
    assert [(threads.strip(), what.split()[0]) for threads, what in lines] == [
        ("1 thread", "A"), ("2 threads", "A"), ("1 thread", "train_step"), ("2 threads", "train_step")]
    assert "float32" in result.stdout and "OPENBLAS_THREAD_TIMEOUT=" in result.stdout
    refused = subprocess.run(script + ["--rounds", "0"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
    assert refused.returncode == 2 and "--rounds" in refused.stderr


def load_bench_script(name):
    """bench/<name>.py (or ``benchlib.<name>``), imported as a module."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def load_bench_module(name):
    """``benchlib.<name>``, the package bench/run.py runs, imported from bench/."""
    return load_bench_script(f"benchlib.{name}")


@pytest.fixture
def build_copy(tmp_path):
    """(thresholds, module name, path): bench/thresholds.py and a copy of the
    running build's engine in tmp_path, another file so that a module loaded
    from it has its own copy of the engine's statics."""
    module = f"_engine_{cb.kernel_path}"
    copy = tmp_path / f"{module}{sysconfig.get_config_var('EXT_SUFFIX')}"
    shutil.copyfile(Path(_backend.engine.__file__), copy)
    return load_bench_script("thresholds"), module, copy


def test_matmul_flops_per_step():
    networks = load_bench_module("networks")
    # sizes 2, 3, 4, batch 5: layer 1 has X@W and X^T@D, 2*5*2*3 = 60 each;
    # layer 2 also has D@W^T, 3 x 2*5*3*4 = 360. Total 480.
    assert networks.matmul_flops_per_step([2, 3, 4], 5) == 480
    assert networks.matmul_flops_per_step([1024, 1024, 1024], 512) == 5 * 2 * 512 * 1024 * 1024


def test_loss_differences_are_read_against_a_floor():
    """Losses of ordinary size are compared relative to the larger one; a
    float32 cross-entropy driven to 2e-6 is compared against the floor, so
    its ~3e-9 of rounding does not read as 1.5e-3."""
    timing = load_bench_module("timing")
    settings = load_bench_module("settings")
    floor = settings.LOSS_SCALE_FLOOR["float32"]
    assert timing.relative_difference([2.0, 1.0], [2.0, 1.001], floor) == pytest.approx(1e-3 / 1.001)
    tiny = timing.relative_difference([2.0e-6], [2.003e-6], floor)
    assert tiny == pytest.approx(3e-9 / floor) and tiny < settings.TOLERANCE["float32"]
    assert timing.relative_difference([2.0e-6], [2.003e-6]) == pytest.approx(3e-9 / 2.003e-6)
    # Each floor is about sqrt(eps): far below the losses the workloads train from.
    for dtype in ("float32", "float64"):
        assert settings.LOSS_SCALE_FLOOR[dtype] ** 2 < 10 * np.finfo(dtype).eps


@pytest.mark.parametrize("workload", ["relu-sgd", "sigmoid-adam", "tanh-momentum",
                                      "softmax-ce-adam"])
def test_a_block_replays_from_the_compiled_snapshot(workload):
    """The cross-check's reference block starts from the compiled network's
    parameters and optimizer state (Adam's moments and step count too):
    both then take the same steps to rounding."""
    networks = load_bench_module("networks")
    sizes = [6, 5, 3]
    compiled, reference = networks.build_networks(sizes, "float64", 0, 1e-2, workload)
    pool = networks.make_batch_pool(sizes, 7, "float64", 0, workload)
    for X, Y in pool:   # moments away from zero
        compiled.train_step(X, Y)
    state = networks.snapshot(compiled)
    networks.restore(reference, state)
    for X, Y in pool:
        assert reference.train_step(X, Y) == pytest.approx(compiled.train_step(X, Y), rel=1e-12)
    for ours, theirs in zip(*(net.get_params()[0] for net in (compiled, reference))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_workloads_run_on_their_configs():
    settings, workers = load_bench_module("settings"), load_bench_module("workers")
    args = settings.parse_args(["--configs", "tiny,mnist", "--workloads", "relu-sgd",
                                "softmax-ce-adam"])
    assert workers.workload_configs(args) == [("relu-sgd", "tiny"), ("relu-sgd", "mnist"),
                                              ("softmax-ce-adam", "mnist")]


def test_an_unknown_workload_is_refused(capsys):
    settings = load_bench_module("settings")
    with pytest.raises(SystemExit):
        settings.parse_args(["--workloads", "relu-adagrad"])
    assert "--workloads: unknown ['relu-adagrad']" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--configs", ""], "--configs: name at least one"),
    (["--workloads", ","], "--workloads: name at least one"),
    (["--configs", "tiny", "--workloads", "softmax-ce-adam"],
     "softmax-ce-adam runs on small, mnist only"),
    (["--threads", "1,1"], "--threads names a count twice"),
    (["--configs", "tiny", "tiny"], "--configs names one twice"),
    (["--dtypes", "float32,float32"], "--dtypes names one twice"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--lr", "nan"], "--lr must be finite and >= 0"),
    (["--lr", "-1"], "--lr must be finite and >= 0"),
    (["--target-ms", "0"], "--target-ms must be > 0"),
    (["--json", "{tmp}"], "--json: {tmp} is a directory"),
    (["--json", "{tmp}/figures.json", "--png", "{tmp}/chart.txt"], "not .txt"),
    (["--json", "{tmp}/figures.png"], "would both be written to"),
])
def test_the_command_line_is_checked_before_anything_is_timed(argv, message, tmp_path, capsys):
    """A bad option ends the parent at once with a clear message, instead of
    a worker's traceback or a silent empty run minutes later."""
    settings = load_bench_module("settings")
    with pytest.raises(SystemExit):
        settings.parse_args([arg.format(tmp=tmp_path) for arg in argv])
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_thread_counts_are_space_or_comma_separated():
    settings = load_bench_module("settings")
    assert settings.parse_args(["--threads", "1", "2"]).threads == [1, 2]
    assert settings.parse_args(["--threads", "2,1"]).threads == [2, 1]
    assert settings.parse_args([]).threads == [1, 2]


def test_a_chart_path_without_a_suffix_is_named_with_png(tmp_path):
    """matplotlib adds .png to such a path: the bench says the name it gets."""
    settings = load_bench_module("settings")
    args = settings.parse_args(["--json", str(tmp_path / "out" / "figures.json"),
                                "--png", str(tmp_path / "chart")])
    assert args.png_path == tmp_path / "chart.png"
    assert args.json_path == tmp_path / "out" / "figures.json" and (tmp_path / "out").is_dir()


def test_the_default_figures_go_to_a_file_the_repository_does_not_keep():
    """The README's first command runs the bench without --json: it must not
    overwrite a run kept in bench/results (it had rewritten latest.json)."""
    settings = load_bench_module("settings")
    args = settings.parse_args([])
    assert args.json_path.parent == settings.RESULTS_DIR and args.json_path.name != "latest.json"
    root = settings.RESULTS_DIR.parent.parent
    if shutil.which("git") and (root / ".git").exists():
        # 0: ignored and not tracked (git check-ignore passes over tracked files)
        ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q",
                                  str(args.json_path)], check=False)
        assert ignored.returncode == 0, f"{args.json_path} is not ignored by git"


def test_the_report_names_the_checkout_it_measured(tmp_path):
    machine = load_bench_module("machine")
    commit = machine.checkout_commit()
    root = Path(machine.__file__).resolve().parent.parent.parent
    if not (shutil.which("git") and (root / ".git").exists()):
        assert commit is None
        return
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert commit.split("-dirty")[0].endswith(head), (commit, head)


def test_gemm_cases_are_the_products_they_name():
    gemm, settings = load_bench_module("gemm"), load_bench_module("settings")
    cases = gemm.gemm_cases(["mnist"], [512])
    assert {c["class"] for c in cases} == set(settings.GEMM_CLASSES)
    assert {(c["M"], c["K"], c["N"]) for c in cases if c["class"] == "small"} == set(settings.GEMM_SMALL)
    for case in cases:
        A, B = np.empty(case["a_shape"]), np.empty(case["b_shape"])
        opA = A.T if case["trans_a"] else A
        opB = B.T if case["trans_b"] else B
        assert opA.shape == (case["M"], case["K"]) and opB.shape == (case["K"], case["N"]), case


def test_median_round_ratio():
    gemm = load_bench_module("gemm")
    # seconds; per round numpy best / ours best: 1.8/0.9, 1.0/2.0, 1.2/1.0
    median, ratios = gemm.median_round_ratio([[1.0, 0.9], [2.0], [1.0]],
                                             [[1.8], [1.0, 1.1], [1.2]])
    assert ratios == pytest.approx([2.0, 0.5, 1.2]) and median == pytest.approx(1.2)


def test_paths_compares_every_build_the_cpu_runs(tmp_path):
    """bench/paths.py (a smoke run) times each engine build this CPU can run
    in its own forced process and names the fastest of them."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.pop("CBACKPROP_CPU", None)
    result = subprocess.run([sys.executable, str(BENCH / "paths.py"), "--quick"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    header = result.stdout.splitlines()[1].split()
    assert header[2:] == _backend.available_paths()
    fastest = re.search(r"fastest on the big train_step: (\w+)", result.stdout).group(1)
    assert fastest in _backend.available_paths()


def test_paths_recommends_a_switch_only_past_the_noise():
    paths = load_bench_script("paths")

    def run(path, float64_ms, float32_ms):
        return {"path": path, "big_step_ms": {"float64": float64_ms, "float32": float32_ms}}

    assert paths.verdict([run("avx512", 100, 50), run("avx2", 120, 60)]) == \
        "fastest on the big train_step: avx512"
    tie = paths.verdict([run("avx512", 110, 55), run("avx2", 106, 55)])
    assert tie.startswith("fastest on the big train_step: avx2, 2.5 % ahead") and "a tie" in tie
    switch = paths.verdict([run("avx512", 110, 55), run("avx2", 100, 50), run("baseline", 300, 150)])
    assert switch.endswith("10.0 % ahead of the default (avx512) (set CBACKPROP_CPU=avx2 to use it)")


def test_thresholds_times_halves_512_both_ways(tmp_path):
    """bench/thresholds.py halves_512=1 needs no compiler: it times the build
    as imported against itself told the other way, one line per shape."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(BENCH / "thresholds.py"), "halves_512=1", "float64",
                             "64x128x10,40x10x64T,sqrt,adam"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("as built vs halves_512=1")
    for shape, line in zip(["64x128x10", "40x10x64T"], lines[1:3]):
        assert re.fullmatch(rf"\s+{shape}\s+as built\s+[\d.]+ GF/s\s+variant\s+[\d.]+ GF/s"
                            r"\s+variant / as built [\d.]+", line), line
    for name, line in zip(["sqrt", "adam update"], lines[3:], strict=True):
        assert re.fullmatch(rf"\s+{name}\s+as built\s+[\d.]+ ns\s+variant\s+[\d.]+ ns"
                            r"\s+as built / variant [\d.]+", line), line
    refused = subprocess.run([sys.executable, str(BENCH / "thresholds.py"), "halves_512=1", "float64",
                              "tanh"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode != 0 and "not activations" in refused.stderr


def test_thresholds_times_products_on_a_team(tmp_path):
    """``--threads 2`` runs both engines on a team of two, and says so."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(BENCH / "thresholds.py"), "halves_512=1", "float64",
                             "128x256x256", "--threads", "2"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    header, line = result.stdout.splitlines()
    assert header.endswith("float64, 2 threads: as built vs halves_512=1"), header
    assert re.fullmatch(r"\s+128x256x256\s+as built\s+[\d.]+ GF/s\s+variant\s+[\d.]+ GF/s"
                        r"\s+variant / as built [\d.]+", line), line


def test_thresholds_loads_a_build_set_up_as_the_running_one(build_copy):
    """A build thresholds.py loads beside the running one takes the running
    one's ten-column tiles (halves_512): a fresh module left them in whole
    vectors, and its 10-column products ran 0.71x as fast on Zen 4."""
    thresholds, module, copy = build_copy
    for halves_512 in (True, False):
        with told_halves_512(halves_512):
            loaded = thresholds.load(module, copy)
        assert loaded is not _backend.engine
        assert loaded.tile_table()["halves_512"] == halves_512


def test_thresholds_changes_the_enum_it_is_named_only():
    """An enum is found by its whole name in the module it belongs to: a
    name that ends another (``CHUNK`` of ``UPDATE_CHUNK``) or a member of
    another module is not it (a suffix match once changed every enum
    ending in the name)."""
    thresholds = load_bench_script("thresholds")
    source = ("enum {\n"
              "  __pyx_e_9cbackprop_14_engine_avx512_UPDATE_CHUNK = 0x8000,\n"
              "  __pyx_e_9cbackprop_14_engine_avx512_NORM_CHUNK = 0x8000\n"
              "};\n"
              "enum { __pyx_e_9cbackprop_22_engine_avx512_on_avx2_UPDATE_CHUNK = 0x8000 };\n"
              "  n = count / __pyx_e_9cbackprop_14_engine_avx512_UPDATE_CHUNK;\n")
    update = thresholds.enum_definition("_engine_avx512", "UPDATE_CHUNK")
    assert update.sub(r"\g<1>4096", source).splitlines()[1:3] == [
        "  __pyx_e_9cbackprop_14_engine_avx512_UPDATE_CHUNK = 4096,",
        "  __pyx_e_9cbackprop_14_engine_avx512_NORM_CHUNK = 0x8000"]
    assert update.sub(r"\g<1>4096", source).count("4096") == 1
    assert thresholds.enum_definition("_engine_avx512", "CHUNK").search(source) is None
    last = thresholds.enum_definition("_engine_avx512", "NORM_CHUNK")
    assert "NORM_CHUNK = 4\n" in last.sub(r"\g<1>4", source)
    other = thresholds.enum_definition("_engine_avx512_on_avx2", "UPDATE_CHUNK")
    assert "on_avx2_UPDATE_CHUNK = 1 }" in other.sub(r"\g<1>1", source)


def test_thresholds_reads_several_changes(capsys, monkeypatch):
    """NAME=VALUE pairs joined by commas are changed together; halves_512
    (a run-time setting) only alone, and no name twice."""
    thresholds = load_bench_script("thresholds")
    monkeypatch.setattr(sys, "argv", ["thresholds.py", "CB_KC_F64=384,CB_PANEL_ROWS_F64=1008",
                                      "float64", "8x8x8"])
    assert thresholds.parse_args().changes == [("CB_KC_F64", "384"), ("CB_PANEL_ROWS_F64", "1008")]
    for change, message in [("halves_512=1,CB_KC_F64=384", "halves_512 is changed alone"),
                            ("CB_KC_F64=384,CB_KC_F64=256", "a name is changed twice"),
                            ("CB_KC_F64=384,", "the change is NAME=VALUE")]:
        monkeypatch.setattr(sys, "argv", ["thresholds.py", change, "float64", "8x8x8"])
        with pytest.raises(SystemExit) as refused:
            thresholds.parse_args()
        assert refused.value.code == 2
        assert message in capsys.readouterr().err


def test_thresholds_times_a_vector_function(capsys, monkeypatch):
    """A vmath.h function's name (sqrt) is read as one and timed in ns per
    value, one line; an unknown name is refused with the functions listed."""
    thresholds = load_bench_script("thresholds")
    assert "sqrt" in thresholds.VECTOR_MATH
    monkeypatch.setattr(sys, "argv",
                        ["thresholds.py", "CB_ROOT_BY_NEWTON=0", "float64", "sqrt,8x8x8"])
    assert thresholds.parse_args().shapes == "sqrt,8x8x8"
    monkeypatch.setattr(sys, "argv", ["thresholds.py", "CB_ROOT_BY_NEWTON=0", "float64", "sqrtt"])
    with pytest.raises(SystemExit) as refused:
        thresholds.parse_args()
    assert refused.value.code == 2
    assert "vector function's (" in capsys.readouterr().err
    engines = {"as built": _backend.engine, "variant": _backend.engine}
    thresholds.compare_vector_math(engines, "sqrt", "float64", np.random.default_rng(0))
    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\s+sqrt\s+as built\s+[\d.]+ ns\s+variant\s+[\d.]+ ns"
                        r"\s+as built / variant [\d.]+", line), line


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "rmsprop"])
def test_apply_update_is_the_update_of_train_step(name, dtype):
    """What bench/ times as an optimizer's update pass is the last part of a
    training step: loss_and_gradients then apply_update give train_step's
    parameters and state, bit for bit, step after step (spare buffers swapped)."""
    updates = load_bench_module("updates")
    nets = [cb.Network([4, 6, 3], ["tanh", "identity"], optimizer=updates.OPTIMIZERS[name](),
                       dtype=dtype, seed=3) for _ in range(2)]
    for net in nets:
        net.optimizer.lr = 1e-2
    rng = np.random.default_rng(0)
    for _ in range(3):
        X, Y = rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)
        nets[0].train_step(X, Y)
        engine = nets[1]._engine
        engine.loss_and_gradients(X, Y, nets[1]._loss)
        engine.apply_update(nets[1]._optimizer)
    for ours, theirs in zip(*(net.get_params()[0] + net.get_params()[1] for net in nets)):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(*(net._optimizer_state() for net in nets)):
        np.testing.assert_array_equal(ours, theirs)


def test_adam_through_the_spares_is_timed_as_such():
    """The bench's "adam/spares" column times Adam with in-place steps
    switched off, on a network where the engine would take them (2 MiB of
    float32 parameters, on a build with 32-byte vectors or wider); its
    "adam" column, the engine's own choice."""
    updates = load_bench_module("updates")
    sizes = (1024, 512, 10)
    chosen = updates.update_call(sizes, "float32", updates.OPTIMIZERS["adam"]())
    spares = updates.update_call(sizes, "float32", updates.OPTIMIZERS["adam/spares"](),
                                 **updates.ENGINE_SETTINGS["adam/spares"])
    for update in (chosen, spares):
        update()
    assert chosen.engine.steps_in_place == (4 if _backend.engine.tile_table()["vector_bytes"] >= 32 else 0)
    assert spares.engine.steps_in_place == 0


def test_update_targets():
    report = load_bench_module("report")
    rows = [{"network": network, "dtype": "float64", "threads": 1, "optimizer": optimizer,
             "ns_per_param": ns, "adam_over_momentum": 1.6}
            for network, optimizer, ns in [("in cache", "momentum", 0.2), ("in cache", "adam", 2.5),
                                           ("beyond L2", "momentum", 1.0), ("beyond L2", "adam", 1.4)]]
    checks = {c["what"]: c for c in report.update_targets(rows)}
    in_cache = checks["Adam update float64 in cache 1 thr: ns per parameter"]
    assert (in_cache["measured"], in_cache["target"], in_cache["pass"]) == (2.5, 2.0, False)
    # The bound reads the median of the rounds' ratios, not the ratio of the bests.
    beyond = checks["Adam update float64 beyond L2 1 thr: Adam / momentum"]
    assert beyond["measured"] == pytest.approx(1.6) and not beyond["pass"]


def test_update_ratio_is_the_median_of_round_ratios(monkeypatch):
    updates = load_bench_module("updates")
    monkeypatch.setattr(updates, "UPDATE_NETWORKS", {"beyond L2": (3, 4, 2)})
    monkeypatch.setattr(updates, "UPDATE_ROUNDS", 3)
    monkeypatch.setattr(updates, "calls_per_sample", lambda fn, seconds: 1)
    # Seconds per sample, round by round, for each optimizer's update call.
    samples = {"momentum": iter([1.0, 0.5, 1.0]),   # 0.5: its best, in a fast moment
               "adam": iter([1.2, 1.0, 1.3])}       # round ratios 1.2, 2.0, 1.3
    calls = {}
    real_update_call = updates.update_call

    def update_call(sizes, dtype, optimizer, **engine_settings):
        fn = real_update_call(sizes, dtype, optimizer, **engine_settings)
        if isinstance(optimizer, cb.SGD):
            calls[fn] = "momentum" if optimizer.momentum else "sgd"
        elif engine_settings:
            calls[fn] = "adam/spares"
        else:
            calls[fn] = type(optimizer).__name__.lower()
        return fn

    monkeypatch.setattr(updates, "update_call", update_call)
    monkeypatch.setattr(updates, "time_calls",
                        lambda fn, count: next(samples.get(calls[fn], iter([1.0] * 3))))

    class Args:
        dtypes = ["float64"]
        quick = True
        threads = [1]

    rows = {r["optimizer"]: r for r in updates.bench_updates(Args())}
    assert rows["adam"]["adam_over_momentum"] == pytest.approx(1.3)
    n_params = 3 * 4 + 4 + 4 * 2 + 2
    assert rows["momentum"]["ns_per_param"] == pytest.approx(0.5 / n_params * 1e9)
    assert rows["adam"]["ns_per_param"] == pytest.approx(1.0 / n_params * 1e9)


def test_digits_accuracy_is_the_mean_over_the_seeds(monkeypatch):
    fit = load_bench_module("fit")
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])   # seed 1 is the fastest (1 s)
    monkeypatch.setattr(fit.time, "perf_counter", lambda: next(clock))
    seconds, accuracy = fit.best_time_mean_score(lambda seed: [0.90, 0.99, 0.96][seed], 3)
    assert seconds == 1.0
    assert accuracy == pytest.approx(0.95)   # not 0.99, the fastest seed's


def test_digits_products_at_the_peak():
    """40 epochs of [64, 128, 10] over 1,347 rows: per epoch X@W and Xᵀ@δ of
    layer 1 (2 x 2 x 1347 x 64 x 128) and three products of layer 2
    (3 x 2 x 1347 x 128 x 10), 54,483,456 FLOPs; at 2 x 50 GF/s."""
    fit = load_bench_module("fit")
    seconds = fit.products_seconds([64, 128, 10], 1347, 40, 2, 50.0)
    assert seconds == pytest.approx(40 * 54_483_456 / 100e9)


def test_fit_samples_reach_the_worker_and_its_rows():
    settings, workers, fit = (load_bench_module(name) for name in ("settings", "workers", "fit"))
    assert settings.parse_args([]).fit_samples == settings.FIT_SAMPLES
    args = settings.parse_args(["--fit-samples", "100", "--quick"])
    command = workers.worker_command(args, 1, "out.json")
    assert command[command.index("--fit-samples") + 1] == "100"
    assert [row["samples"] for row in fit.fit_rows(args)] == [100] * len(settings.FIT_CONFIGS)


def test_fit_samples_must_be_positive(capsys):
    settings = load_bench_module("settings")
    with pytest.raises(SystemExit):
        settings.parse_args(["--fit-samples", "0"])
    assert "--fit-samples must be >= 1" in capsys.readouterr().err


def test_a_worker_records_openblas_kernels_and_forced_levels():
    """A worker records which kernels numpy's OpenBLAS picked and which
    variables forced a vector level (OPENBLAS_CORETYPE is read when OpenBLAS
    loads: a new process)."""
    if "openblas" not in load_bench_module("machine").blas_info().lower():
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    if "avx2" not in _backend.available_paths():
        pytest.skip("OpenBLAS's Haswell kernels need an x86-64 CPU with AVX2")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy; "
            "from benchlib import machine; info = machine.worker_info(None, 'skipped'); "
            "print(info['blas_core'], info['isa_env'])")
    env = {name: value for name, value in os.environ.items()
           if name not in load_bench_module("settings").ISA_VARS}
    env["OPENBLAS_CORETYPE"] = "Haswell"
    result = subprocess.run([sys.executable, "-c", code, str(BENCH)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 1) == ["Haswell", "{'OPENBLAS_CORETYPE': 'Haswell'}\n"]


def test_the_header_says_a_run_stands_in_for_a_lesser_cpu(monkeypatch, capsys):
    """A run with vector levels forced (one machine standing in for a CPU
    without AVX-512) says so in its header, with numpy's kernels."""
    report = load_bench_module("report")
    args = load_bench_module("settings").parse_args(["--quick", "--no-torch"])
    monkeypatch.setattr(report, "describe_isa", lambda first: "isa")
    monkeypatch.setattr(report, "describe_peaks", lambda workers: "peaks")
    monkeypatch.setattr(report, "describe_cpu_features", lambda features: "flags")
    info = {"torch": None, "torch_skipped": "skipped", "cpu": "cpu", "cpu_count": 2,
            "platform": "linux", "cpu_features": {}, "python": "3", "numpy": "2",
            "blas": "scipy-openblas", "blas_core": "Haswell", "cbackprop": "0",
            "isa_env": {"CBACKPROP_CPU": "avx2", "OPENBLAS_CORETYPE": "Haswell"}, "env": {},
            "cb_get_num_threads": 1, "torch_get_num_threads": None, "wall_s": 1.0,
            "other_load_cores": 0.0}
    report.print_header(args, [{"info": info, "threads": 1}])
    header = capsys.readouterr().out
    assert "(BLAS: scipy-openblas, Haswell kernels)" in header
    assert "vector levels forced: CBACKPROP_CPU=avx2, OPENBLAS_CORETYPE=Haswell" in header
    del info["isa_env"], info["blas_core"]   # a record from before these fields
    report.print_header(args, [{"info": info, "threads": 1}])
    header = capsys.readouterr().out
    assert "(BLAS: scipy-openblas)" in header and "forced" not in header


def test_only_a_64_byte_build_is_said_to_run_in_halves():
    """On a CPU that splits 512-bit instructions (Zen 4), the header says so
    of the avx512 build only: an avx2 or baseline build has none to split."""
    report = load_bench_module("report")
    table = {"mr": 6, "nr": {"float64": 8, "float32": 16}, "halves_512": True}
    avx2 = report.describe_isa({"kernel_path": "avx2", "tile_table": dict(table, vector_bytes=32)})
    assert avx2 == "avx2 (32-byte vectors, tiles 6x8 f64 / 6x16 f32)"
    avx512 = report.describe_isa({"kernel_path": "avx512",
                                  "tile_table": dict(table, vector_bytes=64)})
    assert avx512.endswith(", 512-bit instructions run as two halves)")


def test_product_shapes_are_read_or_refused():
    settings = load_bench_module("settings")
    assert settings.product_shape("64x784x128") == (64, 784, 128, False, False)
    assert settings.product_shape("8X9x10t") == (8, 9, 10, True, False)
    assert settings.product_shape("8x9x10T") == (8, 9, 10, False, True)
    for bad in ("64x64", "0x64x64", "8x9x10tT", "8x-9x10", "axbxc", "8x9x10x"):
        with pytest.raises(ValueError, match="is not a product such as"):
            settings.product_shape(bad)


@pytest.mark.parametrize("script, argv", [("alignment.py", ["float64", "64x64"]),
                                          ("thresholds.py", ["halves_512=1", "float64", "tanhh"]),
                                          ("thresholds.py", ["FOO", "float64", "8x8x8"]),
                                          ("thresholds.py", ["halves_512=1", "float64", "8x8x8",
                                                             "--threads", "0"]),
                                          ("thresholds.py", ["halves_512=1", "float64", "sqrt",
                                                             "--threads", "2"])])
def test_the_scripts_refuse_what_they_cannot_read(script, argv, tmp_path):
    """A usage error (exit code 2) at once, not a traceback after the setup."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(BENCH / script), *argv], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{script}: error:" in result.stderr and "Traceback" not in result.stderr


def test_the_per_call_floor_is_held_on_tiny_at_one_thread():
    """A train_step call on tiny (an already-valid [2, 2, 1] batch of 4, in
    the bench's hot loop) at one thread takes at most CALL_FLOOR_US, every
    workload and dtype; other configs and thread counts are not held to it."""
    settings, report = load_bench_module("settings"), load_bench_module("report")

    def row(config, threads, dtype, us):
        return {"workload": "sigmoid-adam", "config": config, "dtype": dtype, "threads": threads,
                "compiled_us": us, "speedup": None, "speedup_vs_torch": None}

    assert settings.CALL_FLOOR_US == 1.0
    rows = [row("tiny", 1, "float64", 1.0), row("tiny", 1, "float32", 1.2),
            row("tiny", 2, "float64", 5.0), row("small", 1, "float64", 8.0)]
    checks = [c for c in report.train_targets(rows) if "per train_step call" in c["what"]]
    assert [(c["what"], c["measured"], c["target"], c["pass"]) for c in checks] == [
        ("sigmoid-adam tiny float64 1 thr: compiled us per train_step call", 1.0, 1.0, True),
        ("sigmoid-adam tiny float32 1 thr: compiled us per train_step call", 1.2, 1.0, False)]


def test_fit_targets_are_read_on_the_default_data_only():
    """--fit-samples changes what an epoch costs around its steps: such a run
    is measured and printed, not held to the targets set for FIT_SAMPLES rows."""
    settings, report = load_bench_module("settings"), load_bench_module("report")

    def worker(samples):
        return {"kernel_path": "avx512", "digits": None,
                "configs": [{"threads": 1, "config": "tiny", "samples": samples, "fit us": 30.0,
                             "reference fit us": 100.0}]}

    assert report.fit_targets([worker(5)]) == []
    checks = report.fit_targets([worker(settings.FIT_SAMPLES)])
    assert [c["what"] for c in checks] == [
        "fit tiny float64 1 thr: us per minibatch step",
        "fit tiny float64 1 thr: reference fit / fit"]
    assert not any(c["pass"] for c in checks)


def test_a_gemm_ratio_whose_rounds_disagree_is_marked():
    report = load_bench_module("report")
    assert report.ratio_text({"ratio": 1.04, "round_ratios": [1.0, 1.04, 1.1]}) == " 1.04 "
    assert report.ratio_text({"ratio": 0.87, "round_ratios": [0.8, 0.87, 1.2]}) == " 0.87~"
    assert report.ratio_text({"ratio": 471.94, "round_ratios": [2.09, 471.9, 517.8]}) == "  472~"


def test_a_told_engine_takes_its_setting_before_each_call():
    """thresholds.py's Told sets halves_512 before every call it runs (a
    product, a vector function, an update), so that two of them on one
    engine time the two ways in turn."""
    thresholds = load_bench_script("thresholds")
    engine = _backend.engine
    seen = []
    # Starting from False; each Told sets its own before its calls, and the
    # import's reading comes back after.
    with told_halves_512(False):
        for setting in (True, False, True):
            told = thresholds.Told(engine, setting)
            told.vector_math("sqrt", np.ones(3))
            seen.append(engine.tile_table()["halves_512"])
            told.told(lambda: seen.append(engine.tile_table()["halves_512"]))()
    assert seen == [True, True, False, False, True, True]


def test_thresholds_times_an_optimizers_update_on_each_engine(build_copy, capsys, monkeypatch):
    """An optimizer's name (adam) is read as one; each engine's update is
    timed on a network built from that engine's own module (a copy of the
    running build here), and cbackprop.network builds from the running one
    again afterwards. One line, in ns per parameter."""
    import cbackprop.network as network
    thresholds, module, copy = build_copy
    monkeypatch.setattr(sys, "argv", ["thresholds.py", "CB_ROOT_BY_NEWTON=0", "float64", "adam,rmsprop"])
    assert thresholds.parse_args().shapes == "adam,rmsprop"
    loaded = thresholds.load(module, copy)
    built, update_call = {}, thresholds.update_call

    def recording_update_call(*args, **kwargs):
        update = update_call(*args, **kwargs)
        built[network._engine] = update.engine
        return update
    monkeypatch.setattr(thresholds, "update_call", recording_update_call)
    thresholds.compare_update({"as built": _backend.engine, "variant": loaded}, "adam", "float64")
    assert isinstance(built[loaded], loaded.Engine)
    assert not isinstance(built[loaded], _backend.engine.Engine)
    assert isinstance(built[_backend.engine], _backend.engine.Engine)
    assert network._engine is _backend.engine
    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\s+adam update\s+as built\s+[\d.]+ ns\s+variant\s+[\d.]+ ns"
                        r"\s+as built / variant [\d.]+", line), line


def test_a_config_that_failed_fails_its_torch_target_too():
    """An error row (bench_config_safely) has no figures: in a run with torch
    its torch target is there and fails, as its reference target does,
    rather than leave the count."""
    report = load_bench_module("report")
    measured = {"workload": "relu-sgd", "config": "mnist", "dtype": "float64", "threads": 1,
                "speedup": 2.0, "speedup_vs_torch": 1.5, "compiled_us": 100.0}
    failed = {"workload": "relu-sgd", "config": "deep", "dtype": "float64", "threads": 1,
              "ok": False, "error": "FloatingPointError: diverged"}
    torch_checks = [c for c in report.train_targets([measured, failed]) if "torch" in c["what"]]
    assert [(c["what"], c["measured"], c["pass"]) for c in torch_checks] == [
        ("relu-sgd mnist float64 1 thr: torch/compiled", 1.5, True),
        ("relu-sgd deep float64 1 thr: torch/compiled", None, False)]
    without_torch = dict(measured, speedup_vs_torch=None)
    assert not [c for c in report.train_targets([without_torch, failed]) if "torch" in c["what"]]
    # every config failed: the worker's own word that torch ran
    assert [c["what"] for c in report.train_targets([failed], with_torch=True)
            if "torch" in c["what"]] == ["relu-sgd deep float64 1 thr: torch/compiled"]


def test_section_rows_carry_the_workers_thread_count(monkeypatch):
    """A build without OpenMP runs every worker on one thread: the 2-thread
    worker's rows still say 2 (as its train_step and GEMM rows do), so that
    they neither collide with the 1-thread worker's nor stand for them."""
    settings, elementwise, updates = (load_bench_module(name)
                                      for name in ("settings", "elementwise", "updates"))
    monkeypatch.setattr(cb, "get_num_threads", lambda: 1)
    args = settings.parse_args(["--quick", "--threads", "2", "--dtypes", "float32"])
    monkeypatch.setattr(elementwise, "ELEMENTWISE_ROUNDS", 1)
    monkeypatch.setattr(elementwise, "passes", lambda dtype, rng: {"noop": (lambda: None,
                                                                            lambda: None)})
    assert {row["threads"] for row in elementwise.bench_elementwise(args)} == {2}
    monkeypatch.setattr(updates, "UPDATE_ROUNDS", 1)
    monkeypatch.setattr(updates, "UPDATE_NETWORKS", {"tiny": [2, 2, 1]})
    rows = updates.bench_updates(args)
    assert rows and {row["threads"] for row in rows} == {2}


def test_a_partial_run_names_what_it_did_not_measure(capsys):
    """Targets of what a run left out are not counted; the report says what
    that was, so that "N of N pass" is not read as the whole."""
    settings, report = load_bench_module("settings"), load_bench_module("report")
    full = settings.parse_args([])
    fit = [{"configs": [], "digits": {"threads": 1}}]
    assert report.left_out(full, True, fit) == []
    partial = settings.parse_args(["--threads", "2", "--configs", "small", "mnist", "--no-gemm",
                                   "--dtypes", "float64"])
    named = report.left_out(partial, False, [{"configs": [], "digits": None}])
    assert named == ["configs tiny, deep, wide, big", "dtypes float32", "thread counts 1",
                     "the GEMM", "PyTorch", "the digits comparison (no scikit-learn)"]
    report.print_targets([], named)
    assert "not measured in this run, so not counted: configs tiny, deep, wide, big;" in \
        capsys.readouterr().out


class _NumpyAsTorch:
    """What bench_gemm asks of torch, done by numpy: the plumbing without torch."""
    from_numpy = staticmethod(lambda array: array)
    matmul = staticmethod(np.matmul)


@pytest.mark.parametrize("form", ["X@W", "X^T@D", "D@W^T"])
def test_another_blas_takes_each_form_as_ours_does(form):
    """torch's call multiplies op(A) by op(B) as ours and numpy's do, on a
    product whose three sides differ (a transpose left out shows)."""
    gemm = load_bench_module("gemm")
    case = gemm.gemm_case(form, 5, 7, 3, "squares", "test")
    ours, theirs, other = gemm.gemm_operands(case, "float64", np.random.default_rng(1),
                                             _NumpyAsTorch)
    assert other().shape == (5, 3)
    np.testing.assert_allclose(other(), theirs(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ours(), theirs(), rtol=1e-13, atol=1e-13)


def test_another_blas_is_timed_on_the_peak_squares_only(monkeypatch):
    """With torch, bench_gemm times torch.matmul beside ours and numpy's on the
    squares the peak target reads (GEMM_PEAK_SIZE, here made 48), in every
    form and dtype, and on nothing else; without it, on nothing."""
    gemm = load_bench_module("gemm")
    monkeypatch.setattr(gemm, "GEMM_PEAK_SIZE", 48)
    monkeypatch.setattr(gemm, "GEMM_ROUNDS", 1)
    monkeypatch.setattr(gemm, "pause", lambda: None)
    args = SimpleNamespace(seed=0, threads=[1], configs=[], gemm_squares=[32, 48],
                           dtypes=["float64", "float32"], gemm_samples=1, gemm_target_s=1e-4)
    peaks = {"float64": 50.0, "float32": 100.0}
    rows = gemm.bench_gemm(args, peaks, _NumpyAsTorch)
    timed = {(r["class"], r["M"], r["K"], r["N"], r["form"], r["dtype"])
             for r in rows if "torch_gflops" in r}
    assert timed == {("squares", 48, 48, 48, form, dtype) for form in ("X@W", "X^T@D", "D@W^T")
                     for dtype in ("float64", "float32")}
    for r in rows:
        if "torch_gflops" in r:
            assert r["torch_gflops"] > 0 and r["torch_of_peak"] == pytest.approx(
                r["torch_gflops"] / peaks[r["dtype"]])
            assert r["torch_rel_err"] < (1e-13 if r["dtype"] == "float64" else 1e-5)
    for r in gemm.bench_gemm(args, peaks):
        assert not [key for key in r if key.startswith("torch")] and "torch" not in r["calls"]


def test_another_blas_is_reported_beside_ours():
    report = load_bench_module("report")
    row = {"M": 1024, "dtype": "float64", "threads": 1, "ours_of_peak": 0.62,
           "numpy_of_peak": 0.64}
    rows = [dict(row, torch_gflops=80.0, torch_of_peak=0.75, torch_rel_err=2e-16),
            dict(row, torch_gflops=82.5, torch_of_peak=0.77, torch_rel_err=3e-16,
                 ours_of_peak=0.63),
            dict(row, threads=2, torch_gflops=150.0, torch_of_peak=0.7, torch_rel_err=1e-16),
            dict(row, dtype="float32")]   # not timed by torch: no line of its own
    assert report.other_blas_lines(rows) == [
        "torch.matmul 1024x1024x1024 float64 1 thr (2 forms): 80.0-82.5 GF/s, 75-77 % of the "
        "FMA peak (ours 62-63 %, numpy 64 %); |torch - numpy| / max|numpy| <= 3.0e-16",
        "torch.matmul 1024x1024x1024 float64 2 thr (1 form): 150.0 GF/s, 70 % of the "
        "FMA peak (ours 62 %, numpy 64 %); |torch - numpy| / max|numpy| <= 1.0e-16"]
    assert report.other_blas_lines([dict(row, dtype="float32")]) == []


def test_a_network_on_another_builds_engine_trains_through_its_methods(build_copy, monkeypatch):
    """bench/thresholds.py builds networks on another build's Engine: the
    running build's Network.train_step, forward and loss then reach that
    Engine's own methods, for a batch in the engine's form and for one that
    needs converting, with the results of a network on the running build."""
    import cbackprop.network as network
    thresholds, module, copy = build_copy
    loaded = thresholds.load(module, copy)
    X = np.random.default_rng(0).standard_normal((8, 3))
    Y = np.random.default_rng(1).random((8, 2))
    nets = {}
    for label, engine_module in (("running", _backend.engine), ("other", loaded)):
        monkeypatch.setattr(network, "_engine", engine_module)
        nets[label] = cb.Network([3, 4, 2], ["tanh", "sigmoid"], seed=3)
    monkeypatch.undo()
    assert type(nets["other"]._engine) is loaded.Engine
    assert type(nets["other"]._engine) is not _backend.engine.Engine
    for net in nets.values():
        net.train_step(X, Y)                    # in the engine's form
        net.train_step(X.tolist(), Y.tolist())  # converted first
    for name in ("train_step", "loss"):
        values = [getattr(net, name)(X, Y) for net in nets.values()]
        assert values[0] == values[1], name
    np.testing.assert_array_equal(nets["running"].forward(X), nets["other"].forward(X))
    np.testing.assert_array_equal(nets["running"].forward(X[0].tolist()),
                                  nets["other"].forward(X[0].tolist()))
    # The one Python way into an Engine's network calls: each kind by its
    # method's name, as that method on a network of the running build; any
    # other kind refused.
    assert sorted(loaded.NETWORK_CALLS) == ["forward", "loss", "train_step"]
    other = nets["other"]
    for name, which in loaded.NETWORK_CALLS.items():
        args = (X,) if name == "forward" else (X, Y)
        np.testing.assert_array_equal(other._engine.network_call(X, Y, which),
                                      getattr(nets["running"], name)(*args), err_msg=name)
    for net in nets.values():
        for which in (-1, 3):
            with pytest.raises(ValueError, match="which must be a NetworkCall"):
                net._engine.network_call(X, Y, which)
