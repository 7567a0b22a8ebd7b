"""Where the Ray on this machine keeps its files: its temp dir (sockets, session logs, the dashboards and
Prometheus discovery file Ray writes) is `$GPT_OSS_RAY_TEMP_DIR` when set (the local target passes it to
`ray start --temp-dir`; the test suite gives each Ray it starts its own), else Ray's default /tmp/ray.
Keep it short: Ray puts unix sockets under it, and their paths may not exceed 107 bytes."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "GPT_OSS_RAY_TEMP_DIR"
DEFAULT = "/tmp/ray"


def temp_dir() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


def logs_dir() -> Path:
    """The current session's logs (Ray points session_latest at the newest session)."""
    return temp_dir() / "session_latest" / "logs"
