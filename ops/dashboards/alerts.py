"""Alert rules for the service, rendered from the spec (the TTFT objective is `spec.ttft_slo_ms`).

Each rule is a *signal* (a PromQL expression that has data whenever the stack is up and serving) and a
*condition* applied to it. Keeping the two apart lets the stack tests prove that every signal returns data
on a live scrape: a condition that is false (a healthy stack) hides a misspelt metric, a signal does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.dashboards import panels
from ops.spec import DeploymentSpec

GROUP = "gpt-oss-service"
WINDOW = "5m"


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str
    condition: str  # appended to the signal: "> 0.9", "> 2000 and on (...) ..."
    for_: str
    severity: str
    summary: str
    description: str

    @property
    def expr(self) -> str:
        return f"({self.signal}) {self.condition}"


def alerts(spec: DeploymentSpec) -> list[Alert]:
    slo_s = spec.ttft_slo_ms / 1000
    requests = f"sum by (application) (rate(ray_serve_num_http_requests_total[{WINDOW}]))"
    new_replicas = ("count by (application, deployment) (ray_serve_deployment_replica_starts_total "
                    "unless ray_serve_deployment_replica_starts_total offset 15m)")
    return [
        Alert("GptOssKVCacheNearlyFull",
              panels.engine_gauge("max", "ray_vllm_kv_cache_usage_perc", "model_name, ReplicaId"), "> 0.9", "5m",
              "warning",
              "KV cache of {{ $labels.model_name }} replica {{ $labels.ReplicaId }} above 90%",
              "Requests will queue or be preempted. Add replicas (replicas.max), lower max_model_len, or move "
              "to a GPU with more memory."),
        Alert("GptOssTTFTAboveSLO",
              panels.quantile(0.95, panels.TTFT, window=WINDOW), f"> {slo_s:g}", "10m", "warning",
              f"TTFT p95 of {{{{ $labels.model_name }}}} above the {spec.ttft_slo_ms} ms objective",
              "Time to first token p95 is {{ $value | humanizeDuration }}. Look at waiting requests and KV cache "
              "usage on the gpt-oss service dashboard; scale out or shorten prompts."),
        Alert("GptOssReplicaRestarts", new_replicas,
              "> 0 and on (application, deployment) "
              "count by (application, deployment) (ray_serve_deployment_replica_starts_total offset 15m)",
              "0m", "warning",
              "New replicas of {{ $labels.deployment }} started in the last 15 minutes",
              "A deployment that was already running started {{ $value }} new replica(s): a crashed replica "
              "replaced by Serve, or an autoscaler scale-up. Check `ops status` and the replica logs."),
        Alert("GptOss5xxRate",
              f'({panels.status_rate("5..", WINDOW)}) / {requests}', "> 0.05", "5m", "critical",
              "More than 5% of requests to {{ $labels.application }} fail with 5xx",
              "{{ $value | humanizePercentage }} of requests return a server error. Check `ops status` and the "
              "Serve logs (`ops logs`)."),
    ]


def rules(spec: DeploymentSpec) -> dict[str, Any]:
    """The Prometheus rules file as data (`promtool check rules` accepts it)."""
    return {"groups": [{
        "name": GROUP,
        "rules": [{
            "alert": a.name,
            "expr": a.expr,
            "for": a.for_,
            "labels": {"severity": a.severity, "service": spec.name},
            "annotations": {"summary": a.summary, "description": a.description},
        } for a in alerts(spec)],
    }]}
