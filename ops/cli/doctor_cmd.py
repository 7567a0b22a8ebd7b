"""`ops doctor`: Recognise known gpt-oss failures (environment checks and log signatures) and point to the runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ops.cli.options import Accelerator, Json, MaxLen, Model, Preset, Sets, SpecFile, TP


def register(app: typer.Typer) -> None:
    @app.command("doctor", rich_help_panel="Operate")
    def _cmd(
        target: Annotated[str, typer.Option("--target", "-t", help="Where to look: local (this machine) or cluster "
                                                                   "(every node's logs over SSH).")] = "local",
        log: Annotated[Optional[list[Path]], typer.Option("--log", help="Scan this log file instead of the Ray "
                                                                        "session logs (repeatable).")] = None,
        host: Annotated[Optional[list[str]], typer.Option("--host", help="USER@HOST of a cluster node whose Ray "
                                                                         "logs to scan (repeatable).")] = None,
        encodings: Annotated[Optional[Path], typer.Option("--encodings", help="Directory with the tiktoken "
                                                          "encodings (default: $TIKTOKEN_ENCODINGS_BASE).")] = None,
        python: Annotated[Optional[str], typer.Option("--python", help="Interpreter of the serving environment to "
                                                      "inspect (default: this one).")] = None,
        dashboard: Annotated[Optional[str], typer.Option("--dashboard", help="Ray dashboard to ask for the Serve "
                                                         "status (default: $RAY_DASHBOARD_ADDRESS or "
                                                         "http://127.0.0.1:8265 for the local target).")] = None,
        preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
        tp: TP = None, max_model_len: MaxLen = None, sets: Sets = None, json_out: Json = False,
    ) -> None:
        """Recognise known gpt-oss failures (environment checks and log signatures) and point to the runbook.

        One row per check: ok, warn or fail, with the cause, the fix and the runbook. Exits 1 when anything fails.
        """
        from ops.console import emit_json, err
        from ops.doctor import diagnose, report
        from ops.errors import OpsError
        from ops.spec import SpecError

        if target not in ("local", "cluster"):
            raise OpsError(f"--target {target!r} is not a doctor target.", fix="use --target local or --target cluster.")
        for p in log or []:  # a typo in a path is the user's to fix, before any check runs
            if not p.is_file():
                raise OpsError(f"--log {p}: no such file.", fix="pass the path of a log file, e.g. "
                               "/tmp/ray/session_latest/logs/serve/replica_default_LLMServer*.log")
        from ops.cli.options import resolve_options

        findings: list = []
        spec = None
        try:
            spec = resolve_options(preset, file, model, accelerator, tp, max_model_len, None, sets).spec
        except SpecError as e:
            findings.extend(diagnose.spec_problems(e))
        findings.extend(diagnose.environment(spec, encodings_dir=str(encodings) if encodings else None, python=python,
                                             dashboard=dashboard, target=target))
        findings.extend(diagnose.logs(target, [str(p) for p in log or []], host))
        findings = report.sort(findings)
        if json_out:
            emit_json([f.to_dict() for f in findings])
        else:
            report.render(findings, err)
        raise typer.Exit(report.exit_code(findings))
