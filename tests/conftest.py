"""Shared test fixtures, and the suite's hermetic environment.

The suite never reads or writes the user's own state: before any test module is imported, HOME points at a
directory of the run (so ~/.ray/auth_token, ~/.cache/gpt-oss-ops, ~/.ssh stay untouched), and every test gets
its own GPT_OSS_OPS_HOME (API key, Ray token, configs) unless a fixture of its module set one for the whole
module. Trained checkpoints are the exception that is shared on purpose: the tiny gpt-oss takes minutes to
train, so it is cached across tests and runs in .ops/models (GPT_OSS_MODEL_CACHE), keyed by its recipe.
A test that starts Ray gives it its own temp dir (GPT_OSS_RAY_TEMP_DIR, see ray_temp_dir below).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import MODEL_CACHE

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ENCODINGS = SHARED / "tiktoken_encodings"

# -- the hermetic environment, set at import (before any test module reads the environment) ------------------
_RUN_HOME = Path(tempfile.mkdtemp(prefix="gpt-oss-ops-test-home-"))
_SESSION_OPS_HOME = str(_RUN_HOME / "ops-home")
os.environ["HOME"] = str(_RUN_HOME)
os.environ["GPT_OSS_OPS_HOME"] = _SESSION_OPS_HOME
os.environ.setdefault("GPT_OSS_MODEL_CACHE", str(MODEL_CACHE))
for _var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS", "GPT_OSS_API_KEY",
             "GPT_OSS_RAY_TEMP_DIR", "XDG_CACHE_HOME", "HF_HOME"):
    os.environ.pop(_var, None)


def pytest_unconfigure(config):
    shutil.rmtree(_RUN_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_ops_home(tmp_path, monkeypatch):
    """Each test its own GPT_OSS_OPS_HOME, unless its module's fixtures set one for the module."""
    if os.environ.get("GPT_OSS_OPS_HOME") == _SESSION_OPS_HOME:
        monkeypatch.setenv("GPT_OSS_OPS_HOME", str(tmp_path / "ops-home"))
    yield


@pytest.fixture(scope="session")
def encodings_dir() -> Path:
    """The verified offline copies of o200k_base / cl100k_base (never committed into the project)."""
    assert (ENCODINGS / "o200k_base.tiktoken").is_file(), f"missing {ENCODINGS}: ../shared must sit beside the repo"
    return ENCODINGS


@pytest.fixture(scope="session")
def tiny_model_dir(encodings_dir) -> Path:
    """The trained tiny gpt-oss (built once into the model cache, minutes the first time)."""
    from ops import tiny_model

    os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
    return tiny_model.ensure(encodings_dir)


@pytest.fixture
def ray_temp_dir(monkeypatch) -> Path:
    """A short, private temp dir for a Ray this test starts (Ray's unix sockets live under it)."""
    d = Path(f"/tmp/gr-{secrets.token_hex(3)}")
    d.mkdir(mode=0o755)
    monkeypatch.setenv("GPT_OSS_RAY_TEMP_DIR", str(d))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _offline_env():
    """Nothing in the suite may reach a hub: force the offline switches for every process tests start."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    yield


@pytest.fixture(autouse=True, scope="module")
def _no_ray_driver_left_behind():
    """Some Ray APIs start a local Ray inside the calling process (Serve's app builders call ray.init
    implicitly). Such a Ray must not outlive its test module: a later `ray stop` (the local target, the stack
    tests) would kill it under the test process, and Ray then ends that process."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
