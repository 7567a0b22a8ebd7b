"""Encodings pre-fetch: real downloads over a loopback HTTP mirror of ../shared/tiktoken_encodings.

The mirror is a real `http.server` in a thread; it can serve the files, a corrupted copy, hang, or fail a
number of times before answering, so retries, timeouts, digest checks and atomic writes are exercised for
real. Nothing reaches the internet.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app import fetch_encodings as fe
from ops import encodings
from ops.errors import OpsError
from tests.support import run_ops

ROOT = Path(__file__).resolve().parents[1]


class Mirror:
    """A loopback HTTP server holding the encodings. `mode`: ok | corrupt | hang | flaky."""

    def __init__(self, source: Path, mode: str = "ok", failures: int = 0):
        self.files = {p.name: p.read_bytes() for p in source.glob("*.tiktoken")}
        self.mode = mode
        self.failures = failures
        self.requests: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                with mirror._lock:
                    mirror.requests.append(name)
                    seen = mirror.requests.count(name)
                if mirror.mode == "hang":
                    mirror.release.wait(15)
                    return
                if mirror.mode == "flaky" and seen <= mirror.failures:
                    self.send_error(503, "try again")
                    return
                data = mirror.files.get(name) if self.path == f"/encodings/{name}" else None
                if data is None:
                    self.send_error(404)
                    return
                if mirror.mode == "corrupt":
                    data = data[:-2] + b"x\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/encodings/"

    def __enter__(self) -> "Mirror":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def mirror(encodings_dir):
    with Mirror(encodings_dir) as m:
        yield m


def _quiet(_msg: str) -> None:
    pass


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_pins_match_tiktoken():
    """Our URLs and digests are the ones tiktoken itself pins for o200k_base and cl100k_base."""
    source = Path(importlib.util.find_spec("tiktoken_ext.openai_public").origin).read_text()
    for name, digest in fe.ENCODINGS.items():
        pattern = re.escape(fe.OFFICIAL_BASE_URL + name) + r'",\s*expected_hash="([0-9a-f]{64})"'
        m = re.search(pattern, source)
        assert m, f"tiktoken no longer names {fe.OFFICIAL_BASE_URL + name}"
        assert m.group(1) == digest


def test_script_is_stdlib_only():
    """The image build runs the script before any dependency is installed."""
    tree = ast.parse((ROOT / "app" / "fetch_encodings.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules.discard("__future__")
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


def test_fetch_happy_path_then_idempotent(mirror, tmp_path):
    dest = tmp_path / "enc"
    rows = encodings.fetch(dest, mirror.url, log=_quiet)
    assert [r["status"] for r in rows] == ["downloaded", "downloaded"]
    assert encodings.verify(dest) == {name: "ok" for name in fe.ENCODINGS}
    assert _files(dest) == sorted(fe.ENCODINGS)
    assert oct((dest / "o200k_base.tiktoken").stat().st_mode & 0o777) == "0o644"
    served = len(mirror.requests)

    messages: list[str] = []
    again = encodings.fetch(dest, mirror.url, log=messages.append)
    assert [r["status"] for r in again] == ["present", "present"]
    assert len(mirror.requests) == served, "a verified file was downloaded again"
    assert all("already present" in m for m in messages)


def test_fetched_dir_serves_harmony(mirror, tmp_path):
    """The directory is what TIKTOKEN_ENCODINGS_BASE needs: harmony loads gpt-oss's encoding from it offline."""
    dest = tmp_path / "enc"
    encodings.fetch(dest, mirror.url, log=_quiet)
    code = ("from openai_harmony import load_harmony_encoding, HarmonyEncodingName\n"
            "enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)\n"
            "print(len(enc.encode('hello world')))")
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(dest), "HOME": str(tmp_path)}
    env.pop("TIKTOKEN_RS_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0


def test_corrupted_mirror_is_refused_and_nothing_is_left(encodings_dir, tmp_path):
    dest = tmp_path / "enc"
    with Mirror(encodings_dir, mode="corrupt") as m:
        with pytest.raises(OpsError) as exc:
            encodings.fetch(dest, m.url, retries=3, backoff=0.01, log=_quiet)
    assert "SHA-256" in exc.value.message and fe.ENCODINGS["o200k_base.tiktoken"] in exc.value.message
    assert "mirror" in exc.value.fix
    assert _files(dest) == [], "a file (or a partial temp file) was left at the destination"
    assert m.requests == ["o200k_base.tiktoken"], "a digest mismatch is not worth retrying"


def test_bad_file_in_dest_is_replaced(mirror, tmp_path):
    dest = tmp_path / "enc"
    dest.mkdir()
    (dest / "o200k_base.tiktoken").write_bytes(b"truncated")
    assert encodings.verify(dest) == {"o200k_base.tiktoken": "bad-hash", "cl100k_base.tiktoken": "missing"}
    rows = encodings.fetch(dest, mirror.url, log=_quiet)
    assert [r["status"] for r in rows] == ["downloaded", "downloaded"]
    assert encodings.is_usable(dest)


def test_hanging_server_times_out_with_a_fix(encodings_dir, tmp_path):
    dest = tmp_path / "enc"
    with Mirror(encodings_dir, mode="hang") as m:
        with pytest.raises(OpsError) as exc:
            encodings.fetch(dest, m.url, timeout=0.3, retries=2, backoff=0.01, log=_quiet)
        assert len(m.requests) == 2, "each attempt should reach the server once"
    assert "after 2 attempt(s)" in exc.value.message and "timeout 0.3s" in exc.value.message
    assert "--base-url" in exc.value.fix and "127.0.0.1" in exc.value.fix
    assert _files(dest) == []


def test_server_failing_twice_then_succeeding(encodings_dir, tmp_path):
    dest = tmp_path / "enc"
    messages: list[str] = []
    with Mirror(encodings_dir, mode="flaky", failures=2) as m:
        rows = encodings.fetch(dest, m.url, retries=3, backoff=0.01, log=messages.append)
    assert [r["status"] for r in rows] == ["downloaded", "downloaded"]
    assert m.requests.count("o200k_base.tiktoken") == 3
    assert any("HTTP 503" in msg and "retrying" in msg for msg in messages)
    assert encodings.is_usable(dest)


def test_not_found_is_not_retried(mirror, tmp_path):
    with pytest.raises(OpsError) as exc:
        encodings.fetch(tmp_path / "enc", mirror.url + "nowhere/", retries=3, backoff=0.01, log=_quiet)
    assert "HTTP 404" in exc.value.message
    assert len(mirror.requests) == 1


def test_local_directory_as_mirror(encodings_dir, tmp_path):
    """The offline path: a directory (or file:// URL) holding verified copies."""
    rows = encodings.fetch(tmp_path / "a", str(encodings_dir), log=_quiet)
    assert all(r["url"].startswith("file://") for r in rows)
    assert encodings.is_usable(tmp_path / "a")
    with pytest.raises(OpsError) as exc:
        encodings.fetch(tmp_path / "b", str(tmp_path / "missing"), log=_quiet)
    assert "neither a URL nor a directory" in exc.value.message


def test_verify_reports_each_file(encodings_dir, tmp_path):
    assert encodings.verify(encodings_dir) == {"o200k_base.tiktoken": "ok", "cl100k_base.tiktoken": "ok"}
    assert set(encodings.verify(tmp_path).values()) == {"missing"}


# ------------------------------------------------------------------------------------------ the CLIs


def _ops(*args: str, env: dict | None = None):
    return run_ops(*args, env=env, timeout=120, cwd=ROOT)


def test_ops_encodings_fetch_cli(mirror, tmp_path):
    dest = tmp_path / "enc"
    first = _ops("encodings", "fetch", "--dest", str(dest), "--base-url", mirror.url)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"export TIKTOKEN_ENCODINGS_BASE={dest.resolve()}\n"
    assert "downloaded and verified" in first.stderr

    second = _ops("encodings", "fetch", "--dest", str(dest), "--base-url", mirror.url, "--json")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert data["env"] == {"TIKTOKEN_ENCODINGS_BASE": str(dest.resolve())}
    assert [f["status"] for f in data["files"]] == ["present", "present"]
    assert "nothing to do" in second.stderr

    ok = _ops("encodings", "verify", "--dest", str(dest), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    (dest / "cl100k_base.tiktoken").unlink()
    bad = _ops("encodings", "verify", "--dest", str(dest), "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["files"]["cl100k_base.tiktoken"] == "missing"


def test_ops_encodings_fetch_cli_error(encodings_dir, tmp_path):
    dest = tmp_path / "enc"
    with Mirror(encodings_dir, mode="corrupt") as m:
        out = _ops("encodings", "fetch", "--dest", str(dest), "--base-url", m.url)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "error:" in out.stderr and "SHA-256" in out.stderr and "fix:" in out.stderr
    assert _files(dest) == []


def test_standalone_script(mirror, tmp_path):
    """`python3 app/fetch_encodings.py` with an isolated interpreter (no project, no site-packages)."""
    dest = tmp_path / "enc"
    cmd = [sys.executable, "-I", "-S", str(ROOT / "app" / "fetch_encodings.py"), "--dest", str(dest),
           "--base-url", mirror.url, "--timeout", "5"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"export TIKTOKEN_ENCODINGS_BASE={dest.resolve()}"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 0 and again.stderr.count("already present") == 2
