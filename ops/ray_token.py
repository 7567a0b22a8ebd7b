"""Ray's token authentication, as every gpt-oss-ops target turns it on.

Ray 2.60 checks a shared token on its dashboard, dashboard agents, runtime-env agents and GCS when
`RAY_AUTH_MODE=token`; processes find the token in `RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH`,
else `~/.ray/auth_token`. The targets never use that last, machine-wide file: the local target keeps its own
token beside its API key (0600) and points Ray at it with `RAY_AUTH_TOKEN_PATH`; cluster nodes read theirs
from SSM Parameter Store at boot. HTTP clients send it as `Authorization: Bearer TOKEN` (Ray's own CLI does).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ops import secret_files

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def generate() -> str:
    """A new token: 256 random bits, hex (what `ray get-auth-token --generate` makes is no stronger)."""
    return secrets.token_hex(32)


def ensure_file(path: Path) -> tuple[Path, bool]:
    """The token file (0600, its directory 0700), created once and reused; returns (path, created)."""
    return secret_files.ensure(path, generate)


def read(path: Path) -> str | None:
    return secret_files.first_line(path)


def process_env(path: Path) -> dict[str, str]:
    """What a Ray process (or `ray`/`serve` CLI) needs to run with token auth against this token file.

    RAY_AUTH_TOKEN is cleared because Ray reads it before the file: a token exported for another cluster must
    not be sent to this one."""
    return {MODE_ENV: "token", PATH_ENV: str(path), TOKEN_ENV: ""}


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
