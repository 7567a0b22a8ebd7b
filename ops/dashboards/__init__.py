"""Metrics and dashboards for a gpt-oss deployment: Prometheus, Grafana and the alert rules.

Ray exports every node's metrics (Ray's own, Serve's `ray_serve_*` and, with `log_engine_metrics`, vLLM's
`ray_vllm_*`) on one HTTP port per node and keeps a Prometheus file-service-discovery list of those
endpoints. This package turns that into a working monitoring stack:

- `prometheus` renders the scrape config (file_sd on Ray's discovery file) and runs Prometheus on loopback;
- `panels` holds our compact "gpt-oss service" dashboard, `alerts` the alert rules (from the spec's SLO);
- `grafana` provisions the datasource, Ray's own generated Serve / Serve LLM dashboards and ours;
- `check` asks Prometheus whether every shipped query returns data; `metrics` is the terminal summary;
- `remote` installs and starts both on a cluster's head node over SSH (Fabric).

The port constants live here so the deploy targets and infra/ user-data open the same ports.
"""

from __future__ import annotations

# Ray's per-node metrics endpoint: `ray start --metrics-export-port METRICS_EXPORT_PORT` on every node.
# Outside Ray's default worker port range (10002-19999) so Ray does not refuse it.
METRICS_EXPORT_PORT = 8080
# Prometheus and Grafana listen on loopback only (reach them through an SSH tunnel on a cluster).
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
LOOPBACK = "127.0.0.1"
# Ray's default temp dir; the discovery file lives in its session dir, with a stable symlink here.
RAY_TEMP_DIR = "/tmp/ray"
