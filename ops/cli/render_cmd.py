"""`ops render`: Render config files from the spec (Serve config, Anyscale service)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.llm_config import IMAGE_ENCODINGS_DIR
from ops.cli.options import TP, Accelerator, MaxLen, Model, Preset, Sets, SpecFile, TargetOpt, resolve_options

app = typer.Typer(help="Render config files from the spec (Serve config, Anyscale service).", no_args_is_help=True)

ModelSource = Annotated[Optional[str], typer.Option("--model-source", help="Weights location the replicas read (required for the tiny model, which has no hub id); overrides the spec's.")]
EncodingsDir = Annotated[str, typer.Option("--encodings-dir", help="TIKTOKEN_ENCODINGS_BASE on the replicas (the image bakes them into this path).")]


@app.command("serve-config")
def serve_config(output: Annotated[str, typer.Option("--output", "-o", help="File to write ('-' for stdout).")],
                 preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
                 tp: TP = None, max_model_len: MaxLen = None, target: TargetOpt = None, sets: Sets = None,
                 model_source: ModelSource = None, encodings_dir: EncodingsDir = IMAGE_ENCODINGS_DIR) -> None:
    """Render the production Ray Serve config file from the spec, validated with Ray's own models.

    Examples:\n
      ops render serve-config --preset gpt-oss-20b -o serve-config.yaml\n
      ops render serve-config --preset gpt-oss-120b --set replicas.max=4 -o -
    """
    from rich.markup import escape

    from ops import render
    from ops.console import err

    spec = resolve_options(preset, file, model, accelerator, tp, max_model_len, target, sets).spec
    config = render.serve_config(spec, model_source=model_source, encodings_dir=encodings_dir or None)
    render.validate_serve_config(config)
    written = render.write_text(output, render.to_yaml(config, render.RENDERED_HEADER))
    if written:
        err.print(f"[green]wrote[/] {escape(str(written))} ({spec.model} on {spec.accelerator} x{spec.gpus_per_replica}; "
                  f"validated with ServeDeploySchema and LLMConfig)\n  deploy: serve deploy {escape(str(written))}", soft_wrap=True)


@app.command("anyscale")
def anyscale(output: Annotated[str, typer.Option("--output", "-o", help="Directory for service.yaml and Dockerfile ('-': service.yaml on stdout).")],
             preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
             tp: TP = None, max_model_len: MaxLen = None, target: TargetOpt = None, sets: Sets = None,
             model_source: ModelSource = None, encodings_dir: EncodingsDir = IMAGE_ENCODINGS_DIR,
             working_dir: Annotated[Optional[str], typer.Option("--working-dir", help="Code directory Anyscale uploads, relative to DIR (default: this project's root).")] = None) -> None:
    """Render an Anyscale service (service.yaml + a self-contained Dockerfile) from the spec.

    Run `anyscale service deploy -f service.yaml` from inside DIR: the paths in it are relative to DIR.

    Examples:\n
      ops render anyscale --preset gpt-oss-20b -o anyscale/
    """
    from rich.markup import escape

    from ops import render
    from ops.console import err

    spec = resolve_options(preset, file, model, accelerator, tp, max_model_len, target, sets).spec
    to_stdout = output == "-"
    base = Path.cwd() if to_stdout else Path(output).expanduser().resolve()
    wd = working_dir if working_dir is not None else os.path.relpath(render.PROJECT_ROOT, base)
    service = render.anyscale_service(spec, working_dir=wd, model_source=model_source,
                                      encodings_dir=encodings_dir or None)
    dockerfile = render.self_contained_dockerfile()
    render.validate_anyscale_service(service)
    if to_stdout:
        render.write_text("-", render.to_yaml(service, render.RENDERED_HEADER))
        err.print("note: only service.yaml was printed; its containerfile ./Dockerfile is written by "
                  "`ops render anyscale -o DIR`.", soft_wrap=True)
        return
    paths = render.write_anyscale_dir(base, service, dockerfile)
    err.print(f"[green]wrote[/] {escape(', '.join(str(p) for p in paths))} (validated with Anyscale's ServiceConfig, "
              f"ServeDeploySchema and LLMConfig)\n  deploy: cd {escape(str(base))} && anyscale service deploy -f service.yaml",
              soft_wrap=True)
