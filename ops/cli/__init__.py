"""The `ops` command line. This module only wires command modules together; each command lives in its own
module under ops/cli/, and heavy SDKs (ray, vllm, pulumi_aws, anyscale, fabric) are imported inside the
functions that use them so `ops --help` starts fast."""

from __future__ import annotations

import typer

from ops.cli import (bench_cmd, dashboards_cmd, deploy_cmd, doctor_cmd, encodings_cmd, plan_cmd, render_cmd,
                     sample_cmd, spec_cmd)

app = typer.Typer(
    name="ops",
    help=("Stand up gpt-oss (20b, 120b) behind an OpenAI-compatible endpoint with Ray Serve LLM on vLLM, "
          "and keep it running.\n\n"
          "Start here: `ops deploy --target local` serves a tiny gpt-oss on this machine's CPU; "
          "`ops spec show --preset gpt-oss-20b` shows what a real deployment would be."),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

deploy_cmd.register(app)  # deploy, status, smoke, logs, terminate
app.add_typer(spec_cmd.app, name="spec")
app.add_typer(render_cmd.app, name="render")
app.add_typer(encodings_cmd.app, name="encodings")
dashboards_cmd.register(app)  # dashboards, metrics
doctor_cmd.register(app)
plan_cmd.register(app)
bench_cmd.register(app)
sample_cmd.register(app)  # direct sampling with harmony on vLLM's offline engine


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True)) -> None:
    if version:
        from ops import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console-script entry point: turn known errors into one actionable message and an exit code."""
    from ops.errors import OpsError
    from ops.spec import SpecError

    try:
        app()
    except SpecError as e:
        from ops.console import err

        err.print(str(e), style="red", markup=False)
        raise SystemExit(2)
    except OpsError as e:
        from ops.console import err

        err.print(f"error: {e.message}", style="bold red", markup=False)
        if e.fix:
            err.print(f"fix: {e.fix}", markup=False)
        if e.runbook:
            err.print(f"runbook: {e.runbook}", markup=False)
        raise SystemExit(e.code)
