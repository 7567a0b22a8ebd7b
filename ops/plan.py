"""Capacity and cost plan for one deployment: the KV cache vLLM will have, how many requests of full context it
can hold at once, the cheapest catalog instance that carries it, and what that costs.

The figures are the ones vLLM itself logs at start-up ("Available KV cache memory", "GPU KV cache size",
"Maximum concurrency for L tokens per request"), computed with ops.capacity; the prices are the catalog's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ops import capacity, catalog, vllm_releases
from ops.catalog import GIB

CPU_KV_CACHE_GIB = 1.0  # what app/llm_config.py sets as VLLM_CPU_KVCACHE_SPACE for the local CPU stack


@dataclass(frozen=True)
class PlanInput:
    model: str
    accelerator: str
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpus_per_replica: int | None = None
    max_model_len: int = 32768
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    max_cudagraph_capture_size: int | None = None  # None: gpt-oss's default (1024)
    block_size: int | None = None
    kv_cache_dtype: str = "auto"  # "auto" (bf16, the model's dtype) or "fp8"
    overhead_gib: float | None = None  # override the modelled non-KV overhead per GPU
    kv_cache_memory_gib: float | None = None  # vLLM's --kv-cache-memory-bytes / VLLM_CPU_KVCACHE_SPACE
    concurrency: int | None = None  # requests of max_model_len that must be served at once
    budget_usd_per_hour: float | None = None
    output_tokens_per_s: float | None = None  # stated throughput per replica, for $ per million output tokens
    vllm_version: str | None = None  # the vLLM release to model (default: installed, else Ray's pin)


class PlanError(ValueError):
    """An input that cannot be planned; carries the field and the fix like the spec's errors."""

    def __init__(self, field: str, message: str, fix: str):
        self.field, self.fix = field, fix
        super().__init__(f"{field}: {message}")


