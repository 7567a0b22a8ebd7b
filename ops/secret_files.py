"""Small secret files the targets generate once and read many times: the endpoint's API key and Ray's auth
token. Created 0600 (their directory 0700) with a fresh random value, reused afterwards, read as their first
non-empty line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def ensure(path: Path, make: Callable[[], str]) -> tuple[Path, bool]:
    """The file at `path`, written with make() when missing or empty; returns (path, created). An existing
    file readable by others is narrowed to 0600."""
    path = Path(path).expanduser()
    if first_line(path):
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make() + "\n")
    path.chmod(0o600)
    return path, True


def first_line(path: str | os.PathLike | None) -> str | None:
    """The first non-empty line of the file, stripped; None when unset, unreadable or empty."""
    if not path:
        return None
    try:
        text = Path(path).expanduser().read_text()
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), None)
