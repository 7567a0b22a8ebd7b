"""The `cluster` deploy target: a provisioned Ray cluster (e.g. the stack `infra/` builds), driven over SSH.

deploy: resolve the hosts from the stack outputs -> reach them (strict host keys, retries) -> install the app
bundle where its hash differs -> start Ray where it is not running -> prepare the model -> render the Serve
config on the head -> `serve deploy` (in place when the app exists) -> wait until RUNNING -> smoke test
through the endpoint (over an SSH tunnel when it is private). Every step first checks what is already so,
which makes the verb idempotent and lets a re-run resume after a crash or a dropped connection.

Settings that are not part of the spec (stack, outputs file, key, known_hosts policy, bastion/SSM, remote
paths) come from keyword options or `GPT_OSS_*` environment variables: see `ops.remote.settings`.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ops.errors import OpsError
from ops.ports import free_port
from ops.spec import DeploymentSpec
from ops.targets import DeployResult, Status, TerminateResult

RUNBOOK = "docs/cluster.md"
TERMINAL_FAILED = ("DEPLOY_FAILED", "UNHEALTHY")


# ------------------------------------------------------------------------------------------- context

class _Cluster:
    """Settings, hosts and lazily opened connections for one verb."""

    def __init__(self, spec: DeploymentSpec, options: dict[str, Any], *, workers: bool = True):
        from ops.remote import hosts as hosts_mod
        from ops.remote import settings as settings_mod
        from ops.remote.connection import open_nodes

        self.spec = spec
        s = settings_mod.load(**options)
        if s.region is None:
            s = settings_mod.with_overrides(s, region=spec.aws.region)
        outputs = hosts_mod.outputs(s)
        self.node_access = hosts_mod.node_access(outputs)
        s = settings_mod.with_stack(s, self.node_access)
        self.ray_token_path: str | None = None
        if self.node_access is None:
            # Ray started by this target: token authentication on, the token in a 0600 file on every node.
            from ops import ray_token

            self.ray_token_path = f"{s.resolved_remote_dir}/config/ray_token"
            s = settings_mod.with_overrides(s, remote_env={**s.remote_env,
                                                           **ray_token.process_env(Path(self.ray_token_path))})
        self.settings = s
        self.hosts = hosts_mod.from_outputs(outputs, s)
        self.nodes = open_nodes(self.hosts, s, workers=workers)

    @property
    def stack_built(self) -> bool:
        """The nodes were booted by this project's stack (they start Ray and fetch the weights themselves)."""
        return self.node_access is not None

    @property
    def head(self):
        return self.nodes.head

    def close(self) -> None:
        self.nodes.close()

    # -- commands on the head -------------------------------------------------------------------------
    def run_head(self, argv: list[str], **kw):
        from ops.remote.connection import run

        return run(self.head, self.settings, argv, env=self.settings.remote_env, **kw)

    def api(self, route: str, timeout: float = 10.0) -> dict[str, Any]:
        """GET a Ray dashboard route, from the head (the dashboard listens on the head's loopback)."""
        from ops.remote.serve_remote import API_SCRIPT

        # run_head's environment names the cluster's Ray token file (RAY_AUTH_TOKEN_PATH), which the script sends.
        r = self.run_head([self.settings.remote_python, "-c", API_SCRIPT, self.settings.dashboard_url() + route,
                           str(timeout)], check=False, timeout=timeout + 30, what="querying the Ray dashboard")
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": (r.stderr or r.stdout or f"exit {r.exited}").strip()[-500:]}

    def bundle_module(self, bundle_dir: str, verb_args: list[str], **kw) -> dict[str, Any]:
        env = {**self.settings.remote_env, "PYTHONPATH": bundle_dir}
        from ops.remote.connection import run

        r = run(self.head, self.settings, [self.settings.remote_python, "-m", "ops.remote.serve_remote", *verb_args],
                env=env, **kw)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def installed_bundle(self) -> str | None:
        from ops.remote import bundle

        st = bundle.states({self.hosts.head: self.head}, self.settings)[self.hosts.head]
        if st.get("complete") and st.get("current"):
            return bundle.remote_bundle_dir(self.settings.resolved_remote_dir, st["current"])
        return None


@contextmanager
def _cluster(spec: DeploymentSpec, options: dict[str, Any], *, workers: bool = True) -> Iterator[_Cluster]:
    if spec.target.value != "cluster":
        raise OpsError(f"the spec targets {spec.target.value!r}, not the cluster.", fix="pass --target cluster.",
                       code=2)
    c = _Cluster(spec, options, workers=workers)
    try:
        yield c
    finally:
        c.close()