def plan(p: PlanInput) -> dict[str, Any]:
    """The whole plan as plain data (the `--json` output of `ops plan`)."""
    m = _lookup("model", p.model, catalog.MODELS, catalog.MODEL_ALIASES)
    acc = _lookup("accelerator", p.accelerator, catalog.ACCELERATORS, catalog.ACCELERATOR_ALIASES)
    tp, pp = p.tensor_parallel_size, p.pipeline_parallel_size
    _check_inputs(p, m)
    gpus = p.gpus_per_replica or tp * pp
    if gpus != tp * pp:
        raise PlanError("num_gpus", f"{gpus} GPUs per replica but tensor x pipeline parallel is {tp * pp}.",
                        f"use --num-gpus {tp * pp}, or set --tp so that tp x pp = {gpus}.")
    version, version_source = ((p.vllm_version, "given") if p.vllm_version
                               else vllm_releases.default_version())
    try:
        rel = vllm_releases.release(version)
    except vllm_releases.UnknownRelease as e:
        modelled = ", ".join(r.version for r in vllm_releases.RELEASES.values())
        raise PlanError("vllm_version", f"the planner has no model of vLLM {version}.",
                        f"plan with the nearest modelled release, --vllm-version {e.nearest} (modelled: {modelled}), "
                        "and check the figure against your engine's start-up log.") from None
    util = p.gpu_memory_utilization if p.gpu_memory_utilization is not None else rel.default_gpu_memory_utilization
    settings = capacity.default_engine_settings(acc, tp=tp, pp=pp, max_model_len=p.max_model_len,
                                                max_num_batched_tokens=p.max_num_batched_tokens,
                                                max_num_seqs=p.max_num_seqs, block_size=p.block_size, rel=rel,
                                                max_cudagraph_capture_size=p.max_cudagraph_capture_size)
    if p.kv_cache_dtype not in ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"):
        raise PlanError("kv_cache_dtype", f"{p.kv_cache_dtype!r} is not a KV-cache dtype vLLM offers here.",
                        "use auto (bf16) or fp8.")
    if p.kv_cache_dtype.startswith("fp8"):
        from dataclasses import replace

        settings = replace(settings, kv_dtype_bytes=1)
    kv_mem = p.kv_cache_memory_gib
    if acc.key == "CPU" and kv_mem is None:
        kv_mem = CPU_KV_CACHE_GIB
    budget = capacity.memory_budget(m, acc, tp=tp, pp=pp, util=util, settings=settings,
                                    overhead_gib=p.overhead_gib, kv_cache_memory_gib=kv_mem, rel=rel)
    cap = capacity.kv_capacity(m, tp=tp, pp=pp, max_model_len=p.max_model_len,
                               available_bytes=int(budget.available_kv_gib * GIB), settings=settings, rel=rel)
    fits, reason, fix = _verdict(m, acc, tp, pp, p.max_model_len, budget, cap, settings, rel)

    out: dict[str, Any] = {
        "model": m.key,
        "accelerator": acc.key,
        "vllm_version": rel.version if version.startswith(rel.minor + ".") or version == rel.minor else version,
        "vllm_version_source": version_source,
        "vllm_model": rel.version,
        "gpus_per_replica": gpus,
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "max_model_len": p.max_model_len,
        "gpu_memory_utilization": util,
        "block_size": settings.block_size,
        "kv_cache_dtype": p.kv_cache_dtype,
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "max_num_seqs": settings.max_num_seqs,
        "cudagraph_capture_sizes": settings.cudagraph_capture_sizes,
        "gpu_memory_gib": budget.total_gib,
        "requested_memory_gib": round(budget.requested_gib, 3),
        "weights_gib_per_gpu": round(budget.weights_gib, 3),
        "non_kv_overhead_gib": round(budget.overhead_gib, 3),
        "non_kv_overhead": ({k: round(v, 3) for k, v in asdict(budget.overhead).items()}
                            if budget.overhead else {"given": budget.overhead_gib}),
        "available_kv_cache_gib": round(budget.available_kv_gib, 3),
        "kv_bytes_per_token": capacity.kv_bytes_per_token_per_layer(m, tp, settings.kv_dtype_bytes)
        * m.num_hidden_layers // pp,
        "kv_bytes_per_block": cap.bytes_per_block,
        "kv_blocks_per_request": cap.blocks_per_request,
        "num_gpu_blocks": cap.num_blocks,
        "kv_cache_tokens": cap.kv_cache_tokens,
        "max_concurrency": round(cap.max_concurrency, 4),
        "vllm_log_line": (f"GPU KV cache size: {cap.kv_cache_tokens:,} tokens, Maximum concurrency for "
                          f"{p.max_model_len:,} tokens per request: {cap.max_concurrency:.2f}x"),
        "error_bound": ERROR_BOUND,
        "fits": fits,
        "reason": reason,
        "fix": fix,
    }
    out["warnings"] = _warnings(m, gpus, fits, budget, cap)
    out.update(_cost(p, acc, gpus, cap.max_concurrency if fits else 0.0))
    return out


# What docs/plan.md states and tests/test_plan_calibration.py holds the planner to, on every fixture.
ERROR_BOUND = ("maximum concurrency within 3% of what vLLM logs, on every calibration log (tests/fixtures/vllm_logs) "
               "for the release it was recorded with; other GPUs and releases: see docs/plan.md")


def _warnings(m, gpus: int, fits: bool, budget, cap) -> list[str]:
    """A plan that only just fits: 5% less KV memory than modelled would refuse one full request."""
    if not fits or budget.overhead is None:
        return []
    need = cap.bytes_per_block * (cap.blocks_per_request + 1) / GIB
    if budget.available_kv_gib * 0.95 >= need:
        return []
    return [f"only {budget.available_kv_gib:.2f} GiB of KV cache for a {need:.2f} GiB request: within the planner's "
            "error of vLLM's refusal. Check your engine's 'Available KV cache memory' and pass --overhead-gib, or "
            "give it more memory (tensor_parallel_size, gpu_memory_utilization)."]


def _lookup(field: str, key: str, table: dict, aliases: dict):
    k = aliases.get(key, key)
    if k not in table:
        raise PlanError(field, f"unknown {field} {key!r}.", f"use one of {', '.join(table)}.")
    return table[k]


