"""The `anyscale` deploy target: gpt-oss as an Anyscale service.

deploy renders service.yaml and a self-contained Dockerfile from the spec (ops/render.py, the same Serve
application every target runs), validates them with Anyscale's `ServiceConfig` and Ray's own models, writes
them under `.ops/anyscale/NAME/` so the operator can see exactly what was sent, and hands the config to the
Anyscale SDK, which builds the image, uploads the code and rolls the service out. It then waits, showing the
state, until the service is RUNNING, and reports the endpoint (the service's query_url + /v1, the OpenAI base
URL) and where the query token is (never the token itself).

Idempotence: every rendered config carries a version name derived from its content. Deploying a config that
is already running (or already rolling out) changes nothing; a different config becomes a rolling update;
terminate twice is fine, the second run says nothing was running.

Options (all keyword, all optional, so `deploy(spec)` works as the CLI calls it):
  name             service name (default: spec.name, i.e. deploy-gpt-oss)
  cloud, project   Anyscale cloud and project (default: the organization's defaults)
  timeout_s        how long deploy waits for RUNNING (default 1800 s)
  detach           deploy returns once the rollout is accepted, without waiting
  render_dir       where service.yaml and the Dockerfile are written (default .ops/anyscale/NAME)
  model_source     weights location the replicas read, overriding the spec's
  show_token       status includes the query token (only when asked)
  sdk              an `anyscale.service.ServiceSDK` (tests pass one bound to the fake control plane)
  poll_interval_s, unhealthy_grace_s   waiting cadence; how long UNHEALTHY may last before giving up
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.anyscale_client import RUNBOOK, is_not_found, sdk_errors, service_sdk
from ops.errors import OpsError
from ops.spec import DeploymentSpec, Target, validate
from ops.targets import DeployResult, Status, TerminateResult

DEFAULT_TIMEOUT_S = 1800.0  # image build + GPU node + weights download + engine start
TERMINATE_TIMEOUT_S = 600.0
POLL_INTERVAL_S = 10.0
UNHEALTHY_GRACE_S = 300.0  # Anyscale: "In most cases these issues should automatically recover."

SERVING = {"RUNNING", "UPDATING", "ROLLING_OUT", "ROLLING_BACK"}  # the endpoint answers in these states
IN_PROGRESS = {"STARTING", "UPDATING", "ROLLING_OUT", "ROLLING_BACK", "UNKNOWN"}
FAILED = {"SYSTEM_FAILURE"}


@dataclass
class Rendered:
    """What deploy sends: the service config (a dict ServiceConfig accepts), the Dockerfile, their version."""

    service: dict[str, Any]
    dockerfile: str
    version: str
    directory: Path | None = None


# ------------------------------------------------------------------------------------------ rendering


def spec_for_anyscale(spec: DeploymentSpec, name: str | None = None) -> DeploymentSpec:
    """The spec, re-validated as an Anyscale deployment: a combination Anyscale cannot serve (a CPU
    accelerator, for one) is refused here, naming the field, before the SDK is touched."""
    if spec.target is Target.anyscale and (name is None or name == spec.name):
        return spec
    data = spec.model_dump(mode="json")
    data["target"] = Target.anyscale.value
    if name:
        data["name"] = name
    return validate(data)


def render_service(spec: DeploymentSpec, *, directory: str | Path | None = None, model_source: str | None = None,
                   cloud: str | None = None, project: str | None = None, check: bool = True) -> Rendered:
    """service.yaml + Dockerfile for the spec, validated with the SDK's and Ray's models, written to `directory`.

    On Anyscale the endpoint is gated by the service's query token (Anyscale's load balancer checks the bearer
    token), so the application's own API-key check is switched off there: with it on, replicas would refuse to
    start without GPT_OSS_API_KEY, and clients could not satisfy two different bearer tokens at once.
    """
    from ops import render

    out = Path(directory).expanduser().resolve() if directory is not None else None
    containerfile = str(out / "Dockerfile") if out is not None else "./Dockerfile"
    service = render.anyscale_service(spec, working_dir=str(render.PROJECT_ROOT), containerfile=containerfile,
                                      model_source=model_source)
    if cloud:
        service["cloud"] = cloud
    if project:
        service["project"] = project
    dockerfile = render.self_contained_dockerfile()
    service["version_name"] = config_version(spec, service, dockerfile)
    if check:
        render.validate_anyscale_service(service)
    if out is not None:
        render.write_anyscale_dir(out, service, dockerfile)
    return Rendered(service, dockerfile, service["version_name"], out)


def config_version(spec: DeploymentSpec, service: dict[str, Any], dockerfile: str) -> str:
    """A version name that changes exactly when what runs changes (the paths of this machine do not count)."""
    stable = {k: v for k, v in service.items() if k not in ("containerfile", "working_dir", "version_name")}
    blob = json.dumps(stable, sort_keys=True, default=str) + "\n" + dockerfile
    return f"{spec.model}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


# ------------------------------------------------------------------------------------------- the verbs


def deploy(spec: DeploymentSpec, *, name: str | None = None, cloud: str | None = None, project: str | None = None,
           timeout_s: float = DEFAULT_TIMEOUT_S, detach: bool = False, render_dir: str | Path | None = None,
           model_source: str | None = None, sdk: Any = None, poll_interval_s: float = POLL_INTERVAL_S,
           unhealthy_grace_s: float = UNHEALTHY_GRACE_S, **_: Any) -> DeployResult:
    """Render, validate, deploy (or roll out an update, or do nothing if this config already runs), wait."""
    from anyscale.service.models import ServiceConfig

    from ops.console import err

    spec = spec_for_anyscale(spec, name)
    name = spec.name
    directory = Path(render_dir) if render_dir is not None else Path.cwd() / ".ops" / "anyscale" / name
    rendered = render_service(spec, directory=directory, model_source=model_source, cloud=cloud, project=project)
    err.print(f"[green]rendered[/] {directory}/service.yaml and Dockerfile (version {rendered.version}; "
              f"validated with Anyscale's ServiceConfig, ServeDeploySchema and LLMConfig)", soft_wrap=True)
    config = ServiceConfig(**rendered.service)

    sdk = sdk if sdk is not None else service_sdk()
    current = _lookup(sdk, name, cloud, project)
    state = _state(current) if current is not None else None
    changed: list[str] = []
    unchanged: list[str] = []
    running_version = _version_names(current)
    if current is not None and state in ("RUNNING", *IN_PROGRESS) and rendered.version in running_version:
        what = "running" if state == "RUNNING" else f"already {state}"
        unchanged.append(f"anyscale service {name}: version {rendered.version} {what}")
        err.print(f"[dim]unchanged[/] service {name} already runs version {rendered.version}", soft_wrap=True)
    else:
        with sdk_errors("deploy", name):
            sdk.deploy(config)
        if current is None:
            changed.append(f"anyscale service {name}: created (version {rendered.version})")
        elif state == "TERMINATED":
            changed.append(f"anyscale service {name}: restarted (version {rendered.version})")
        else:
            old = ", ".join(sorted(running_version)) or "unknown"
            changed.append(f"anyscale service {name}: rolling update {old} -> {rendered.version}")
        err.print(f"[green]deployed[/] {changed[-1]}", soft_wrap=True)

    final = None
    if not detach:
        final = wait(spec, timeout_s, sdk=sdk, cloud=cloud, project=project, poll_interval_s=poll_interval_s,
                     unhealthy_grace_s=unhealthy_grace_s, version=rendered.version)
    endpoint = (final.endpoint if final is not None else None) or _query_url(_lookup(sdk, name, cloud, project))
    return DeployResult(endpoint=endpoint or "", model_id=spec.model_id, api_key_hint=token_hint(spec, name),
                        changed=changed, unchanged=unchanged)


def status(spec: DeploymentSpec, *, name: str | None = None, cloud: str | None = None, project: str | None = None,
           show_token: bool = False, sdk: Any = None, model_source: str | None = None, **_: Any) -> Status:
    """The service's state, endpoint and versions; `details.config_matches_spec` says whether the running
    version is what the spec renders to now. A service that does not exist is reported, not raised."""
    name = name or spec.name
    sdk = sdk if sdk is not None else service_sdk()
    current = _lookup(sdk, name, cloud, project)
    if current is None:
        return Status(target="anyscale", running=False, model_id=spec.model_id, app_status="NOT_FOUND",
                      details={"name": name, "message": f"no Anyscale service named {name!r}",
                               "fix": "deploy it with `ops deploy --target anyscale`"})
    return _to_status(spec, sdk, current, show_token=show_token, model_source=model_source)


def wait(spec: DeploymentSpec, timeout_s: float = DEFAULT_TIMEOUT_S, *, name: str | None = None,
         cloud: str | None = None, project: str | None = None, sdk: Any = None,
         poll_interval_s: float = POLL_INTERVAL_S, unhealthy_grace_s: float = UNHEALTHY_GRACE_S,
         version: str | None = None, **_: Any) -> Status:
    """Poll until the service is RUNNING (with `version`, if given), showing each state change.

    The SDK's own `anyscale.service.wait` polls until its timeout even when the service has failed; this loop
    stops at SYSTEM_FAILURE, at TERMINATED, and at UNHEALTHY that outlasts `unhealthy_grace_s`, with the
    status checklist's message in the error.
    """
    from ops.console import err

    name = name or spec.name
    sdk = sdk if sdk is not None else service_sdk()
    start = time.monotonic()
    last = None
    unhealthy_since: float | None = None
    with err.status(f"waiting for anyscale service {name}") as spinner:
        while True:
            current = _lookup(sdk, name, cloud, project)
            elapsed = time.monotonic() - start
            if current is None:
                raise OpsError(f"anyscale service {name!r} does not exist (anymore).",
                               fix="deploy it with `ops deploy --target anyscale`.", runbook=RUNBOOK, code=1)
            state = _state(current)
            if state != last:
                err.print(f"  [{elapsed:5.0f}s] service {name}: {state}", soft_wrap=True)
                last = state
            spinner.update(f"waiting for anyscale service {name}: {state} ({elapsed:.0f}s of {timeout_s:.0f}s)")
            ready = state == "RUNNING" and (version is None or _primary_name(current) == version)
            if ready:
                st = _to_status(spec, sdk, current)
                err.print(f"[green]running[/] {st.endpoint}", soft_wrap=True)
                return st
            if state == "UNHEALTHY":
                unhealthy_since = unhealthy_since if unhealthy_since is not None else time.monotonic()
                if time.monotonic() - unhealthy_since >= unhealthy_grace_s:
                    raise _failure(name, state, current)
            else:
                unhealthy_since = None
            if state in FAILED or state == "TERMINATED":
                raise _failure(name, state, current)
            if elapsed >= timeout_s:
                raise OpsError(
                    f"anyscale service {name!r} is still {state} after {timeout_s:.0f}s.",
                    fix=(f"it keeps going in the background: follow it with `ops status --target anyscale` or "
                         f"`anyscale service status -n {name}`, or in the console (Services -> {name} -> Events, "
                         f"Logs); wait longer with a larger --timeout; stop paying with "
                         f"`ops terminate --target anyscale`."),
                    runbook=RUNBOOK, code=1)
            time.sleep(poll_interval_s)


def terminate(spec: DeploymentSpec, *, name: str | None = None, cloud: str | None = None,
              project: str | None = None, sdk: Any = None, detach: bool = False,
              timeout_s: float = TERMINATE_TIMEOUT_S, poll_interval_s: float = POLL_INTERVAL_S,
              **_: Any) -> TerminateResult:
    """Terminate the service and wait for TERMINATED. A missing or already terminated service is no error."""
    from ops.console import err

    name = name or spec.name
    sdk = sdk if sdk is not None else service_sdk()
    current = _lookup(sdk, name, cloud, project)
    label = f"anyscale service {name}"
    if current is None:
        return TerminateResult(already_stopped=[f"{label} (no such service)"], details={"name": name})
    state = _state(current)
    if state == "TERMINATED":
        return TerminateResult(already_stopped=[label], details={"name": name, "state": state})
    if state != "TERMINATING":
        with sdk_errors("terminate", name):
            sdk.terminate(name=name, cloud=cloud, project=project)
    result = TerminateResult(stopped=[label], details={"name": name, "service_id": getattr(current, "id", None)})
    if detach:
        return result
    start = time.monotonic()
    with err.status(f"terminating anyscale service {name}") as spinner:
        while True:
            current = _lookup(sdk, name, cloud, project)
            state = _state(current) if current is not None else "TERMINATED"
            elapsed = time.monotonic() - start
            spinner.update(f"terminating anyscale service {name}: {state} ({elapsed:.0f}s)")
            if state == "TERMINATED":
                result.details["state"] = state
                return result
            if elapsed >= timeout_s:
                raise OpsError(f"anyscale service {name!r} is still {state} after {timeout_s:.0f}s.",
                               fix=f"run `ops terminate --target anyscale` again later, or check the console "
                                   f"(Services -> {name}); until it is TERMINATED its nodes may still bill.",
                               runbook=RUNBOOK, code=1)
            time.sleep(poll_interval_s)


# ------------------------------------------------------------------------------------------- helpers


def token_hint(spec: DeploymentSpec, name: str) -> str:
    """Where the query token is. The token itself is never printed unless asked (`status(show_token=True)`)."""
    if not spec.auth.enabled:
        return "none: auth.enabled is false, the endpoint is open to anyone who has its URL"
    return (f"Anyscale query token: `anyscale service status -n {name} -o json` (query_auth_token), "
            f"or the console's Query button on the service page")


def _lookup(sdk: Any, name: str, cloud: str | None, project: str | None) -> Any:
    """ServiceStatus, or None when no service has that name (the SDK raises RuntimeError then)."""
    try:
        with sdk_errors("look up", name):
            return sdk.status(name=name, cloud=cloud, project=project)
    except OpsError as e:
        if e.__cause__ is not None and is_not_found(e.__cause__, name):
            return None
        raise


def _state(st: Any) -> str:
    state = getattr(st, "state", None)
    return str(getattr(state, "value", state) or "UNKNOWN")


def _query_url(st: Any) -> str | None:
    """The OpenAI base URL clients use: the service's query_url plus /v1 (as every target reports it)."""
    url = getattr(st, "query_url", None) if st is not None else None
    if not url:
        return None
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _primary_name(st: Any) -> str | None:
    v = getattr(st, "primary_version", None)
    return getattr(v, "name", None) if v is not None and not isinstance(v, (str, dict)) else None


