"""Options shared by every command that takes a deployment spec, and the one call that resolves them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ops.catalog import ACCELERATORS, DEFAULT_PRESET, MODELS, PRESETS
from ops.spec import Resolved, parse_set, resolve

Preset = Annotated[Optional[str], typer.Option("--preset", "-p", help=f"Start from a preset: {', '.join(PRESETS)} (default {DEFAULT_PRESET}).", rich_help_panel="Spec")]
SpecFile = Annotated[Optional[Path], typer.Option("--file", "-f", help="Stack spec YAML (layered over the preset).", rich_help_panel="Spec")]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model: {', '.join(MODELS)}.", rich_help_panel="Spec")]
Accelerator = Annotated[Optional[str], typer.Option("--accelerator", help=f"GPU kind: {', '.join(a for a in ACCELERATORS if a != 'CPU')} (or CPU).", rich_help_panel="Spec")]
TP = Annotated[Optional[int], typer.Option("--tp", "--tensor-parallel-size", help="Tensor-parallel size (GPUs per replica).", rich_help_panel="Spec")]
MaxLen = Annotated[Optional[int], typer.Option("--max-model-len", help="Context length per request, in tokens.", rich_help_panel="Spec")]
TargetOpt = Annotated[Optional[str], typer.Option("--target", "-t", help="Where to deploy: local, cluster or anyscale.", rich_help_panel="Spec")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override any spec field: --set replicas.max=4 (repeatable).", rich_help_panel="Spec")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def resolve_options(preset: str | None = None, file: Path | None = None, model: str | None = None,
                    accelerator: str | None = None, tp: int | None = None, max_model_len: int | None = None,
                    target: str | None = None, sets: list[str] | None = None) -> Resolved:
    """Flags win over the file, the file over the preset. A model flag alone also picks that model's preset."""
    flags = parse_set(sets or [])
    named = {"model": model, "accelerator": accelerator, "tensor_parallel_size": tp,
             "max_model_len": max_model_len, "target": target}
    flags.update({k: v for k, v in named.items() if v is not None})
    if preset is None and file is None and model is not None:
        from ops import catalog

        key = catalog.MODEL_ALIASES.get(model, model)
        preset = key if key in catalog.PRESETS else None
    return resolve(preset=preset, file=file, flags=flags)
