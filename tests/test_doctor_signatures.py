"""Every log signature of `ops doctor` is exercised by real error text: the recorded fixtures (produced here by
the real library where possible, else quoted from its source with provenance), and the cheap reproductions
re-run live so a library that changes its wording breaks the test, not the user's diagnosis."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from ops.doctor import registry, scan, signatures
from tests import scripts

ROOT = Path(__file__).resolve().parents[1]
ERRORS = Path(__file__).parent / "fixtures" / "errors"

reproduce = scripts.load(ERRORS / "reproduce.py", "doctor_reproduce")

# fixture file -> (signature name, check id)
EXPECTED = {
    "harmony_vocab_download.txt": ("harmony-vocab-download", "encodings"),
    "harmony_vocab_hash_mismatch.txt": ("harmony-vocab-hash", "encodings"),
    "harmony_vocab_missing.txt": ("harmony-vocab-missing", "encodings"),
    "transformers_unknown_gpt_oss.txt": ("transformers-unknown-gpt-oss", "serving-versions"),
    "vllm_architecture_unsupported.txt": ("vllm-unsupported-architecture", "serving-versions"),
    "fa3_sinks_non_hopper.txt": ("fa3-sinks", "attention-backend"),
    "vllm_kv_cache_too_small.txt": ("kv-cache-max-model-len", "kv-cache"),
    "vllm_kv_cache_no_memory.txt": ("kv-cache-no-memory", "kv-cache"),
    "cuda_oom_at_load.txt": ("cuda-oom", "gpu-memory"),
    "aws_vcpu_limit_exceeded.txt": ("aws-vcpu-limit", "aws-vcpu-quota"),
    "aws_insufficient_capacity.txt": ("aws-insufficient-capacity", "aws-capacity"),
    "hf_gated_repo.txt": ("hf-gated", "weights-download"),
    "hf_rate_limited.txt": ("hf-rate-limited", "weights-download"),
    "hf_offline_not_cached.txt": ("hf-unreachable", "weights-download"),
    "no_space_left.txt": ("no-space-left", "disk-space"),
    "endpoint_401.txt": ("endpoint-401", "api-key"),
    "endpoint_404.txt": ("endpoint-404-model", "model-id"),
    "endpoint_503.txt": ("serve-backpressure", "backpressure"),
    "serve_backpressure.txt": ("serve-backpressure", "backpressure"),
    "serve_deploy_failed.txt": ("serve-deploy-failed", "serve-app"),
    "serve_replica_health_check.txt": ("serve-replica-health-check", "replica-health"),
    # The failures users report serving gpt-oss (vLLM's and Ray's trackers).
    "ray_vllm_speech_to_text.txt": ("ray-vllm-import", "ray-vllm"),
    "ray_vllm_translations.txt": ("ray-vllm-import", "ray-vllm"),
    "torchvision_nms.txt": ("torchvision-nms", "torchvision"),
    "flash_attn_sinks_kwarg.txt": ("flash-attn-sinks-kwarg", "vllm-deps"),
    "triton_kernels_routing.txt": ("triton-kernels-routing", "triton-kernels"),
    "triton_duplicate.txt": ("triton-duplicate", "triton"),
    "mxfp4_capability.txt": ("mxfp4-capability", "gpu-arch"),
    "mxfp4_float16.txt": ("mxfp4-float16", "gpu-arch"),
    "sinks_float32.txt": ("sinks-float32", "attention-sinks"),
    "vllm_attention_backend_env.txt": ("vllm-attention-backend-env", "attention-backend-env"),
    "harmony_start_token.txt": ("harmony-start-token", "harmony-parse"),
    "harmony_header_tokens.txt": ("harmony-header-tokens", "harmony-parse"),
    "harmony_responses_header.txt": ("harmony-responses-header", "harmony-parse"),
    "tool_calls_in_content.txt": ("tool-calls-in-content", "tool-calls"),
}
# Signatures whose text cannot be produced on this machine; the fixture quotes the library's source instead.
FROM_SOURCE = {"vllm_architecture_unsupported.txt", "vllm_kv_cache_no_memory.txt", "fa3_sinks_non_hopper.txt", "cuda_oom_at_load.txt",
               "serve_deploy_failed.txt", "ray_vllm_speech_to_text.txt", "triton_kernels_routing.txt",
               "mxfp4_capability.txt", "mxfp4_float16.txt", "sinks_float32.txt"}
# Texts only a public issue thread shows (another release, another machine): the header names the thread.
FROM_ISSUE = {"ray_vllm_translations.txt", "harmony_responses_header.txt", "flash_attn_sinks_kwarg.txt",
              "triton_duplicate.txt"}


def _scan_one(name: str, text: str):
    return scan.scan([(name, text)])


def test_every_signature_has_a_fixture():
    covered = {sig for sig, _ in EXPECTED.values()}
    assert covered == set(signatures.BY_NAME)


def test_every_check_has_a_runbook_that_exists():
    for check in registry.CHECKS.values():
        assert (ROOT / check.runbook).is_file(), f"{check.id}: {check.runbook} missing"
    for sig in signatures.SIGNATURES:
        assert sig.check in registry.CHECKS, sig.name
        assert sig.cause and sig.fix


def test_runbook_index_lists_every_runbook():
    index = (ROOT / "docs" / "runbooks" / "README.md").read_text()
    for check in registry.CHECKS.values():
        name = Path(check.runbook).name
        if name != "README.md":
            assert f"]({name})" in index, name


def test_runbooks_have_symptom_cause_check_fix():
    for path in (ROOT / "docs" / "runbooks").glob("*.md"):
        if path.name == "README.md":
            continue
        text = path.read_text()
        for section in ("## Symptom", "## Cause", "## Check", "## Fix"):
            assert section in text, f"{path.name} lacks {section}"
        ids = [c.id for c in registry.CHECKS.values() if Path(c.runbook).name == path.name]
        assert ids and any(f"`{i}`" in text for i in ids), f"{path.name} does not name its check id"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_fixture_maps_to_its_check_and_runbook(name):
    raw = (ERRORS / name).read_text()
    header, _, text = raw.partition("\n---\n")
    assert header.startswith("# ") and text, f"{name}: provenance header then '---' then the text"
    if name in FROM_SOURCE:
        assert ".py" in header or ".cpp" in header, f"{name}: quote the source file it comes from"
    if name in FROM_ISSUE:
        assert "https://github.com/" in header, f"{name}: name the issue thread it comes from"
    if name not in FROM_SOURCE | FROM_ISSUE:
        assert "Produced here" in header, f"{name}: say how it was produced here"
    sig_name, check = EXPECTED[name]
    found = _scan_one(name, text)
    by_sig = {f.signature: f for f in found}
    assert sig_name in by_sig, f"{name}: no {sig_name} in {[f.signature for f in found]}"
    f = by_sig[sig_name]
    assert f.id == check and f.status == signatures.BY_NAME[sig_name].status
    assert f.runbook == registry.CHECKS[check].runbook and (ROOT / f.runbook).is_file()
    assert f.sources == [name] and f.evidence
    # A fixture points at one failure: no other check claims it.
    assert {x.id for x in found} == {check}, [(x.id, x.signature) for x in found]


def test_scan_reports_each_signature_once_with_every_source():
    text = reproduce.read_fixture("harmony_vocab_download.txt")
    found = scan.scan([("node-a:replica.log", text), ("node-b:replica.log", text), ("node-b:other.log", "fine")])
    assert len(found) == 1
    assert found[0].sources == ["node-a:replica.log", "node-b:replica.log"]


def test_text_without_known_failures_gives_nothing():
    assert scan.scan([("x.log", "INFO started\nINFO Application 'default' is RUNNING\n")]) == []


# ------------------------------------------------------------------ live: the libraries produce it again

LIVE = {
    "harmony_vocab_download.txt": reproduce.harmony_vocab_download,
    "harmony_vocab_missing.txt": reproduce.harmony_vocab_missing,
    "hf_gated_repo.txt": reproduce.hf_gated_repo,
    "hf_rate_limited.txt": reproduce.hf_rate_limited,
    "hf_offline_not_cached.txt": reproduce.hf_offline_not_cached,
    "no_space_left.txt": reproduce.no_space_left,
    "endpoint_401.txt": reproduce.endpoint_401,
    "endpoint_404.txt": reproduce.endpoint_404,
    "endpoint_503.txt": reproduce.endpoint_503,
    "serve_backpressure.txt": reproduce.serve_backpressure,
    "aws_vcpu_limit_exceeded.txt": lambda: reproduce.aws_client_error("VcpuLimitExceeded"),
    "aws_insufficient_capacity.txt": lambda: reproduce.aws_client_error("InsufficientInstanceCapacity"),
    "tool_calls_in_content.txt": reproduce.tool_calls_in_content,
    "vllm_attention_backend_env.txt": reproduce.vllm_attention_backend_env,
}


@pytest.mark.parametrize("name", sorted(LIVE))
def test_live_error_from_the_real_library_is_recognised(name):
    text = LIVE[name]()
    sig_name, check = EXPECTED[name]
    found = {f.signature: f for f in _scan_one(name, text)}
    assert sig_name in found and found[sig_name].id == check, text
    # The recorded fixture still carries the same final line the library prints today (less a log line's time).
    last = re.sub(r"^[A-Z]+ \d\d-\d\d \d\d:\d\d:\d\d ", "", text.strip().splitlines()[-1])
    assert last in reproduce.read_fixture(name)


@pytest.mark.parametrize("name", sorted(reproduce.WITH_ENCODINGS))
def test_live_harmony_parse_error_is_recognised(name, encodings_dir):
    """openai-harmony itself refuses output that is not a harmony message, as vLLM's parser sees it."""
    fn = reproduce.WITH_ENCODINGS[name][0]
    text = fn(encodings_dir)
    sig_name, check = EXPECTED[name]
    assert [(f.signature, f.id) for f in _scan_one(name, text)] == [(sig_name, check)], text
    assert text.strip().splitlines()[-1] in reproduce.read_fixture(name)


