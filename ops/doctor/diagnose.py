"""One doctor run: the environment checks for a spec, then the log scan for the chosen target.

Kept apart from the CLI so tests and other commands (a failed `ops deploy` could call it) get the findings as
data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from ops.doctor import checks, compat, scan
from ops.doctor.report import FAIL, OK, WARN, Finding


def spec_problems(error) -> list[Finding]:
    """A spec that does not validate: each problem becomes a finding, tied to its check when there is one."""
    out = []
    for p in error.problems:
        check = "spec"
        if "KV cache" in p.message:
            check = "kv-cache"
        elif "weights per GPU" in p.message or "needs a GPU" in p.message:
            check = "gpu-memory"
        out.append(Finding(check, FAIL, f"spec {p.field}: {p.message}", fix=p.fix))
    return out


def environment(spec, *, encodings_dir: str | None = None, python: str | None = None,
                env=os.environ, gpus: list | None = None, probe_gpus: bool = True,
                dashboard: str | None = None, target: str = "local") -> list[Finding]:
    """Every environment check for `spec` on this machine (and the local Serve status for the local target)."""
    enc = encodings_dir or env.get(checks.ENCODINGS_ENV)
    if gpus is None and probe_gpus:
        gpus = checks.nvidia_smi()
    findings = [checks.encodings(enc), checks.encodings_env(enc, env)]
    findings.extend(compat.findings(python or sys.executable, env=env))
    if target == "cluster":
        # The engines run on the nodes (their image, their copies, checked over SSH); here it only matters for
        # what this machine uploads, so it does not fail the run.
        for f in findings:
            if f.status == FAIL:
                f.status, f.summary = WARN, f"this machine: {f.summary}"
    findings.append(checks.serving_versions(python or sys.executable))
    if spec is not None:
        findings.append(checks.attention_backend(spec, gpus, env))
        findings.extend(checks.gpu_memory(spec, gpus))
        findings.append(checks.disk_space(spec))
        findings.append(checks.api_key(spec, env))
    findings += [checks.ray_ports(), checks.ray_auth(dashboard, env)]
    if target == "local" or dashboard:
        findings.append(checks.serve_app(dashboard, env))
    if target == "local":
        from ops.targets.local import ray_token_file

        findings += [checks.engine_orphans(str(ray_token_file())), checks.gpu_processes(probe=probe_gpus)]
    return findings


def logs(target: str, log_files: Sequence[str] = (), hosts: Sequence[str] | None = None) -> list[Finding]:
    """Scan the given files, else the target's Ray logs (local session, or every node over SSH)."""
    if log_files:
        return scan.scan(scan.files(log_files)) or [Finding("logs", OK, f"no known failure in {len(log_files)} "
                                                                        "log file(s)")]
    if target == "cluster":
        return cluster_logs(hosts)
    from ops import ray_local

    root = ray_local.logs_dir()
    if not root.is_dir():
        return [Finding("logs", OK, f"no local Ray session logs ({root} absent)")]
    texts = list(scan.local_ray_logs(root))
    return scan.scan(texts) or [Finding("logs", OK, f"no known failure in {len(texts)} Ray log file(s) under "
                                                    f"{Path(root).resolve()}")]


def cluster_logs(hosts: Sequence[str] | None = None) -> list[Finding]:
    """Every node's Ray logs over SSH, the vocab files its engines read, and the engines a dead Ray left there
    (orphaned vLLM processes, GPU memory no deployment owns). Nodes come from --host, else from
    the stack (the cluster target's settings: outputs file, SSH key, known_hosts, GPT_OSS_* variables)."""
    from ops.errors import OpsError

    try:
        conns, log_dir, close, encodings_dir, python = _cluster_connections(hosts)
    except OpsError as e:
        return [Finding("logs", WARN, f"cluster logs not scanned: {e.message}",
                        fix=e.fix or "pass --host USER@HOST for each node, or --log FILE for copied logs")]
    unreachable: list[tuple[str, str]] = []
    try:
        texts = list(scan.remote_ray_logs(conns, log_dir, unreachable=unreachable))
        down = {h for h, _ in unreachable}
        up = [c for c in conns if getattr(c, "host", None) not in down]
        node_checks = [checks.remote_encodings(c, encodings_dir) for c in up]
        for c in up:
            node_checks += checks.remote_engine_orphans(c, python)
    finally:
        close()
    found = scan.scan(texts)
    for host, error in unreachable:
        found.append(Finding("logs", WARN, f"{host}: logs not scanned ({error})",
                             fix="check SSH access to the node (ssh USER@HOST true), then run ops doctor again"))
    if not found:
        found.append(Finding("logs", OK, f"no known failure in {len(texts)} log file(s) on "
                                         f"{len(conns)} node(s)"))
    return node_checks + found


def _cluster_connections(hosts: Sequence[str] | None):
    from ops.remote import settings as remote_settings
    from ops.remote.connection import _split_target, connect, open_nodes

    s = remote_settings.load()

    def log_dir(host: str) -> str:
        return f"{s.ray_temp_dir_for(host) or '/tmp/ray'}/session_latest/logs"

    if hosts:
        conns = []
        for h in hosts:
            user, host, port = _split_target(h, s.user, s.ssh_port)
            conns.append(connect(host, s, user=user, port=port))
    else:
        from ops.remote import hosts as remote_hosts

        nodes = open_nodes(remote_hosts.resolve(s), s)
        conns = list(nodes.all.values())

    def close() -> None:
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    return conns, log_dir, close, s.encodings_dir, s.remote_python
