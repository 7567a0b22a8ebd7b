"""Prometheus and Grafana on a cluster's head node, installed and started over SSH (a Fabric Connection).

Both run as systemd units of our own (or under start-stop-daemon where there is no systemd), bound to
127.0.0.1 on the head: nothing new is reachable from the network, and operators look at them through an SSH
tunnel (`tunnel_command`). The distribution's Prometheus package is used for the binary only (its own
service, which listens on every interface, is disabled). Grafana, when not already on the head, comes from
Grafana's APT repository, whose packages APT verifies against Grafana's signing key; to stay offline,
install Grafana on the head beforehand (or pass `--no-grafana`).
Every command is an argument list joined with `shlex.join`; re-running `install` rewrites the files and
reloads/restarts the units, never starting a second copy.
"""

from __future__ import annotations

import io
import shlex
from pathlib import PurePosixPath
from typing import Any, Sequence

from ops.dashboards import GRAFANA_PORT, LOOPBACK, PROMETHEUS_PORT, RAY_TEMP_DIR, alerts, grafana, prometheus
from ops.errors import OpsError
from ops.spec import DeploymentSpec

REMOTE_ROOT = "/opt/gpt-oss-ops/dashboards"
GRAFANA_APT_KEY_URL = "https://apt.grafana.com/gpg.key"
GRAFANA_APT_LINE = "deb [signed-by=/etc/apt/keyrings/grafana.gpg] https://apt.grafana.com stable main\n"
GRAFANA_HOME = "/usr/share/grafana"  # where Grafana's .deb installs
GRAFANA_BIN = f"{GRAFANA_HOME}/bin/grafana"
PROMETHEUS_BIN = "/usr/bin/prometheus"  # the distribution package
UNITS = ("gpt-oss-prometheus", "gpt-oss-grafana")
RUNBOOK = "docs/dashboards.md"


def _sudo(conn, argv: Sequence[str]) -> list[str]:
    return list(argv) if getattr(conn, "user", None) == "root" else ["sudo", "-n", *argv]


def _run(conn, argv: Sequence[str], *, sudo: bool = True, check: bool = True, timeout: float = 600):
    line = shlex.join(_sudo(conn, argv) if sudo else list(argv))
    r = conn.run(line, hide=True, warn=True, timeout=timeout, in_stream=False)
    if check and r.exited != 0:
        raise OpsError(f"on {conn.host}: `{line}` failed (exit {r.exited}): {(r.stderr or r.stdout).strip()[-500:]}",
                       fix="fix the cause on the head node (see the message) and re-run `ops dashboards "
                           "--target cluster`.", runbook=RUNBOOK)
    return r


def _has(conn, exe: str) -> bool:
    return _run(conn, ["sh", "-c", 'command -v "$1"', "sh", exe], sudo=False, check=False).exited == 0


def _put_text(conn, text: str, dest: str, mode: str = "644") -> None:
    """Upload text to a staging file, then install it as root into place."""
    staging = f"/tmp/.gpt-oss-ops-{PurePosixPath(dest).name}"
    conn.put(io.BytesIO(text.encode()), staging)
    _run(conn, ["install", "-D", "-m", mode, staging, dest])
    _run(conn, ["rm", "-f", staging], sudo=False, check=False)


def unit(description: str, argv: list[str], user: str, *, reload_hup: bool = False) -> str:
    """A systemd service running argv (systemd splits ExecStart like a shell, so shlex.join is exact for
    the plain paths and flags we pass)."""
    lines = ["[Unit]", f"Description={description}", "After=network-online.target", "",
             "[Service]", f"User={user}", f"ExecStart={shlex.join(argv)}", "Restart=on-failure",
             "RestartSec=5"]
    if reload_hup:
        lines.append("ExecReload=/bin/kill -HUP $MAINPID")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _systemd(conn) -> bool:
    return _run(conn, ["test", "-d", "/run/systemd/system"], sudo=False, check=False).exited == 0


