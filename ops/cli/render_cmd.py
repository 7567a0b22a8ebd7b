"""`ops render`: Render config files from the spec (Serve config, Anyscale service)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Render config files from the spec (Serve config, Anyscale service).", no_args_is_help=True)


@app.command("serve-config")
def serve_config() -> None:
    """Render the production Ray Serve config file from the spec."""
    from ops.errors import OpsError

    raise OpsError("`ops render serve-config` is not available in this version.", code=3)
