"""Our compact "gpt-oss service" dashboard: the dozen numbers an operator of the endpoint looks at first.

Ray generates detailed Serve and Serve LLM dashboards of its own (provisioned beside this one); this one
answers "is the service healthy and fast?" on one screen. Every metric name below was read off a live scrape
of Ray Serve LLM 2.60 with vLLM 0.29 (`log_engine_metrics: true`): vLLM's `vllm:*` metrics come through
Ray's metrics agent as `ray_vllm_*` (labels `model_name`, `ReplicaId`, `WorkerId`), Serve's as `ray_serve_*`.
The stack tests run every query here against a live Prometheus and fail on any that returns nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RATE = "$__rate_interval"  # Grafana's scrape-aware window; the checker substitutes a fixed one
DASHBOARD_UID = "gpt-oss-service"
DASHBOARD_TITLE = "gpt-oss service"
DASHBOARD_FILE = "gpt_oss_dashboard.json"


def quantile(q: float, histogram: str, by: str = "model_name", window: str = RATE) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket[{window}])))"


def status_rate(pattern: str, window: str = RATE) -> str:
    """Requests/s whose HTTP status matches pattern, per application.

    A healthy service has no 5xx series at all; the `or ... * 0` arm turns "no errors" into a 0 that is
    anchored on the real request counter, so a misspelt metric still shows up as "no data".
    """
    total = f"sum by (application) (rate(ray_serve_num_http_requests_total[{window}]))"
    errors = f'sum by (application) (rate(ray_serve_num_http_requests_total{{status_code=~"{pattern}"}}[{window}]))'
    return f"{errors} or {total} * 0"


def engine_gauge(agg: str, gauge: str, by: str = "model_name") -> str:
    """A vLLM gauge that reads 0, not "no data", while the engine is idle.

    vLLM refreshes its gauges only while it steps; Ray's metrics agent drops a gauge that has not been
    refreshed for two report intervals, so an idle engine exports no KV-cache or queue gauges at all. The
    `or` arm anchors a 0 on the engine's token counter, which persists. (The checker verifies every metric
    name separately, so the anchor cannot hide a misspelt gauge.)
    """
    return f"{agg} by ({by}) ({gauge}) or {agg} by ({by}) (ray_vllm_prompt_tokens_total) * 0"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat"
    width: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


TTFT = "ray_vllm_time_to_first_token_seconds"
TPOT = "ray_vllm_request_time_per_output_token_seconds"
E2E = "ray_vllm_e2e_request_latency_seconds"

PANELS: tuple[Panel, ...] = (
    Panel("Time to first token", "Prefill latency per request as vLLM measures it (queue + prefill).", "s", (
        Query(quantile(0.5, TTFT), "p50 {{model_name}}"),
        Query(quantile(0.95, TTFT), "p95 {{model_name}}"),
    )),
    Panel("Time per output token", "Decode latency: mean time between output tokens of a request (TPOT).", "s", (
        Query(quantile(0.5, TPOT), "p50 {{model_name}}"),
        Query(quantile(0.95, TPOT), "p95 {{model_name}}"),
    )),
    Panel("End-to-end request latency", "Whole request inside the engine, first byte in to last token out.", "s", (
        Query(quantile(0.5, E2E), "p50 {{model_name}}"),
        Query(quantile(0.95, E2E), "p95 {{model_name}}"),
    )),
    Panel("Tokens per second", "Prompt tokens prefilled (in) and tokens generated (out), all replicas.", "short", (
        Query(f"sum by (model_name) (rate(ray_vllm_prompt_tokens_total[{RATE}]))", "in {{model_name}}"),
        Query(f"sum by (model_name) (rate(ray_vllm_generation_tokens_total[{RATE}]))", "out {{model_name}}"),
    )),
    Panel("KV cache usage", "Fraction of each engine's KV-cache blocks in use; near 100% requests queue or are "
          "preempted. 0 while the engine is idle.", "percentunit", (
        Query(engine_gauge("max", "ray_vllm_kv_cache_usage_perc", "model_name, ReplicaId"),
              "{{model_name}} {{ReplicaId}}"),
    ), extra={"min": 0, "max": 1}),
    Panel("Requests in the engine", "Requests being decoded (running) and waiting for a KV-cache slot; 0 while "
          "the engine is idle.", "short", (
        Query(engine_gauge("sum", "ray_vllm_num_requests_running"), "running {{model_name}}"),
        Query(engine_gauge("sum", "ray_vllm_num_requests_waiting"), "waiting {{model_name}}"),
    )),
    Panel("HTTP requests", "Requests/s through the Serve proxy: all, client errors (4xx), server errors (5xx).",
          "reqps", (
        Query(f"sum by (application) (rate(ray_serve_num_http_requests_total[{RATE}]))", "all {{application}}"),
        Query(status_rate("4.."), "4xx {{application}}"),
        Query(status_rate("5.."), "5xx {{application}}"),
    )),
    Panel("Replicas", "Healthy replicas per Serve deployment, against the autoscaler's target.", "short", (
        Query("sum by (application, deployment) (ray_serve_deployment_replica_healthy)", "healthy {{deployment}}"),
        Query("max by (application, deployment) (ray_serve_autoscaling_target_replicas)", "target {{deployment}}"),
    )),
    Panel("Successful requests", "Requests vLLM finished, per finish reason (stop, length, abort).", "reqps", (
        Query(f"sum by (model_name, finished_reason) (rate(ray_vllm_request_success_total[{RATE}]))",
              "{{finished_reason}}"),
    )),
)


def all_queries() -> list[tuple[str, str]]:
    """(panel title / legend, PromQL) for every query on the dashboard."""
    return [(f"{p.title} / {q.legend}", q.expr) for p in PANELS for q in p.queries]


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    defaults.update(panel.extra)
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": q.expr, "legendFormat": q.legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, q in enumerate(panel.queries)],
    }


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON (schema as Grafana 10/11 provisions it from a file)."""
    panels, x, y = [], 0, 0
    for i, p in enumerate(PANELS, start=1):
        if x + p.width > 24:
            x, y = 0, y + 8
        panels.append(_panel_json(p, i, x, y))
        x += p.width
    return {
        "uid": DASHBOARD_UID,
        "title": DASHBOARD_TITLE,
        "tags": ["gpt-oss", "ray-serve-llm", "vllm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {"text": "Prometheus", "value": "Prometheus"}, "hide": 0,
        }]},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"