def install(conn, spec: DeploymentSpec, *, root: str = REMOTE_ROOT, temp_dir: str = RAY_TEMP_DIR,
            prometheus_port: int = PROMETHEUS_PORT, grafana_port: int = GRAFANA_PORT,
            with_grafana: bool = True, scrape_interval: str = "10s") -> dict[str, Any]:
    """Install (when missing), configure and (re)start Prometheus and Grafana on the head behind conn.

    Under systemd both run as units (they survive a reboot); on a host without systemd (a container) they run
    under `start-stop-daemon` with pid files. Either way a re-run reloads Prometheus and restarts Grafana.
    """
    done: dict[str, Any] = {"host": conn.host, "root": root, "changed": [], "unchanged": []}
    systemd = _systemd(conn)
    if not _has(conn, "prometheus"):
        _run(conn, ["apt-get", "update", "-q"])
        _run(conn, ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
                    "--no-install-recommends", "prometheus"])
        done["changed"].append("installed prometheus (distribution package)")
    if systemd:  # the package's own service listens on every interface: ours replaces it
        _run(conn, ["systemctl", "disable", "--now", "prometheus"], check=False)

    if with_grafana and _run(conn, ["test", "-x", GRAFANA_BIN], sudo=False, check=False).exited != 0:
        _run(conn, ["install", "-d", "-m", "755", "/etc/apt/keyrings"])
        _run(conn, ["curl", "-fsSL", "-o", "/tmp/.gpt-oss-ops-grafana.key", GRAFANA_APT_KEY_URL])
        _run(conn, ["gpg", "--batch", "--yes", "--dearmor", "-o", "/etc/apt/keyrings/grafana.gpg",
                    "/tmp/.gpt-oss-ops-grafana.key"])
        _put_text(conn, GRAFANA_APT_LINE, "/etc/apt/sources.list.d/grafana.list")
        _run(conn, ["apt-get", "update", "-q"])
        _run(conn, ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "grafana"])
        done["changed"].append("installed grafana (Grafana's APT repository)")
    if with_grafana and systemd:
        _run(conn, ["systemctl", "disable", "--now", "grafana-server"], check=False)

    texts = prometheus.files(root, prometheus.service_discovery_file(temp_dir), alerts.rules(spec),
                             scrape_interval=scrape_interval)
    texts.update(grafana.files(root, prometheus.url(prometheus_port), port=grafana_port))
    for rel, text in texts.items():
        _put_text(conn, text, f"{root}/{rel}")
    # Ray's generated Serve dashboards live on the head itself: copy them in place.
    ray_src = grafana.ray_dashboards_dir(temp_dir)
    _run(conn, ["install", "-d", "-m", "755", f"{root}/grafana/dashboards/ray"])
    found = []
    for name in grafana.RAY_DASHBOARDS:
        if _run(conn, ["cp", str(ray_src / name), f"{root}/grafana/dashboards/ray/{name}"], check=False).exited == 0:
            found.append(name)
    done["ray_dashboards"] = found

    _run(conn, ["promtool", "check", "config", f"{root}/prometheus/prometheus.yml"])
    _run(conn, ["install", "-d", "-o", "prometheus", "-g", "prometheus", f"{root}/prometheus/data"])
    prom_argv = prometheus.command(PROMETHEUS_BIN, f"{root}/prometheus/prometheus.yml",
                                   f"{root}/prometheus/data", port=prometheus_port)
    graf_argv = grafana.command([GRAFANA_BIN, "server"], GRAFANA_HOME, root)
    if with_grafana:
        for d in ("data", "logs", "plugins"):
            _run(conn, ["install", "-d", "-o", "grafana", "-g", "grafana", f"{root}/grafana/{d}"])
    if systemd:
        _start_units(conn, prom_argv, graf_argv if with_grafana else None, done)
    else:
        _start_daemons(conn, root, prom_argv, graf_argv if with_grafana else None, done)
    done["tunnel"] = tunnel_command(conn, prometheus_port=prometheus_port,
                                    grafana_port=grafana_port if with_grafana else None)
    return done


