"""Ray's ports, pinned.

Ray picks most of its ports at random unless told otherwise, which would force a security group to open
wide ranges. Every node is started with the flags below, so the cluster security group can name each port
(self-referencing rules only) and nothing else is ever reachable between nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.dashboards import GRAFANA_PORT, METRICS_EXPORT_PORT, PROMETHEUS_PORT

# Ray's defaults where it has them (GCS 6379, dashboard 8265, client 10001, dashboard agent 52365);
# the rest are fixed here so they are the same on every node.
GCS = 6379
NODE_MANAGER = 6380
OBJECT_MANAGER = 6381
RUNTIME_ENV_AGENT = 6382
DASHBOARD_AGENT_GRPC = 6383
DASHBOARD = 8265
METRICS_EXPORT = METRICS_EXPORT_PORT  # shared with ops.dashboards (Prometheus scrapes it)
CLIENT = 10001
DASHBOARD_AGENT_HTTP = 52365
WORKER_MIN = 10002
WORKER_MAX = 10999

# Observability on the head node (`ops dashboards --target cluster` runs both on loopback), reached only
# through an SSM or SSH tunnel, never opened in a group.
GRAFANA = GRAFANA_PORT
PROMETHEUS = PROMETHEUS_PORT


@dataclass(frozen=True)
class PortRule:
    """One inbound rule of the cluster group: a named port or range, open to members of the group only."""

    name: str
    from_port: int
    to_port: int


def cluster_rules(serve_port: int) -> list[PortRule]:
    """Every port Ray nodes use to talk to each other, plus Serve's HTTP proxy (one per node)."""
    return [
        PortRule("gcs", GCS, GCS),
        PortRule("node-manager", NODE_MANAGER, NODE_MANAGER),
        PortRule("object-manager", OBJECT_MANAGER, OBJECT_MANAGER),
        PortRule("runtime-env-agent", RUNTIME_ENV_AGENT, RUNTIME_ENV_AGENT),
        PortRule("dashboard-agent-grpc", DASHBOARD_AGENT_GRPC, DASHBOARD_AGENT_GRPC),
        PortRule("metrics-export", METRICS_EXPORT, METRICS_EXPORT),
        PortRule("client", CLIENT, CLIENT),
        PortRule("dashboard-agent-http", DASHBOARD_AGENT_HTTP, DASHBOARD_AGENT_HTTP),
        PortRule("workers", WORKER_MIN, WORKER_MAX),
        PortRule("serve-http", serve_port, serve_port),
    ]


def ray_start_args(*, head: bool, head_address: str | None = None, num_gpus: int = 0, num_cpus: int | None = None,
                   resources: dict[str, float] | None = None, labels: dict[str, str] | None = None) -> list[str]:
    """The `ray start` argument list (after `ray start`) with every port pinned to the values above. The
    dashboard (Ray's job submission API among it) listens on the head's loopback only: operators reach it
    through an SSH or SSM tunnel, `serve deploy` runs on the head."""
    import json

    args = ["--head", f"--port={GCS}", "--dashboard-host=127.0.0.1", f"--dashboard-port={DASHBOARD}",
            f"--ray-client-server-port={CLIENT}"] if head else [f"--address={head_address}:{GCS}"]
    args += [
        f"--node-manager-port={NODE_MANAGER}",
        f"--object-manager-port={OBJECT_MANAGER}",
        f"--runtime-env-agent-port={RUNTIME_ENV_AGENT}",
        f"--dashboard-agent-grpc-port={DASHBOARD_AGENT_GRPC}",
        f"--dashboard-agent-listen-port={DASHBOARD_AGENT_HTTP}",
        f"--metrics-export-port={METRICS_EXPORT}",
        f"--min-worker-port={WORKER_MIN}",
        f"--max-worker-port={WORKER_MAX}",
        f"--num-gpus={num_gpus}",
    ]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if resources:
        args.append("--resources=" + json.dumps(resources, sort_keys=True, separators=(",", ":")))
    if labels:
        args.append("--labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    args += ["--disable-usage-stats", "--block"]
    return args
