"""`ops spec show` and `ops spec validate`: the resolved spec and where each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops.cli.options import TP, Accelerator, Json, MaxLen, Model, Preset, Sets, SpecFile, TargetOpt, resolve_options

app = typer.Typer(help="Show and validate the deployment spec (preset -> stack file -> flags).", no_args_is_help=True)


@app.command("show")
def show(preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
         tp: TP = None, max_model_len: MaxLen = None, target: TargetOpt = None, sets: Sets = None,
         json_: Json = False) -> None:
    """Print the resolved spec and the source of every value (default, preset, file or flag).

    Examples:\n
      ops spec show --preset gpt-oss-20b\n
      ops spec show -f stack.yaml --set replicas.max=4 --json
    """
    from ops.console import emit_json, err

    r = resolve_options(preset, file, model, accelerator, tp, max_model_len, target, sets)
    if json_:
        emit_json({"spec": r.spec.model_dump(mode="json"),
                   "sources": {path: source for path, _, source in r.rows()},
                   "derived": _derived(r.spec)})
        return
    from rich.table import Table

    t = Table(title=f"deployment spec: {r.spec.name}", show_lines=False)
    t.add_column("field")
    t.add_column("value")
    t.add_column("source", style="dim")
    for path, value, source in r.rows():
        t.add_row(path, _fmt(value), source)
    for k, v in _derived(r.spec).items():
        t.add_row(k, _fmt(v), "derived")
    err.print(t)


@app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="Spec YAML file to check.")],
             json_: Json = False) -> None:
    """Check a spec file. Exit 0 when valid, 2 with every problem (field, cause, fix) when not."""
    from ops.console import emit_json, err
    from ops.spec import SpecError, resolve

    try:
        r = resolve(file=file)
    except SpecError as e:
        if json_:
            emit_json({"valid": False, "problems": [p.__dict__ for p in e.problems]})
        else:
            err.print(str(e), style="red", markup=False)
        raise typer.Exit(2)
    if json_:
        emit_json({"valid": True, "spec": r.spec.model_dump(mode="json")})
    else:
        err.print(f"[green]ok[/] {file}: {r.spec.model} on {r.spec.accelerator} x{r.spec.gpus_per_replica}, "
                  f"target {r.spec.target.value}")


def _derived(spec) -> dict:
    it = spec.instance_type
    return {
        "model_source": spec.resolved_model_source,
        "instance_type": it.name if it else None,
        "attention_backend": spec.attention_backend,
    }


def _fmt(v) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "[]"
    return "-" if v is None else str(v)
