"""Latency and throughput statistics, defined as vLLM's own benchmark client defines them
(vllm/benchmarks/serve.py, calculate_metrics) so the two can be compared number for number:

* TTFT: from sending the request to the first streamed chunk that carries a choice.
* ITL (inter-token latency): the gap between consecutive streamed chunks, pooled over all requests.
* TPOT (time per output token): (end-to-end latency - TTFT) / (output tokens - 1), per request with > 1 token.
* Throughput: completed requests, output tokens and all tokens divided by the wall-clock duration of the run.
* Percentiles: linear interpolation between closest ranks (numpy.percentile's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """numpy.percentile(values, p) with the default 'linear' method; NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    rank = (len(xs) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (rank - lo))


def summary(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | None]:
    """mean, p50, p90, p99 (and max) of seconds, reported in milliseconds by default."""
    if not values:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    out: dict[str, float | None] = {"mean": sum(values) / len(values) * scale}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(values, p) * scale
    out["max"] = max(values) * scale
    return out


def tpot(latency: float, ttft: float, output_tokens: int) -> float | None:
    """Time per output token after the first; None when there is no second token."""
    if output_tokens is None or output_tokens <= 1:
        return None
    return (latency - ttft) / (output_tokens - 1)


@dataclass
class RequestResult:
    """One request as the client saw it. Times in seconds from `start` (perf_counter)."""

    ok: bool
    status: str = "200"  # HTTP status, or the exception kind ("timeout", "connect", ...) for failures
    error: str = ""
    start: float = 0.0
    ttft: float | None = None
    latency: float | None = None  # send -> last chunk
    itl: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    chunks: int = 0


def aggregate(results: Iterable[RequestResult], duration_s: float) -> dict[str, Any]:
    """The report for one run at one concurrency level."""
    results = list(results)
    good = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.status] = errors.get(r.status, 0) + 1
    ttfts = [r.ttft for r in good if r.ttft is not None]
    tpots = [t for r in good if (t := tpot(r.latency or 0.0, r.ttft or 0.0, r.output_tokens)) is not None]
    itls = [x for r in good for x in r.itl]
    e2el = [r.latency for r in good if r.latency is not None]
    out_tokens = sum(r.output_tokens for r in good)
    in_tokens = sum(r.prompt_tokens for r in good)
    d = duration_s if duration_s > 0 else math.nan
    return {
        "requests": len(results),
        "completed": len(good),
        "failed": len(results) - len(good),
        "errors_by_status": errors,
        "duration_s": duration_s,
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "request_throughput_rps": len(good) / d,
        "output_throughput_tps": out_tokens / d,
        "total_token_throughput_tps": (in_tokens + out_tokens) / d,
        "ttft_ms": summary(ttfts),
        "tpot_ms": summary(tpots),
        "itl_ms": summary(itls),
        "e2el_ms": summary(e2el),
    }