def _stage(name: str):
    from ops.console import err

    return err.status(f"[bold]{name}[/]", spinner="dots")


# ---------------------------------------------------------------------------------------------- Ray

def _alive_node_ips(c: _Cluster) -> set[str] | None:
    """IPs of ALIVE Ray nodes, or None when the head's dashboard does not answer (Ray not running)."""
    res = c.api("/api/v0/nodes?limit=1000")
    if "error" in res or not isinstance(res.get("data"), dict):
        return None
    rows = (res["data"].get("data") or {}).get("result", {}).get("result", [])
    return {n.get("node_ip") for n in rows if n.get("state") == "ALIVE"}


def _ray_start_argv(s, *, head: bool, node_ip: str, head_ip: str) -> list[str]:
    argv = [s.ray, "start", "--node-ip-address", node_ip, "--disable-usage-stats"]
    if head:
        argv += ["--head", "--port", str(s.ray_port), "--include-dashboard", "true",
                 "--dashboard-host", "127.0.0.1", "--dashboard-port", str(s.dashboard_port)]
        cpus = s.head_num_cpus
    else:
        argv += ["--address", f"{head_ip}:{s.ray_port}"]
        cpus = s.worker_num_cpus
    if cpus is not None:
        argv += ["--num-cpus", str(cpus)]
    if s.object_store_memory:
        argv += ["--object-store-memory", str(s.object_store_memory)]
    temp = s.ray_temp_dir_for(node_ip)
    if temp:
        argv += ["--temp-dir", temp]
    return argv


def _ensure_ray(c: _Cluster, changed: list[str], unchanged: list[str]) -> None:
    """Start Ray on the head and on workers that have not joined; leave running nodes alone."""
    from ops.remote.connection import fanout, run

    s, h = c.settings, c.hosts
    alive = _alive_node_ips(c)
    if not s.start_ray:
        # The nodes run Ray themselves (the boot's container restarts with its policy): give a node whose Ray
        # is coming back, e.g. after its container restarted, the time to rejoin.
        alive = _wait_alive(c, [h.head_private, *c.nodes.workers], timeout_s=180)
    if alive is None:
        if not s.start_ray:
            raise OpsError(f"Ray is not running on the head {h.head} (its dashboard does not answer).",
                           fix="on the head: sudo systemctl restart gpt-oss-boot (the boot starts Ray in the "
                               "serving image), or `docker logs ray` for why it stopped.", runbook=RUNBOOK)
        run(c.head, s, _ray_start_argv(s, head=True, node_ip=h.head_private, head_ip=h.head_private),
            env=s.remote_env, what="ray start --head", timeout=300)
        changed.append(f"started the Ray head on {h.head}")
        alive = _wait_dashboard(c)
    else:
        unchanged.append(f"Ray head running on {h.head}")
    missing = {w: conn for w, conn in c.nodes.workers.items() if w not in alive}
    if not missing:
        if c.nodes.workers:
            unchanged.append(f"Ray running on {len(c.nodes.workers)} worker(s)")
        return
    if not s.start_ray:
        raise OpsError(f"Ray is not running on worker(s) {', '.join(missing)}.",
                       fix="on each: sudo systemctl restart gpt-oss-boot (or `docker logs ray` for why it "
                           "stopped); a worker that does not come back is replaced by its Auto Scaling group.",
                       runbook=RUNBOOK)
    fanout(missing, s, lambda w: _ray_start_argv(s, head=False, node_ip=w, head_ip=h.head_private),
           env=s.remote_env, what="ray start (worker)", timeout=300)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        alive = _alive_node_ips(c) or set()
        if all(w in alive for w in missing):
            break
        time.sleep(2)
    else:
        raise OpsError(f"worker(s) {', '.join(w for w in missing if w not in alive)} started Ray but did not join "
                       f"the head at {h.head_private}:{s.ray_port} within 120s.",
                       fix="check that the workers reach the head's GCS port (security group) and read "
                           "`ops logs --target cluster`.", runbook=RUNBOOK)
    changed.append(f"started Ray on worker(s) {', '.join(sorted(missing))}")


