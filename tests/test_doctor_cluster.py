"""`ops doctor --target cluster` reads every node's Ray logs over real SSH (network-namespace hosts running
sshd, tests/cluster/harness.py), names the node and file where a failure was seen, and reports a node it could
not reach instead of silently scanning fewer. It also finds a vLLM engine a dead Ray left on a node, which
`ops terminate --target cluster` reaps there over SSH."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
import harness  # noqa: E402  (tests/cluster/harness.py)

from ops.cli import app  # noqa: E402
from tests.test_doctor_orphans import start_orphan_engine  # noqa: E402

pytestmark = pytest.mark.cluster
ERRORS = Path(__file__).parent / "fixtures" / "errors"


@pytest.fixture
def two_hosts(monkeypatch, encodings_dir):
    c = harness.create(2)
    try:
        for k, v in c.env(encodings_dir).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
        yield c
    finally:
        c.close()


def _session_logs(c, host) -> Path:
    """Where the node's Ray session logs live: the cluster target's per-host Ray temp dir."""
    d = Path(c.env(Path("/unused"))["GPT_OSS_RAY_TEMP_DIR"].replace("{host}", host.addr)) / "session_latest" / "logs"
    (d / "serve").mkdir(parents=True)
    return d


def _text(name: str) -> str:
    return (ERRORS / name).read_text().split("\n---\n", 1)[1]


def test_every_node_is_scanned_and_an_unreachable_one_is_reported(two_hosts):
    head, worker = two_hosts.hosts
    head_logs = _session_logs(two_hosts, head)
    (head_logs / "serve" / "replica_default_LLMServer_my-gpt-oss.log").write_text(_text("harmony_vocab_download.txt"))
    (head_logs / "raylet.out").write_text("INFO raylet started\n")
    worker_logs = _session_logs(two_hosts, worker)
    (worker_logs / "worker-abc.err").write_text(_text("vllm_kv_cache_too_small.txt"))

    r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json"])
    rows = json.loads(r.stdout)
    sigs = {x.get("signature"): x for x in rows if x.get("signature")}
    assert sigs["harmony-vocab-download"]["sources"] == [
        f"{head.addr}:{head_logs}/serve/replica_default_LLMServer_my-gpt-oss.log"]
    assert sigs["harmony-vocab-download"]["runbook"] == "docs/runbooks/harmony-vocab-download.md"
    assert sigs["kv-cache-max-model-len"]["sources"] == [f"{worker.addr}:{worker_logs}/worker-abc.err"]
    assert r.exit_code == 1

    two_hosts.kill_sshd(worker)
    r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json", "--host", f"root@{head.addr}",
                                 "--host", f"root@{worker.addr}"])
    rows = json.loads(r.stdout)
    not_scanned = [x for x in rows if x["id"] == "logs" and x["status"] == "warn"]
    assert len(not_scanned) == 1 and worker.addr in not_scanned[0]["summary"]
    assert {x.get("signature") for x in rows} >= {"harmony-vocab-download"}
    assert "kv-cache-max-model-len" not in {x.get("signature") for x in rows}


def test_node_encodings_are_verified_over_ssh(two_hosts, monkeypatch, tmp_path, encodings_dir):
    head, worker = two_hosts.hosts
    r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json"])
    nodes = (head.addr + ":", worker.addr + ":")
    rows = [x for x in json.loads(r.stdout) if x["id"] == "encodings" and x["summary"].startswith(nodes)]
    assert sorted(x["summary"].split(":")[0] for x in rows) == sorted([head.addr, worker.addr])
    assert all(x["status"] == "ok" for x in rows)
    # The nodes' copy loses a byte: every node's engines would fail, and doctor says so before they start.
    bad = tmp_path / "enc"
    bad.mkdir()
    for name in ("o200k_base.tiktoken", "cl100k_base.tiktoken"):
        data = bytearray((encodings_dir / name).read_bytes())
        if name.startswith("cl100k"):
            data[7] ^= 0x04
        (bad / name).write_bytes(bytes(data))
    monkeypatch.setenv("GPT_OSS_REMOTE_ENCODINGS", str(bad))
    r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json"])
    rows = [x for x in json.loads(r.stdout) if x["id"] == "encodings" and x["status"] == "fail"]
    assert len(rows) == 2 and all("cl100k_base.tiktoken has sha256" in x["summary"] for x in rows)
    assert r.exit_code == 1
    (bad / "o200k_base.tiktoken").unlink()
    r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json", "--host", f"root@{head.addr}"])
    rows = [x for x in json.loads(r.stdout) if x["id"] == "encodings" and x["status"] == "fail"]
    assert len(rows) == 1 and "o200k_base.tiktoken missing" in rows[0]["summary"]


def test_an_orphaned_engine_on_a_node_is_found_and_reaped_over_ssh(two_hosts):
    from ops import engine_orphans
    from ops.spec import resolve
    from ops.targets import cluster

    head, _ = two_hosts.hosts
    token = f"{two_hosts.env(Path('/unused'))['GPT_OSS_REMOTE_DIR']}/config/ray_token"
    engine = start_orphan_engine(token)
    pid = engine.pid
    try:
        r = CliRunner().invoke(app, ["doctor", "--target", "cluster", "--json"])
        rows = [x for x in json.loads(r.stdout) if x["id"] == "engine-orphans" and x["status"] == "fail"]
        on_head = [x for x in rows if x["summary"].startswith(f"{head.addr}: ")]
        assert on_head and f"pid {pid} VLLM::EngineCore" in on_head[0]["summary"], rows
        assert on_head[0]["fix"].startswith("ops terminate --target cluster")
        assert r.exit_code == 1

        spec = resolve(preset="tiny", flags={"target": "cluster"}).spec
        res = cluster.terminate(spec)
        reaped = [s for s in res.stopped if s.startswith(f"orphaned vLLM engine pid {pid} VLLM::EngineCore on ")]
        assert len(reaped) == 1, res
        assert engine_orphans.orphans(token) == []
        assert not any(s.startswith("orphaned") for s in cluster.terminate(spec).stopped)  # twice: nothing left
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
