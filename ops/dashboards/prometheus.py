"""The Prometheus side: a scrape config that follows Ray's own list of metrics endpoints.

Ray's head keeps `prom_metrics_service_discovery.json` (Prometheus' file-SD format) up to date with every
live node's `--metrics-export-port`, the autoscaler's and the dashboard's endpoints
(`ray/_private/metrics_agent.py: PrometheusServiceDiscoveryWriter`). It writes the file into the session dir
and keeps a stable symlink at `<temp_dir>/prom_metrics_service_discovery.json`, which is what Ray's own
bundled `prometheus.yml` points at. Pointing `file_sd_configs` there means nodes that join or leave are
scraped without re-rendering anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.dashboards import LOOPBACK, PROMETHEUS_PORT, RAY_TEMP_DIR

SD_FILE_NAME = "prom_metrics_service_discovery.json"  # ray._private.ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE
JOB = "ray"  # the job label Ray puts in the discovery file; Ray's dashboards filter on nothing else
RULES_FILE_NAME = "gpt-oss-alerts.yml"


def service_discovery_file(temp_dir: str | Path = RAY_TEMP_DIR) -> Path:
    """Ray's file-SD list of metrics endpoints (a symlink into the current session dir)."""
    return Path(temp_dir) / SD_FILE_NAME


def config(sd_file: str | Path, *, rules_files: list[str | Path] = (), scrape_interval: str = "10s",
           evaluation_interval: str | None = None) -> dict[str, Any]:
    """prometheus.yml as data.

    The discovery file is re-read every few seconds as well as on inotify events: Ray replaces the file in
    the session dir behind a symlink, and a change behind a symlink does not always wake the watcher.
    """
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval or scrape_interval,
        },
        "rule_files": [str(p) for p in rules_files],
        "scrape_configs": [{
            "job_name": JOB,
            "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "5s"}],
        }],
    }


def files(root: str | Path, sd_file: str | Path, rules: dict[str, Any], *,
          scrape_interval: str = "10s") -> dict[str, str]:
    """prometheus.yml and the rules file as {path relative to root: text}; root is where they will live
    when Prometheus runs (this machine, or the head node they are copied to)."""
    import yaml

    rules_path = Path(root) / "prometheus" / RULES_FILE_NAME
    cfg = config(sd_file, rules_files=[rules_path], scrape_interval=scrape_interval)
    return {
        "prometheus/prometheus.yml": yaml.safe_dump(cfg, sort_keys=False),
        f"prometheus/{RULES_FILE_NAME}": yaml.safe_dump(rules, sort_keys=False, width=120),
    }


def command(binary: str, config_path: str | Path, storage_dir: str | Path, *, port: int = PROMETHEUS_PORT,
            host: str = LOOPBACK, retention: str = "7d") -> list[str]:
    """Prometheus' argument list: loopback only, its own storage, rule reload on SIGHUP."""
    return [str(binary), f"--config.file={config_path}", f"--storage.tsdb.path={storage_dir}",
            f"--storage.tsdb.retention.time={retention}", f"--web.listen-address={host}:{port}"]


def url(port: int = PROMETHEUS_PORT, host: str = LOOPBACK) -> str:
    return f"http://{host}:{port}"
