"""`ops dashboards`: Generate Prometheus and Grafana dashboards for the Serve LLM metrics and start them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("dashboards", rich_help_panel="Operate")
    def _cmd() -> None:
        """Generate Prometheus and Grafana dashboards for the Serve LLM metrics and start them."""
        from ops.errors import OpsError

        raise OpsError("`ops dashboards` is not available in this version.", code=3)
