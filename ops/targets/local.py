"""The `local` deploy target: Ray Serve LLM on this machine, for real.

`deploy` prepares everything the app needs (verified tiktoken encodings, the tiny gpt-oss checkpoint on a CPU,
an API key file), starts a local Ray head unless one runs, submits the Serve config rendered from the spec
(the same `app.serve_gpt_oss:build_app` application production uses, via the dashboard's Serve REST API that
`serve deploy` calls), waits with each stage named, and sends one real request. It converges: a second run with
the same spec finds the application running and changes nothing.

Ray is driven through its CLI and its dashboard's HTTP API, so this module never imports Ray: the CLI stays
fast, and the Ray driver never lives inside the `ops` process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ops import ray_local
from ops.dashboards import METRICS_EXPORT_PORT
from ops.errors import OpsError
from ops.spec import DeploymentSpec
from ops.targets import DeployResult, Status, TerminateResult

HOST = "127.0.0.1"
GCS_PORT = 6379
DASHBOARD_PORT = 8265
RAY_NUM_CPUS = 8  # logical CPUs: with the real core count (2) the ingress replica is never scheduled
DEFAULT_TIMEOUT_S = 900.0
RUNBOOK = "docs/local.md"
STAGES = ("encodings", "checkpoint", "ray", "deploy", "replicas", "model load", "smoke")


# ------------------------------------------------------------------------------------------ paths


def home() -> Path:
    """$GPT_OSS_OPS_HOME, else ~/.cache/gpt-oss-ops (shared with the tiny checkpoint cache)."""
    from ops.tiny_model import cache_root

    return cache_root()


def key_file() -> Path:
    return home() / "api_key"


def ray_token_file() -> Path:
    """The local Ray's auth token (0600), beside the API key file; never the machine-wide ~/.ray/auth_token."""
    return home() / "ray_auth_token"


