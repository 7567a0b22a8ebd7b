"""A TCP port nothing listens on: for the bench's bare vLLM server, the cluster target's SSH tunnel and the tests."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1", avoid: range | None = None) -> int:
    """A port the kernel hands out on `host` now (outside `avoid`, e.g. Ray's worker port range)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if avoid is None or port not in avoid:
            return port
