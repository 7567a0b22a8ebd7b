"""`ops plan`: Capacity and cost planner: KV-cache tokens, maximum concurrency, instance and price per hour."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("plan", rich_help_panel="Operate")
    def _cmd() -> None:
        """Capacity and cost planner: KV-cache tokens, maximum concurrency, instance and price per hour."""
        from ops.errors import OpsError

        raise OpsError("`ops plan` is not available in this version.", code=3)
