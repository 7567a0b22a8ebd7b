"""Apply the signature table to log text, wherever the text comes from.

The scanner takes any iterable of (source_name, text): log files given on the command line, the local Ray
session's logs (driver, raylet, Serve controller and replicas, vLLM engine workers), or every cluster node's
logs fetched over SSH. One finding per signature, listing every source it was seen in.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ops.doctor.report import Finding
from ops.doctor.signatures import SIGNATURES, Signature

# Ray's session logs on a node that runs Ray with its default temp dir (cluster nodes); on this machine,
# ops.ray_local.logs_dir() (which follows GPT_OSS_RAY_TEMP_DIR).
RAY_LOG_DIR = Path("/tmp/ray/session_latest/logs")
# Only the end of big logs is read: failures are at the end, and a long-running session's logs can be large.
TAIL_BYTES = 4 * 1024 * 1024
_LOG_SUFFIXES = (".log", ".err", ".out", ".txt")


def scan(texts: Iterable[tuple[str, str]], signatures: list[Signature] = SIGNATURES) -> list[Finding]:
    """Findings for every signature seen in any text, in table order."""
    seen: dict[str, Finding] = {}
    for source, text in texts:
        for line in text.splitlines():
            if len(line) > 20000:
                line = line[:20000]
            for sig in signatures:
                if sig.pattern.search(line):
                    f = seen.get(sig.name)
                    if f is None:
                        seen[sig.name] = Finding(sig.check, sig.status, f"log: {_clip(line.strip())}", cause=sig.cause,
                                                 fix=sig.fix, signature=sig.name, sources=[source],
                                                 evidence=_clip(line.strip(), 400))
                    elif source not in f.sources:
                        f.sources.append(source)
    order = {s.name: i for i, s in enumerate(signatures)}
    return sorted(seen.values(), key=lambda f: order[f.signature])


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    with open(path, "rb") as fh:
        try:
            fh.seek(-limit, 2)
        except OSError:
            fh.seek(0)
        return fh.read().decode("utf-8", errors="replace")


def files(paths: Iterable[str | Path]) -> Iterator[tuple[str, str]]:
    """The given log files; a missing one is an error the user must fix (a typo), not a silent skip."""
    from ops.errors import OpsError

    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise OpsError(f"--log {p}: no such file.", fix="pass the path of a log file, e.g. "
                           "/tmp/ray/session_latest/logs/serve/replica_default_LLMServer*.log")
        yield str(path), read_tail(path)


def local_ray_logs(root: Path | None = None) -> Iterator[tuple[str, str]]:
    """Every log of the local Ray session, including serve/ and the worker logs (vLLM engines print there)."""
    if root is None:
        from ops import ray_local

        root = ray_local.logs_dir()
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in _LOG_SUFFIXES:
            try:
                yield str(path), read_tail(path)
            except OSError:
                continue


# Runs on each node: print every log file's tail, each preceded by a marker line naming it. The log directory
# is passed as $1, never pasted into the script.
_REMOTE_SCRIPT = (
    'd="$1"; [ -d "$d" ] || exit 0; '
    'find "$d" -type f \\( -name "*.log" -o -name "*.err" -o -name "*.out" \\) | sort | '
    'while IFS= read -r f; do printf "\\n==> %s <==\\n" "$f"; tail -c "$2" "$f"; done'
)
_MARK = "==> "


def remote_command(log_dir: str = str(RAY_LOG_DIR), limit: int = TAIL_BYTES) -> str:
    """The shell line run on each node (argument list joined with shlex)."""
    return shlex.join(["sh", "-c", _REMOTE_SCRIPT, "sh", log_dir, str(limit)])


def split_remote(host: str, output: str) -> Iterator[tuple[str, str]]:
    """Split the concatenated output of `remote_command` back into (host:path, text) pairs."""
    name, buf = None, []
    for line in output.splitlines():
        if line.startswith(_MARK) and line.endswith(" <=="):
            if name is not None:
                yield f"{host}:{name}", "\n".join(buf)
            name, buf = line[len(_MARK):-4], []
        elif name is not None:
            buf.append(line)
    if name is not None:
        yield f"{host}:{name}", "\n".join(buf)


def remote_ray_logs(connections: Iterable, log_dir: str | Callable[[str], str] = str(RAY_LOG_DIR),
                    unreachable: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, str]]:
    """Every node's Ray session logs over SSH, given Fabric Connections (one per node).

    `log_dir` is one directory for all nodes or a function of the node's host (nodes with their own Ray temp
    dir). A node that cannot be reached is appended to `unreachable` as (host, error), so the report can say
    which node was not scanned instead of silently scanning fewer.
    """
    for conn in connections:
        host = getattr(conn, "host", str(conn))
        cmd = remote_command(log_dir(host) if callable(log_dir) else log_dir)
        try:
            result = conn.run(cmd, hide=True, warn=True, in_stream=False)
        except Exception as e:  # noqa: BLE001 - any SSH failure becomes part of the report
            if unreachable is not None:
                unreachable.append((host, f"{type(e).__name__}: {e}"))
            continue
        yield from split_remote(host, result.stdout)
