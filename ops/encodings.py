"""The tiktoken encodings harmony needs, as the toolkit sees them: fetch into a directory, verify a directory.

The download and digest logic lives in `app/fetch_encodings.py` (standard library only, so the image build can
run it before any dependency exists); this module turns its failures into `OpsError`s with a fix, and gives
the rest of the toolkit (doctor, deploy targets) one `verify(dir)` to ask whether a directory is usable as
TIKTOKEN_ENCODINGS_BASE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from app import fetch_encodings as _fe
from ops.errors import OpsError

ENCODINGS = _fe.ENCODINGS
OFFICIAL_BASE_URL = _fe.OFFICIAL_BASE_URL
MIRROR_ENV = _fe.MIRROR_ENV
DEFAULT_TIMEOUT_S = _fe.DEFAULT_TIMEOUT_S
DEFAULT_RETRIES = _fe.DEFAULT_RETRIES
DEFAULT_BACKOFF_S = _fe.DEFAULT_BACKOFF_S
RUNBOOK = "docs/runbooks/harmony-vocab-download.md"


def verify(directory: str | os.PathLike) -> dict[str, str]:
    """Per file: 'ok', 'missing' or 'bad-hash' (SHA-256 differs from tiktoken's pin)."""
    return {name: _fe.file_status(directory, name) for name in ENCODINGS}


def is_usable(directory: str | os.PathLike) -> bool:
    """True when every encoding in `directory` is present and verified."""
    return all(state == "ok" for state in verify(directory).values())


def fetch(dest: str | os.PathLike, base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
          retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF_S,
          log: Callable[[str], None] | None = None) -> list[dict]:
    """Fetch and verify every encoding into `dest`; rows {name, path, url, sha256, status}.

    Raises OpsError (cause + fix) on a digest mismatch, a timeout after the retries, or an unusable mirror;
    no partial file is ever left at the destination.
    """
    kwargs = {"log": log} if log is not None else {}
    try:
        return _fe.fetch(dest, base_url, timeout=timeout, retries=retries, backoff=backoff, **kwargs)
    except _fe.FetchError as e:
        raise OpsError(e.message, fix=e.fix, runbook=RUNBOOK) from e


def export_line(dest: str | os.PathLike) -> str:
    return _fe.export_line(dest)


def resolved_dir(dest: str | os.PathLike) -> str:
    return str(Path(dest).expanduser().resolve())