def ray_env() -> dict[str, str]:
    """The environment of every Ray process and Ray CLI call of this target: token authentication on with the
    target's own token, and Ray in single-node mode, in which it binds every listener to 127.0.0.1
    (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`; without it Ray 2.60 binds GCS, raylet, object manager, worker and
    metrics ports on all interfaces and rewrites `--node-ip-address 127.0.0.1` to the LAN address)."""
    from ops import ray_token

    return {**os.environ, **ray_token.process_env(ray_token_file()), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_USAGE_STATS_ENABLED": "0"}


def state_file() -> Path:
    return home() / "local" / "deployment.json"


def config_file() -> Path:
    return home() / "local" / "serve-config.yaml"


def encodings_dir() -> Path:
    env = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    return Path(env).expanduser() if env else home() / "tiktoken_encodings"


def _bin(name: str) -> str:
    """A console script of the running environment (ray), else from PATH."""
    here = Path(sys.executable).with_name(name)
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise OpsError(f"`{name}` was not found next to {sys.executable} or on PATH.",
                       fix='install the local serving stack: pip install "gpt-oss-ops[local]" (see docs/local.md).')
    return found


def endpoint(spec: DeploymentSpec) -> str:
    return f"http://{HOST}:{spec.port}/v1"


def dashboard_url() -> str:
    return f"http://{HOST}:{DASHBOARD_PORT}"


# ------------------------------------------------------------------------------------ preparation


def ensure_encodings() -> tuple[Path, bool]:
    """The verified encodings directory (TIKTOKEN_ENCODINGS_BASE or the cache), fetched when missing."""
    from ops import encodings as enc

    directory = encodings_dir()
    states = enc.verify(directory)
    if all(s == "ok" for s in states.values()):
        return directory, False
    bad = [n for n, s in states.items() if s == "bad-hash"]
    if bad:
        raise OpsError(f"{directory}/{bad[0]} does not have the SHA-256 tiktoken pins (corrupt or wrong file).",
                       fix=f"delete it and run `ops encodings fetch --dest {directory}`.", runbook=RUNBOOK)
    if os.environ.get("TIKTOKEN_ENCODINGS_BASE"):
        missing = ", ".join(n for n, s in states.items() if s != "ok")
        raise OpsError(f"the tiktoken encodings harmony needs are missing from {directory} ({missing}).",
                       fix=f"run `ops encodings fetch --dest {directory}` (or copy verified files there), then "
                           f"deploy again.", runbook=RUNBOOK)
    enc.fetch(directory)
    return directory, True


def ensure_key_file() -> tuple[Path, bool]:
    """The API key file (0600), generated once and reused afterwards."""
    from ops import api_key

    return api_key.ensure_file(key_file())


def model_source(spec: DeploymentSpec, encodings: Path, progress=None) -> tuple[str, bool]:
    """Where the replicas load weights from: the tiny checkpoint (trained here once, minutes on a laptop's
    CPU, then cached), or the spec's source."""
    if spec.resolved_model_source:
        return spec.resolved_model_source, False
    from ops import tiny_model

    already = tiny_model.is_complete(tiny_model.default_dir())
    return str(tiny_model.ensure(encodings, progress=progress)), not already


def local_spec(spec: DeploymentSpec, api_key_path: Path) -> DeploymentSpec:
    """The spec as deployed here: the key file this target manages, unless the spec names its own."""
    if spec.auth.enabled and not spec.auth.api_key_file:
        return spec.model_copy(update={"auth": spec.auth.model_copy(update={"api_key_file": str(api_key_path)})})
    return spec


def serve_config(spec: DeploymentSpec, source: str, encodings: Path) -> dict[str, Any]:
    """The Serve config (as `ops render serve-config` writes it), bound to loopback on this machine."""
    from ops.render import serve_application

    application = serve_application(spec, model_source=source, encodings_dir=str(encodings))
    application.setdefault("runtime_env", {}).setdefault("env_vars", {})["TIKTOKEN_ENCODINGS_BASE"] = str(encodings)
    return {"proxy_location": "HeadOnly", "http_options": {"host": HOST, "port": spec.port},
            "applications": [application]}


def write_config(config: dict[str, Any]) -> Path:
    import yaml

    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# Rendered by `ops deploy --target local` from the deployment spec; do not edit.\n"
                   + yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------- ray / serve


def port_in_use(port: int, host: str = HOST) -> bool:
    """Something answers on the port, or a server could not bind it (as Ray's dashboard and Serve's proxy do,
    with SO_REUSEADDR) on the loopback address or on all interfaces."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex((host, port)) == 0:
            return True
    for addr in (host, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return True
    return False


def _http(method: str, url: str, timeout: float = 10.0, **kw):
    import httpx

    return httpx.request(method, url, timeout=timeout, **kw)


def ray_auth_headers() -> dict[str, str]:
    """The dashboard refuses requests without the cluster's token (401); send it as Ray's CLI does."""
    from ops import ray_token

    return ray_token.headers(ray_token.read(ray_token_file()))


def _dashboard(method: str, path: str, timeout: float = 10.0, **kw):
    return _http(method, f"{dashboard_url()}{path}", timeout=timeout, headers=ray_auth_headers(), **kw)


def dashboard_up() -> bool:
    try:
        r = _dashboard("GET", "/api/version", timeout=3)
    except Exception:
        return False
    if r.status_code in (401, 403):
        raise OpsError(f"Ray's dashboard at {dashboard_url()} refused this target's Ray token "
                       f"({ray_token_file()}, HTTP {r.status_code}): the Ray running here was not started by "
                       "`ops deploy --target local` (or with another GPT_OSS_OPS_HOME).",
                       fix="stop that Ray (`ray stop`, with its own token in RAY_AUTH_TOKEN if it asks for one), "
                           "then deploy again.", runbook=RUNBOOK)
    return r.status_code == 200


def serve_details() -> dict[str, Any] | None:
    """Serve's own status document (what `serve status` reads), or None when Ray's dashboard is down."""
    try:
        r = _dashboard("GET", "/api/serve/applications/", timeout=10)
    except Exception:
        return None
    if r.status_code != 200:
        return None
    return r.json()


def check_ports(spec: DeploymentSpec, ray_running: bool, serve_running: bool) -> None:
    """Refuse before starting anything when a port this deployment needs belongs to something else."""
    wanted = [] if ray_running else [(GCS_PORT, "Ray's GCS"), (DASHBOARD_PORT, "Ray's dashboard"),
                                     (METRICS_EXPORT_PORT, "Ray's metrics export")]
    if not serve_running:
        wanted.append((spec.port, "the OpenAI endpoint"))
    for port, what in wanted:
        if port_in_use(port):
            fix = (f"stop whatever listens there (`ss -ltnp 'sport = :{port}'` shows it)"
                   + (f", or serve on another port: --set port={port + 1}" if port == spec.port else
                      ", or stop a Ray started elsewhere with `ray stop`") + ".")
            raise OpsError(f"port {port} ({what}) on {HOST} is already in use by another process; nothing was "
                           f"started.", fix=fix, runbook=RUNBOOK)


def start_ray(encodings: Path) -> None:
    from ops import ray_token

    ray_token.ensure_file(ray_token_file())
    env = {**ray_env(), "TIKTOKEN_ENCODINGS_BASE": str(encodings), "VLLM_NO_USAGE_STATS": "1"}
    cmd = [_bin("ray"), "start", "--head", "--port", str(GCS_PORT), "--num-cpus", str(RAY_NUM_CPUS),
           "--dashboard-host", HOST, "--dashboard-port", str(DASHBOARD_PORT), "--include-dashboard", "true",
           # A fixed metrics port for Prometheus (ops dashboards); the node on loopback.
           "--metrics-export-port", str(METRICS_EXPORT_PORT), "--node-ip-address", HOST,
           "--disable-usage-stats"]
    if os.environ.get(ray_local.ENV):
        cmd += ["--temp-dir", str(ray_local.temp_dir())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        stop_ray()
        raise OpsError(f"`ray start` failed:\n{tail}", fix="read the lines above; `ray stop` clears a stale "
                       "head, then deploy again.", runbook=RUNBOOK)
    deadline = time.monotonic() + 60
    while not dashboard_up():
        if time.monotonic() > deadline:
            stop_ray()
            raise OpsError("Ray started but its dashboard (needed by Serve's deploy and shutdown) never answered "
                           f"on {dashboard_url()}.", fix=f"see {ray_local.logs_dir()}/dashboard.log, then deploy again.",
                           runbook=RUNBOOK)
        time.sleep(1)


def stop_ray() -> bool:
    proc = subprocess.run([_bin("ray"), "stop", "--force"], env=ray_env(), capture_output=True, text=True,
                          timeout=120)
    return "Stopped" in (proc.stdout + proc.stderr) and "Did not find" not in (proc.stdout + proc.stderr)


def submit(config: dict[str, Any]) -> None:
    """What `serve deploy FILE` does: PUT the whole declarative config to the dashboard's Serve API."""
    r = _dashboard("PUT", "/api/serve/applications/", json=config, timeout=60)
    if r.status_code >= 400:
        raise OpsError(f"Serve rejected the config ({r.status_code}): {r.text[:2000]}",
                       fix=f"check {config_file()} (rendered from the spec); `ops spec show` shows the values.",
                       runbook=RUNBOOK)


def _canonical(app_config: dict[str, Any] | None) -> str:
    keys = ("name", "route_prefix", "import_path", "args", "runtime_env")
    return json.dumps({k: (app_config or {}).get(k) for k in keys}, sort_keys=True, default=str)


def _app(details: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return ((details or {}).get("applications") or {}).get(name)


def _replica_counts(dep: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rep in dep.get("replicas") or []:
        counts[rep.get("state", "?")] = counts.get(rep.get("state", "?"), 0) + 1
    return counts


# --------------------------------------------------------------------------------------- progress


class _Stages:
    """A Rich live view with one line per stage: pending, running (spinner + elapsed), done or failed."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ops.console import err

        self.progress = Progress(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                                 TextColumn("[dim]{task.fields[note]}"), TimeElapsedColumn(), console=err,
                                 transient=False)
        self.tasks = {s: self.progress.add_task(s, total=1, start=False, note="") for s in STAGES}

    def start(self, stage: str, note: str = "") -> None:
        self.progress.start_task(self.tasks[stage])
        self.progress.update(self.tasks[stage], note=note)

    def note(self, stage: str, note: str) -> None:
        self.progress.update(self.tasks[stage], note=note)

    def done(self, stage: str, note: str | None = None) -> None:
        task = self.tasks[stage]
        if not self.progress.tasks[task].started:
            self.progress.start_task(task)
        self.progress.update(task, completed=1, **({"note": note} if note is not None else {}))

    @contextmanager
    def live(self) -> Iterator["_Stages"]:
        with self.progress:
            yield self


# ------------------------------------------------------------------------------------------- verbs


def deploy(spec: DeploymentSpec, *, timeout_s: float = DEFAULT_TIMEOUT_S, smoke: bool = True,
           **_: Any) -> DeployResult:
    """Prepare, start Ray if needed, submit the Serve config, wait until a real request is answered."""
    changed: list[str] = []
    unchanged: list[str] = []
    started_ray = False
    stages = _Stages()
    deadline = time.monotonic() + timeout_s
    try:
        # Ports first: a busy port is refused before anything is prepared or started.
        ray_running = dashboard_up()
        details = serve_details() if ray_running else None
        serve_running = bool(details and (details.get("proxies") or (details.get("applications") or {})))
        check_ports(spec, ray_running, serve_running)
        with stages.live():
            stages.start("encodings")
            encodings, fetched = ensure_encodings()
            (changed if fetched else unchanged).append(f"encodings {encodings}")
            stages.done("encodings", str(encodings))

            stages.start("checkpoint", "API key file")
            key_path, new_key = ensure_key_file()
            (changed if new_key else unchanged).append(f"API key file {key_path}")
            spec = local_spec(spec, key_path)
            stages.note("checkpoint", "tiny gpt-oss" if not spec.resolved_model_source else spec.resolved_model_source)
            source, built = model_source(spec, encodings,
                                         progress=lambda line: stages.note("checkpoint", f"tiny gpt-oss: {line}"))
            (changed if built else unchanged).append(f"model {source}")
            stages.done("checkpoint", source)

            config = serve_config(spec, source, encodings)
            stages.start("ray")
            current = _app(details, spec.name)
            if ray_running:
                unchanged.append("ray head (already running)")
                stages.done("ray", f"already running, dashboard {dashboard_url()}")
            else:
                stages.note("ray", f"ray start --head --num-cpus {RAY_NUM_CPUS}")
                started_ray = True
                start_ray(encodings)
                changed.append("ray head started")
                stages.done("ray", f"dashboard {dashboard_url()}")

            stages.start("deploy")
            path = write_config(config)
            wanted = config["applications"][0]
            same = current is not None and _canonical(current.get("deployed_app_config")) == _canonical(wanted)
            if same and current.get("status") == "RUNNING":
                unchanged.append(f"serve application {spec.name} (already running)")
                stages.done("deploy", "already running, config unchanged")
            else:
                submit(config)
                changed.append(f"serve application {spec.name} deployed from {path}")
                stages.done("deploy", str(path))

            _wait(spec, deadline, stages)

            if smoke:
                stages.start("smoke", "POST /v1/chat/completions")
                _quick_request(spec, deadline)
                stages.done("smoke", "answered")
        _save_state(spec, source)
    except BaseException:
        if started_ray:
            _quietly(stop_ray)
        raise
    return DeployResult(endpoint=endpoint(spec), model_id=spec.model_id,
                        api_key_hint=str(spec.auth.api_key_file or f"${spec.auth.api_key_env}")
                        if spec.auth.enabled else "auth disabled", changed=changed, unchanged=unchanged)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:
        pass


def _wait(spec: DeploymentSpec, deadline: float, stages: _Stages | None = None) -> dict[str, Any]:
    """Poll Serve until the application is RUNNING; fail on DEPLOY_FAILED or at the deadline."""
    stage = "replicas"
    if stages:
        stages.start("replicas")
    while True:
        details = serve_details()
        app = _app(details, spec.name)
        if app:
            status = app.get("status")
            deps = app.get("deployments") or {}
            llm = {n: d for n, d in deps.items() if not n.endswith("Ingress")}
            if status == "DEPLOY_FAILED" or any(d.get("status") in ("DEPLOY_FAILED",) for d in deps.values()):
                raise OpsError(f"the Serve application {spec.name} failed to deploy: {_failure(app)}",
                               fix="fix the cause above, then run `ops deploy --target local` again; "
                                   f"`ops logs --target local` shows the replica logs ({ray_local.logs_dir()}/serve).",
                               runbook=RUNBOOK)
            if stages:
                states = ", ".join(f"{n}: {d.get('status')} {_replica_counts(d)}" for n, d in deps.items())
                if stage == "replicas" and deps and all(_replica_counts(d) for d in deps.values()):
                    stages.done("replicas", f"{sum(sum(_replica_counts(d).values()) for d in deps.values())} "
                                            "replica(s) placed")
                    stage = "model load"
                    stages.start("model load")
                stages.note(stage, states[:120])
            if status == "RUNNING":
                if stages:
                    if stage == "replicas":
                        stages.done("replicas")
                    stages.done("model load", "; ".join(f"{n} {d.get('status')}" for n, d in llm.items()))
                return app
        if time.monotonic() > deadline:
            msg = _failure(app) if app else "the application never appeared in Serve's status"
            raise OpsError(f"timed out waiting for the Serve application {spec.name} at stage '{stage}': {msg}",
                           fix=f"look at `ops logs --target local` ({ray_local.logs_dir()}/serve); a first CPU model load "
                               "takes about 2 minutes; raise --timeout on a slow or busy machine.",
                           runbook=RUNBOOK)
        time.sleep(1)


def _failure(app: dict[str, Any]) -> str:
    msgs = [app.get("message") or ""]
    for name, dep in (app.get("deployments") or {}).items():
        if dep.get("message"):
            msgs.append(f"{name}: {dep['message']}")
    text = "\n".join(m for m in msgs if m).strip() or f"status {app.get('status')}"
    lines = text.splitlines()
    return "\n".join(lines[-25:])


def _quick_request(spec: DeploymentSpec, deadline: float) -> None:
    """One real chat completion through the endpoint, with the key, as the deploy's last check."""
    from ops import api_key

    key, _ = api_key.find(spec, key_file())
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": spec.model_id, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    last = ""
    while time.monotonic() < deadline:
        try:
            r = _http("POST", f"{endpoint(spec)}/chat/completions", json=body, headers=headers, timeout=120)
            if r.status_code == 200 and r.json().get("choices"):
                return
            last = f"HTTP {r.status_code}: {r.text[:300]}"
            if r.status_code in (400, 401, 404):
                break
        except Exception as e:  # proxy still coming up
            last = str(e)
        time.sleep(2)
    raise OpsError(f"the endpoint {endpoint(spec)} is up but a chat completion failed: {last}",
                   fix="run `ops smoke --target local` for details and `ops logs --target local` for the replica "
                       "logs.", runbook=RUNBOOK)


def _save_state(spec: DeploymentSpec, source: str) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": spec.name, "endpoint": endpoint(spec), "model_id": spec.model_id,
                                "model_source": source, "api_key_file": spec.auth.api_key_file,
                                "config": str(config_file())}, indent=2))


