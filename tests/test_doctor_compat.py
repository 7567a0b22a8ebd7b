"""The compatibility preflight: the Ray / vLLM / torch / torchvision / Triton pieces of a serving environment,
read from their installed metadata. Today's environment (the project venv) passes; a real mismatched pair
(the throwaway environment `make test-envs` builds: this stack plus PyPI's torchvision, a CUDA build for another
torch) is refused by `ops doctor` and by `ops deploy --target local` before anything starts, with the versions,
one line of cause, the install command and the runbook, and no traceback."""

from __future__ import annotations

import copy
import importlib.metadata as md
import json
import re
import sys

import pytest

from ops.doctor import compat
from tests.support import TORCHVISION_MISMATCH, env_python, run_ops


@pytest.fixture(scope="module")
def here() -> dict:
    """What the project venv holds, as the probe reads it."""
    return compat.probe(sys.executable)


@pytest.fixture(scope="module")
def mismatch() -> str:
    return str(env_python(TORCHVISION_MISMATCH))


def _by_id(findings):
    return {f.id: f for f in findings}


def test_todays_environment_passes(here):
    found = _by_id(compat.findings(sys.executable, here, env={}))
    assert {i: f.status for i, f in found.items()} == {"ray-vllm": "ok", "vllm-deps": "ok", "torchvision": "ok",
                                                       "triton": "ok", "attention-backend-env": "ok"}
    compat.require(sys.executable)  # does not raise


def test_the_pin_comes_from_rays_own_metadata(here):
    """The vLLM Ray was built for is read from Ray's `llm` extra, not kept here."""
    pins = [r for r in md.requires("ray") if re.match(r"vllm\b", r) and 'extra == "llm"' in r]
    assert len(pins) == 1
    spec = re.search(r"==[\w.]+", pins[0]).group(0)
    assert here["ray_llm_pin"]["spec"] == spec
    f = compat.ray_vllm(here)
    assert f.status == "ok" and f"vllm{spec}" in f.summary and md.version("ray") in f.summary


def test_a_vllm_other_than_rays_pin_is_refused_with_the_install_command(here):
    info = copy.deepcopy(here)
    dist = info["vllm_dist"]
    pinned = info["ray_llm_pin"]["spec"][2:]
    info["dists"][dist] = "0.22.1"
    info["ray_llm_pin"]["ok"] = False  # as the probe evaluates `vllm==PIN` against 0.22.1
    f = compat.ray_vllm(info)
    assert f.status == "fail" and f"{dist} 0.22.1" in f.summary and f"vllm=={pinned}" in f.summary
    assert f'pip install "{dist}=={pinned}"' in f.fix and f.runbook == "docs/runbooks/ray-vllm-version-mismatch.md"


def test_a_pair_reported_broken_upstream_is_refused_though_the_extra_allowed_it(here):
    """ray-project/ray #64006: Ray 2.55.1's extra said vllm[audio]>=0.18.0 and pip took 0.22.1."""
    info = copy.deepcopy(here)
    info["dists"].update({"ray": "2.55.1", info["vllm_dist"]: "0.22.1"})
    info["ray_llm_pin"] = {"spec": ">=0.18.0", "extras": ["audio"], "installed": "0.22.1", "ok": True}
    f = compat.ray_vllm(info)
    assert f.status == "fail" and "#64006" in f.summary and 'pip install "ray[serve,llm]==2.60.0"' in f.fix


def test_vllm_own_torch_pin_unmet_names_the_cpu_index(here):
    info = copy.deepcopy(here)
    torch_need = next(n for n in info["needs"] if n["dist"] == "torch")
    torch_need.update(installed="2.12.1", ok=False)
    f = compat.vllm_deps(info)
    assert f.status == "fail" and "installed: 2.12.1" in f.summary
    if torch_need["spec"].endswith("+cpu"):
        assert f'pip install "torch{torch_need["spec"]}" --index-url {compat.TORCH_CPU_INDEX}' in f.fix


def test_two_triton_distributions_are_refused(here):
    info = copy.deepcopy(here)
    info["dists"].update({"triton": "3.9.0", "pytorch-triton": "3.9.0+git1234"})
    f = compat.triton(info)
    assert f.status == "fail" and "pytorch-triton 3.9.0+git1234" in f.summary
    assert f.fix.startswith("pip uninstall -y triton pytorch-triton && pip install \"triton==3.9.0\"")


def test_attention_backend_env_is_flagged_on_a_vllm_that_ignores_it(here):
    f = compat.attention_backend_env(here, {"VLLM_ATTENTION_BACKEND": "TRITON_ATTN_VLLM_V1"})
    assert here["vllm_reads_attention_env"] is False  # vLLM 0.29's envs.py no longer lists it
    assert f.status == "warn" and "--attention-backend TRITON_ATTN" in f.fix


def test_the_torchvision_mismatch_is_found_from_metadata_and_by_importing(mismatch):
    f = _by_id(compat.findings(mismatch, env={}))["torchvision"]
    assert f.status == "fail"
    assert "torchvision 0.29.1 requires torch>=2.14.0" in f.summary
    assert "a CPU build, torchvision 0.29.1 a CUDA build" in f.summary
    assert "RuntimeError: operator torchvision::nms does not exist" in f.summary
    assert f.fix.startswith("pip uninstall -y torchvision torchaudio torchcodec")
    assert 'pip install "torchvision~=0.28.0" --index-url https://download.pytorch.org/whl/cpu' in f.fix


def test_doctor_reports_it_for_another_interpreter(mismatch, encodings_dir, tmp_path):
    log = tmp_path / "clean.log"
    log.write_text("INFO Application 'default' is RUNNING\n")
    proc = run_ops("doctor", "--json", "--python", mismatch, "--log", str(log),
                   env={"TIKTOKEN_ENCODINGS_BASE": str(encodings_dir)}, timeout=300)
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert rows["torchvision"]["status"] == "fail" and rows["torchvision"]["runbook"] == \
        "docs/runbooks/torchvision-mismatch.md"
    assert rows["ray-vllm"]["status"] == "ok"


def test_deploy_refuses_it_before_anything_starts(mismatch, tmp_path, encodings_dir):
    """What `pip install "gpt-oss-ops[local]"` then `ops deploy --target local` gets: one cause, one fix, the
    runbook, and no traceback; no Ray started, nothing written."""
    home = tmp_path / "ops-home"
    proc = run_ops("deploy", "--target", "local", python=mismatch, timeout=300,
                   env={"GPT_OSS_OPS_HOME": str(home), "TIKTOKEN_ENCODINGS_BASE": str(encodings_dir)})
    assert proc.returncode == 1
    err = " ".join(proc.stderr.split())  # the console wraps long lines
    assert "Traceback" not in proc.stderr
    assert "nothing was started" in err and "operator torchvision::nms does not exist" in err
    assert "fix: pip uninstall -y torchvision torchaudio torchcodec" in err
    assert "docs/runbooks/torchvision-mismatch.md" in err
    assert not home.exists()  # no key, no Ray token, no Serve config: the refusal came first
