"""The planner against real vLLM start-up logs (tests/fixtures/vllm_logs/*.txt).

Each fixture is one published (or, for the CPU stack, locally recorded) start-up of vLLM serving gpt-oss,
with a header naming the source, GPU, vLLM version and flags, followed by the log lines as published. Two
checks, each within the bound the fixture states (docs/plan.md explains the bounds):

* from the GPU's size and the flags, the planner predicts vLLM's "Available KV cache memory";
* from the published available memory, it reproduces "KV cache size: N tokens" and the maximum concurrency.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops import capacity, catalog
from ops.catalog import GIB

LOGS = sorted((Path(__file__).parent / "fixtures" / "vllm_logs").glob("*.txt"))


def parse(path: Path) -> dict:
    head: dict[str, str] = {}
    body = []
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ":" in line and not line.startswith("#   "):
            k, v = line[2:].split(":", 1)
            head[k.strip()] = v.strip()
        elif not line.startswith("#"):
            body.append(line)
    text = "\n".join(body)
    found: dict = {"head": head}
    if m := re.search(r"Model loading took ([\d.]+) GiB", text):
        found["weights_gib"] = float(m.group(1))
    if m := re.search(r"Available KV cache memory: (-?[\d.]+) GiB", text):
        found["available_gib"] = float(m.group(1))
    elif m := re.search(r"Explicitly set \((-?[\d.]+)/[\d.]+\) GiB for KV cache", text):  # CPU backend
        found["available_gib"] = float(m.group(1))
    if m := re.search(r"(?:GPU|CPU) KV cache size: ([\d,]+) tokens", text):
        found["tokens"] = int(m.group(1).replace(",", ""))
    if m := re.search(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", text):
        found["concurrency_len"] = int(m.group(1).replace(",", ""))
        found["concurrency"] = float(m.group(2))
    return found


def _setup(f: dict):
    h = f["head"]
    m = catalog.model(h["model"])
    acc = catalog.accelerator(h["accelerator"])
    tp = int(h.get("tensor_parallel_size", 1))
    max_len = int(h["max_model_len"])
    settings = capacity.default_engine_settings(
        acc, tp=tp, max_model_len=max_len,
        max_num_batched_tokens=int(h["max_num_batched_tokens"]) if "max_num_batched_tokens" in h else None)
    return m, acc, tp, max_len, settings


def test_fixtures_name_their_source_gpu_and_version():
    assert LOGS, "no calibration logs"
    for path in LOGS:
        h = parse(path)["head"]
        for key in ("source", "gpu", "vllm_version", "model", "accelerator", "max_model_len"):
            assert key in h, f"{path.name} lacks '# {key}:'"


@pytest.mark.parametrize("path", [p for p in LOGS if "available_bound_gib" in parse(p)["head"]], ids=lambda p: p.stem)
def test_available_kv_memory_from_gpu_size(path):
    f = parse(path)
    m, acc, tp, max_len, settings = _setup(f)
    util = float(f["head"].get("gpu_memory_utilization", 0.9))
    budget = capacity.memory_budget(m, acc, tp=tp, util=util, settings=settings)
    predicted = budget.available_kv_gib
    if "weights_gib" in f:  # the weights vLLM reports are a fact of that run, not part of the overhead model
        predicted += budget.weights_gib - f["weights_gib"] / tp
    bound = float(f["head"]["available_bound_gib"])
    assert abs(predicted - f["available_gib"]) <= bound, (predicted, f["available_gib"])


@pytest.mark.parametrize("path", [p for p in LOGS if {"tokens", "available_gib"} <= set(parse(p))], ids=lambda p: p.stem)
def test_kv_tokens_and_concurrency_from_published_available_memory(path):
    f = parse(path)
    m, acc, tp, max_len, settings = _setup(f)
    tolerance = float(f["head"].get("tokens_tolerance", 0.0))
    # vLLM prints the memory rounded to 0.01 GiB; bracket the exact figure.
    lo = capacity.kv_capacity(m, tp=tp, max_model_len=max_len, settings=settings,
                              available_bytes=int((f["available_gib"] - 0.005) * GIB))
    hi = capacity.kv_capacity(m, tp=tp, max_model_len=max_len, settings=settings,
                              available_bytes=int((f["available_gib"] + 0.005) * GIB))
    assert lo.kv_cache_tokens * (1 - tolerance) <= f["tokens"] <= hi.kv_cache_tokens * (1 + tolerance)
    assert f["concurrency_len"] == max_len
    assert round(lo.max_concurrency, 2) - 0.01 <= f["concurrency"] <= round(hi.max_concurrency, 2) + 0.01
