"""Prometheus and Grafana on this machine, on loopback, for the local target.

`up` renders every file from the spec, validates them with promtool, then starts Prometheus or — when it
is already ours and running — makes it re-read its config (SIGHUP), and restarts Grafana so it
re-provisions. Running it twice leaves one Prometheus and one Grafana. `down` stops both.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops.dashboards import GRAFANA_PORT, LOOPBACK, PROMETHEUS_PORT, RAY_TEMP_DIR, alerts, grafana, procs, prometheus
from ops.errors import OpsError
from ops.spec import DeploymentSpec

RUNBOOK = "docs/dashboards.md"


def default_root() -> Path:
    from ops.tiny_model import cache_root

    return cache_root() / "dashboards"


@dataclass
class UpResult:
    root: str
    prometheus_url: str
    grafana_url: str | None
    files: list[str]
    ray_dashboards: list[str]
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render(spec: DeploymentSpec, root: Path, *, temp_dir: str | Path = RAY_TEMP_DIR,
           prometheus_port: int = PROMETHEUS_PORT, grafana_port: int = GRAFANA_PORT,
           scrape_interval: str = "10s") -> tuple[list[Path], list[str]]:
    """Write every config file under root; return (paths written, Ray dashboards found)."""
    ray = {name: p.read_text() for name, p in grafana.find_ray_dashboards(temp_dir).items()}
    texts = prometheus.files(root, prometheus.service_discovery_file(temp_dir), alerts.rules(spec),
                             scrape_interval=scrape_interval)
    texts.update(grafana.files(root, prometheus.url(prometheus_port), port=grafana_port, ray_dashboards=ray))
    stale = root / "grafana" / "dashboards" / "ray"
    if stale.is_dir():  # a Ray upgrade may drop a dashboard: provision exactly what this session generated
        shutil.rmtree(stale)
    written = []
    for rel, text in texts.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        written.append(p)
    return written, sorted(ray)


def promtool_check(root: Path) -> None:
    """`promtool check config` (which also checks the rule files it names). Refuses before anything starts."""
    exe = shutil.which("promtool")
    if exe is None:
        return
    cfg = root / "prometheus" / "prometheus.yml"
    r = subprocess.run([exe, "check", "config", str(cfg)], capture_output=True, text=True)
    if r.returncode != 0:
        raise OpsError(f"promtool rejected the generated {cfg}: {(r.stdout + r.stderr).strip()}",
                       fix="report this as a bug; the file is kept for inspection.", runbook=RUNBOOK)


def up(spec: DeploymentSpec, *, root: Path | None = None, temp_dir: str | Path = RAY_TEMP_DIR,
       prometheus_port: int = PROMETHEUS_PORT, grafana_port: int = GRAFANA_PORT, scrape_interval: str = "10s",
       start_grafana: bool = True) -> UpResult:
    root = Path(root or default_root())
    written, ray = render(spec, root, temp_dir=temp_dir, prometheus_port=prometheus_port,
                          grafana_port=grafana_port, scrape_interval=scrape_interval)
    promtool_check(root)
    res = UpResult(str(root), prometheus.url(prometheus_port), None, [str(p) for p in written], ray)
    if not spec.log_engine_metrics:
        res.notes.append("log_engine_metrics is false in the spec: the vLLM panels (latency, tokens/s, KV cache) "
                         "stay empty. Set it to true and redeploy.")
    if not ray:
        res.notes.append(f"no Ray-generated Serve dashboards under {grafana.ray_dashboards_dir(temp_dir)}: start "
                         "Ray with its dashboard (`--include-dashboard true`) and re-run to provision them.")
    if not prometheus.service_discovery_file(temp_dir).exists():
        res.notes.append(f"{prometheus.service_discovery_file(temp_dir)} does not exist yet: Prometheus will "
                         "start scraping once Ray runs (the file is re-read every 5 s).")
    _prometheus(root, prometheus_port, res)
    if start_grafana:
        _grafana(root, grafana_port, res)
    return res


def _prometheus(root: Path, port: int, res: UpResult) -> None:
    exe = shutil.which("prometheus")
    if exe is None:
        raise OpsError("Prometheus is not installed.",
                       fix="install it (`apt-get install prometheus`, as scripts/system-deps.sh does) and re-run.",
                       runbook=RUNBOOK)
    pidfile, data = root / "prometheus" / "prometheus.pid", root / "prometheus" / "data"
    if procs.running(pidfile):
        procs.signal_(pidfile, signal.SIGHUP)  # Prometheus re-reads its config and rules on SIGHUP
        res.unchanged.append(f"prometheus already running on {LOOPBACK}:{port}: configuration reloaded")
        return
    if procs.port_in_use(LOOPBACK, port):
        raise OpsError(f"port {port} on {LOOPBACK} is taken by a process `ops dashboards` did not start.",
                       fix="stop it, or pass --prometheus-port with a free port.", runbook=RUNBOOK)
    data.mkdir(parents=True, exist_ok=True)
    argv = prometheus.command(exe, root / "prometheus" / "prometheus.yml", data, port=port)
    procs.start(argv, pidfile, root / "prometheus" / "prometheus.log")
    if not procs.wait_http(f"{prometheus.url(port)}/-/ready", timeout=60, pidfile=pidfile):
        procs.stop(pidfile)
        raise OpsError(f"Prometheus did not become ready; see {root / 'prometheus' / 'prometheus.log'}.",
                       fix="read the last lines of that log (a bad flag, a locked data dir).", runbook=RUNBOOK)
    res.changed.append(f"prometheus started on {prometheus.url(port)}")


def _grafana(root: Path, port: int, res: UpResult) -> None:
    found = grafana.find_binary()
    if found is None:
        res.notes.append(f"Grafana is not installed: {grafana.INSTALL_HINT}, then re-run `ops dashboards`. "
                         f"Meanwhile import the dashboards by hand from {root / 'grafana' / 'dashboards'} "
                         "(Dashboards > New > Import) with a Prometheus datasource at "
                         f"{res.prometheus_url}.")
        return
    argv_prefix, home = found
    pidfile = root / "grafana" / "grafana.pid"
    restarted = procs.stop(pidfile)  # provisioning is read at start: restart rather than run a second copy
    if procs.port_in_use(LOOPBACK, port):
        raise OpsError(f"port {port} on {LOOPBACK} is taken by a process `ops dashboards` did not start.",
                       fix="stop it, or pass --grafana-port with a free port.", runbook=RUNBOOK)
    (root / "grafana" / "data").mkdir(parents=True, exist_ok=True)
    procs.start(grafana.command(argv_prefix, home, root), pidfile, root / "grafana" / "grafana.log")
    url = f"http://{LOOPBACK}:{port}"
    if not procs.wait_http(f"{url}/api/health", timeout=90, pidfile=pidfile):
        procs.stop(pidfile)
        raise OpsError(f"Grafana did not become ready; see {root / 'grafana' / 'grafana.log'}.",
                       fix="read the last lines of that log.", runbook=RUNBOOK)
    res.grafana_url = url
    (res.unchanged if restarted else res.changed).append(
        f"grafana {'restarted' if restarted else 'started'} on {url}")


def down(root: Path | None = None) -> dict[str, list[str]]:
    root = Path(root or default_root())
    out: dict[str, list[str]] = {"stopped": [], "already_stopped": []}
    for name in ("grafana", "prometheus"):
        stopped = procs.stop(root / name / f"{name}.pid")
        out["stopped" if stopped else "already_stopped"].append(name)
    return out
