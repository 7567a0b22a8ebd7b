"""The orphaned-engine case, reproduced for real on the local stack: `ops deploy --target local`, then every Ray
process of the deployment is killed by a signal at once (as `ray stop --force` or `pkill -9` does), and vLLM's
`VLLM::EngineCore` / `VLLM::Worker` survive, reparented, holding gigabytes. `ops doctor` must name them and the
fix, `ops terminate` must reap them by pid and say so, and `ops doctor` is clean afterwards. The stack tests take
the stack lock (/tmp/gpt-oss-stack.lock), like every test that starts the stack.

"At once" is what makes the case reproducible. A Ray worker that outlives its raylet by a moment exits cleanly and
kills its direct children (RAY_kill_child_processes_on_worker_exit), and `ray stop --force` SIGKILLs the raylet
before the workers, so on a loaded machine the engines sometimes went with them (and a test that only ran
`ray stop --force` failed now and then). So Ray's processes are frozen (SIGSTOP), then killed, then `ray stop
--force` ends Ray's helpers.

Cheaper cases (an engine that ignores SIGTERM, nvidia-smi's process list) use an engine whose Ray is gone made
with vLLM's own set_process_title (`start_orphan_engine`, also used by the cluster test)."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops import engine_orphans
from tests.support import run_ops

LOCK = "/tmp/gpt-oss-stack.lock"

# Titled by vLLM's own set_process_title (as EngineCoreProc titles itself), started by a parent that exits at
# once so it is reparented to init. SPT_NOENV keeps its environment readable (/proc/PID/environ), as it is for
# vLLM's engines, so its RAY_AUTH_TOKEN_PATH names the deployment.
_ENGINE = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; from vllm.utils.system_utils import set_process_title; "
    "IGNORE and signal.signal(signal.SIGTERM, signal.SIG_IGN); set_process_title(\"EngineCore\"); time.sleep(600)'], "
    "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)


def start_orphan_engine(token: str, ignore_term: bool = False, timeout: float = 120) -> engine_orphans.Proc:
    """A `VLLM::EngineCore` with no Ray above it, carrying `token` as its deployment's Ray token file."""
    code = _ENGINE.replace("IGNORE", "True" if ignore_term else "False")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "RAY_AUTH_TOKEN_PATH": token, "SPT_NOENV": "1"},
                   check=True, timeout=60)
    deadline = time.monotonic() + timeout
    while not (found := engine_orphans.orphans(token)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(found) == 1 and found[0].title == "VLLM::EngineCore", found
    return found[0]


def test_an_engine_that_ignores_sigterm_is_killed(tmp_path):
    token = str(tmp_path / "ray_auth_token")
    engine = start_orphan_engine(token, ignore_term=True)
    try:
        [r] = engine_orphans.reap(engine_orphans.orphans(token), grace_s=1)
        assert r["pid"] == engine.pid and r["signal"] == "SIGKILL" and r["gone"]
        assert engine_orphans.orphans(token) == []
    finally:
        try:
            os.kill(engine.pid, 9)
        except ProcessLookupError:
            pass


def test_gpu_memory_outside_a_live_ray_is_reported(tmp_path):
    """nvidia-smi's compute apps (`--query-compute-apps=pid,used_memory,process_name --format=csv,noheader,
    nounits`): an orphaned engine holding GPU memory is a finding."""
    from ops.doctor import checks

    engine = start_orphan_engine(str(tmp_path / "ray_auth_token"))
    try:
        text = f"{engine.pid}, 20480, VLLM::EngineCore\n"
        apps = engine_orphans.parse_compute_apps(text, engine_orphans.processes())
        assert apps == [{"pid": engine.pid, "used_mib": 20480.0, "name": "VLLM::EngineCore", "owned": False}]
        f = checks.gpu_processes(apps)
        assert f.status == "fail" and f"pid {engine.pid} VLLM::EngineCore (20480.0 MiB)" in f.summary
        assert f.runbook == "docs/runbooks/orphaned-engines.md" and f"kill {engine.pid}" in f.fix
        assert checks.gpu_processes([]).status == "ok"
        if shutil.which("nvidia-smi") is None:
            assert checks.gpu_processes().summary == "not applicable: no NVIDIA driver (nvidia-smi absent)"
    finally:
        os.kill(engine.pid, 9)


def _rows(proc) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(proc.stdout)}