def _wait_alive(c: _Cluster, ips: list[str], timeout_s: float) -> set[str] | None:
    """ALIVE node IPs once every one of `ips` is among them, or whatever is alive (None: no dashboard) at the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = _alive_node_ips(c)
        if (alive is not None and set(ips) <= alive) or time.monotonic() > deadline:
            return alive
        time.sleep(3)


def _wait_dashboard(c: _Cluster, timeout_s: float = 120) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = _alive_node_ips(c)
        if alive:
            return alive
        time.sleep(2)
    raise OpsError(f"Ray started on {c.hosts.head} but its dashboard did not answer within {timeout_s:.0f}s.",
                   fix="read the head's logs (`ops logs --target cluster`); the dashboard is needed by `serve`.",
                   runbook=RUNBOOK)


# -------------------------------------------------------------------------------------------- deploy

def _api_key(c: _Cluster) -> tuple[str | None, str]:
    """(key, where it is): a stack's SSM parameter (what its nodes serve with); elsewhere the operator's, or one
    generated and kept in a 0600 file."""
    from ops import api_key
    from ops.tiny_model import cache_root

    spec = c.spec
    if not spec.auth.enabled:
        return None, "none (auth disabled)"
    if c.stack_built:
        param = _output(c, "api_key_parameter")
        return api_key.from_ssm(param, c.hosts.region), f"SSM parameter {param}"
    key, where = api_key.find(spec)
    if key:
        return key, where
    path, _ = api_key.ensure_file(cache_root() / "keys" / f"{spec.name}.key")
    return api_key.find(spec, path)


def _ensure_ray_token(c: _Cluster, bundle_dir: str, changed: list[str], unchanged: list[str]) -> None:
    """The cluster's Ray token on every node (0600), generated once on this machine beside the API key."""
    from ops import ray_token
    from ops.tiny_model import cache_root

    local, _ = ray_token.ensure_file(cache_root() / "keys" / f"{c.spec.name}.ray_token")
    wrote = _put_if_changed(c, c.nodes.all, bundle_dir, c.ray_token_path, local.read_bytes(), 0o600)
    (changed if wrote else unchanged).append(
        f"Ray auth token on {', '.join(wrote)}" if wrote else "Ray auth token on every node")


def _put_if_changed(c: _Cluster, conns: dict[str, Any], bundle_dir: str, remote_path: str, data: bytes,
                    mode: int) -> list[str]:
    """Write `data` to remote_path on the nodes whose copy differs (sha256); returns the hosts written."""
    import hashlib
    import io

    from ops.remote.connection import fanout, with_retries

    want = hashlib.sha256(data).hexdigest()
    res = fanout(conns, c.settings, [c.settings.remote_python, "-m", "ops.remote.serve_remote", "sha", remote_path],
                 env={**c.settings.remote_env, "PYTHONPATH": bundle_dir}, what="checking a config file")
    written = []
    for host, r in res.items():
        if json.loads(r.stdout.strip().splitlines()[-1]).get(remote_path) == want:
            continue

        def put(conn, host=host):
            sftp = conn.sftp()
            tmp = f"{remote_path}.{host}.part"
            sftp.putfo(io.BytesIO(data), tmp)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, remote_path)

        with_retries(conns[host], c.settings, put)
        written.append(host)
    return written


def _model_source(c: _Cluster, bundle_dir: str, changed: list[str], unchanged: list[str]) -> str | None:
    """On a stack-built cluster the weights the workers' boot fetched; elsewhere the tiny checkpoint (trained on
    this machine) is copied to the nodes, and other models load from their source."""
    spec, s = c.spec, c.settings
    if c.stack_built:
        # The workers' boot put the checkpoint there (from the bucket's mirror or the hub, only what vLLM loads).
        unchanged.append(f"weights on the workers at {c.node_access['model_dir']} (fetched by their boot)")
        return c.node_access["model_dir"]
    if spec.model != "tiny":
        return None
    from ops import tiny_model
    from ops.remote import bundle

    local = tiny_model.ensure(_local_encodings(s))  # trained here once (cached), never on the nodes
    dest = f"{s.resolved_remote_dir}/models/{local.name}"
    sent = bundle.sync_tree(c.nodes.all, s, bundle.tree_archive(local), dest)
    (changed if sent else unchanged).append(f"tiny checkpoint {local.name} " + (
        f"uploaded to {', '.join(sent)}" if sent else "already on every node"))
    return dest


def _local_encodings(s) -> str:
    """The verified encodings on this machine (the tiny checkpoint's tokenizer is built from o200k_base)."""
    from ops import encodings

    directory = os.environ.get("TIKTOKEN_ENCODINGS_BASE") or s.encodings_dir
    if not encodings.is_usable(directory):
        raise OpsError(f"the tiny checkpoint is built on this machine and needs the verified encodings; {directory} "
                       "does not hold them.", fix="ops encodings fetch --dest DIR && export "
                                                  "TIKTOKEN_ENCODINGS_BASE=DIR", runbook=RUNBOOK)
    return directory