def _load_state() -> dict[str, Any]:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}


def wait(spec: DeploymentSpec, timeout_s: float = DEFAULT_TIMEOUT_S, **_: Any) -> Status:
    _wait(spec, time.monotonic() + timeout_s)
    return status(spec)


def status(spec: DeploymentSpec, **_: Any) -> Status:
    state = _load_state()
    details = serve_details()
    base = {"api_key_file": state.get("api_key_file") or spec.auth.api_key_file or str(key_file()),
            "dashboard": dashboard_url(), "config": state.get("config")}
    if details is None:
        return Status(target="local", running=False, model_id=spec.model_id,
                      details={**base, "ray": "not running"})
    app = _app(details, spec.name)
    if app is None:
        return Status(target="local", running=False, model_id=spec.model_id, app_status="NOT_DEPLOYED",
                      details={**base, "ray": "running"})
    deployments = {name: {"status": d.get("status"), "replicas": _replica_counts(d)}
                   for name, d in (app.get("deployments") or {}).items()}
    return Status(target="local", running=app.get("status") == "RUNNING", endpoint=endpoint(spec),
                  model_id=spec.model_id, app_status=app.get("status"), deployments=deployments,
                  nodes=[{"node": "local", "proxy": p.get("status")} for p in (details.get("proxies") or {}).values()],
                  details={**base, "ray": "running", "message": app.get("message") or ""})


