"""`ops metrics`: the service's vital signs in the terminal, read from Prometheus' HTTP API.

The same metrics as the dashboard's top row, aggregated over every replica and model on one window, for
when a browser (or the tunnel to Grafana) is not at hand.
"""

from __future__ import annotations

import math
from typing import Any

from ops.dashboards import panels
from ops.dashboards.check import query


def _summary_queries(window: str) -> dict[str, tuple[str, float]]:
    """name -> (PromQL, scale to the unit in the name)."""
    def q(quant: float, hist: str) -> str:
        return f"histogram_quantile({quant}, sum by (le) (rate({hist}_bucket[{window}])))"

    def idle0(agg: str, gauge: str) -> str:
        return f"{agg}({gauge}) or {agg}(ray_vllm_prompt_tokens_total) * 0"

    return {
        "ttft_p50_ms": (q(0.5, panels.TTFT), 1000),
        "ttft_p95_ms": (q(0.95, panels.TTFT), 1000),
        "tpot_p50_ms": (q(0.5, panels.TPOT), 1000),
        "tpot_p95_ms": (q(0.95, panels.TPOT), 1000),
        "tokens_in_per_s": (f"sum(rate(ray_vllm_prompt_tokens_total[{window}]))", 1),
        "tokens_out_per_s": (f"sum(rate(ray_vllm_generation_tokens_total[{window}]))", 1),
        "requests_per_s": (f"sum(rate(ray_serve_num_http_requests_total[{window}]))", 1),
        # Idle engines export no gauges (see panels.engine_gauge): read 0 then, as long as the engine exists.
        "kv_cache_usage_pct": (idle0("max", "ray_vllm_kv_cache_usage_perc"), 100),
        "requests_running": (idle0("sum", "ray_vllm_num_requests_running"), 1),
        "requests_waiting": (idle0("sum", "ray_vllm_num_requests_waiting"), 1),
    }


def summary(prom_url: str, *, window: str = "5m") -> dict[str, Any]:
    """{name: number or None}; None when Prometheus has no data for it (or nothing happened in the window)."""
    out: dict[str, Any] = {"prometheus": prom_url, "window": window}
    for name, (expr, scale) in _summary_queries(window).items():
        result = query(prom_url, expr)
        value = float(result[0]["value"][1]) if result else math.nan
        out[name] = None if math.isnan(value) else round(value * scale, 3)
    return out


LABELS = {
    "ttft_p50_ms": ("TTFT p50", "ms"), "ttft_p95_ms": ("TTFT p95", "ms"),
    "tpot_p50_ms": ("TPOT p50", "ms"), "tpot_p95_ms": ("TPOT p95", "ms"),
    "tokens_in_per_s": ("tokens/s in", ""), "tokens_out_per_s": ("tokens/s out", ""),
    "requests_per_s": ("requests/s", ""), "kv_cache_usage_pct": ("KV cache usage", "%"),
    "requests_running": ("running requests", ""), "requests_waiting": ("waiting requests", ""),
}