def _start_units(conn, prom_argv: list[str], graf_argv: list[str] | None, done: dict[str, Any]) -> None:
    _put_text(conn, unit("Prometheus for gpt-oss (loopback)", prom_argv, "prometheus", reload_hup=True),
              "/etc/systemd/system/gpt-oss-prometheus.service")
    units = ["gpt-oss-prometheus"]
    if graf_argv:
        _put_text(conn, unit("Grafana for gpt-oss (loopback)", graf_argv, "grafana"),
                  "/etc/systemd/system/gpt-oss-grafana.service")
        units.append("gpt-oss-grafana")
    _run(conn, ["systemctl", "daemon-reload"])
    _run(conn, ["systemctl", "enable", *units])
    _run(conn, ["systemctl", "reload-or-restart", "gpt-oss-prometheus"])
    if graf_argv:
        _run(conn, ["systemctl", "restart", "gpt-oss-grafana"])  # provisioning is read at start
    done["changed"].append(f"systemd units running: {', '.join(units)}")


def _ssd(pidfile: str, *args: str) -> list[str]:
    return ["start-stop-daemon", "--pidfile", pidfile, *args]


def _start_daemons(conn, root: str, prom_argv: list[str], graf_argv: list[str] | None,
                   done: dict[str, Any]) -> None:
    """No systemd: start-stop-daemon keeps one copy per pid file (Debian's dpkg ships it everywhere)."""
    pid = f"{root}/prometheus/prometheus.pid"
    if _run(conn, _ssd(pid, "--status"), check=False).exited == 0:
        _run(conn, _ssd(pid, "--stop", "--signal", "HUP", "--exec", prom_argv[0]))
        done["unchanged"].append("prometheus already running: configuration reloaded")
    else:
        _run(conn, _ssd(pid, "--start", "--background", "--make-pidfile", "--chuid", "prometheus",
                        "--output", f"{root}/prometheus/prometheus.log", "--exec", prom_argv[0], "--",
                        *prom_argv[1:]))
        done["changed"].append("prometheus started")
    if graf_argv:
        gpid = f"{root}/grafana/grafana.pid"
        _run(conn, _ssd(gpid, "--stop", "--oknodo", "--retry", "TERM/20/KILL/5"))
        _run(conn, _ssd(gpid, "--start", "--background", "--make-pidfile", "--chuid", "grafana",
                        "--output", f"{root}/grafana/grafana.log", "--exec", graf_argv[0], "--", *graf_argv[1:]))
        done["changed"].append("grafana (re)started")


def uninstall(conn, *, root: str = REMOTE_ROOT) -> dict[str, Any]:
    """Stop our Prometheus and Grafana (`ops dashboards --stop --target cluster`); packages and data stay."""
    stopped = []
    if _systemd(conn):
        for u in UNITS:
            if _run(conn, ["systemctl", "disable", "--now", u], check=False).exited == 0:
                stopped.append(u)
    else:
        for name in ("grafana", "prometheus"):
            pid = f"{root}/{name}/{name}.pid"
            if _run(conn, _ssd(pid, "--status"), check=False).exited == 0:
                _run(conn, _ssd(pid, "--stop", "--retry", "TERM/20/KILL/5"))
                stopped.append(name)
    return {"host": conn.host, "stopped": stopped}


def tunnel_command(conn, *, prometheus_port: int = PROMETHEUS_PORT, grafana_port: int | None = GRAFANA_PORT) -> str:
    """The ssh line that forwards the loopback-only UIs of the head to this machine."""
    argv = ["ssh", "-N"]
    if grafana_port:
        argv += ["-L", f"{grafana_port}:{LOOPBACK}:{grafana_port}"]
    argv += ["-L", f"{prometheus_port}:{LOOPBACK}:{prometheus_port}"]
    port = getattr(conn, "port", 22)
    if port and int(port) != 22:
        argv += ["-p", str(port)]
    gw = getattr(conn, "gateway", None)
    if gw is not None and hasattr(gw, "host"):
        argv += ["-J", f"{gw.user}@{gw.host}" + (f":{gw.port}" if int(getattr(gw, "port", 22)) != 22 else "")]
    elif isinstance(gw, str):
        argv += ["-o", f"ProxyCommand={gw}"]
    argv.append(f"{conn.user}@{conn.host}")
    return shlex.join(argv)
