"""Load a script that is not part of a package (bench/*.py, tests/fixtures/errors/reproduce.py) as a module,
so tests can call its functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_vs_vllm() -> ModuleType:
    return load(ROOT / "bench" / "bench_vs_vllm.py", "bench_vs_vllm")