def _version_names(st: Any) -> set[str]:
    if st is None:
        return set()
    names = set()
    for v in [getattr(st, "primary_version", None), getattr(st, "canary_version", None),
              *(getattr(st, "versions", None) or [])]:
        if v is not None and not isinstance(v, (str, dict)) and getattr(v, "name", None):
            names.add(v.name)
    return names


def _versions(st: Any) -> list[dict[str, Any]]:
    out = []
    for role in ("primary_version", "canary_version"):
        v = getattr(st, role, None)
        if v is not None and not isinstance(v, (str, dict)):
            out.append({"role": role.split("_")[0], "name": v.name, "id": v.id,
                        "state": str(getattr(v.state, "value", v.state)), "weight": v.weight})
    return out


def _checklist_problems(st: Any) -> list[dict[str, str]]:
    """Checklist rows that are not RUNNING, each with the reconciler's message (what failed, and why)."""
    checklist = getattr(st, "service_status_checklist", None)
    if checklist is None or isinstance(checklist, dict):
        return []
    items = list(checklist.shared or [])
    for per_version in checklist.per_version or []:
        items.extend(per_version.items or [])
    return [{"component": i.label or i.kind, "state": i.state, "message": i.message}
            for i in items if i.state != "RUNNING"]


def _failure(name: str, state: str, st: Any) -> OpsError:
    problems = _checklist_problems(st)
    why = "; ".join(f"{p['component']} {p['state']}: {p['message']}" if p["message"] else
                    f"{p['component']} {p['state']}" for p in problems)
    return OpsError(
        f"anyscale service {name!r} is {state}" + (f" — {why}" if why else "."),
        fix=(f"read the replica and controller logs (`anyscale service controller-logs -n {name}`, or the "
             f"console: Services -> {name} -> Logs). Common causes: no GPU quota for the instance type, weights "
             f"the replicas cannot download, a config that does not fit the GPU (`ops plan`). Fix the spec and "
             f"run `ops deploy --target anyscale` again, or stop paying with `ops terminate --target anyscale`."),
        runbook=RUNBOOK, code=1)