def _app_state(c: _Cluster) -> dict[str, Any] | None:
    """The Serve application's details (status, deployments), {} when absent, None when Ray is down."""
    res = c.api("/api/serve/applications/")
    if "error" in res:
        return None
    apps = (res.get("data") or {}).get("applications") or {}
    return apps.get(c.spec.name, {})


def deploy(spec: DeploymentSpec, **options: Any) -> DeployResult:
    """Deploy (or converge) the spec on the stack's cluster and wait until it answers."""
    from ops.console import err
    from ops.remote import app_code, boot_status, bundle
    from ops.remote.connection import fanout, run

    changed: list[str] = []
    unchanged: list[str] = []
    with _cluster(spec, options) as c:
        s, h = c.settings, c.hosts
        if c.stack_built:
            _preflight(c)  # what the stack's outputs and bucket must hold: checked before any node is touched
        with _stage(f"reaching {len(h.all)} node(s) over SSH"):
            fanout(c.nodes.all, s, ["true"], what="ssh")
        if c.stack_built:
            with _stage("the nodes' own boot") as st:
                boots = boot_status.wait(c.nodes.all, s, head=h.head, timeout_s=s.deploy_timeout_s,
                                         on_change=lambda line: st.update(f"[bold]the nodes' own boot[/] {line}"))
            for host, b in boots.items():
                if b.state != boot_status.READY:
                    c.nodes.workers.pop(host, None)
                    unchanged.append(f"worker {b.describe()} (its Auto Scaling group replaces it)")
        with _stage("app bundle"):
            b = bundle.build(root=Path(s.bundle_root)) if s.bundle_root else bundle.build()
            sent, same = bundle.sync(c.nodes.all, s, b)
        if sent:
            changed.append(f"uploaded app bundle {b.sha256[:12]} ({b.size // 1024} KiB) to {', '.join(sent)}")
        if same:
            unchanged.append(f"app bundle {b.sha256[:12]} already on {', '.join(same)}")
        bundle_dir = bundle.remote_bundle_dir(s.resolved_remote_dir, b.sha256)
        if c.ray_token_path:
            with _stage("Ray's auth token"):
                _ensure_ray_token(c, bundle_dir, changed, unchanged)
        code_uri = ""
        if c.stack_built:
            with _stage("the app's code in the stack's bucket"):
                code = app_code.build(Path(s.bundle_root)) if s.bundle_root else app_code.build()
                bucket = _output(c, "weights_bucket")
                uploaded = app_code.ensure_uploaded(code, bucket, h.region)
                code_uri = code.uri(bucket)
            (changed if uploaded else unchanged).append(
                f"{'uploaded' if uploaded else 'already in the bucket:'} the app's code {code_uri}")
        with _stage("Ray on every node"):
            _ensure_ray(c, changed, unchanged)
        with _stage("model"):
            model_source = _model_source(c, bundle_dir, changed, unchanged)
        key, key_hint = _api_key(c)
        # A stack's nodes hand the key from SSM to every replica (also on nodes that join later); elsewhere it
        # travels as a file.
        key_file = f"{s.resolved_remote_dir}/config/api_key" if key and not c.stack_built else ""
        with _stage("spec and API key"):
            if key_file:
                wrote = _put_if_changed(c, c.nodes.all, bundle_dir, key_file, (key + "\n").encode(), 0o600)
                (changed if wrote else unchanged).append(
                    f"API key file on {', '.join(wrote)}" if wrote else "API key file on every node")
            spec_path = f"{s.resolved_remote_dir}/config/spec.json"
            _put_if_changed(c, {h.head: c.head}, bundle_dir, spec_path, spec.model_dump_json(indent=2).encode(), 0o644)
        config_path = f"{s.resolved_remote_dir}/config/serve-{spec.name}.yaml"
        with _stage("rendering the Serve config on the head"):
            rendered = c.bundle_module(bundle_dir, [
                "render", "--spec", spec_path, "--out", config_path, "--bundle-dir", bundle_dir,
                "--encodings", s.encodings_dir, "--model-source", model_source or "",
                "--api-key-file", key_file, "--code-uri", code_uri], what="rendering the Serve config")
        wanted = _rendered_app(c, config_path)
        app = _app_state(c) or {}
        app_status = app.get("status")
        if rendered["changed"] or app_status in (None, "DEPLOY_FAILED", "DELETING") or _differs(app, wanted):
            with _stage("serve deploy"):
                run(c.head, s, [s.serve, "deploy", config_path, "--address", s.dashboard_url()],
                    env=s.remote_env, what="serve deploy", timeout=300)
            changed.append(("updated" if app_status else "deployed") + f" Serve application {spec.name!r} "
                           f"({rendered['import_path']})")
        else:
            unchanged.append(f"Serve config of {spec.name!r} unchanged ({app_status})")
        _wait_running(c, s.deploy_timeout_s, wanted=wanted)
        endpoint = _endpoint(c)
        with _stage("smoke test through the endpoint"):
            answer = _smoke(c, key)
        err.print(f"[dim]smoke test answered: {answer[:80]!r}[/]")
    return DeployResult(endpoint=endpoint, model_id=spec.model_id, api_key_hint=key_hint, changed=changed,
                        unchanged=unchanged)


