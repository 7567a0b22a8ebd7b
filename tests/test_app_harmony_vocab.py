"""The seed's vocab failure, reproduced for real: openai-harmony with no TIKTOKEN_ENCODINGS_BASE, an empty
cache and no network raises the error operators meet in replica logs; the same call with the variable set to
the verified encodings loads. The exact last line of that traceback is kept in
tests/fixtures/errors/harmony_vocab.txt, which the doctor matches against logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "errors" / "harmony_vocab.txt"
LOAD = ("from openai_harmony import load_harmony_encoding, HarmonyEncodingName\n"
        "enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)\n"
        "print('loaded', enc.name)\n")


def _run(tmp_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    home, cache = tmp_path / "home", tmp_path / "tiktoken-cache"
    home.mkdir(exist_ok=True)
    cache.mkdir(exist_ok=True)
    # A clean environment: no inherited TIKTOKEN_ENCODINGS_BASE, an empty vocab cache and HOME, and every
    # download pointed at a closed local port (plus a network namespace without routes when we may make one).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TIKTOKEN_CACHE_DIR": str(cache),
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", **extra_env}
    cmd = [sys.executable, "-c", LOAD]
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        cmd = [unshare, "--net", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_vocab_error_without_encodings_matches_fixture(tmp_path):
    proc = _run(tmp_path, {})
    assert proc.returncode != 0, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("openai_harmony.HarmonyError: error downloading or loading vocab file"), proc.stderr
    assert last == FIXTURE.read_text().strip()


def test_vocab_loads_offline_with_encodings_base(tmp_path, encodings_dir):
    proc = _run(tmp_path, {"TIKTOKEN_ENCODINGS_BASE": str(encodings_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "loaded" in proc.stdout
