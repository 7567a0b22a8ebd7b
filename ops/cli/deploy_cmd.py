"""The lifecycle verbs: deploy, status, smoke, logs, terminate. Each resolves the spec, picks the target
module and calls the same verb on it; nothing here knows how a target works."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ops.cli.options import TP, Accelerator, Json, MaxLen, Model, Preset, Sets, SpecFile, TargetOpt, resolve_options

Timeout = Annotated[Optional[float], typer.Option("--timeout", help="Seconds to wait for the deployment to answer before "
                                                          "failing with what is stuck.")]
Endpoint = Annotated[Optional[str], typer.Option("--endpoint", help="OpenAI base URL (default: the target's, e.g. "
                                                                    "http://127.0.0.1:8000/v1).")]
ApiKeyFile = Annotated[Optional[str], typer.Option("--api-key-file", help="File holding the API key (default: the "
                                                                          "spec's auth.api_key_env, else the "
                                                                          "target's key file).")]


_CL = "Cluster target"
_AS = "Anyscale target"
Stack = Annotated[Optional[str], typer.Option("--stack", help="Pulumi stack whose outputs name the hosts.", rich_help_panel=_CL)]
Outputs = Annotated[Optional[str], typer.Option("--outputs", help="Stack outputs JSON file (instead of asking Pulumi).", rich_help_panel=_CL)]
Identity = Annotated[Optional[str], typer.Option("--identity", "-i", help="SSH private key for the nodes.", rich_help_panel=_CL)]
User = Annotated[Optional[str], typer.Option("--user", help="SSH user on the nodes (default ubuntu).", rich_help_panel=_CL)]
KnownHosts = Annotated[Optional[str], typer.Option("--known-hosts", help="known_hosts file checked strictly.", rich_help_panel=_CL)]
AcceptNew = Annotated[Optional[bool], typer.Option("--accept-new-host-keys", help="First contact: record unknown host keys (a changed key is still refused).", rich_help_panel=_CL)]
Via = Annotated[Optional[str], typer.Option("--via", help="How to reach the nodes: ssh, bastion or ssm.", rich_help_panel=_CL)]
Bastion = Annotated[Optional[str], typer.Option("--bastion", help="Jump host, \\[user@]host\\[:port] (with --via bastion).", rich_help_panel=_CL)]
Tunnel = Annotated[Optional[bool], typer.Option("--tunnel/--no-tunnel", help="Smoke-test through an SSH tunnel (default: when the endpoint is private).", rich_help_panel=_CL)]
Name = Annotated[Optional[str], typer.Option("--name", help="Anyscale service name (default: the spec's name, deploy-gpt-oss).", rich_help_panel=_AS)]
Cloud = Annotated[Optional[str], typer.Option("--cloud", help="Anyscale cloud.", rich_help_panel=_AS)]
Project = Annotated[Optional[str], typer.Option("--project", help="Anyscale project.", rich_help_panel=_AS)]
Detach = Annotated[Optional[bool], typer.Option("--detach", help="Return once Anyscale accepted the request; don't wait.", rich_help_panel=_AS)]
RenderDir = Annotated[Optional[str], typer.Option("--render-dir", help="Where to write service.yaml and Dockerfile (default .ops/anyscale/NAME).", rich_help_panel=_AS)]
ModelSource = Annotated[Optional[str], typer.Option("--model-source", help="Weights location the replicas read (overrides the spec's).", rich_help_panel=_AS)]


def _opts(**kw) -> dict:
    """Target options the user actually gave; each target reads the ones it knows and ignores the rest."""
    return {k: v for k, v in kw.items() if v is not None}


def _spec(preset, file, model, accelerator, tp, max_model_len, target, sets):
    return resolve_options(preset, file, model, accelerator, tp, max_model_len, target, sets).spec


def _api_key(spec, st, api_key_file: str | None) -> str | None:
    """The key for client calls: --api-key-file, else the spec's (env var, key file), else the key file the
    target reports, else the SSM parameter of a stack's cluster."""
    from ops import api_key, secret_files

    if api_key_file:
        return secret_files.first_line(api_key_file)
    details = st.details or {}
    key = api_key.find(spec, details.get("api_key_file"))[0]
    if key is None and spec.auth.enabled and details.get("api_key_parameter"):
        key = api_key.from_ssm(details["api_key_parameter"], details["region"])
    return key


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Lifecycle")
    def deploy(preset: Preset = None, file: SpecFile = None, model: Model = None, accelerator: Accelerator = None,
               tp: TP = None, max_model_len: MaxLen = None, target: TargetOpt = None, sets: Sets = None,
               timeout: Timeout = None, json_: Json = False,
               stack: Stack = None, outputs: Outputs = None, identity: Identity = None, user: User = None,
               known_hosts: KnownHosts = None, accept_new_host_keys: AcceptNew = None, via: Via = None,
               bastion: Bastion = None, tunnel: Tunnel = None,
               name: Name = None, cloud: Cloud = None, project: Project = None, detach: Detach = None,
               render_dir: RenderDir = None, model_source: ModelSource = None) -> None:
        """Deploy gpt-oss to a target and wait until it answers. Running it again converges (idempotent).

        Examples:\n
          ops deploy --target local              # tiny gpt-oss on this CPU, for real\n
          ops deploy --target local -m gpt-oss-20b --accelerator L4   # on a GPU machine\n
          ops deploy --target cluster -f stack.yaml --stack dev\n
          ops deploy --target anyscale -p gpt-oss-20b
        """
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, model, accelerator, tp, max_model_len, target, sets)
        if spec.target.value == "local":
            # The local target serves from this interpreter's Ray, vLLM and torch: refuse a combination that
            # cannot import before any Ray or model is started (the other targets' engines run in their images).
            from ops.doctor import compat

            compat.require()
        opts = _opts(timeout_s=timeout, deploy_timeout_s=timeout, stack=stack, outputs_file=outputs,
                     identity_file=identity, user=user, known_hosts=known_hosts,
                     accept_new_host_keys=accept_new_host_keys, via=via, bastion=bastion, tunnel=tunnel, name=name,
                     cloud=cloud, project=project, detach=detach, render_dir=render_dir, model_source=model_source)
        result = targets.get(spec.target.value).deploy(spec, **opts)
        if json_:
            emit_json(result.to_dict())
            return
        for c in result.changed:
            err.print(f"[yellow]changed[/]   {c}")
        for u in result.unchanged:
            err.print(f"[dim]unchanged[/] {u}")
        if not result.changed:
            err.print("[green]already running[/]: the deployment already matched the spec")
        err.print(f"[green]ready[/] {result.endpoint}  model={result.model_id}")
        err.print(f"API key: {result.api_key_hint}  (send it as 'Authorization: Bearer <key>')")
        err.print(f"try: ops smoke --target {spec.target.value}")

    @app.command(rich_help_panel="Lifecycle")
    def status(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
               json_: Json = False, stack: Stack = None, outputs: Outputs = None, identity: Identity = None,
               user: User = None, known_hosts: KnownHosts = None, accept_new_host_keys: AcceptNew = None,
               via: Via = None, bastion: Bastion = None, name: Name = None, cloud: Cloud = None, project: Project = None,
               show_token: Annotated[Optional[bool], typer.Option("--show-token", help="Also print the Anyscale query token.", rich_help_panel=_AS)] = None) -> None:
        """Show the deployment: endpoint, model, Serve application / deployment / replica states, nodes."""
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, None, None, None, None, target, sets)
        st = targets.get(spec.target.value).status(spec, **_opts(
            stack=stack, outputs_file=outputs, identity_file=identity, user=user, known_hosts=known_hosts,
            accept_new_host_keys=accept_new_host_keys, via=via, bastion=bastion, name=name, cloud=cloud,
            project=project, show_token=show_token))
        if json_:
            emit_json(st.to_dict())
            return
        err.print(f"target={st.target} running={st.running} app={st.app_status} endpoint={st.endpoint} "
                  f"model={st.model_id}")
        for name, d in st.deployments.items():
            err.print(f"  {name}: {d}")
        details = dict(st.details or {})
        for host, b in (details.pop("boot", None) or {}).items():
            took = ", ".join(f"{step} {s:g}s" for step, s in b["seconds_by_step"].items())
            why = f": {b['reason']}" if b["reason"] else ""
            err.print(f"  boot {host}: {b['state']} (step {b['step']}, attempt {b['attempt']}){why}"
                      + (f" [{took}]" if took else ""))
        for k, v in details.items():
            if v:
                err.print(f"  {k}: {v}")
        if not st.running:
            raise typer.Exit(1)

    @app.command(rich_help_panel="Lifecycle")
    def terminate(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
                  json_: Json = False,
                  destroy: Annotated[Optional[bool], typer.Option("--destroy", help="Cluster: also run `pulumi destroy` on the stack.", rich_help_panel=_CL)] = None,
                  verify: Annotated[Optional[bool], typer.Option("--verify", help="Cluster: afterwards list what is still tagged with the stack and bills (instances, volumes, load balancers, NAT gateway, Elastic IPs, Auto Scaling groups, bucket, log group); fail if a GPU instance remains.", rich_help_panel=_CL)] = None,
                  stack: Stack = None, outputs: Outputs = None, identity: Identity = None, user: User = None,
                  known_hosts: KnownHosts = None, accept_new_host_keys: AcceptNew = None, via: Via = None,
                  bastion: Bastion = None,
                  name: Name = None, cloud: Cloud = None, project: Project = None, detach: Detach = None) -> None:
        """Take the deployment down. Safe to run twice: the second run says nothing was running.

        Examples:\n
          ops terminate --target local\n
          ops terminate --target cluster --stack dev --destroy --verify\n
          ops terminate --target anyscale --name deploy-gpt-oss
        """
        from ops import targets
        from ops.console import emit_json, err

        spec = _spec(preset, file, None, None, None, None, target, sets)
        res = targets.get(spec.target.value).terminate(spec, **_opts(
            destroy=destroy, verify=verify, stack=stack, outputs_file=outputs, identity_file=identity, user=user,
            known_hosts=known_hosts, accept_new_host_keys=accept_new_host_keys, via=via, bastion=bastion, name=name,
            cloud=cloud, project=project, detach=detach))
        if json_:
            emit_json(res.to_dict())
            return
        for s in res.stopped:
            err.print(f"[green]stopped[/] {s}")
        for s in res.already_stopped:
            err.print(f"[dim]not running[/] {s}")
        if not res.stopped:
            err.print("nothing was running")

    @app.command(rich_help_panel="Lifecycle")
    def smoke(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
              endpoint: Endpoint = None, api_key_file: ApiKeyFile = None,
              max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer (reasoning "
                                                                           "included).")] = 256,
              json_: Json = False, stack: Stack = None, outputs: Outputs = None, identity: Identity = None,
              user: User = None, known_hosts: KnownHosts = None, accept_new_host_keys: AcceptNew = None,
              via: Via = None, bastion: Bastion = None) -> None:
        """Send real requests the way the gpt-oss guides' clients do and check what the model does: reasoning
        apart from the answer (under `reasoning` and `reasoning_content`, streamed and not), each reasoning
        effort, a tool call the model makes itself and its answer to the result, the Responses API with a
        function-tool round. Exits 1 when any check fails."""
        from ops import smoke as smoke_mod
        from ops import targets
        from ops.console import emit_json, err
        from ops.errors import OpsError

        spec = _spec(preset, file, None, None, None, None, target, sets)
        st = targets.get(spec.target.value).status(spec, **_opts(
            stack=stack, outputs_file=outputs, identity_file=identity, user=user, known_hosts=known_hosts,
            accept_new_host_keys=accept_new_host_keys, via=via, bastion=bastion))
        url = endpoint or st.endpoint
        if not url:
            raise OpsError(f"no endpoint: the {spec.target.value} deployment is not running.",
                           fix=f"deploy first (ops deploy --target {spec.target.value}) or pass --endpoint URL.")
        key = _api_key(spec, st, api_key_file)
        report = smoke_mod.run(url, spec.model_id, key, max_tokens=max_tokens,
                               echo=None if json_ else (lambda s: err.print(s, markup=False)))
        if json_:
            emit_json(report.to_dict())
        else:
            for c in report.checks:
                mark = "[green]ok[/]  " if c.ok else "[red]FAIL[/]"
                err.print(f"{mark} {c.name:<22} {c.seconds:6.2f}s  {c.error or ''}")
            err.print(f"{sum(c.ok for c in report.checks)}/{len(report.checks)} checks passed against {url}")
        if not report.ok:
            raise typer.Exit(1)

    @app.command(rich_help_panel="Lifecycle")
    def logs(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
             lines: Annotated[int, typer.Option("--lines", "-n", help="Last lines per log file.")] = 50,
             json_: Json = False, stack: Stack = None, outputs: Outputs = None, identity: Identity = None,
             user: User = None, known_hosts: KnownHosts = None, accept_new_host_keys: AcceptNew = None,
             via: Via = None, bastion: Bastion = None) -> None:
        """Replica and engine logs from every node of the deployment."""
        from ops import targets
        from ops.console import emit_json, err
        from ops.errors import OpsError

        spec = _spec(preset, file, None, None, None, None, target, sets)
        mod = targets.get(spec.target.value)
        if not hasattr(mod, "logs"):
            raise OpsError(f"`ops logs` is not available for the {spec.target.value} target in this version.", code=3)
        found = mod.logs(spec, lines=lines, **_opts(stack=stack, outputs_file=outputs, identity_file=identity,
                                                    user=user, known_hosts=known_hosts,
                                                    accept_new_host_keys=accept_new_host_keys, via=via,
                                                    bastion=bastion))
        if json_:
            emit_json(found)
            return
        for path, text in found.items():
            err.print(f"[bold]== {path}[/]")
            for line in text:
                err.print(line, markup=False, highlight=False)
