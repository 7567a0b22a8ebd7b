"""GPU memory model: does a model fit on TP x GPU memory at a given utilisation, and with how much KV cache.

The spec calls `check_fit` to refuse a combination before anything is rented; `ops plan` builds its
fuller report (KV-cache tokens, maximum concurrency, cost) on the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.catalog import GIB, AcceleratorInfo, ModelInfo

# Memory vLLM holds beyond weights and KV cache on each GPU: the activation peak of the profiling run,
# CUDA graphs, the CUDA context / cuBLAS workspaces and NCCL buffers. See ops plan's documentation for the
# calibration of this figure against published start-up logs.
NON_KV_OVERHEAD_GIB = 2.0
KV_DTYPE_BYTES = 2  # bf16 KV cache (vLLM's default "auto" follows the model dtype)


@dataclass(frozen=True)
class Fit:
    fits: bool
    reason: str
    fix: str
    weights_gib_per_gpu: float
    budget_gib_per_gpu: float
    kv_gib_per_gpu: float


def kv_bytes_per_token_per_layer(m: ModelInfo, tp: int) -> int:
    """K and V for one token in one attention layer on one GPU (KV heads are split across TP ranks)."""
    kv_heads = max(1, m.num_key_value_heads // tp)
    return 2 * kv_heads * m.head_dim * KV_DTYPE_BYTES


def kv_bytes_for_sequence(m: ModelInfo, tp: int, pp: int, tokens: int) -> int:
    """KV bytes one sequence of `tokens` needs on one GPU: full layers keep every token, sliding-window
    layers at most the window."""
    per_layer = kv_bytes_per_token_per_layer(m, tp)
    full = m.full_attention_layers * tokens
    sliding = m.sliding_attention_layers * min(tokens, m.sliding_window)
    return per_layer * (full + sliding) // pp


def check_fit(m: ModelInfo, acc: AcceleratorInfo, *, tp: int, pp: int = 1, max_model_len: int,
              util: float = 0.9) -> Fit:
    gpus = tp * pp
    weights = m.weights_gib / gpus
    budget = acc.memory_gib * util
    kv_one = kv_bytes_for_sequence(m, tp, pp, max_model_len) / GIB
    free_for_kv = budget - weights - NON_KV_OVERHEAD_GIB
    if free_for_kv <= 0:
        need = (m.weights_gib / (acc.memory_gib * util - NON_KV_OVERHEAD_GIB)) if acc.memory_gib * util > NON_KV_OVERHEAD_GIB else float("inf")
        more = next((n for n in (1, 2, 4, 8) if n >= need and m.num_attention_heads % n == 0), None)
        fix = (f"use tensor_parallel_size {more} or a GPU with more memory" if more and more > tp
               else "use a GPU with more memory, or raise gpu_memory_utilization")
        return Fit(False,
                   f"{m.key} needs {weights:.1f} GiB of weights per GPU plus ~{NON_KV_OVERHEAD_GIB:g} GiB of runtime "
                   f"overhead, but {acc.key} x {gpus} at utilisation {util:g} leaves {budget:.1f} GiB per GPU.",
                   fix + ".", weights, budget, 0.0)
    if kv_one > free_for_kv:
        max_len = int(max_model_len * free_for_kv / kv_one)
        return Fit(False,
                   f"the KV cache cannot hold one {max_model_len:,}-token request: it needs {kv_one:.2f} GiB per GPU, "
                   f"{free_for_kv:.2f} GiB is left after weights on {acc.key} x {gpus}.",
                   f"lower max_model_len to about {max_len}, raise tensor_parallel_size, or use a larger GPU.",
                   weights, budget, free_for_kv)
    return Fit(True, "fits", "", weights, budget, free_for_kv)
