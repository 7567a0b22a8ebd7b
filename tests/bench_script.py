"""bench/bench_vs_vllm.py as a module, for the tests of its comparison arithmetic (the bench/ directory is
scripts, not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "bench" / "bench_vs_vllm.py"
_spec = importlib.util.spec_from_file_location("bench_vs_vllm", _path)
bench_vs_vllm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_vs_vllm)
