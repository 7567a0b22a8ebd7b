"""Helpers the test modules share: a free port, and the `ops` CLI run as a user runs it.

`from tests.support import ...` in every test directory (the suite runs from the project root).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

# Where `make` keeps the trained tiny gpt-oss, and so where the suite and the benchmarks look for it.
MODEL_CACHE = Path(__file__).resolve().parents[1] / ".ops" / "models"

# Ray hands out worker ports from this range; a port a test picks for something else must stay out of it.
RAY_WORKER_PORTS = range(10002, 20000)


def free_port(host: str = "127.0.0.1", avoid: range | None = None) -> int:
    """A TCP port nothing listens on now (outside `avoid`)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if avoid is None or port not in avoid:
            return port


def run_ops(*args: str, env: dict[str, str] | None = None, timeout: float = 900,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """`python -m ops ARGS` with this interpreter, the test's environment plus `env`, output captured."""
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd)
