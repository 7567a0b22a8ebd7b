"""Where output goes: people read stderr (Rich), scripts read stdout (JSON).

Keeping data on stdout and everything human on stderr lets `ops status --json | jq` work while progress
bars and tables still show in the terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=False)


def emit_json(data: Any) -> None:
    """Write machine-readable data to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, *, fix: str | None = None, runbook: str | None = None, code: int = 1) -> NoReturn:
    """Print one actionable error (cause, fix, runbook) and exit."""
    import typer

    err.print(f"[bold red]error:[/] {message}")
    if fix:
        err.print(f"[bold]fix:[/] {fix}")
    if runbook:
        err.print(f"[bold]runbook:[/] {runbook}")
    raise typer.Exit(code)
