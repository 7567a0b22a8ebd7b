"""Ask a live Prometheus whether the queries we ship return data.

A panel whose query names a metric that does not exist draws an empty graph forever and nobody notices;
an alert on such a metric never fires. `check_queries` runs each expression through Prometheus' HTTP API
(`/api/v1/query`) and reports the ones with no series, so `ops dashboards --check` and the stack tests can
fail on them. Grafana template variables are replaced the way Grafana would expand "All".
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ops.errors import OpsError

RUNBOOK = "docs/dashboards.md"
_WINDOW_VARS = ("$__rate_interval", "$__interval", "$interval", "${interval}")
_VAR = re.compile(r"\$\{?(\w+)\}?")


@dataclass
class QueryResult:
    name: str
    expr: str
    series: int
    finite: int  # series whose value is a number (NaN: the metric exists, nothing happened in the window)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.series > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def expand(expr: str, window: str = "5m") -> str:
    """Grafana variables -> what Grafana sends with every variable at "All": windows become `window`,
    label matchers on a variable (`label=~"$var"`) match anything."""
    for v in _WINDOW_VARS:
        expr = expr.replace(v, window)
    return _VAR.sub(".*", expr)


def query(prom_url: str, expr: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query; the result vector. Raises OpsError when Prometheus is unreachable or rejects expr."""
    import httpx

    try:
        r = httpx.get(f"{prom_url.rstrip('/')}/api/v1/query", params={"query": expr}, timeout=timeout)
    except httpx.HTTPError as e:
        raise OpsError(f"Prometheus at {prom_url} is not reachable ({e}).",
                       fix="start it with `ops dashboards` (or open the SSH tunnel it prints for a cluster).",
                       runbook=RUNBOOK)
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200 or body.get("status") != "success":
        raise ValueError(body.get("error") or f"HTTP {r.status_code}: {r.text[:200]}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def check_queries(prom_url: str, queries: Iterable[tuple[str, str]], *, window: str = "5m") -> list[QueryResult]:
    """One QueryResult per (name, expr); a query Prometheus rejects is reported with its error."""
    out = []
    for name, expr in queries:
        e = expand(expr, window)
        try:
            result = query(prom_url, e)
        except ValueError as exc:
            out.append(QueryResult(name, e, 0, 0, str(exc)))
            continue
        finite = sum(1 for s in result if not math.isnan(float(s["value"][1])))
        out.append(QueryResult(name, e, len(result), finite))
    return out


def rule_health(prom_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every loaded alerting/recording rule with Prometheus' own verdict (health ok/err/unknown, lastError)."""
    import httpx

    body = httpx.get(f"{prom_url.rstrip('/')}/api/v1/rules", timeout=timeout).json()
    return [{"group": g["name"], "name": r["name"], "health": r.get("health"), "lastError": r.get("lastError"),
             "state": r.get("state")}
            for g in body["data"]["groups"] for r in g["rules"]]


def grafana_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every Prometheus target in a Grafana dashboard JSON (rows included)."""
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels") or [])
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))

    walk(dashboard.get("panels") or [])
    return out


def shipped_queries(spec) -> list[tuple[str, str]]:
    """Every expression we ship: each panel query of our dashboard and each alert's signal."""
    from ops.dashboards import alerts, panels

    return panels.all_queries() + [(f"alert {a.name}", a.signal) for a in alerts.alerts(spec)]