def terminate(spec: DeploymentSpec, **_: Any) -> TerminateResult:
    """`serve shutdown` + `ray stop`, then the vLLM engines a Ray that died abruptly left. Safe to repeat: a
    second run reports nothing was running."""
    res = TerminateResult()
    if dashboard_up():
        details = serve_details() or {}
        names = sorted((details.get("applications") or {}))
        r = _dashboard("DELETE", "/api/serve/applications/", timeout=60)
        if r.status_code >= 400:
            raise OpsError(f"serve shutdown failed ({r.status_code}): {r.text[:500]}",
                           fix="run `serve shutdown -y`, then `ray stop`.", runbook=RUNBOOK)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            d = serve_details()
            if not d or not d.get("applications"):
                break
            time.sleep(1)
        (res.stopped if names else res.already_stopped).append(
            f"serve applications {', '.join(names)}" if names else "serve applications")
        stop_ray()
        res.stopped.append("ray head")
    elif port_in_use(GCS_PORT):
        stop_ray()
        res.already_stopped.append("serve applications")
        res.stopped.append("ray head")
    else:
        res.already_stopped += ["serve applications", "ray head"]
    reap_orphans(res)
    res.details = {"api_key_file": str(key_file()), "logs": str(ray_local.logs_dir())}
    return res


