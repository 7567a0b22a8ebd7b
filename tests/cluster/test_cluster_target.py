"""The `cluster` target end to end on real hosts: two network namespaces running sshd, a real Ray head on one
and a Ray worker joining from the other (both started by the target over SSH), the tiny gpt-oss served by
Ray Serve LLM on vLLM's CPU build, deployed with `ops deploy --target cluster` and answered through the
OpenAI client. Then: a second deploy uploads nothing, a killed worker shows as dead and a re-run of deploy
brings it back, logs come from every node, terminate twice succeeds.

One deployment is shared by the whole module (it takes a few minutes); tests run in file order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import harness
from tests.support import run_ops

pytestmark = [pytest.mark.cluster, pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(encodings_dir):
    """Two hosts, the heavy-stack lock held for the module; everything torn down even on failure."""
    c = harness.create(2, stack_lock=True)
    saved = dict(os.environ)
    try:
        os.environ.update(c.env(encodings_dir))
        # Ship a snapshot of the code, so the "nothing changed" deploy compares like with like.
        src = c.root / "src"
        for pkg in ("ops", "app"):
            shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        os.environ["GPT_OSS_BUNDLE_ROOT"] = str(src)
        yield c
    finally:
        os.environ.clear()
        os.environ.update(saved)
        c.close()


@pytest.fixture(scope="module")
def spec(stack):
    from ops.spec import resolve

    return resolve(preset="tiny", flags={"target": "cluster"}).spec


@pytest.fixture(scope="module")
def deployed(stack):
    """`ops deploy --preset tiny --target cluster --json`, once for the module."""
    proc = run_ops("deploy", "--preset", "tiny", "--target", "cluster", "--json")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_deploy_brings_up_ray_and_answers_through_openai_client(stack, deployed):
    from openai import OpenAI

    assert deployed["endpoint"] == f"http://{stack.head.addr}:8000/v1"
    assert any("started the Ray head" in c for c in deployed["changed"])
    assert any("started Ray on worker" in c for c in deployed["changed"])
    assert any("uploaded app bundle" in c for c in deployed["changed"])
    client = OpenAI(base_url=deployed["endpoint"], api_key=stack.api_key, timeout=120)
    assert [m.id for m in client.models.list().data] == [deployed["model_id"]]
    chat = client.chat.completions.create(model=deployed["model_id"], max_tokens=16,
                                          messages=[{"role": "user", "content": "Say hello."}])
    assert chat.choices[0].message is not None and chat.usage.completion_tokens > 0


def test_second_deploy_changes_and_uploads_nothing(spec, deployed):
    from ops.targets import cluster

    again = cluster.deploy(spec, tunnel=True)  # smoke test through an SSH tunnel (forward_local) this time
    assert again.changed == []
    assert any("app bundle" in u and "already on" in u for u in again.unchanged)
    assert any("Serve config" in u and "unchanged" in u for u in again.unchanged)


def test_status_json_shows_nodes_and_serve_states(stack, deployed):
    proc = run_ops("status", "--preset", "tiny", "--target", "cluster", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = json.loads(proc.stdout)
    assert st["running"] is True and st["app_status"] == "RUNNING"
    assert {n["ip"] for n in st["nodes"] if n["state"] == "ALIVE"} == {h.addr for h in stack.hosts}
    assert st["deployments"] and all(d["status"] == "HEALTHY" for d in st["deployments"].values())
    assert st["details"]["dead_nodes"] == []


def test_logs_come_from_every_node(stack, spec, deployed):
    from ops.targets import cluster

    out = cluster.logs(spec, lines=20)
    by_host: dict[str, list[str]] = {}
    for key in out:
        host, _, name = key.partition(":")
        by_host.setdefault(host, []).append(name)
    assert set(by_host) == {h.addr for h in stack.hosts}
    assert any(f.startswith("serve/") for f in by_host[stack.head.addr]), sorted(by_host[stack.head.addr])
    assert all(len(v) <= 20 for v in out.values())


def test_killed_worker_shows_as_dead(stack, spec, deployed):
    from ops.targets import cluster

    worker = stack.hosts[1]
    assert stack.kill_processes(worker) > 0
    deadline = time.monotonic() + 180
    st = None
    while time.monotonic() < deadline:
        st = cluster.status(spec)
        if worker.addr in st.details["dead_nodes"]:
            break
        time.sleep(5)
    assert st is not None and worker.addr in st.details["dead_nodes"], st and st.nodes
    assert [n["state"] for n in st.nodes if n["ip"] == worker.addr][-1] == "DEAD"


def test_redeploy_after_worker_crash_rejoins_it(stack, spec, deployed):
    """Resuming after a node crash: deploy starts Ray on the worker again and converges."""
    from ops.targets import cluster

    again = cluster.deploy(spec)
    assert any("started Ray on worker" in c for c in again.changed), again
    st = cluster.status(spec)
    assert st.running
    assert any(n["ip"] == stack.hosts[1].addr and n["state"] == "ALIVE" for n in st.nodes)


def test_terminate_twice(spec, deployed):
    from ops.targets import cluster

    first = cluster.terminate(spec)
    assert first.stopped and not first.already_stopped
    second = cluster.terminate(spec)
    assert second.stopped == [] and second.already_stopped
    st = cluster.status(spec)
    assert st.running is False and st.app_status == "NOT_DEPLOYED"