def _kill_ray_at_once(token: str, env: dict[str, str]) -> None:
    """Every Ray process of the deployment whose token file is `token` (raylet, GCS, `ray::` workers) stopped, then
    SIGKILLed: none gets to notice another's death and clean up. `ray stop --force` (the target's Ray environment)
    then ends Ray's helpers (dashboard, agents), which own no engines."""
    from ops.targets import local

    ray = [p.pid for p in engine_orphans.processes().values()
           if engine_orphans.is_ray(p.title) and engine_orphans.token_path_of(p.pid) == token]
    assert ray, "the deployment's Ray processes carry its token file"
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in ray:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    subprocess.run([local._bin("ray"), "stop", "--force"], env={**local.ray_env(), **env, "RAY_AUTH_TOKEN_PATH": token},
                   capture_output=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory, tiny_model_dir, encodings_dir):
    """A deployment whose Ray was killed under it; whatever is left is ended here, even on failure."""
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    ray_tmp = Path(f"/tmp/gr-{secrets.token_hex(3)}")
    ray_tmp.mkdir()
    home = tmp_path_factory.mktemp("gpt-oss-ops-home")
    env = {"GPT_OSS_OPS_HOME": str(home), "GPT_OSS_RAY_TEMP_DIR": str(ray_tmp),
           "TIKTOKEN_ENCODINGS_BASE": str(encodings_dir), "GPT_OSS_API_KEY": "", "RAY_DASHBOARD_ADDRESS": ""}
    token = str(home / "ray_auth_token")
    try:
        proc = run_ops("deploy", "--target", "local", "--json", env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        engines = engine_orphans.processes()
        mine = [p for p in engines.values()
                if p.title.startswith("VLLM::") and engine_orphans.token_path_of(p.pid) == token]
        assert mine and all(engine_orphans.under_ray(p.pid, engines) for p in mine), "engines run under Ray"
        _kill_ray_at_once(token, env)
        yield {"env": env, "token": token, "engines": mine}
    finally:
        for p in engine_orphans.orphans(token):  # a failed test leaves nothing running
            try:
                os.kill(p.pid, 9)
            except ProcessLookupError:
                pass
        run_ops("terminate", "--target", "local", env=env, timeout=300)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        lock.close()


@pytest.mark.stack
@pytest.mark.timeout(1800)
def test_engines_survive_an_abrupt_ray_stop(crashed):
    time.sleep(2)
    left = engine_orphans.orphans(crashed["token"])
    titles = {p.title.split(" ", 1)[0] for p in left}
    assert "VLLM::EngineCore" in titles and any(t.startswith("VLLM::Worker") for t in titles), titles
    assert {p.pid for p in left} == {p.pid for p in crashed["engines"]}
    assert sum(p.rss_mib for p in left) > 500  # the model and the CPU KV cache are still held


@pytest.mark.stack
@pytest.mark.timeout(1800)
def test_doctor_finds_them_and_names_the_fix(crashed):
    proc = run_ops("doctor", "--json", env=crashed["env"], timeout=300)
    rows = _rows(proc)
    f = rows["engine-orphans"]
    assert proc.returncode == 1 and f["status"] == "fail", f
    for p in crashed["engines"]:
        assert f"pid {p.pid} {p.title.split(' ', 1)[0]}" in f["summary"]
    assert f["fix"].startswith("ops terminate --target local") and f["runbook"] == "docs/runbooks/orphaned-engines.md"
    gpu = rows["gpu-processes"]
    if shutil.which("nvidia-smi") is None:
        assert gpu["status"] == "ok" and gpu["summary"].startswith("not applicable")


@pytest.mark.stack
@pytest.mark.timeout(1800)
def test_terminate_reaps_them_by_pid_then_doctor_is_clean(crashed):
    proc = run_ops("terminate", "--target", "local", "--json", env=crashed["env"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stopped = json.loads(proc.stdout)["stopped"]
    for p in crashed["engines"]:
        assert any(s.startswith(f"orphaned vLLM engine pid {p.pid} VLLM::") for s in stopped), stopped
    assert engine_orphans.orphans(crashed["token"]) == []
    for p in crashed["engines"]:
        assert not Path(f"/proc/{p.pid}/cmdline").exists() or Path(f"/proc/{p.pid}/cmdline").read_bytes() == b""
    again = run_ops("terminate", "--target", "local", env=crashed["env"], timeout=300)
    assert again.returncode == 0 and "nothing was running" in again.stderr
    rows = _rows(run_ops("doctor", "--json", env=crashed["env"], timeout=300))
    assert rows["engine-orphans"]["status"] == "ok", rows["engine-orphans"]
