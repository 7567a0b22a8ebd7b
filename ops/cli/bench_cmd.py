"""`ops bench`: Load generator: TTFT, TPOT, inter-token latency and throughput against an endpoint."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench", rich_help_panel="Operate")
    def _cmd() -> None:
        """Load generator: TTFT, TPOT, inter-token latency and throughput against an endpoint."""
        from ops.errors import OpsError

        raise OpsError("`ops bench` is not available in this version.", code=3)
