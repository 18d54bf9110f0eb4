"""The README's Python examples run as written (in order, one namespace)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.skipif(not README.exists(), reason="README.md is not shipped with an installed package")
def test_readme_examples_run(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    history = namespace["history"]
    assert set(history) == {"loss", "val_loss", "val_accuracy"}
    assert history.stop_reason in ("completed", "early_stopping")
    assert "W2 ← W2 − 0.1·dW2" in str(namespace["trace"])
    assert re.search(r"epoch +1/200: loss", capsys.readouterr().out)
