"""One doctor run: the environment checks for a spec, then the log scan for the chosen target.

Kept apart from the CLI so tests and other commands (a failed `ops deploy` could call it) get the findings as
data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

from ops.doctor import checks, scan
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
                env=os.environ, gpus: list | None = None, probe_gpus: bool = True) -> list[Finding]:
    """Every environment check for `spec` on this machine."""
    enc = encodings_dir or env.get(checks.ENCODINGS_ENV)
    if gpus is None and probe_gpus:
        gpus = checks.nvidia_smi()
    findings = [checks.encodings(enc), checks.encodings_env(enc, env),
                checks.serving_versions(python or sys.executable)]
    if spec is not None:
        findings.append(checks.attention_backend(spec, gpus, env))
        findings.extend(checks.gpu_memory(spec, gpus))
        findings.append(checks.disk_space(spec))
        findings.append(checks.api_key(spec, env))
    findings.append(checks.ray_ports())
    return findings


def logs(target: str, log_files: Sequence[str] = (), connections: Iterable | None = None) -> list[Finding]:
    """Scan the given files, else the target's Ray logs (local session, or every node over SSH)."""
    if log_files:
        return scan.scan(scan.files(log_files)) or [Finding("logs", OK, f"no known failure in {len(log_files)} "
                                                                        "log file(s)")]
    if target == "cluster":
        if connections is None:
            return [Finding("logs", WARN, "cluster logs not scanned: no nodes given",
                            fix="pass --host USER@HOST for each node (or --log FILE for copied logs)")]
        unreachable: list[tuple[str, str]] = []
        texts = list(scan.remote_ray_logs(connections, unreachable=unreachable))
        found = scan.scan(texts)
        for host, error in unreachable:
            found.append(Finding("logs", WARN, f"{host}: logs not scanned ({error})",
                                 fix="check SSH access to the node (ssh USER@HOST true)"))
        if not found:
            found.append(Finding("logs", OK, f"no known failure in {len(texts)} log file(s) on the nodes"))
        return found
    root = scan.RAY_LOG_DIR
    if not root.is_dir():
        return [Finding("logs", OK, f"no local Ray session logs ({root} absent)")]
    texts = list(scan.local_ray_logs(root))
    return scan.scan(texts) or [Finding("logs", OK, f"no known failure in {len(texts)} Ray log file(s) under "
                                                    f"{Path(root).resolve()}")]


def connections(hosts: Sequence[str], *, connect_timeout: int = 10) -> list:
    """Fabric Connections for `user@host[:port]` strings (fabric is imported only when needed)."""
    from fabric import Connection

    return [Connection(h, connect_timeout=connect_timeout) for h in hosts]