def _to_status(spec: DeploymentSpec, sdk: Any, st: Any, *, show_token: bool = False,
               model_source: str | None = None) -> Status:
    state = _state(st)
    details: dict[str, Any] = {
        "name": st.name,
        "service_id": st.id,
        "query_url": getattr(st, "query_url", None),
        "versions": _versions(st),
        "problems": _checklist_problems(st),
        "token": token_hint(spec, st.name),
        "dashboard": "Anyscale console: Services -> " + st.name + " -> Metrics -> View in Grafana -> "
                     "Serve LLM Dashboard",
    }
    client = getattr(getattr(sdk, "_private_sdk", None), "client", None)
    try:
        details["console_url"] = client.get_service_ui_url(st.id) if client is not None else None
    except Exception:  # a convenience only; never fail a status for it
        details["console_url"] = None
    try:
        wanted = render_service(spec_for_anyscale(spec, st.name), model_source=model_source, check=False).version
        details["spec_version"] = wanted
        details["config_matches_spec"] = wanted == _primary_name(st)
    except Exception:  # e.g. the tiny model without a model_source: nothing to compare against
        details["spec_version"] = None
    if show_token:
        details["query_auth_token"] = getattr(st, "query_auth_token", None)
    return Status(target="anyscale", running=state in SERVING, endpoint=_query_url(st), model_id=spec.model_id,
                  app_status=state, details=details)
