"""Fixtures for the cluster target's tests: real hosts as network namespaces running sshd (see harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (tests/cluster/harness.py)


@pytest.fixture
def one_host():
    """A single SSH host (no Ray), torn down after the test even when it fails."""
    c = harness.create(1)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def two_hosts():
    """Two SSH hosts (no Ray), torn down after the test even when it fails."""
    c = harness.create(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster_env(monkeypatch):
    """Apply a TestCluster's GPT_OSS_* settings to this test's environment."""
    def apply(c, encodings_dir):
        env = c.env(encodings_dir)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return env
    return apply
