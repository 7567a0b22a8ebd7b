"""`ops encodings`: Fetch and verify the tiktoken encodings harmony needs, for offline serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ops.cli.options import Json

app = typer.Typer(help="Fetch and verify the tiktoken encodings harmony needs, for offline serving.", no_args_is_help=True)

Dest = Annotated[Path, typer.Option("--dest", "-d", help="Directory to write o200k_base/cl100k_base into.")]


@app.command("fetch")
def fetch(dest: Dest,
          base_url: Annotated[Optional[str], typer.Option("--base-url", help="Mirror: http(s) URL, file:// URL or a directory holding the files (default: $TIKTOKEN_ENCODINGS_MIRROR, else the official host).")] = None,
          timeout: Annotated[float, typer.Option("--timeout", help="Seconds per network read before an attempt fails.")] = 30.0,
          retries: Annotated[int, typer.Option("--retries", min=1, help="Attempts per file (backoff doubles).")] = 3,
          json_: Json = False) -> None:
    """Download o200k_base and cl100k_base, verify their SHA-256, write them atomically.

    Files already present with the right digest are kept. Prints the `export TIKTOKEN_ENCODINGS_BASE=...`
    line on stdout (progress on stderr).

    Examples:\n
      ops encodings fetch --dest ~/.cache/tiktoken_encodings\n
      ops encodings fetch --dest /opt/tiktoken_encodings --base-url https://mirror.example/encodings/
    """
    from ops import encodings
    from ops.console import emit_json, err

    rows = encodings.fetch(dest, base_url, timeout=timeout, retries=retries,
                           log=lambda m: err.print(m, markup=False, soft_wrap=True))
    line = encodings.export_line(dest)
    changed = [r["name"] for r in rows if r["status"] == "downloaded"]
    err.print(f"[green]ok[/] {len(changed)} downloaded, {len(rows) - len(changed)} already present and verified"
              if changed else "[green]ok[/] nothing to do: every encoding was already present and verified")
    if json_:
        emit_json({"dir": encodings.resolved_dir(dest), "env": {"TIKTOKEN_ENCODINGS_BASE": encodings.resolved_dir(dest)},
                   "export": line, "files": rows})
    else:
        typer.echo(line)


@app.command("verify")
def verify(dest: Dest, json_: Json = False) -> None:
    """Check a directory: each encoding ok, missing or bad-hash. Exit 0 only when all are ok."""
    from ops import encodings
    from ops.console import emit_json, err

    states = encodings.verify(dest)
    ok = all(s == "ok" for s in states.values())
    if json_:
        emit_json({"dir": encodings.resolved_dir(dest), "ok": ok, "files": states})
    else:
        for name, state in states.items():
            style = "green" if state == "ok" else "red"
            err.print(f"[{style}]{state:>8}[/] {name}")
        if not ok:
            err.print(f"fix: ops encodings fetch --dest {dest}", markup=False)
    if not ok:
        raise typer.Exit(1)
