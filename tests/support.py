"""Helpers the test modules share: a free port, the `ops` CLI run as a user runs it, and the throwaway Python
environments some tests inspect.

`from tests.support import ...` in every test directory (the suite runs from the project root). The throwaway
environments are built before the suite (`make test-envs`, i.e. `python -m tests.support`), like every other test
dependency: no test downloads anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops.ports import free_port  # noqa: F401  (the tests import it from here)

# Where `make` keeps the trained tiny gpt-oss, and so where the suite and the benchmarks look for it.
MODEL_CACHE = Path(__file__).resolve().parents[1] / ".ops" / "models"

# Throwaway environments, each a venv of its own (no system site packages), built by `build_test_envs()`.
TEST_ENVS = Path(__file__).resolve().parents[1] / ".ops" / "test-envs"
# transformers 4.54.1, the last release before gpt-oss (4.55.0, 2025-08-05), with the light dependencies it needs
# to import its config classes (no torch).
OLD_TRANSFORMERS = TEST_ENVS / "transformers-4.54.1"
_OLD_TRANSFORMERS_RECIPE = [["--no-deps", "transformers==4.54.1"],
                            ["huggingface_hub<1.0", "tokenizers>=0.21,<0.22", "safetensors", "regex", "packaging",
                             "pyyaml", "requests", "tqdm", "filelock", "numpy"]]
# The project's serving stack (its site-packages, through a .pth) plus PyPI's torchvision, a CUDA build for
# torch 2.14: what `pip install "gpt-oss-ops[local]"` leaves when pip resolves vLLM CPU's unpinned torchvision.
TORCHVISION_MISMATCH = TEST_ENVS / "torchvision-mismatch"
_TORCHVISION_RECIPE = [["--no-deps", "torchvision==0.29.1"]]

# Ray hands out worker ports from this range; a port a test picks for something else must stay out of it.
RAY_WORKER_PORTS = range(10002, 20000)


def run_ops(*args: str, env: dict[str, str] | None = None, timeout: float = 900,
            cwd: str | os.PathLike | None = None, python: str | os.PathLike = sys.executable
            ) -> subprocess.CompletedProcess:
    """`python -m ops ARGS` with this interpreter (or a throwaway environment's `python`), the test's environment
    plus `env`, output captured."""
    return subprocess.run([str(python), "-m", "ops", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd)


def env_python(venv: Path) -> Path:
    """The interpreter of a throwaway environment, with the command that builds it when it is missing."""
    py = venv / "bin" / "python"
    if not (venv / ".recipe").is_file():
        raise AssertionError(f"{venv} is not built: run `make test-envs` (python -m tests.support) before the suite")
    return py


def _build(venv: Path, installs: list[list[str]], site_of: str | None = None) -> None:
    """A venv holding what each `pip install ARGS` of `installs` puts there, rebuilt only when its recipe changed.
    With `site_of`, that interpreter's site-packages are added (their .pth files too) after the venv's own, so
    the venv's packages win."""
    import json
    import shutil

    recipe = json.dumps({"pip": installs, "site_of": site_of})
    stamp = venv / ".recipe"
    if stamp.is_file() and stamp.read_text() == recipe:
        return
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    if site_of:
        purelib = subprocess.run([site_of, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
        Path(own, "zz-project-site.pth").write_text(f"import site; site.addsitedir({purelib!r})\n")
    for args in installs:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary",
                        ":all:", *args], check=True, timeout=900)
    stamp.write_text(recipe)


def build_test_envs() -> None:
    _build(OLD_TRANSFORMERS, _OLD_TRANSFORMERS_RECIPE)
    _build(TORCHVISION_MISMATCH, _TORCHVISION_RECIPE, site_of=sys.executable)


if __name__ == "__main__":  # make test-envs
    build_test_envs()