def reap_orphans(res: TerminateResult) -> None:
    """vLLM engines this deployment's Ray left when it died abruptly (they outlive `ray stop`): found by the
    deployment's Ray token file in their environment, ended by pid (ops.engine_orphans)."""
    from ops import engine_orphans

    found = engine_orphans.orphans(str(ray_token_file()))
    for r in engine_orphans.reap(found):
        what = f"orphaned vLLM engine pid {r['pid']} {r['title']} ({r['rss_mib'] / 1024:.1f} GiB, {r['signal']})"
        if r["gone"]:
            res.stopped.append(what)
        else:
            raise OpsError(f"{what} did not exit.", fix=f"kill -9 {r['pid']} (as its owner or root).",
                           runbook=engine_orphans.RUNBOOK)


def logs(spec: DeploymentSpec, lines: int = 50, **_: Any) -> dict[str, list[str]]:
    """The last lines of the Serve controller, proxy and replica logs of the current Ray session."""
    out: dict[str, list[str]] = {}
    serve_dir = ray_local.logs_dir() / "serve"
    if not serve_dir.is_dir():
        raise OpsError(f"no Serve logs at {serve_dir}.", fix="deploy first: ops deploy --target local.",
                       runbook=RUNBOOK)
    for path in sorted(serve_dir.glob("*.log"), key=lambda p: p.stat().st_mtime):
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        out[str(path)] = text[-lines:]
    return out
