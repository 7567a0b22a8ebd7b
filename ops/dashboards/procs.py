"""Background processes we own (Prometheus, Grafana on this machine), tracked by pid files.

A pid file holds the pid and the exact argument list; a process counts as ours only while
/proc/<pid>/cmdline still matches, so a recycled pid is never signalled. This is what makes
`ops dashboards` idempotent (reload or restart, never a second copy) and `ops dashboards --stop` safe.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def running(pidfile: Path) -> int | None:
    """The pid recorded in pidfile if that process is still the one we started."""
    try:
        rec = json.loads(pidfile.read_text())
    except (OSError, ValueError):
        return None
    pid = int(rec.get("pid", 0))
    if pid > 0 and _cmdline(pid) == rec.get("argv"):
        return pid
    return None


def start(argv: list[str], pidfile: Path, log: Path, *, env: dict[str, str] | None = None) -> int:
    """Start argv detached from our session (it outlives the CLI), output appended to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})
    pidfile.write_text(json.dumps({"pid": proc.pid, "argv": argv}))
    return proc.pid


def signal_(pidfile: Path, sig: int) -> bool:
    pid = running(pidfile)
    if pid is None:
        return False
    os.kill(pid, sig)
    return True


def stop(pidfile: Path, *, timeout: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after timeout. True when a process of ours was running."""
    pid = running(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (tests start it in-process); a zombie is not alive.
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    cmd = _cmdline(pid)
    if cmd is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_http(url: str, *, timeout: float, pidfile: Path | None = None) -> bool:
    """Poll url until it answers 200; False on timeout or when the process behind pidfile died."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if pidfile is not None and running(pidfile) is None:
            return False
        time.sleep(0.5)
    return False
