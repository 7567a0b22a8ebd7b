"""The Grafana side: provisioning files for the Prometheus datasource, Ray's dashboards and ours.

Ray's dashboard process generates Grafana dashboards for Serve and Serve LLM into
`<temp_dir>/session_latest/metrics/grafana/dashboards/` when the Ray dashboard is enabled
(`ray/dashboard/modules/metrics/metrics_head.py`); we provision those files as Ray wrote them instead of
keeping copies that drift from the Ray version in use. Grafana itself has no Debian package: it comes from
Grafana's APT repository or release tarball (see docs/dashboards.md), and when it is absent the provisioning
files are still written so they can be imported by hand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ops.dashboards import GRAFANA_PORT, LOOPBACK, RAY_TEMP_DIR, panels

# The Ray-generated dashboards that concern a Serve LLM service (others cover Ray Data / Train).
RAY_DASHBOARDS = ("serve_grafana_dashboard.json", "serve_deployment_grafana_dashboard.json",
                  "serve_llm_grafana_dashboard.json")
DATASOURCE = "Prometheus"  # Ray's dashboards default to a datasource of this name
HOME_CANDIDATES = ("/usr/share/grafana", "/opt/grafana")
INSTALL_HINT = ("install Grafana from Grafana's APT repository (https://apt.grafana.com, package `grafana`) or "
                "unpack its release tarball and set GRAFANA_HOME to that directory")


def ray_dashboards_dir(temp_dir: str | Path = RAY_TEMP_DIR) -> Path:
    return Path(temp_dir) / "session_latest" / "metrics" / "grafana" / "dashboards"


def find_ray_dashboards(temp_dir: str | Path = RAY_TEMP_DIR) -> dict[str, Path]:
    """The Serve / Serve LLM dashboards the running Ray session generated (empty when Ray is not running
    with its dashboard)."""
    d = ray_dashboards_dir(temp_dir)
    return {name: d / name for name in RAY_DASHBOARDS if (d / name).is_file()}


def find_binary() -> tuple[list[str], Path] | None:
    """(argv prefix, home path) of an installed Grafana server, or None.

    Grafana >= 10 ships one `grafana` binary (`grafana server`); older packages ship `grafana-server`.
    """
    homes = [Path(os.environ["GRAFANA_HOME"])] if os.environ.get("GRAFANA_HOME") else []
    homes += [Path(h) for h in HOME_CANDIDATES]
    for home in homes:
        for argv in ([str(home / "bin" / "grafana"), "server"], [str(home / "bin" / "grafana-server")]):
            if Path(argv[0]).is_file() and os.access(argv[0], os.X_OK):
                return argv, home
    for name, argv in (("grafana", ["server"]), ("grafana-server", [])):
        exe = shutil.which(name)
        if exe:
            home = next((h for h in homes if (h / "conf" / "defaults.ini").is_file()), Path(HOME_CANDIDATES[0]))
            return [exe, *argv], home
    return None


def command(argv_prefix: list[str], home: str | Path, root: str | Path) -> list[str]:
    return [*argv_prefix, f"--homepath={home}", f"--config={Path(root) / 'grafana' / 'grafana.ini'}"]


def files(root: str | Path, prometheus_url: str, *, port: int = GRAFANA_PORT,
          ray_dashboards: dict[str, str] | None = None) -> dict[str, str]:
    """Grafana's config and provisioning as {path relative to root: text}.

    root is where the files live when Grafana runs. ray_dashboards maps file name -> JSON text of Ray's
    generated dashboards (copied in place on a remote head instead, where they are generated).
    """
    import yaml

    root = Path(root)
    g = root / "grafana"
    ini = "\n".join([
        "[server]", f"http_addr = {LOOPBACK}", f"http_port = {port}", "",
        "[paths]", f"data = {g / 'data'}", f"logs = {g / 'logs'}", f"plugins = {g / 'plugins'}",
        f"provisioning = {g / 'provisioning'}", "",
        # Reachable only on loopback (an SSH tunnel on a cluster): viewers need no account.
        "[auth.anonymous]", "enabled = true", "org_role = Viewer", "",
        # Never phone home: these machines may have no internet access.
        "[analytics]", "reporting_enabled = false", "check_for_updates = false", "check_for_plugin_updates = false",
        "",
        "[dashboards]", f"default_home_dashboard_path = {g / 'dashboards' / 'gpt-oss' / panels.DASHBOARD_FILE}", "",
    ])
    datasource = {"apiVersion": 1, "datasources": [{
        "name": DATASOURCE, "type": "prometheus", "access": "proxy", "url": prometheus_url, "isDefault": True,
        "jsonData": {"timeInterval": "10s"}}]}
    providers = {"apiVersion": 1, "providers": [
        {"name": "gpt-oss", "folder": "gpt-oss", "type": "file", "allowUiUpdates": False,
         "options": {"path": str(g / "dashboards" / "gpt-oss")}},
        {"name": "Ray", "folder": "Ray", "type": "file", "allowUiUpdates": False,
         "options": {"path": str(g / "dashboards" / "ray")}},
    ]}
    out = {
        "grafana/grafana.ini": ini,
        "grafana/provisioning/datasources/gpt-oss.yml": yaml.safe_dump(datasource, sort_keys=False),
        "grafana/provisioning/dashboards/gpt-oss.yml": yaml.safe_dump(providers, sort_keys=False),
        f"grafana/dashboards/gpt-oss/{panels.DASHBOARD_FILE}": panels.dashboard_json(),
    }
    for name, text in (ray_dashboards or {}).items():
        out[f"grafana/dashboards/ray/{name}"] = text
    return out


def provisioned_dashboards(root: str | Path) -> dict[str, dict[str, Any]]:
    """file name -> dashboard JSON of everything provisioned under root (ours and Ray's)."""
    import json

    d = Path(root) / "grafana" / "dashboards"
    return {p.name: json.loads(p.read_text()) for p in sorted(d.glob("*/*.json"))}