# What a stack-built cluster's outputs must name for the deploy (infra/stack.py exports all of them).
REQUIRED_OUTPUTS = ("head_private_ip", "region", "weights_bucket", "worker_asg_name", "node_access",
                    "api_key_parameter")
REQUIRED_NODE_ACCESS = ("user", "python", "ray", "serve", "remote_dir", "encodings_dir", "model_dir", "state_dir")


def _output(c: _Cluster, key: str) -> Any:
    from ops.remote.hosts import _value

    return _value(c.hosts.outputs, key)


def _preflight(c: _Cluster) -> None:
    """Refuse, before any node is touched, a stack whose outputs lack what the deploy needs, and weights the
    nodes cannot read (each naming the field and the fix)."""
    missing = [k for k in REQUIRED_OUTPUTS if _output(c, k) in (None, "", [])]
    missing += [f"node_access.{k}" for k in REQUIRED_NODE_ACCESS if not (c.node_access or {}).get(k)]
    if missing:
        raise OpsError(f"the stack outputs lack {', '.join(missing)}: they come from another version of the "
                       "Pulumi program, or from another stack.",
                       fix="run `pulumi up` for the stack with this version of gpt-oss-ops, then deploy with "
                           "--stack NAME (or --outputs FILE written by `pulumi stack output --json`).",
                       runbook=RUNBOOK, code=2)
    _check_weights_source(c)


def _check_weights_source(c: _Cluster) -> None:
    """The checkpoint the workers load must be where their boot fetches it from: the stack bucket's mirror (a
    model with no hub id, or an s3:// source, has nowhere else to come from)."""
    from infra.userdata import mirror_prefix, weights_only_from_s3

    spec = c.spec
    bucket = _output(c, "weights_bucket")
    src = spec.model_source or ""
    if src.startswith("s3://") and src[5:].split("/", 1)[0] != bucket:
        raise OpsError(f"model_source {src} is outside the stack's bucket s3://{bucket}: the nodes' role may read "
                       "only that bucket.",
                       fix=f"copy the checkpoint: aws s3 sync {src} {mirror_prefix(spec, bucket)}/ and unset "
                           "model_source (or set aws.weights_bucket to its bucket and `pulumi up`).",
                       runbook=RUNBOOK, code=2)
    if not weights_only_from_s3(spec):
        return
    prefix = (src or mirror_prefix(spec, bucket)).rstrip("/")
    bucket_name, _, key = prefix[5:].partition("/")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.client("s3", region_name=c.hosts.region).head_object(Bucket=bucket_name, Key=f"{key}/config.json")
    except (ClientError, BotoCoreError) as e:
        raise OpsError(f"no checkpoint at {prefix}/ (config.json: {e}); the workers' boot would wait for it and "
                       "give up.",
                       fix=f"upload it first: aws s3 sync CHECKPOINT_DIR {prefix}/"
                           + (" (ops tiny-model --dest DIR builds the tiny one)" if spec.model == "tiny" else ""),
                       runbook=RUNBOOK, code=2) from None


def _rendered_app(c: _Cluster, config_path: str) -> dict[str, Any]:
    import yaml

    r = c.run_head(["cat", config_path], what="reading the Serve config")
    return ((yaml.safe_load(r.stdout) or {}).get("applications") or [{}])[0]


