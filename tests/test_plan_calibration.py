"""The planner against real vLLM start-up logs (tests/fixtures/vllm_logs/*.txt), release by release.

Each fixture is one start-up of vLLM serving gpt-oss: measured by the GPU bench (bench/gpu, the JSON beside it
in bench/results/gpu) or published (an issue, a blog post), with a header naming the source, GPU, vLLM release
and flags, followed by the log lines as printed. For every fixture, from the GPU and the flags alone, modelling
the release it was recorded with:

* where vLLM logged its maximum concurrency, the planner's is within 3% of it (the bound docs/plan.md states);
* where vLLM logged only the available KV memory (it refused to start), the planner's is within the fixture's
  `available_bound_gib` and it refuses too;
* from the logged available memory, the KV-cache token count and concurrency come out exactly as logged (the
  arithmetic is the release's own, so no tolerance).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import capacity, catalog, vllm_log, vllm_releases
from ops.catalog import GIB

LOGS = sorted((Path(__file__).parent / "fixtures" / "vllm_logs").glob("*.txt"))
BOUND = 0.03


def parse(path: Path) -> dict:
    head: dict[str, str] = {}
    body = []
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ":" in line and not line.startswith("#   "):
            k, v = line[2:].split(":", 1)
            head[k.strip()] = v.strip()
        elif not line.startswith("#"):
            body.append(line)
    found = vllm_log.parse("\n".join(body))
    found["head"] = head
    return found


def _setup(f: dict):
    h = f["head"]
    m = catalog.model(h["model"])
    acc = catalog.accelerator(h["accelerator"])
    tp = int(h.get("tensor_parallel_size", 1))
    max_len = int(h["max_model_len"])
    rel = vllm_releases.release(h["vllm_version"].split()[0])
    settings = capacity.default_engine_settings(
        acc, tp=tp, max_model_len=max_len, rel=rel,
        max_num_batched_tokens=int(h["max_num_batched_tokens"]) if "max_num_batched_tokens" in h else None,
        max_num_seqs=int(h["max_num_seqs"]) if "max_num_seqs" in h else None,
        block_size=int(h["block_size"]) if "block_size" in h else None,
        max_cudagraph_capture_size=(int(h["max_cudagraph_capture_size"]) if "max_cudagraph_capture_size" in h
                                    else None))
    return m, acc, tp, max_len, settings, rel


def _predicted_available(f: dict) -> float:
    m, acc, tp, max_len, settings, rel = _setup(f)
    util = float(f["head"]["gpu_memory_utilization"]) if "gpu_memory_utilization" in f["head"] else None
    budget = capacity.memory_budget(m, acc, tp=tp, util=util, settings=settings, rel=rel)
    return budget.available_kv_gib


@pytest.mark.parametrize("path", [p for p in LOGS if "model_loading_gib" in parse(p)], ids=lambda p: p.stem)
def test_weights_are_what_the_release_loads(path):
    """The weights the planner takes for a release are what vLLM logged loading with it (the MXFP4 experts' layout
    changes between releases), so the predictions below use no figure of the run itself."""
    f = parse(path)
    m, acc, tp, max_len, settings, rel = _setup(f)
    assert abs(capacity.loaded_weights_gib(m, rel) - f["model_loading_gib"] * tp) <= 0.01


@pytest.mark.parametrize("path", [p for p in LOGS if "cuda_graph_estimate_gib" in parse(p)], ids=lambda p: p.stem)
def test_cuda_graph_estimate_is_what_the_release_takes_out(path):
    """At the capture sizes the run had (vLLM logs the estimate to 0.01 GiB): the default's 83 for gpt-oss, 35 at
    max_cudagraph_capture_size=256."""
    f = parse(path)
    m, acc, tp, max_len, settings, rel = _setup(f)
    over = capacity.non_kv_overhead(m, tp=tp, settings=settings, rel=rel)
    assert abs(over.cuda_graphs - f["cuda_graph_estimate_gib"]) <= 0.005


def test_capture_sizes_are_the_ones_vllm_profiles():
    """What vLLM logged: "Profiling CUDA graph memory: PIECEWISE=83 (largest=1024)" by default, 35 (largest=256)
    with max_cudagraph_capture_size=256; the token budget caps the largest and is captured itself."""
    assert len(vllm_releases.cudagraph_capture_sizes(None, 8192)) == 83
    assert vllm_releases.cudagraph_capture_sizes(256, 8192)[-3:] == [240, 248, 256]
    assert len(vllm_releases.cudagraph_capture_sizes(256, 8192)) == 35
    assert vllm_releases.cudagraph_capture_sizes(None, 300)[-2:] == [288, 300]


def test_fixtures_name_their_source_gpu_and_release():
    assert LOGS, "no calibration logs"
    for path in LOGS:
        h = parse(path)["head"]
        for key in ("source", "gpu", "vllm_version", "model", "accelerator", "max_model_len"):
            assert key in h, f"{path.name} lacks '# {key}:'"
        vllm_releases.release(h["vllm_version"].split()[0])  # a release the planner models


def test_at_least_six_gpu_configurations_across_gpu_families_and_releases():
    gpu = [parse(p)["head"] for p in LOGS if parse(p)["head"]["accelerator"] != "CPU"]
    assert len(gpu) >= 6
    assert len({h["accelerator"] for h in gpu}) >= 2 and len({h["vllm_version"].split()[0] for h in gpu}) >= 2


@pytest.mark.parametrize("path", [p for p in LOGS if "max_concurrency" in parse(p)
                                  and parse(p)["head"]["accelerator"] != "CPU"], ids=lambda p: p.stem)
def test_concurrency_from_the_gpu_alone_within_three_percent(path):
    f = parse(path)
    m, acc, tp, max_len, settings, rel = _setup(f)
    cap = capacity.kv_capacity(m, tp=tp, max_model_len=max_len, settings=settings, rel=rel,
                               available_bytes=int(_predicted_available(f) * GIB))
    assert abs(cap.max_concurrency - f["max_concurrency"]) <= BOUND * f["max_concurrency"], (
        cap.max_concurrency, f["max_concurrency"])


@pytest.mark.parametrize("path", [p for p in LOGS if "available_bound_gib" in parse(p)["head"]], ids=lambda p: p.stem)
def test_available_kv_memory_from_the_gpu_alone(path):
    f = parse(path)
    bound = float(f["head"]["available_bound_gib"])
    assert abs(_predicted_available(f) - f["available_kv_cache_gib"]) <= bound, (
        _predicted_available(f), f["available_kv_cache_gib"])
    if f["head"].get("refused") == "yes":
        m, acc, tp, max_len, settings, rel = _setup(f)
        cap = capacity.kv_capacity(m, tp=tp, max_model_len=max_len, settings=settings, rel=rel,
                                   available_bytes=int(_predicted_available(f) * GIB))
        assert not cap.fits_one_request


@pytest.mark.parametrize("path", [p for p in LOGS if {"kv_cache_tokens", "available_kv_cache_gib"} <= set(parse(p))],
                         ids=lambda p: p.stem)
def test_kv_tokens_and_concurrency_from_the_logged_available_memory(path):
    f = parse(path)
    m, acc, tp, max_len, settings, rel = _setup(f)
    # vLLM prints the memory rounded to 0.01 GiB; bracket the exact figure.
    lo, hi = (capacity.kv_capacity(m, tp=tp, max_model_len=max_len, settings=settings, rel=rel,
                                   available_bytes=int((f["available_kv_cache_gib"] + d) * GIB)) for d in (-0.005, 0.005))
    assert lo.kv_cache_tokens <= f["kv_cache_tokens"] <= hi.kv_cache_tokens
    assert f["max_concurrency_len"] == max_len
    assert round(lo.max_concurrency, 2) - 0.01 <= f["max_concurrency"] <= round(hi.max_concurrency, 2) + 0.01
