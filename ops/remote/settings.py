"""Settings of the `cluster` target that are not part of the deployment spec: where the hosts are and how to
reach them.

The spec says *what* runs; these say *how this operator reaches this stack* (stack name, key, known_hosts,
bastion, the remote interpreter). Each comes from, in order: a keyword option (the CLI's flag), its
environment variable, the stack's own `node_access` output (how the nodes `pulumi up` booted are reached and
what they run: the route the stack opened, the login user, the commands the boot script installed, that the
nodes start Ray themselves), else the default here. So `ops deploy --target cluster --stack NAME` needs nothing
else for a stack this project built.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ops.errors import OpsError

# Environment variable for each setting (the CLI's flags override them).
ENV = {
    "stack": "GPT_OSS_STACK",
    "outputs_file": "GPT_OSS_OUTPUTS_FILE",
    "user": "GPT_OSS_SSH_USER",
    "identity_file": "GPT_OSS_SSH_KEY",
    "known_hosts": "GPT_OSS_KNOWN_HOSTS",
    "accept_new_host_keys": "GPT_OSS_ACCEPT_NEW_HOST_KEYS",
    "via": "GPT_OSS_SSH_VIA",
    "bastion": "GPT_OSS_BASTION",
    "ssh_port": "GPT_OSS_SSH_PORT",
    "connect_timeout_s": "GPT_OSS_SSH_CONNECT_TIMEOUT",
    "command_timeout_s": "GPT_OSS_SSH_COMMAND_TIMEOUT",
    "retries": "GPT_OSS_SSH_RETRIES",
    "backoff_s": "GPT_OSS_SSH_BACKOFF",
    "remote_python": "GPT_OSS_REMOTE_PYTHON",
    "ray": "GPT_OSS_REMOTE_RAY",
    "serve": "GPT_OSS_REMOTE_SERVE",
    "remote_dir": "GPT_OSS_REMOTE_DIR",
    "ray_temp_dir": "GPT_OSS_RAY_TEMP_DIR",
    "start_ray": "GPT_OSS_START_RAY",
    "head_num_cpus": "GPT_OSS_HEAD_NUM_CPUS",
    "worker_num_cpus": "GPT_OSS_WORKER_NUM_CPUS",
    "object_store_memory": "GPT_OSS_OBJECT_STORE_MEMORY",
    "ray_port": "GPT_OSS_RAY_PORT",
    "dashboard_port": "GPT_OSS_DASHBOARD_PORT",
    "encodings_dir": "GPT_OSS_REMOTE_ENCODINGS",
    "tunnel": "GPT_OSS_TUNNEL",
    "remote_env": "GPT_OSS_REMOTE_ENV",
    "deploy_timeout_s": "GPT_OSS_DEPLOY_TIMEOUT",
    "region": "GPT_OSS_REGION",
    "bundle_root": "GPT_OSS_BUNDLE_ROOT",
    "state_dir": "GPT_OSS_NODE_STATE_DIR",
}
# The stack's node_access keys that stand in for a setting's default (key -> setting).
STACK_KEYS = {"via": "via", "user": "user", "python": "remote_python", "ray": "ray", "serve": "serve",
              "remote_dir": "remote_dir", "encodings_dir": "encodings_dir", "start_ray": "start_ray",
              "state_dir": "state_dir"}

Via = Literal["ssh", "bastion", "ssm"]


@dataclass(frozen=True)
class ClusterSettings:
    """How to reach the stack's hosts and run things on them."""

    stack: str | None = None  # Pulumi stack whose outputs name the hosts
    outputs_file: str | None = None  # JSON of stack outputs (or {"head": ..., "workers": [...]})
    region: str | None = None  # for the EC2-tag lookup and the orphan check; the spec's when unset
    user: str = "ubuntu"
    identity_file: str | None = None  # private key; the SSH agent / default keys are not consulted
    known_hosts: str = str(Path.home() / ".ssh" / "known_hosts")
    accept_new_host_keys: bool = False  # first contact: record unknown keys (a changed key is always refused)
    via: Via = "ssh"  # ssh: straight to the head; bastion: through `bastion`; ssm: AWS SSM Session Manager
    bastion: str | None = None  # [user@]host[:port] of the jump host
    ssh_port: int = 22
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 900.0
    retries: int = 3  # connection-level failures only; a command that fails is not retried
    backoff_s: float = 1.0  # first retry delay, doubled each time
    remote_python: str = "python3"
    ray: str = "ray"
    serve: str = "serve"
    remote_dir: str | None = None  # where bundles, configs and keys live on every node; same path on all
    ray_temp_dir: str | None = None  # Ray's --temp-dir; "{host}" is replaced by the node's address
    start_ray: bool = True  # start Ray on nodes where it is not running (after `pulumi up`)
    head_num_cpus: int | None = None
    worker_num_cpus: int | None = None
    object_store_memory: int | None = None
    ray_port: int = 6379
    dashboard_port: int = 8265
    encodings_dir: str = "/opt/tiktoken_encodings"  # on the nodes (the serving image bakes them here)
    tunnel: bool | None = None  # smoke test through an SSH tunnel; None: when the endpoint is private
    remote_env: dict[str, str] = field(default_factory=lambda: {"RAY_USAGE_STATS_ENABLED": "0"})
    deploy_timeout_s: float = 900.0
    bundle_root: str | None = None  # the tree whose ops/ and app/ are shipped; this installation's when unset
    state_dir: str | None = None  # where each node's boot reports status.json / ready (stacks this project built)
    explicit: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)  # set by option/env

    @property
    def resolved_remote_dir(self) -> str:
        if self.remote_dir:
            return self.remote_dir
        return "/root/.gpt-oss-ops" if self.user == "root" else f"/home/{self.user}/.gpt-oss-ops"

    def remote_dir_for(self, host: str) -> str:
        """remote_dir on one node; "{host}" in it (for test hosts sharing one filesystem) becomes the address."""
        return self.resolved_remote_dir.replace("{host}", host)

    def ray_temp_dir_for(self, host: str) -> str | None:
        return self.ray_temp_dir.replace("{host}", host) if self.ray_temp_dir else None

    def dashboard_url(self) -> str:
        """The dashboard as seen from the head itself (it listens on the head's loopback)."""
        return f"http://127.0.0.1:{self.dashboard_port}"


