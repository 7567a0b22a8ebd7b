"""`ops doctor` end to end through the CLI: JSON shape on stdout, the table on stderr, exit codes, the encodings
states (good / missing / one flipped byte / variable unset), log files, and the local Ray session log tree."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.doctor import scan
from tests.support import run_ops

ROOT = Path(__file__).resolve().parents[1]
ERRORS = Path(__file__).parent / "fixtures" / "errors"
OPS = Path(sys.executable).parent / "ops"


@pytest.fixture
def clean_log(tmp_path):
    p = tmp_path / "clean.log"
    p.write_text("INFO Application 'default' is RUNNING\n")
    return p


@pytest.fixture
def env_ok(monkeypatch, encodings_dir):
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
    monkeypatch.setenv("GPT_OSS_API_KEY", "test-key")
    monkeypatch.delenv("VLLM_ATTENTION_BACKEND", raising=False)
    # Other Ray sessions on this machine must not leak into these tests: ask a closed port for Serve status.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("RAY_DASHBOARD_ADDRESS", f"http://127.0.0.1:{s.getsockname()[1]}")


def _doctor(*args: str):
    r = CliRunner().invoke(app, ["doctor", *args])
    return r, (json.loads(r.stdout) if "--json" in args else None)


def _row(rows, id_):
    found = [r for r in rows if r["id"] == id_]
    assert found, f"no {id_} row in {[r['id'] for r in rows]}"
    return found[0]


def test_json_shape_and_exit_zero_when_nothing_fails(env_ok, clean_log):
    r, rows = _doctor("--json", "--log", str(clean_log))
    assert r.exit_code == 0, r.stdout + r.stderr
    assert isinstance(rows, list) and rows
    for row in rows:
        assert {"id", "status", "summary", "runbook"} <= set(row)
        assert row["status"] in ("ok", "warn", "fail")
        assert row["runbook"] is None or (ROOT / row["runbook"]).is_file()
    ids = {row["id"] for row in rows}
    assert {"encodings", "encodings-env", "serving-versions", "attention-backend", "gpu-memory", "kv-cache",
            "disk-space", "ray-ports", "api-key", "serve-app", "logs"} <= ids
    assert _row(rows, "encodings")["status"] == "ok"
    assert r.stderr == "" or "ops doctor" not in r.stderr  # --json: no table


def test_table_goes_to_stderr(env_ok, clean_log):
    r, _ = _doctor("--log", str(clean_log))
    assert r.exit_code == 0
    assert r.stdout == ""
    assert "ops doctor" in r.stderr and "encodings" in r.stderr and "0 failed" in r.stderr


def test_missing_encodings_fail(env_ok, monkeypatch, tmp_path, clean_log):
    empty = tmp_path / "enc"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(empty))
    r, rows = _doctor("--json", "--log", str(clean_log))
    assert r.exit_code == 1
    row = _row(rows, "encodings")
    assert row["status"] == "fail" and "o200k_base.tiktoken missing" in row["summary"]
    assert row["runbook"] == "docs/runbooks/harmony-vocab-download.md"
    assert "ops encodings fetch --dest" in row["fix"]


def test_corrupted_encodings_fail(env_ok, monkeypatch, tmp_path, encodings_dir, clean_log):
    bad = tmp_path / "enc"
    shutil.copytree(encodings_dir, bad)
    p = bad / "o200k_base.tiktoken"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x20
    p.write_bytes(bytes(data))
    r, rows = _doctor("--json", "--encodings", str(bad), "--log", str(clean_log))
    assert r.exit_code == 1
    assert "o200k_base.tiktoken has sha256" in _row(rows, "encodings")["summary"]


def test_encodings_env_unset(env_ok, monkeypatch, encodings_dir, clean_log):
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE")
    r, rows = _doctor("--json", "--encodings", str(encodings_dir), "--log", str(clean_log))
    assert _row(rows, "encodings")["status"] == "ok"
    env_row = _row(rows, "encodings-env")
    assert env_row["status"] == "warn" and f"export TIKTOKEN_ENCODINGS_BASE={encodings_dir}" in env_row["fix"]
    assert r.exit_code == 0
    r, rows = _doctor("--json", "--log", str(clean_log))  # nothing known at all
    assert r.exit_code == 1
    assert _row(rows, "encodings")["status"] == "fail" and _row(rows, "encodings-env")["status"] == "fail"


def test_log_file_with_a_known_failure(env_ok):
    log = ERRORS / "vllm_kv_cache_too_small.txt"
    r, rows = _doctor("--json", "--log", str(log))
    assert r.exit_code == 1
    row = [x for x in rows if x.get("signature") == "kv-cache-max-model-len"][0]
    assert row["id"] == "kv-cache" and row["status"] == "fail"
    assert row["runbook"] == "docs/runbooks/kv-cache-max-model-len.md"
    assert row["sources"] == [str(log)] and "max seq len (131072)" in row["evidence"]
    assert rows[0]["status"] == "fail"  # failures first


def test_missing_log_file_is_a_clear_error(tmp_path):
    proc = run_ops("doctor", "--log", str(tmp_path / "nope.log"), timeout=120)
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert "nope.log: no such file." in text and "fix: pass the path of a log file" in text


def test_bad_target_is_refused():
    proc = run_ops("doctor", "--target", "anyscale", timeout=120)
    assert proc.returncode != 0 and "--target local or --target cluster" in " ".join(proc.stderr.split())


def test_local_ray_session_logs_are_scanned_including_serve_and_workers(env_ok, monkeypatch, tmp_path):
    logs = tmp_path / "session_latest" / "logs"
    (logs / "serve").mkdir(parents=True)
    harmony = (ERRORS / "harmony_vocab_download.txt").read_text().split("\n---\n", 1)[1]
    kv = (ERRORS / "vllm_kv_cache_too_small.txt").read_text().split("\n---\n", 1)[1]
    (logs / "serve" / "replica_default_LLMServer_my-gpt-oss_abc.log").write_text(harmony)
    (logs / "worker-01ab-ffff-1234.err").write_text(kv)
    (logs / "raylet.out").write_text("INFO raylet started\n")
    monkeypatch.setenv("GPT_OSS_RAY_TEMP_DIR", str(tmp_path))  # where this machine's Ray keeps its session
    r, rows = _doctor("--json")
    assert r.exit_code == 1
    sigs = {x.get("signature"): x for x in rows if x.get("signature")}
    assert set(sigs) == {"harmony-vocab-download", "kv-cache-max-model-len"}
    assert sigs["harmony-vocab-download"]["sources"][0].endswith("serve/replica_default_LLMServer_my-gpt-oss_abc.log")
    assert sigs["kv-cache-max-model-len"]["sources"][0].endswith("worker-01ab-ffff-1234.err")


def test_no_local_ray_session(env_ok, monkeypatch, tmp_path):
    monkeypatch.setenv("GPT_OSS_RAY_TEMP_DIR", str(tmp_path / "absent"))
    r, rows = _doctor("--json")
    assert _row(rows, "logs")["status"] == "ok" and "absent" in _row(rows, "logs")["summary"]


def test_invalid_spec_becomes_findings_not_a_crash(env_ok, clean_log):
    r, rows = _doctor("--json", "--preset", "gpt-oss-20b", "--accelerator", "CPU", "--log", str(clean_log))
    assert r.exit_code == 1
    row = _row(rows, "gpu-memory")
    assert row["status"] == "fail" and "needs a GPU" in row["summary"]


def test_doctor_command_imports_no_serving_stack():
    """`ops doctor` must run where Ray, vLLM, torch and fabric are not installed: it never imports them."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom ops.cli import app\n"
            "CliRunner().invoke(app, ['doctor', '--json', '--log', sys.argv[1]])\n"
            "print(sorted(m for m in ('ray', 'vllm', 'torch', 'fabric', 'transformers', 'pulumi_aws') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, __file__], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TIKTOKEN_ENCODINGS_BASE": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_remote_command_runs_in_a_shell_and_splits_back_per_file(tmp_path):
    """The line Fabric runs on each node, run here by a real shell over a real log tree."""
    logs = tmp_path / "ray x" / "session_latest" / "logs"  # a space: the directory is one quoted argument
    (logs / "serve").mkdir(parents=True)
    (logs / "raylet.out").write_text("line 1\nline 2\n")
    (logs / "serve" / "replica.log").write_text("openai_harmony.HarmonyError: error downloading or loading vocab "
                                               "file: failed to download or load vocab file\n")
    (logs / "ignored.bin").write_text("not a log")
    cmd = scan.remote_command(str(logs))
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    parts = dict(scan.split_remote("10.0.0.5", out))
    assert set(parts) == {f"10.0.0.5:{logs}/raylet.out", f"10.0.0.5:{logs}/serve/replica.log"}
    assert "line 2" in parts[f"10.0.0.5:{logs}/raylet.out"]
    found = scan.scan(parts.items())
    assert [f.signature for f in found] == ["harmony-vocab-download"]
    assert found[0].sources == [f"10.0.0.5:{logs}/serve/replica.log"]
    # A node without a Ray session prints nothing and is not an error.
    empty = subprocess.run(["sh", "-c", scan.remote_command(str(tmp_path / "none"))], capture_output=True, text=True)
    assert empty.returncode == 0 and empty.stdout == ""


def test_doctor_log_recognises_every_recorded_failure(env_ok, tmp_path):
    """`ops doctor --log FILE` on each recorded error text (tests/fixtures/errors): every signature is named, with
    its runbook, and the run fails."""
    from ops.doctor import signatures

    args = []
    for fixture in sorted(ERRORS.glob("*.txt")):
        header, sep, text = fixture.read_text().partition("\n---\n")
        if sep:
            log = tmp_path / fixture.name
            log.write_text(text)
            args += ["--log", str(log)]
    r, rows = _doctor("--json", *args)
    found = {row["signature"]: row for row in rows if row.get("signature")}
    assert set(found) == set(signatures.BY_NAME)
    assert all((ROOT / row["runbook"]).is_file() for row in found.values())
    assert r.exit_code == 1
