"""`ops encodings`: Fetch and verify the tiktoken encodings harmony needs, for offline serving."""

from __future__ import annotations

import typer

app = typer.Typer(help="Fetch and verify the tiktoken encodings harmony needs, for offline serving.", no_args_is_help=True)


@app.command("fetch")
def fetch() -> None:
    """Download o200k_base and cl100k_base, verify their SHA-256, write them atomically."""
    from ops.errors import OpsError

    raise OpsError("`ops encodings fetch` is not available in this version.", code=3)
