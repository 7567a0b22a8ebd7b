"""The two slow reproductions, re-run for real: a transformers release that predates gpt-oss refusing the tiny
gpt-oss checkpoint (the throwaway venv `make test-envs` builds before the suite), and vLLM's CPU engine refusing a max_model_len its KV cache cannot hold
(the real engine, under the stack lock). Both outputs must be recognised by the doctor and match the recorded
fixtures' final lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import tiny_model
from ops.doctor import checks, scan
from tests import scripts
from tests.support import OLD_TRANSFORMERS, env_python, free_port

ERRORS = Path(__file__).parent / "fixtures" / "errors"
reproduce = scripts.load(ERRORS / "reproduce.py", "doctor_reproduce")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, encodings_dir) -> Path:
    return tiny_model.ensure(encodings_dir, tmp_path_factory.mktemp("tiny") / "tiny-gpt-oss")


@pytest.fixture(scope="module")
def old_transformers() -> Path:
    """transformers 4.54.1 and its light dependencies (no torch) in a venv of its own, built before the suite."""
    return env_python(OLD_TRANSFORMERS)


@pytest.mark.timeout(900)
def test_transformers_before_gpt_oss_refuses_the_checkpoint(old_transformers, tiny_dir):
    text = reproduce.transformers_unknown_gpt_oss(old_transformers, tiny_dir)
    found = scan.scan([("replica.log", text)])
    assert [f.signature for f in found] == ["transformers-unknown-gpt-oss"]
    assert found[0].id == "serving-versions"
    recorded = reproduce.read_fixture("transformers_unknown_gpt_oss.txt")
    assert "ValueError: The checkpoint you are trying to load has model type `gpt_oss`" in text
    assert text.strip().splitlines()[-1] == recorded.strip().splitlines()[-1]


def test_doctor_flags_the_old_environment_before_it_is_used(old_transformers):
    """The environment check catches the same problem from package metadata, without importing anything."""
    f = checks.serving_versions(str(old_transformers))
    assert f.status == "fail" and "transformers 4.54.1 does not know model type gpt_oss" in f.summary
    assert f.runbook == "docs/runbooks/gpt-oss-unknown-architecture.md"



@pytest.mark.stack
@pytest.mark.timeout(1200)
def test_vllm_cpu_engine_refuses_a_max_model_len_its_kv_cache_cannot_hold(tiny_dir, encodings_dir, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
    text = reproduce.kv_cache_too_small(tiny_dir, free_port())
    found = {f.signature: f for f in scan.scan([("engine.err", text)])}
    assert "kv-cache-max-model-len" in found, text[-3000:]
    f = found["kv-cache-max-model-len"]
    assert f.id == "kv-cache" and "max seq len (131072)" in f.evidence
    assert "the estimated maximum model length is" in f.evidence
    recorded = reproduce.read_fixture("vllm_kv_cache_too_small.txt")
    line = next(x for x in text.splitlines() if "To serve at least one request" in x)
    assert line.split("ValueError: ", 1)[1] in recorded
