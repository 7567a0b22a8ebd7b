"""The endpoint's API key, found the same way by every verb and target.

Order: the spec's environment variable (`auth.api_key_env`, comma-separated keys: the first is used), the
spec's `auth.api_key_file`, then the key file the target manages (the local target's, or the one the cluster
target generated for the stack). The value itself is never printed; callers show where it came from.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ops import secret_files
from ops.spec import DeploymentSpec


def new() -> str:
    return f"sk-gpt-oss-{secrets.token_urlsafe(24)}"


def from_env(spec: DeploymentSpec) -> str | None:
    keys = [k.strip() for k in os.environ.get(spec.auth.api_key_env, "").split(",") if k.strip()]
    return keys[0] if keys else None


def find(spec: DeploymentSpec, *target_files: str | os.PathLike | None) -> tuple[str | None, str]:
    """(key, where it came from); (None, "") when there is none."""
    key = from_env(spec)
    if key:
        return key, f"${spec.auth.api_key_env}"
    for path in (spec.auth.api_key_file, *target_files):
        key = secret_files.first_line(path)
        if key:
            return key, str(Path(path).expanduser())
    return None, ""


def ensure_file(path: Path) -> tuple[Path, bool]:
    """The target's key file (0600), generated once."""
    return secret_files.ensure(path, new)
