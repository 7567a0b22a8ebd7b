"""Dashboards without the serving stack: generated files pass promtool, Prometheus runs on loopback and is
reloaded (not duplicated) on re-runs, every shipped query parses in a real Prometheus, and the CLI's errors
say what to do. The live-scrape checks are in test_dashboards_stack.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ops.dashboards import (
    METRICS_EXPORT_PORT,
    alerts,
    check,
    grafana,
    local,
    panels,
    procs,
    prometheus,
    remote,
)
from ops.errors import OpsError
from ops.spec import resolve
from tests.support import free_port

PROMTOOL = shutil.which("promtool")



@pytest.fixture
def spec():
    return resolve(preset="tiny").spec


@pytest.fixture
def ray_tmp(tmp_path):
    """A Ray temp dir as a running head leaves it: the discovery file (one node) and no dashboards."""
    d = tmp_path / "ray"
    d.mkdir()
    (d / prometheus.SD_FILE_NAME).write_text(json.dumps([{"labels": {"job": "ray"},
                                                          "targets": [f"127.0.0.1:{free_port()}"]}]))
    return d


def _app():
    from ops.cli import app

    return app


def test_metrics_export_port_is_outside_rays_worker_port_range():
    assert METRICS_EXPORT_PORT not in range(10002, 20000)


def test_generated_config_and_rules_pass_promtool(tmp_path, spec, ray_tmp):
    written, ray = local.render(spec, tmp_path / "out", temp_dir=ray_tmp, scrape_interval="2s")
    assert ray == []
    cfg = tmp_path / "out/prometheus/prometheus.yml"
    rules = tmp_path / "out/prometheus" / prometheus.RULES_FILE_NAME
    for argv in ([PROMTOOL, "check", "config", str(cfg)], [PROMTOOL, "check", "rules", str(rules)]):
        r = subprocess.run(argv, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    data = yaml.safe_load(cfg.read_text())
    sd = data["scrape_configs"][0]["file_sd_configs"][0]
    assert sd["files"] == [str(ray_tmp / "prom_metrics_service_discovery.json")]
    assert data["global"]["scrape_interval"] == "2s"
    assert data["rule_files"] == [str(rules)]


def test_ttft_alert_follows_the_spec_slo():
    spec = resolve(preset="tiny", flags={"ttft_slo_ms": 750}).spec
    rule = {r["alert"]: r for r in alerts.rules(spec)["groups"][0]["rules"]}["GptOssTTFTAboveSLO"]
    assert rule["expr"].endswith("> 0.75")
    assert "750 ms" in rule["annotations"]["summary"]
    assert {a.name for a in alerts.alerts(spec)} == {"GptOssKVCacheNearlyFull", "GptOssTTFTAboveSLO",
                                                     "GptOssReplicaRestarts", "GptOss5xxRate"}


def test_dashboard_json_is_grafana_shaped():
    d = panels.dashboard()
    assert d["uid"] == panels.DASHBOARD_UID
    titles = [p["title"] for p in d["panels"]]
    for wanted in ("Time to first token", "Time per output token", "Tokens per second", "KV cache usage",
                   "Requests in the engine", "HTTP requests", "Replicas"):
        assert wanted in titles
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    assert check.grafana_queries(d) == [(p.title, q.expr) for p in panels.PANELS for q in p.queries]


def test_expand_turns_grafana_variables_into_all():
    e = 'rate(x{model_name=~"$vllm_model_name", ray_io_cluster=~"$Cluster"}[$interval]) + rate(y[$__rate_interval])'
    assert check.expand(e, "2m") == 'rate(x{model_name=~".*", ray_io_cluster=~".*"}[2m]) + rate(y[2m])'


def test_metric_names_are_read_out_of_promql():
    e = ('histogram_quantile(0.9, sum by (le, model_name) (rate(a_seconds_bucket{x="y:z", q=~"$v"}[5m]))) * 1e3 '
         '> 2.5 and on (application) count by (application) (b_total offset 15m) or vllm:c * 0')
    assert check.metric_names(e) == ["a_seconds_bucket", "b_total", "vllm:c"]
    for _, expr in check.shipped_queries(resolve(preset="tiny").spec):
        assert check.metric_names(expr) and all(n.startswith(("ray_vllm_", "ray_serve_"))
                                                for n in check.metric_names(expr))


def test_grafana_provisioning_files(tmp_path, spec, ray_tmp):
    dash_dir = grafana.ray_dashboards_dir(ray_tmp)
    dash_dir.mkdir(parents=True)
    for name in (*grafana.RAY_DASHBOARDS, "train_grafana_dashboard.json"):
        (dash_dir / name).write_text(json.dumps({"title": name, "panels": []}))
    root = tmp_path / "out"
    _, ray = local.render(spec, root, temp_dir=ray_tmp, prometheus_port=9999, grafana_port=3999)
    assert ray == sorted(grafana.RAY_DASHBOARDS)  # Serve dashboards only, not Train / Data
    ds = yaml.safe_load((root / "grafana/provisioning/datasources/gpt-oss.yml").read_text())["datasources"][0]
    assert ds["url"] == "http://127.0.0.1:9999" and ds["type"] == "prometheus" and ds["name"] == "Prometheus"
    ini = (root / "grafana/grafana.ini").read_text()
    assert "http_addr = 127.0.0.1" in ini and "http_port = 3999" in ini and "reporting_enabled = false" in ini
    assert set(grafana.provisioned_dashboards(root)) == {*grafana.RAY_DASHBOARDS, panels.DASHBOARD_FILE}


def test_local_prometheus_is_idempotent_and_stops(tmp_path, spec, ray_tmp):
    root, port = tmp_path / "dash", free_port()
    first = local.up(spec, root=root, temp_dir=ray_tmp, prometheus_port=port, scrape_interval="2s")
    try:
        pidfile = root / "prometheus/prometheus.pid"
        pid = procs.running(pidfile)
        assert pid and first.changed and first.prometheus_url == f"http://127.0.0.1:{port}"
        assert any("Ray-generated" in n for n in first.notes)
        second = local.up(spec, root=root, temp_dir=ray_tmp, prometheus_port=port, scrape_interval="2s")
        assert procs.running(pidfile) == pid and not second.changed
        assert any("reloaded" in u for u in second.unchanged)
        assert procs.wait_http(f"{first.prometheus_url}/-/ready", timeout=20)
        # Every query we ship parses and type-checks in this Prometheus (data comes in the stack test).
        results = check.check_queries(first.prometheus_url, check.shipped_queries(spec))
        assert [r for r in results if r.error] == []
        rules = check.rule_health(first.prometheus_url)
        assert len(rules) == 4
    finally:
        down = local.down(root)
    assert down["stopped"] == ["prometheus"]
    assert procs.running(root / "prometheus/prometheus.pid") is None
    assert local.down(root)["stopped"] == []


def test_engine_metrics_off_is_pointed_out(tmp_path, ray_tmp):
    spec = resolve(preset="tiny", flags={"log_engine_metrics": False}).spec
    res = local.up(spec, root=tmp_path / "d", temp_dir=ray_tmp, prometheus_port=free_port(), start_grafana=False)
    local.down(tmp_path / "d")
    assert any("log_engine_metrics is false" in n for n in res.notes)


def test_local_refuses_a_port_it_does_not_own(tmp_path, spec, ray_tmp):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(OpsError) as e:
            local.up(spec, root=tmp_path / "d", temp_dir=ray_tmp, prometheus_port=port)
    assert str(port) in e.value.message and "--prometheus-port" in e.value.fix


def test_grafana_started_or_explained(tmp_path, spec, ray_tmp):
    """Without Grafana (Debian has no package; CI's case) the files are written and the note says how to get
    it; with Grafana installed it is started on loopback and serves the provisioned dashboards."""
    res = local.up(spec, root=tmp_path / "d", temp_dir=ray_tmp, prometheus_port=free_port(),
                   grafana_port=free_port())
    try:
        if grafana.find_binary() is None:
            note = next(n for n in res.notes if "Grafana is not installed" in n)
            assert "apt.grafana.com" in note and str(tmp_path / "d/grafana/dashboards") in note
            assert res.grafana_url is None
        else:
            import httpx

            found = httpx.get(f"{res.grafana_url}/api/search", params={"query": panels.DASHBOARD_TITLE}).json()
            assert any(d.get("uid") == panels.DASHBOARD_UID for d in found)
    finally:
        local.down(tmp_path / "d")


def test_cli_stop_when_nothing_runs(tmp_path):
    r = CliRunner().invoke(_app(), ["dashboards", "--stop", "--dir", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"stopped": [], "already_stopped": ["grafana", "prometheus"]}


def test_cli_metrics_without_prometheus_says_what_to_do():
    r = subprocess.run([str(Path(__import__("sys").executable).parent / "ops"), "metrics", "--prometheus",
                        f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True)
    said = " ".join(r.stderr.split())
    assert r.returncode == 1
    assert "not reachable" in said and "ops dashboards" in said


def test_cli_refuses_anyscale_target():
    r = subprocess.run([str(Path(__import__("sys").executable).parent / "ops"), "dashboards", "--target",
                        "anyscale", "--preset", "gpt-oss-20b"], capture_output=True, text=True)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "not anyscale" in said and "Anyscale console" in said


def test_remote_units_and_tunnel_line():
    from fabric import Connection

    conn = Connection("203.0.113.10", user="ubuntu", port=2222)
    line = remote.tunnel_command(conn)
    assert line == "ssh -N -L 3000:127.0.0.1:3000 -L 9090:127.0.0.1:9090 -p 2222 ubuntu@203.0.113.10"
    gw = Connection("198.51.100.5", user="ec2-user")
    via = remote.tunnel_command(Connection("10.0.1.5", user="ubuntu", gateway=gw), grafana_port=None)
    assert via == "ssh -N -L 9090:127.0.0.1:9090 -J ec2-user@198.51.100.5 ubuntu@10.0.1.5"
    argv = prometheus.command("/usr/bin/prometheus", "/opt/x/prometheus.yml", "/opt/x/data")
    unit = remote.unit("Prometheus", argv, "prometheus", reload_hup=True)
    assert "ExecStart=/usr/bin/prometheus --config.file=/opt/x/prometheus.yml" in unit
    assert "--web.listen-address=127.0.0.1:9090" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