def test_live_torchvision_mismatch_is_recognised():
    """`from vllm import LLM` where torchvision was built for another torch (the environment `make test-envs`
    builds) dies with the operator error, which the doctor names."""
    from tests.support import TORCHVISION_MISMATCH, env_python

    text = reproduce.torchvision_mismatch(env_python(TORCHVISION_MISMATCH))
    found = _scan_one("replica.log", text)
    assert [(f.signature, f.id) for f in found] == [("torchvision-nms", "torchvision")], text[-2000:]
    assert found[0].runbook == "docs/runbooks/torchvision-mismatch.md"
    assert text.strip().splitlines()[-1] == reproduce.read_fixture("torchvision_nms.txt").strip().splitlines()[-1]


def test_live_harmony_hash_mismatch_is_recognised(encodings_dir):
    text = reproduce.harmony_vocab_hash_mismatch(encodings_dir)
    found = _scan_one("replica.log", text)
    assert [f.signature for f in found] == ["harmony-vocab-hash"]
    assert "expected=446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d" in text


def test_source_quoted_texts_still_exist_in_the_installed_libraries():
    """The quoted raise statements are checked against the installed sources they were copied from."""
    site = Path(importlib.util.find_spec("vllm").origin).parent
    assert '"Sinks are only supported in FlashAttention 3"' in (site / "v1/attention/backends/flash_attn.py").read_text()
    assert "are not supported for now. " in (site / "model_executor/models/registry.py").read_text()
    kv = (site / "v1/core/kv_cache_utils.py").read_text()
    assert "To serve at least one request with the model's max seq len" in kv
    assert '"No available memory for the cache blocks. "' in kv
    config = (site / "config/vllm.py").read_text()
    assert '"is not supported for the current GPU. Minimum "' in config
    assert 'f"{model_config.dtype} is not supported for quantization "' in config
    mxfp4 = (site / "model_executor/layers/quantization/mxfp4.py").read_text()
    assert "return 80" in mxfp4 and "return [torch.bfloat16]" in mxfp4
    moe = (site / "model_executor/layers/fused_moe/experts/gpt_oss_triton_kernels_moe.py").read_text()
    assert '"Failed to import Triton kernels. Please make sure your triton "' in moe
    assert "from triton_kernels.routing import" in moe
    ray_llm = Path(importlib.util.find_spec("ray").origin).parent / "llm" / "_internal"
    assert '"Neither vLLM nor SGLang is installed. At least one is required "' in (
        ray_llm / "common/utils/import_utils.py").read_text()
    ray_serve = Path(importlib.util.find_spec("ray").origin).parent / "serve" / "_private"
    assert "The deployment failed to start " in (ray_serve / "deployment_state.py").read_text()
    assert "failed with exception:" in (ray_serve / "application_state.py").read_text()
    assert "Didn't receive health check response for replica " in (ray_serve / "deployment_state.py").read_text()


def test_attention_backend_advice_matches_the_installed_vllm():
    """The runbook says: on vLLM >= 0.11 the Triton backend is the engine argument `attention_backend`
    (TRITON_ATTN) and VLLM_ATTENTION_BACKEND is gone. Checked against the installed vLLM's source."""
    site = Path(importlib.util.find_spec("vllm").origin).parent
    assert "VLLM_ATTENTION_BACKEND" not in (site / "envs.py").read_text()
    assert 'TRITON_ATTN = "vllm.v1.attention.backends.triton_attn.TritonAttentionBackend"' in (
        site / "v1/attention/backends/registry.py").read_text()
    args = (site / "engine/arg_utils.py").read_text()
    assert "attention_backend: AttentionBackendEnum | None" in args and '"--attention-backend"' in args
    runbook = (ROOT / "docs/runbooks/fa3-sinks-non-hopper.md").read_text()
    assert "--attention-backend TRITON_ATTN" in runbook and "VLLM_ATTENTION_BACKEND=TRITON_ATTN_VLLM_V1" in runbook
