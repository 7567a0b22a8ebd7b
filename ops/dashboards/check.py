"""Ask a live Prometheus whether the queries we ship return data.

A panel whose query names a metric that does not exist draws an empty graph forever and nobody notices;
an alert on such a metric never fires. `check_queries` runs each expression through Prometheus' HTTP API
(`/api/v1/query`) and reports the ones with no series, so `ops dashboards --check` and the stack tests can
fail on them. Grafana template variables are replaced the way Grafana would expand "All".
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ops.errors import OpsError

RUNBOOK = "docs/dashboards.md"
_WINDOW_VARS = ("$__rate_interval", "$__interval", "$interval", "${interval}")
_VAR = re.compile(r"\$\{?(\w+)\}?")


_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "atan2"}


@dataclass
class QueryResult:
    name: str
    expr: str
    series: int
    finite: int  # series whose value is a number (NaN: the metric exists, nothing happened in the window)
    error: str | None = None
    missing_metrics: list[str] = field(default_factory=list)  # names Prometheus has not seen in the window

    @property
    def ok(self) -> bool:
        return self.error is None and self.series > 0 and not self.missing_metrics

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def expand(expr: str, window: str = "5m") -> str:
    """Grafana variables -> what Grafana sends with every variable at "All": windows become `window`,
    label matchers on a variable (`label=~"$var"`) match anything."""
    for v in _WINDOW_VARS:
        expr = expr.replace(v, window)
    return _VAR.sub(".*", expr)


def metric_names(expr: str) -> list[str]:
    """The metric names a PromQL expression reads (strings, matchers, ranges, label lists and function
    names removed). Checked one by one, so an `or` fallback cannot hide a misspelt metric."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", e):
        name = m.group(1)
        if name.lower() not in _KEYWORDS and name not in names:
            names.append(name)
    return names


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
    """One QueryResult per (name, expr): the expression must return series now, and every metric it names
    must have been scraped within `window`. A query Prometheus rejects is reported with its error."""
    out, seen = [], {}
    for name, expr in queries:
        e = expand(expr, window)
        try:
            result = query(prom_url, e)
        except ValueError as exc:
            out.append(QueryResult(name, e, 0, 0, str(exc)))
            continue
        missing = []
        for metric in metric_names(e):
            if metric not in seen:
                seen[metric] = bool(query(prom_url, f"count(present_over_time({metric}[{window}]))"))
            if not seen[metric]:
                missing.append(metric)
        finite = sum(1 for s in result if not math.isnan(float(s["value"][1])))
        out.append(QueryResult(name, e, len(result), finite, None, missing))
    return out


def check_settled(prom_url: str, queries: Iterable[tuple[str, str]], *, window: str = "5m",
                  settle_s: float = 30.0, interval_s: float = 2.0) -> list[QueryResult]:
    """check_queries, re-asking only the failing queries until they pass or `settle_s` runs out.

    Ray exports some gauges (replica health, KV cache usage) only when they are refreshed, so one instant can
    miss a series a scrape later brings back; a query that stays empty for the whole window is a real gap."""
    import time

    queries = list(queries)
    results = check_queries(prom_url, queries, window=window)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and not all(r.ok for r in results):
        time.sleep(interval_s)
        failing = [i for i, r in enumerate(results) if not r.ok]
        for i, r in zip(failing, check_queries(prom_url, [queries[i] for i in failing], window=window)):
            results[i] = r
    return results


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
