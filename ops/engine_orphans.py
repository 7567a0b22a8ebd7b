"""vLLM engines a dead Ray left behind on a machine, and GPU memory no running deployment owns.

A Serve replica starts vLLM's engine core and workers as child processes that retitle themselves
`VLLM::EngineCore`, `VLLM::Worker…`. They are not Ray workers. Ray cleans them up only while it can: a live
raylet kills a dead worker's process group, and a worker that outlives its raylet exits cleanly and kills its
direct children (RAY_kill_child_processes_on_worker_exit). When the raylet and the replica's worker are both
killed by a signal before either acts (`ray stop --force`, which SIGKILLs the raylet and then the workers a moment
later; `pkill -9` of Ray's processes), nothing stops the engines. They are reparented to init and keep their
memory (gigabytes of host RAM for the CPU build; on a GPU, the GPU memory the next deploy needs), while
`ops terminate` finds no Ray and `ray stop` does not recognise them by name.

An engine is orphaned when no Ray process (raylet, `ray::` worker) is among its ancestors. It belongs to a
deployment when its environment names that deployment's Ray token file (RAY_AUTH_TOKEN_PATH, which every
process the target's Ray starts inherits), so `ops terminate` reaps only what its own deployment left.

Standard library only, and runnable as a script (`python -c SOURCE list|reap [--token-path P]`, JSON on stdout):
the cluster target sends this file's text over SSH and runs it on every node. `ops doctor` reports (checks
`engine-orphans` and `gpu-processes`); `ops terminate` reaps, by pid. Distinct from `ops.orphans`, which finds
cloud resources a torn-down stack left billing on AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ENGINE_PREFIX = "VLLM::"
TOKEN_ENV = "RAY_AUTH_TOKEN_PATH"
RUNBOOK = "docs/runbooks/orphaned-engines.md"
GRACE_S = 10.0


@dataclass
class Proc:
    pid: int
    ppid: int
    title: str  # the command line as `ps` shows it (vLLM's processes retitle themselves)
    rss_mib: float
    token_path: str | None = None  # RAY_AUTH_TOKEN_PATH of its environment: the deployment it belongs to

    def describe(self) -> str:
        return f"pid {self.pid} {self.title.split(' ', 1)[0]} ({self.rss_mib / 1024:.1f} GiB)"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def processes(proc_root: str = "/proc") -> dict[int, Proc]:
    """Every process this user may inspect: pid, parent, title, resident memory."""
    out: dict[int, Proc] = {}
    for d in Path(proc_root).iterdir():
        if not d.name.isdigit():
            continue
        stat, cmdline = _read(d / "stat"), _read(d / "cmdline")
        if stat is None or cmdline is None:
            continue
        # stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ')'.
        rest = stat.decode(errors="replace").rsplit(")", 1)[-1].split()
        title = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        if not title:
            continue  # kernel threads
        rss = 0.0
        status = _read(d / "status") or b""
        for line in status.decode(errors="replace").splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
                break
        out[int(d.name)] = Proc(int(d.name), int(rest[1]), title, rss)
    return out


def is_ray(title: str) -> bool:
    """Ray's own processes, which own the engines they started: the raylet, the GCS, `ray::` workers."""
    head = os.path.basename(title.split(" ", 1)[0])
    return head in ("raylet", "gcs_server") or title.startswith("ray::")


def under_ray(pid: int, procs: dict[int, Proc]) -> bool:
    seen = set()
    p = procs.get(pid)
    while p is not None and p.pid not in seen and p.pid > 1:
        if is_ray(p.title):
            return True
        seen.add(p.pid)
        p = procs.get(p.ppid)
    return False


def token_path_of(pid: int, proc_root: str = "/proc") -> str | None:
    """The Ray token file named in a process's environment: the deployment whose Ray started it."""
    env = _read(Path(proc_root) / str(pid) / "environ") or b""
    for item in env.split(b"\0"):
        if item.startswith(TOKEN_ENV.encode() + b"="):
            return item.split(b"=", 1)[1].decode(errors="replace") or None
    return None


def orphans(token_path: str | None = None, proc_root: str = "/proc") -> list[Proc]:
    """vLLM engine processes with no live Ray above them; with `token_path`, only those of that deployment."""
    procs = processes(proc_root)
    found = []
    for p in procs.values():
        if p.title.startswith(ENGINE_PREFIX) and not under_ray(p.pid, procs):
            p.token_path = token_path_of(p.pid, proc_root)
            if token_path is None or p.token_path == token_path:
                found.append(p)
    return sorted(found, key=lambda p: p.pid)


def reap(found: list[Proc], grace_s: float = GRACE_S, proc_root: str = "/proc") -> list[dict]:
    """SIGTERM each orphan, SIGKILL what is left after `grace_s`. A pid whose title changed meanwhile (the
    engine exited and the pid was reused) is left alone. Returns what happened to each pid."""
    def same(p: Proc) -> bool:
        raw = _read(Path(proc_root) / str(p.pid) / "cmdline")
        return raw is not None and raw.replace(b"\0", b" ").decode(errors="replace").strip() == p.title

    result = {p.pid: {**asdict(p), "signal": None, "gone": False} for p in found}
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for p in found:
            if same(p):
                try:
                    os.kill(p.pid, sig)
                    result[p.pid]["signal"] = sig.name
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(same(p) for p in found):
            time.sleep(0.2)
    for p in found:
        result[p.pid]["gone"] = not same(p)
    return list(result.values())


# ----------------------------------------------------------------------------------------- GPU memory

def gpu_processes(procs: dict[int, Proc] | None = None) -> list[dict] | None:
    """Processes holding GPU memory (nvidia-smi's compute apps), each marked with whether a live Ray owns it;
    None when this machine has no NVIDIA driver."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        proc = subprocess.run([exe, "--query-compute-apps=pid,used_memory,process_name",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    procs = procs if procs is not None else processes()
    return parse_compute_apps(proc.stdout, procs)


def parse_compute_apps(text: str, procs: dict[int, Proc]) -> list[dict]:
    out = []
    for line in text.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        p = procs.get(pid)
        out.append({"pid": pid, "used_mib": float(parts[1]) if parts[1].replace(".", "", 1).isdigit() else None,
                    "name": p.title if p else parts[2], "owned": under_ray(pid, procs) if p else False})
    return out


# -------------------------------------------------------------------------------------- as a script

def main(argv: list[str]) -> None:
    """`list` or `reap`, optionally `--token-path P`: JSON on stdout (what the cluster target reads)."""
    verb = argv[0] if argv else "list"
    token = argv[argv.index("--token-path") + 1] if "--token-path" in argv else None
    found = orphans(token)
    out: dict = {"orphans": [asdict(p) for p in found], "gpu": gpu_processes()}
    if verb == "reap":
        out["reaped"] = reap(found)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
