"""The lifecycle verbs: deploy, status, smoke, logs, terminate. Each resolves the spec, picks the target
module and calls the same verb on it; nothing here knows how a target works."""

from __future__ import annotations

import typer

from ops.cli.options import TP, Accelerator, Json, MaxLen, Model, Preset, Sets, SpecFile, TargetOpt, resolve_options


def _spec(preset, file, model, accelerator, tp, max_model_len, target, sets):
    return resolve_options(preset, file, model, accelerator, tp, max_model_len, target, sets).spec


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Lifecycle")
    def deploy(preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
               tp: TP = None, max_model_len: MaxLen = None, target: TargetOpt = None, sets: Sets = None,
               json_: Json = False) -> None:
        """Deploy gpt-oss to a target and wait until it answers. Running it again converges (idempotent).

        Examples:\n
          ops deploy --target local              # tiny gpt-oss on this CPU, for real\n
          ops deploy --target local -m gpt-oss-20b --accelerator L4   # on a GPU machine\n
          ops deploy --target cluster -f stack.yaml\n
          ops deploy --target anyscale -p gpt-oss-20b
        """
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, model, accelerator, tp, max_model_len, target, sets)
        result = targets.get(spec.target.value).deploy(spec)
        if json_:
            emit_json(result.to_dict())
        else:
            err.print(f"[green]ready[/] {result.endpoint}  model={result.model_id}  api key: {result.api_key_hint}")

    @app.command(rich_help_panel="Lifecycle")
    def status(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
               json_: Json = False) -> None:
        """Show the deployment: endpoint, model, Serve application / deployment / replica states, nodes."""
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, None, None, None, None, target, sets)
        st = targets.get(spec.target.value).status(spec)
        if json_:
            emit_json(st.to_dict())
            return
        err.print(f"target={st.target} running={st.running} app={st.app_status} endpoint={st.endpoint} "
                  f"model={st.model_id}")
        for name, d in st.deployments.items():
            err.print(f"  {name}: {d}")
        if not st.running:
            raise typer.Exit(1)

    @app.command(rich_help_panel="Lifecycle")
    def terminate(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
                  json_: Json = False) -> None:
        """Take the deployment down. Safe to run twice: the second run says nothing was running."""
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, None, None, None, None, target, sets)
        res = targets.get(spec.target.value).terminate(spec)
        if json_:
            emit_json(res.to_dict())
            return
        for s in res.stopped:
            err.print(f"[green]stopped[/] {s}")
        for s in res.already_stopped:
            err.print(f"[dim]not running[/] {s}")

    @app.command(rich_help_panel="Lifecycle")
    def smoke(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None) -> None:
        """Send real requests (chat, streaming with reasoning, tools, Responses API) and check the answers."""
        from ops.errors import OpsError

        raise OpsError("`ops smoke` is not available in this version.", code=3)

    @app.command(rich_help_panel="Lifecycle")
    def logs(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None) -> None:
        """Replica and engine logs from every node of the deployment."""
        from ops.errors import OpsError

        raise OpsError("`ops logs` is not available in this version.", code=3)
