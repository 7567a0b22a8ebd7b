"""The lines vLLM prints at start-up about memory and capacity, read back as numbers.

What for: the GPU bench (bench/gpu) records them for each run, and the planner's calibration fixtures
(tests/fixtures/vllm_logs) are such logs; both read them here. Patterns follow the format strings of
vllm/v1/worker/gpu_model_runner.py, gpu_worker.py, v1/core/kv_cache_utils.py and config/scheduler.py
(0.10 to 0.29 print them alike; older releases lack some).
"""

from __future__ import annotations

import re
from typing import Any

_NUM = r"(-?[\d,]+(?:\.\d+)?)"
PATTERNS: dict[str, re.Pattern[str]] = {
    "model_loading_gib": re.compile(r"Model loading took " + _NUM + r" ?GiB"),
    "available_kv_cache_gib": re.compile(r"Available KV cache memory: " + _NUM + r" ?GiB"
                                        r"|Explicitly set \(" + _NUM + r"/[\d.]+\) GiB for KV cache"),  # CPU backend
    "kv_cache_tokens": re.compile(r"GPU KV cache size: " + _NUM + r" tokens"),
    "max_concurrency": re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r"x"),
    "cuda_graph_estimate_gib": re.compile(r"Estimated CUDA graph memory: " + _NUM + r" GiB"),
    "cuda_graph_gib": re.compile(r"Graph capturing finished in " + _NUM + r" secs?, took " + _NUM + r" GiB"),
    "max_num_batched_tokens": re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)"),
    "torch_compile_s": re.compile(r"torch\.compile takes " + _NUM + r" ?s in total"),
    "attention_backend": re.compile(r"Using (\w+) (?:attention )?backend"),
}


def _f(text: str) -> float:
    return float(text.replace(",", ""))


def parse(text: str) -> dict[str, Any]:
    """The figures of one start-up log (the last occurrence of each wins; absent lines are left out)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        for key, pat in PATTERNS.items():
            m = pat.search(line)
            if not m:
                continue
            if key == "max_concurrency":
                out["max_concurrency_len"] = int(_f(m.group(1)))
                out[key] = _f(m.group(2))
            elif key == "cuda_graph_gib":
                out["cuda_graph_capture_s"] = _f(m.group(1))
                out[key] = _f(m.group(2))
            elif key in ("kv_cache_tokens", "max_num_batched_tokens"):
                out[key] = int(_f(m.group(1)))
            elif key == "attention_backend":
                out[key] = m.group(1)
            else:
                out[key] = _f(next(g for g in m.groups() if g is not None))
    return out


# vLLM's JIT monitor (0.24 on, vllm/triton_utils/jit_monitor.py) logs Triton compiling a kernel after start-up: a
# timed level that holds one paid for the compile in its latencies. By default it logs each kernel once;
# with --jit-monitor-verbose every compile, with its key (and autotuning candidates).
JIT_DURING_INFERENCE = re.compile(
    r"Triton (?:kernel |autotune/warmup candidate )JIT compilation during inference: ([\w.<>]+?)(?:\.? This| \(key=)")


def jit_compiles(text: str) -> list[str]:
    """The kernels Triton compiled while requests were served, in the order logged."""
    return [m.group(1) for m in JIT_DURING_INFERENCE.finditer(text)]


def key_lines(text: str) -> list[str]:
    """The log lines `parse` reads, verbatim (what a planner fixture keeps)."""
    return [line for line in text.splitlines() if any(p.search(line) for p in PATTERNS.values())]