def _check_inputs(p: PlanInput, m: catalog.ModelInfo) -> None:
    if p.tensor_parallel_size < 1 or m.num_attention_heads % p.tensor_parallel_size:
        raise PlanError("tp", f"tensor_parallel_size {p.tensor_parallel_size} does not divide {m.key}'s "
                        f"{m.num_attention_heads} attention heads.", "use 1, 2, 4 or 8.")
    if p.pipeline_parallel_size < 1 or p.pipeline_parallel_size > m.num_hidden_layers:
        raise PlanError("pp", f"pipeline_parallel_size {p.pipeline_parallel_size} is not between 1 and "
                        f"{m.num_hidden_layers}.", "use 1 unless one replica spans several nodes.")
    if not 0 < p.max_model_len <= m.max_position_embeddings:
        raise PlanError("max_model_len", f"{p.max_model_len} is outside 1..{m.max_position_embeddings:,}.",
                        f"use a context length up to {m.max_position_embeddings}, e.g. 32768.")
    if p.gpu_memory_utilization is not None and not 0 < p.gpu_memory_utilization <= 1:
        raise PlanError("gpu_memory_utilization", f"{p.gpu_memory_utilization} is not a fraction.",
                        "use a value in (0, 1], e.g. 0.9 (vLLM's default).")
    for name in ("concurrency", "budget_usd_per_hour", "output_tokens_per_s", "max_num_batched_tokens",
                 "max_num_seqs", "block_size"):
        v = getattr(p, name)
        if v is not None and v <= 0:
            raise PlanError(name, f"{v} must be positive.", f"give a positive --{name.replace('_', '-')}.")


def _verdict(m, acc, tp, pp, max_len, budget, cap, settings, rel) -> tuple[bool, str, str]:
    if budget.available_kv_gib <= 0:
        return (False, f"weights ({budget.weights_gib:.1f} GiB) plus overhead ({budget.overhead_gib:.1f} GiB) per "
                f"GPU exceed the {budget.requested_gib:.1f} GiB vLLM may use on {acc.key} at this utilisation.",
                "raise tensor_parallel_size, pick a GPU with more memory, or raise gpu_memory_utilization.")
    if not cap.fits_one_request:
        best = capacity._max_len_that_fits(m, tp, pp, int(budget.available_kv_gib * GIB), settings, max_len, rel)
        return (False, f"{budget.available_kv_gib:.2f} GiB of KV cache cannot hold one {max_len:,}-token request "
                "(vLLM refuses to start).",
                f"lower max_model_len to {best} or less, raise gpu_memory_utilization or tensor_parallel_size.")
    return True, "fits", ""


def _cost(p: PlanInput, acc: catalog.AcceleratorInfo, gpus: int, per_replica: float) -> dict[str, Any]:
    """The cheapest catalog instance (or fleet of one instance type) that carries the target."""
    out: dict[str, Any] = {"instance_type": None, "instances": None, "replicas": None, "usd_per_hour": None,
                           "within_budget": None, "usd_per_million_output_tokens": None,
                           "price_source": catalog.PRICE_SOURCE, "price_as_of": catalog.PRICE_AS_OF}
    candidates = catalog.instances_for(acc.key, gpus)
    if acc.key == "CPU" or not candidates:
        out["cost_note"] = ("no catalog instance carries this accelerator" if acc.key != "CPU"
                            else "the CPU stack runs locally")
        return out
    replicas = 1
    if p.concurrency is not None:
        replicas = math.ceil(p.concurrency / per_replica) if per_replica > 0 else None
    if replicas is None:
        out["cost_note"] = "one replica cannot hold a single request; no instance count meets the target"
        return out
    best = None
    for it in candidates:
        per_instance = it.gpus // gpus
        n = math.ceil(replicas / per_instance)
        cost = n * it.usd_per_hour
        if best is None or cost < best[0]:
            best = (cost, it, n)
    cost, it, n = best
    out.update({"instance_type": it.name, "instances": n, "replicas": replicas,
                "replicas_per_instance": it.gpus // gpus, "usd_per_hour": round(cost, 4),
                "max_concurrency_total": round(per_replica * replicas, 2)})
    if p.budget_usd_per_hour is not None:
        out["within_budget"] = cost <= p.budget_usd_per_hour
    if p.output_tokens_per_s:
        # usd_per_hour buys output_tokens_per_s per replica for 3600 s.
        out["usd_per_million_output_tokens"] = round(cost / (p.output_tokens_per_s * replicas * 3600) * 1e6, 4)
    return out