def _differs(app: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when the running application was deployed from another config than `wanted` (e.g. by hand, or a
    deploy that was interrupted before Serve took the new file)."""
    deployed = app.get("deployed_app_config") or {}
    if not app:
        return True
    return any(wanted.get(k) != deployed.get(k) for k in ("import_path", "args"))


def _endpoint(c: _Cluster) -> str:
    base = c.hosts.endpoint or f"http://{c.hosts.head}:{c.spec.port}"
    base = base.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def _private(c: _Cluster) -> bool:
    if c.settings.tunnel is not None:
        return c.settings.tunnel
    return c.settings.via != "ssh"


@contextmanager
def _reachable_endpoint(c: _Cluster) -> Iterator[str]:
    """The endpoint as this machine can reach it: directly, or through `ssh -L` to the head when private."""
    if not _private(c):
        yield _endpoint(c)
        return
    port = free_port()
    with c.head.forward_local(local_port=port, remote_port=c.spec.port, remote_host="127.0.0.1",
                              local_host="127.0.0.1"):
        yield f"http://127.0.0.1:{port}/v1"


def _smoke(c: _Cluster, key: str | None, timeout_s: float = 120) -> str:
    """One chat completion through the endpoint; returns the answer text."""
    import urllib.error
    import urllib.request

    body = json.dumps({"model": c.spec.model_id, "max_tokens": 16,
                       "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key or 'none'}"}
    last = ""
    with _reachable_endpoint(c) as base:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            req = urllib.request.Request(f"{base}/chat/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    data = json.loads(resp.read())
                msg = data["choices"][0]["message"]
                return msg.get("content") or msg.get("reasoning_content") or ""
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[:300]}"
                if e.code in (401, 403):
                    break
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(3)
    raise OpsError(f"the application is RUNNING but the endpoint {_endpoint(c)} did not answer a chat completion: "
                   f"{last}.", fix="check the proxy port in the security group (or use the SSH tunnel: "
                                   "GPT_OSS_TUNNEL=1), the API key, and `ops logs --target cluster`.", runbook=RUNBOOK)


# --------------------------------------------------------------------------------------- wait/status

def _summarise_app(app: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, d in (app.get("deployments") or {}).items():
        states: dict[str, int] = {}
        for r in d.get("replicas") or []:
            states[r.get("state", "?")] = states.get(r.get("state", "?"), 0) + 1
        out[name] = {"status": d.get("status"), "replicas": states, "message": d.get("message") or ""}
    return out


def _wait_running(c: _Cluster, timeout_s: float, wanted: dict[str, Any] | None = None) -> dict[str, Any]:
    """Poll the application until RUNNING (with `wanted`: RUNNING on that config, not the previous one)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ops.console import err

    deadline = time.monotonic() + timeout_s
    app: dict[str, Any] | None = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("waiting for the Serve application", total=None)
        while time.monotonic() < deadline:
            app = _app_state(c)
            status = (app or {}).get("status") or ("Ray down" if app is None else "not deployed")
            deps = _summarise_app(app or {})
            detail = ", ".join(f"{n}: {d['status']} {d['replicas']}" for n, d in deps.items())
            progress.update(task, description=f"Serve application {c.spec.name!r}: {status}  {detail}")
            if status == "RUNNING" and not (wanted and _differs(app or {}, wanted)):
                return app or {}
            if status in TERMINAL_FAILED:
                msg = (app or {}).get("message") or detail
                raise OpsError(f"the Serve application {c.spec.name!r} is {status}: {msg.strip()[-1500:]}",
                               fix="read the replica and engine logs (`ops logs --target cluster`), fix the cause "
                                   "and re-run `ops deploy`.", runbook=RUNBOOK)
            time.sleep(3)
    raise OpsError(f"the Serve application {c.spec.name!r} was not RUNNING after {timeout_s:.0f}s "
                   f"(last: {(app or {}).get('status')}; {_summarise_app(app or {})}).",
                   fix="a large model may need longer (GPT_OSS_DEPLOY_TIMEOUT=SECONDS and re-run: the deploy "
                       "resumes); otherwise read `ops logs --target cluster`.", runbook=RUNBOOK)


def wait(spec: DeploymentSpec, timeout_s: float, **options: Any) -> Status:
    """Wait until the application is RUNNING; then report its status."""
    with _cluster(spec, options, workers=False) as c:
        _wait_running(c, timeout_s)
    return status(spec, **options)


def _nodes(c: _Cluster) -> tuple[list[dict[str, Any]], str | None]:
    res = c.api("/api/v0/nodes?limit=1000&detail=true")
    if "error" in res or not isinstance(res.get("data"), dict):
        return [], res.get("error") or "no answer from the dashboard"
    rows = (res["data"].get("data") or {}).get("result", {}).get("result", [])
    nodes = []
    for n in rows:
        total = n.get("resources_total") or {}
        nodes.append({"node_id": n.get("node_id"), "ip": n.get("node_ip"), "state": n.get("state"),
                      "head": bool(n.get("is_head_node")), "cpus": total.get("CPU"), "gpus": total.get("GPU", 0),
                      "state_message": n.get("state_message")})
    return sorted(nodes, key=lambda n: (not n["head"], n["ip"] or "", n["state"] != "ALIVE")), None


def _gpus(c: _Cluster) -> dict[str, Any]:
    from ops.remote.connection import fanout

    argv = ["nvidia-smi", "--query-gpu=index,name,memory.used,memory.total,utilization.gpu",
            "--format=csv,noheader,nounits"]
    out: dict[str, Any] = {}
    try:
        res = fanout(c.nodes.all, c.settings, argv, check=False, timeout=30, what="nvidia-smi")
    except OpsError as e:
        return {"error": e.message}
    for host, r in res.items():
        if r.exited != 0:
            continue  # no NVIDIA driver on this node (CPU node)
        out[host] = [dict(zip(["index", "name", "memory_used_mib", "memory_total_mib", "utilization_pct"],
                              [x.strip() for x in line.split(",")])) for line in r.stdout.strip().splitlines()]
    return out


def status(spec: DeploymentSpec, **options: Any) -> Status:
    """Nodes (Ray state API), GPUs (nvidia-smi), Serve application/deployment/replica states, endpoint."""
    with _cluster(spec, options) as c:
        nodes, nodes_error = _nodes(c)
        app = _app_state(c)
        gpus = _gpus(c)
        details: dict[str, Any] = {
            "head": c.hosts.head, "workers": c.hosts.workers, "gpus": gpus,
            "dead_nodes": [n["ip"] for n in nodes if n["state"] != "ALIVE"],
        }
        if nodes_error:
            details["ray"] = f"Ray is not answering on the head: {nodes_error}"
        if c.stack_built:
            from ops.remote import boot_status

            details["api_key_parameter"] = _output(c, "api_key_parameter")
            details["region"] = c.hosts.region
            details["boot"] = {h: b.to_dict() for h, b in boot_status.read(c.nodes.all, c.settings).items()}
        if app:
            details["message"] = app.get("message") or ""
        return Status(target="cluster", running=(app or {}).get("status") == "RUNNING",
                      endpoint=_endpoint(c), model_id=spec.model_id,
                      app_status=(app or {}).get("status") or ("NOT_DEPLOYED" if app is not None else None),
                      deployments=_summarise_app(app or {}), nodes=nodes, details=details)


# ------------------------------------------------------------------------------------------------ logs

def logs(spec: DeploymentSpec, lines: int = 100, **options: Any) -> dict[str, list[str]]:
    """The tail of the Serve (replica, proxy, controller) and worker (engine) logs of every node, as
    {"HOST:FILE": [lines]} (the shape every target's `logs` returns)."""
    from ops.remote import bundle
    from ops.remote.connection import fanout

    with _cluster(spec, options) as c:
        s = c.settings
        bundle_dir = c.installed_bundle()
        if bundle_dir is None:
            raise OpsError("nothing was deployed on this cluster yet (no app bundle on the head).",
                           fix="run `ops deploy --target cluster` first.", runbook=RUNBOOK)
        states = bundle.states(c.nodes.all, s)
        out: dict[str, list[str]] = {}
        for host, conn in c.nodes.all.items():
            st = states.get(host) or {}
            node_bundle = bundle.remote_bundle_dir(s.resolved_remote_dir, st["current"]) if st.get("complete") \
                else bundle_dir
            temp = s.ray_temp_dir_for(host if host != c.hosts.head else c.hosts.head_private) or "/tmp/ray"
            argv = [s.remote_python, "-m", "ops.remote.serve_remote", "logs", "--temp-dir", temp,
                    "--lines", str(lines)]
            r = fanout({host: conn}, s, argv, env={**s.remote_env, "PYTHONPATH": node_bundle}, what="reading logs")
            files = json.loads(r[host].stdout.strip().splitlines()[-1])["files"]
            out.update({f"{host}:{name}": text.splitlines() for name, text in files.items()})
        return out


# ------------------------------------------------------------------------------------------- terminate

def terminate(spec: DeploymentSpec, *, destroy: bool = False, verify: bool = False,
              **options: Any) -> TerminateResult:
    """Shut the Serve application down; with destroy, `pulumi destroy` the stack; with verify, look for
    orphaned cloud resources. Running it again reports what was already gone."""
    from ops.remote import settings as settings_mod

    result = TerminateResult()
    s = settings_mod.load(**options)
    try:
        with _cluster(spec, options) as c:
            app = _app_state(c)
            if app is None:
                result.already_stopped.append(f"Serve application {spec.name!r} (Ray is not running on the head)")
            elif not app:
                result.already_stopped.append(f"Serve application {spec.name!r}")
            else:
                with _stage("serve shutdown"):
                    c.run_head([s.serve, "shutdown", "--yes", "--address", s.dashboard_url()],
                               what="serve shutdown", timeout=300)
                    _wait_gone(c)
                result.stopped.append(f"Serve application {spec.name!r} on {c.hosts.head}")
            _reap_orphans(c, result)
    except OpsError as e:
        if not (destroy or verify):
            raise
        # The machines are going (or gone) anyway: the teardown and the orphan check still run.
        result.details["serve_shutdown_error"] = e.message
    stack = s.stack
    if destroy:
        result.details["destroy"] = _destroy(stack)
        (result.stopped if result.details["destroy"] == "destroyed" else result.already_stopped).append(
            f"Pulumi stack {stack!r}")
    if verify:
        result.details["orphans"] = _verify(stack, s.region or spec.aws.region)
    return result


def _reap_orphans(c: _Cluster, result: TerminateResult) -> None:
    """On every node, the vLLM engines a Ray that died abruptly left (ops.engine_orphans, its source run with the
    node's Python): ended by pid and listed. With a Ray this target started, only engines carrying its token
    file; on the stack's nodes, every orphaned engine (the node serves this deployment alone)."""
    from ops import engine_orphans
    from ops.remote.connection import fanout

    argv = [c.settings.remote_python, "-c", Path(engine_orphans.__file__).read_text(), "reap"]
    if c.ray_token_path:
        argv += ["--token-path", c.ray_token_path]
    try:
        with _stage("orphaned vLLM engines"):
            ran = fanout(c.nodes.all, c.settings, argv, env=c.settings.remote_env, check=False,
                         what="reaping orphaned vLLM engines")
    except OpsError as e:  # a node out of reach: the shutdown stands; say which engines were not looked for
        result.details["orphan_reap_errors"] = e.message
        return
    for host, r in ran.items():
        try:
            reaped = json.loads(r.stdout.strip().splitlines()[-1])["reaped"]
        except (ValueError, IndexError, KeyError):
            result.details.setdefault("orphan_reap_errors", {})[host] = (r.stderr or r.stdout or "")[-500:]
            continue
        for x in reaped:
            what = (f"orphaned vLLM engine pid {x['pid']} {x['title']} on {host} "
                    f"({x['rss_mib'] / 1024:.1f} GiB, {x['signal']})")
            if not x["gone"]:
                raise OpsError(f"{what} did not exit.", fix=f"ssh to {host} and kill -9 {x['pid']} as root.",
                               runbook=engine_orphans.RUNBOOK)
            result.stopped.append(what)


def _wait_gone(c: _Cluster, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _app_state(c):
            return
        time.sleep(2)
    raise OpsError(f"the Serve application {c.spec.name!r} was still shutting down after {timeout_s:.0f}s.",
                   fix="re-run `ops terminate --target cluster`.", runbook=RUNBOOK)


def _destroy(stack: str | None) -> str:
    import shutil
    import subprocess

    if not stack:
        raise OpsError("--destroy needs the stack name.", fix="pass --stack NAME (or set GPT_OSS_STACK).", code=2)
    if not shutil.which("pulumi"):
        raise OpsError("the Pulumi CLI is not installed, so the stack cannot be destroyed from here.",
                       fix=f"install it (https://www.pulumi.com/docs/install/) and re-run, or run "
                           f"{shlex.join(['pulumi', 'destroy', '--yes', '--stack', stack])} where it is installed.",
                       runbook=RUNBOOK, code=3)
    argv = ["pulumi", "destroy", "--yes", "--skip-preview", "--stack", stack]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise OpsError(f"`{shlex.join(argv)}` failed:\n{tail}",
                       fix="fix the cause shown and re-run `ops terminate --destroy` (pulumi resumes).",
                       runbook=RUNBOOK)
    return "destroyed"


def _verify(stack: str | None, region: str) -> Any:
    if not stack:
        raise OpsError("--verify needs the stack name to look for its leftover resources.",
                       fix="pass --stack NAME (or set GPT_OSS_STACK).", code=2)
    try:
        from ops import orphans
    except ImportError:
        return "orphan check not available in this version"
    found = orphans.check(stack, region)
    return found.to_dict() if hasattr(found, "to_dict") else found
