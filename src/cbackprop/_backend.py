"""Which compiled engine runs: chosen once, at import.

``CBACKPROP_CPU=baseline`` forces the portable build (so both paths can be
tested on one machine).
"""
import os

from . import _engine_baseline

_REQUESTED = os.environ.get("CBACKPROP_CPU", "auto").strip().lower() or "auto"
if _REQUESTED not in ("auto", "baseline"):
    raise ImportError(f"CBACKPROP_CPU must be 'auto' or 'baseline', got {_REQUESTED!r}")

engine = _engine_baseline
kernel_path = "baseline"
