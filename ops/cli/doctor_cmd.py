"""`ops doctor`: Recognise known gpt-oss failures (environment checks and log signatures) and point to the runbook."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("doctor", rich_help_panel="Operate")
    def _cmd() -> None:
        """Recognise known gpt-oss failures (environment checks and log signatures) and point to the runbook."""
        from ops.errors import OpsError

        raise OpsError("`ops doctor` is not available in this version.", code=3)