def _coerce(name: str, kind: Any, raw: str) -> Any:
    text = str(raw).strip()
    try:
        if name == "remote_env":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return {str(k): str(v) for k, v in data.items()}
        if name == "tunnel":
            return None if text.lower() in ("", "auto") else _bool(text)
        t = str(kind)
        if t.startswith("bool"):
            return _bool(text)
        if t.startswith("int"):
            return int(text)
        if t.startswith("float"):
            return float(text)
    except ValueError as e:
        raise OpsError(f"{ENV[name]}={raw!r} is not a valid {name}: {e}.",
                       fix=f"set {ENV[name]} to a valid value or unset it.", code=2) from e
    return text


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def load(**options: Any) -> ClusterSettings:
    """Settings from keyword options, then environment variables, then defaults. Unknown options are refused."""
    known = {f.name: f for f in fields(ClusterSettings)}
    values: dict[str, Any] = {}
    for name, f in known.items():
        raw = os.environ.get(ENV.get(name, ""), "")
        if raw != "":
            values[name] = _coerce(name, f.type, raw)
    for name, value in options.items():
        if name not in known or name == "explicit":
            continue  # options meant for other verbs (destroy, verify, json ...) pass through
        if value is not None:
            values[name] = value
    s = ClusterSettings(**values, explicit=frozenset(values))
    _check(s)
    return s


def _check(s: ClusterSettings) -> None:
    if s.via not in ("ssh", "bastion", "ssm"):
        raise OpsError(f"unknown connection method {s.via!r}.", fix="use via=ssh, bastion or ssm.", code=2)
    if s.via == "bastion" and not s.bastion:
        raise OpsError("via=bastion needs the jump host.", fix=f"set {ENV['bastion']}=user@host or pass --bastion.",
                       code=2)


def with_stack(s: ClusterSettings, node_access: dict[str, Any] | None) -> ClusterSettings:
    """The settings with the stack's node_access filling every setting the operator did not set."""
    if not node_access:
        return s
    changes = {name: node_access[key] for key, name in STACK_KEYS.items()
               if key in node_access and name not in s.explicit and node_access[key] is not None}
    out = replace(s, **changes)
    _check(out)
    return out


def with_overrides(s: ClusterSettings, **changes: Any) -> ClusterSettings:
    return replace(s, **changes)
