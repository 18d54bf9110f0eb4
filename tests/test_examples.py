"""The scripts in examples/ run and reach what they claim.

Each runs in a fresh interpreter that imports the cbackprop under test: the
source tree or the installed wheel, whichever this test session imported.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import cbackprop as cb

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PACKAGE_ROOT = Path(cb.__file__).resolve().parent.parent


def run_example(name, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def figure(label, output):
    """The number printed after ``label``."""
    match = re.search(re.escape(label) + r"\s*([0-9.eE+-]+)", output)
    assert match, f"no {label!r} in:\n{output}"
    return float(match.group(1))


def test_xor_is_solved(tmp_path):
    output = run_example("xor.py", tmp_path)
    rows = [line.split() for line in output.splitlines() if re.fullmatch(r"[\d.\s-]+", line)]
    assert len(rows) == 4, output
    seen_inputs = set()
    for x1, x2, target, out, predicted in rows:
        seen_inputs.add((int(x1), int(x2)))
        assert int(target) == int(x1) ^ int(x2)
        assert int(predicted) == int(target) == int(float(out) > 0.5), output
    assert seen_inputs == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_regression_stops_early_near_the_noise_floor(tmp_path):
    output = run_example("regression.py", tmp_path)
    final = figure("final val loss:", output)
    assert final < 0.05, output                      # the mean alone scores about 0.5
    assert final == figure("val loss", output)       # the best epoch's parameters are back
    assert figure("epochs run:", output) < 500, output


def test_regression_says_nothing_was_restored_when_the_best_epoch_is_the_last(monkeypatch,
                                                                               capsys):
    """Cut to 3 epochs, the validation loss still falls every epoch: the best
    epoch is the last and restore_best has nothing to put back."""
    spec = importlib.util.spec_from_file_location("regression_example", EXAMPLES / "regression.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    fit = cb.Network.fit
    monkeypatch.setattr(cb.Network, "fit",
                        lambda self, *args, **kwargs: fit(self, *args, **{**kwargs, "epochs": 3}))
    example.main()
    output = capsys.readouterr().out
    assert "(completed)" in output and "best epoch: 3," in output, output
    assert "restored" not in output and "the last epoch" in output, output
    assert figure("final val loss:", output) == figure("val loss", output)


def test_digits_are_classified(tmp_path):
    output = run_example("digits.py", tmp_path)
    assert figure("test accuracy:", output) >= 0.9, output
