"""Shared test fixtures. Paths to the offline encodings mirror beside the project (../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ENCODINGS = SHARED / "tiktoken_encodings"


@pytest.fixture(scope="session")
def encodings_dir() -> Path:
    """The verified offline copies of o200k_base / cl100k_base (never committed into the project)."""
    assert (ENCODINGS / "o200k_base.tiktoken").is_file(), f"missing {ENCODINGS}: ../shared must sit beside the repo"
    return ENCODINGS


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
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
