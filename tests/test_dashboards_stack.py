"""Dashboards against the real local stack: Ray Serve LLM on vLLM's CPU build, scraped by Debian's Prometheus.

One stack for the module: `ray start` with a metrics export port and the Ray dashboard (which generates
Ray's own Grafana dashboards), the tiny gpt-oss served through `build_openai_app`, then `ops dashboards`
starting Prometheus on loopback with a 2 s scrape interval. After a burst of real chat completions
(streaming and not, plus one 404), every panel query and alert signal we ship must return data through
Prometheus' HTTP API, and `ops metrics` must report tokens/s and a TTFT.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ops.dashboards import check, grafana, local, panels, procs
from tests.support import RAY_WORKER_PORTS, free_port

pytestmark = pytest.mark.stack  # runs in ~3 min once it holds the stack lock

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
SERVE = str(Path(sys.executable).parent / "serve")
LOCK = "/tmp/gpt-oss-stack.lock"
SERVE_URL = "http://127.0.0.1:8000/v1"



def _chat_burst(model: str, n: int) -> None:
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=SERVE_URL, api_key="FAKE_KEY", max_retries=0, timeout=120)
    for i in range(n):
        msgs = [{"role": "user", "content": f"Say something about the number {i}."}]
        if i % 2:
            stream = client.chat.completions.create(model=model, messages=msgs, max_tokens=24, stream=True)
            assert sum(1 for _ in stream) > 0
        else:
            r = client.chat.completions.create(model=model, messages=msgs, max_tokens=24)
            assert r.usage.completion_tokens > 0
    with pytest.raises(NotFoundError):  # a client error, so the 4xx series exists
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])


def _wait_all_data(prom: str, queries, timeout: float = 90) -> list[check.QueryResult]:
    deadline = time.monotonic() + timeout
    while True:
        results = check.check_queries(prom, queries)
        if all(r.ok for r in results) or time.monotonic() > deadline:
            return results
        time.sleep(2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, encodings_dir):
    """The serving stack plus our Prometheus; everything started here is stopped here, even on failure."""
    import app.llm_config as llm_config
    from ops import ray_token, tiny_model
    from ops.spec import resolve

    lock = open(LOCK, "w")
    t0 = time.monotonic()
    fcntl.flock(lock, fcntl.LOCK_EX)  # one heavy stack at a time on this machine
    t_locked = time.monotonic()
    root = tmp_path_factory.mktemp("dashboards")
    tiny = tiny_model.ensure(encodings_dir)
    spec = resolve(preset="tiny").spec
    metrics_port, prom_port = free_port(avoid=RAY_WORKER_PORTS), free_port(avoid=RAY_WORKER_PORTS)
    # Metrics reach the agent every 2 s. Token auth on, as every target runs Ray, with this stack's own token
    # file (never the machine-wide ~/.ray/auth_token): Ray and the `serve` CLI read it from RAY_AUTH_TOKEN_PATH.
    token_file, _ = ray_token.ensure_file(root / "ray_token")
    env = {**os.environ, "RAY_metrics_report_interval_ms": "2000", **ray_token.process_env(token_file)}
    # The Serve application is deployed with the `serve` CLI from a config file, as in production: no Ray
    # driver lives inside the test process, so nothing that happens to Ray can take pytest down with it.
    config = root / "serve-config.yaml"
    kwargs = llm_config.llm_config_kwargs(spec, model_source=str(tiny), encodings_dir=str(encodings_dir))
    config.write_text(yaml.safe_dump({
        "http_options": {"host": "127.0.0.1", "port": 8000},
        "applications": [{"name": "gpt-oss", "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app",
                          "args": {"llm_configs": [kwargs]}}],
    }))
    try:
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
        subprocess.run([RAY, "start", "--head", "--num-cpus", "8", "--metrics-export-port", str(metrics_port),
                        "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--disable-usage-stats"],
                       check=True, env=env, capture_output=True)
        subprocess.run([SERVE, "deploy", str(config)], check=True, env=env, capture_output=True, timeout=300)
        _wait_serve(spec.model_id)
        _chat_burst(spec.model_id, 2)  # counters and histograms exist before the first scrape

        runner = CliRunner()
        args = ["dashboards", "--dir", str(root), "--prometheus-port", str(prom_port), "--scrape-interval", "2s",
                "--json"]
        up = runner.invoke(_app(), args)
        assert up.exit_code == 0, up.output
        prom = f"http://127.0.0.1:{prom_port}"
        assert procs.wait_http(f"{prom}/-/ready", timeout=30)
        _wait_targets_up(prom)
        _chat_burst(spec.model_id, 12)
        print(f"\nstack lock wait {t_locked - t0:.0f}s, stack + Prometheus + traffic {time.monotonic() - t_locked:.0f}s")
        yield {"spec": spec, "prom": prom, "root": root, "up": json.loads(up.stdout), "args": args,
               "prom_port": prom_port, "metrics_port": metrics_port}
    finally:
        local.down(root)
        subprocess.run([SERVE, "shutdown", "-y"], capture_output=True, timeout=120, env=env)
        subprocess.run([RAY, "stop", "--force"], capture_output=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _app():
    from ops.cli import app

    return app


def _wait_serve(model: str, timeout: float = 400) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{SERVE_URL}/models", timeout=5)
            if r.status_code == 200 and any(m["id"] == model for m in r.json()["data"]):
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError("Serve LLM app did not come up")


def _wait_targets_up(prom: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = httpx.get(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
        if active and all(t["health"] == "up" for t in active):
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus targets not up: {active}")


# ------------------------------------------------------------------------------------------- tests


def test_every_panel_and_alert_query_returns_data(stack):
    results = _wait_all_data(stack["prom"], check.shipped_queries(stack["spec"]))
    missing = [(r.name, r.expr, r.error) for r in results if not r.ok]
    assert not missing, f"queries without data: {missing}"
    # The latency and throughput panels carry real numbers after the burst, not just NaN series. A rate needs an
    # increase between two scrapes: where the exporter's first report of a histogram came after the burst (a
    # slow machine), one more small burst gives it one.
    needed = ("Time to first token / p95 {{model_name}}", "Tokens per second / out {{model_name}}")
    by_name = {r.name: r for r in results}
    deadline = time.monotonic() + 120
    while any(by_name[n].finite == 0 for n in needed) and time.monotonic() < deadline:
        _chat_burst(stack["spec"].model_id, 2)
        time.sleep(6)  # three scrape intervals
        by_name = {r.name: r for r in check.check_queries(stack["prom"], check.shipped_queries(stack["spec"]))}
    for name in needed:
        assert by_name[name].finite > 0, by_name[name]


def test_checker_catches_a_misspelt_metric(stack):
    good = panels.quantile(0.95, panels.TTFT)
    bad = good.replace("ray_vllm_time_to_first_token", "ray_vllm_time_to_first_tokn")
    broken_syntax = "sum(rate(ray_vllm_generation_tokens_total[5m]"
    # A misspelt gauge behind the idle-zero fallback still returns a series: the per-metric check catches it.
    hidden = panels.engine_gauge("max", "ray_vllm_kv_cache_usage_prec")
    results = check.check_queries(stack["prom"], [("good", good), ("misspelt", bad), ("syntax", broken_syntax),
                                                  ("hidden", hidden)])
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[1].series == 0 and results[1].error is None
    assert results[2].error  # Prometheus' parse error is reported, not swallowed
    assert results[3].series > 0 and results[3].missing_metrics == ["ray_vllm_kv_cache_usage_prec"]


def test_alert_rules_are_loaded_and_evaluate(stack):
    time.sleep(5)  # at least one evaluation round at the 2 s interval
    rules = check.rule_health(stack["prom"])
    names = {r["name"] for r in rules}
    assert {"GptOssKVCacheNearlyFull", "GptOssTTFTAboveSLO", "GptOssReplicaRestarts", "GptOss5xxRate"} <= names
    assert all(r["health"] == "ok" and not r["lastError"] for r in rules), rules


def test_ops_metrics_reports_tokens_and_ttft(stack):
    r = CliRunner().invoke(_app(), ["metrics", "--prometheus", stack["prom"], "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["tokens_out_per_s"] and data["tokens_out_per_s"] > 0, data
    assert data["tokens_in_per_s"] and data["tokens_in_per_s"] > 0, data
    assert data["ttft_p50_ms"] is not None and data["ttft_p95_ms"] > 0, data
    assert data["kv_cache_usage_pct"] is not None and data["requests_running"] is not None, data
    human = CliRunner().invoke(_app(), ["metrics", "--prometheus", stack["prom"]])
    assert human.exit_code == 0 and "TTFT p95" in human.output


def test_ray_generated_dashboards_are_provisioned(stack):
    up = stack["up"]
    assert sorted(up["ray_dashboards"]) == sorted(grafana.RAY_DASHBOARDS)
    provisioned = grafana.provisioned_dashboards(stack["root"])
    assert set(grafana.RAY_DASHBOARDS) | {panels.DASHBOARD_FILE} <= set(provisioned)
    # The provider file points Grafana at the directories that hold them.
    import yaml

    prov = yaml.safe_load((stack["root"] / "grafana/provisioning/dashboards/gpt-oss.yml").read_text())
    paths = {Path(p["options"]["path"]) for p in prov["providers"]}
    assert {f.parent for f in (stack["root"] / "grafana/dashboards").glob("*/*.json")} <= paths
    # How much of Ray's own Serve LLM dashboard has data on a CPU stack (informational: some panels need
    # GPU-only or feature-specific metrics such as NIXL or KV offload).
    for name in grafana.RAY_DASHBOARDS:
        qs = check.grafana_queries(provisioned[name])
        res = check.check_queries(stack["prom"], qs)
        errors = [r for r in res if r.error]
        print(f"{name}: {sum(r.ok for r in res)}/{len(res)} queries return data, {len(errors)} rejected")
        assert qs and sum(r.ok for r in res) > 0


def test_rerun_reloads_instead_of_duplicating(stack):
    pidfile = stack["root"] / "prometheus" / "prometheus.pid"
    pid = procs.running(pidfile)
    assert pid
    again = CliRunner().invoke(_app(), stack["args"])
    assert again.exit_code == 0, again.output
    assert procs.running(pidfile) == pid
    assert any("reloaded" in line for line in json.loads(again.stdout)["unchanged"])
    assert procs.wait_http(f"{stack['prom']}/-/ready", timeout=20)


def test_dashboards_check_flag_passes_on_the_live_stack(stack):
    r = CliRunner().invoke(_app(), [*stack["args"], "--check"])
    assert r.exit_code == 0, r.output
    assert all(c["ok"] for c in json.loads(r.stdout)["check"])
