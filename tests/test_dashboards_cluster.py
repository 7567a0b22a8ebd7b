"""`ops dashboards --target cluster`'s remote half over real SSH: the head is a network namespace running
Debian's sshd (tests/cluster/harness.py). Prometheus is configured and started on the head's loopback, is
reached only through an SSH tunnel (Fabric's forward_local, what the printed `ssh -L` line does), and a re-run
reloads it instead of starting a second copy. The harness host has no systemd, so the start-stop-daemon path
runs here; Grafana's APT repository is out of reach offline, so Grafana is left out (with_grafana=False)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
import harness  # noqa: E402  (tests/cluster/harness.py)

from ops.dashboards import PROMETHEUS_PORT, remote  # noqa: E402
from ops.remote import connection, hosts, settings  # noqa: E402
from ops.spec import resolve  # noqa: E402
from tests.support import free_port  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def head():
    c = harness.create(1)
    try:
        s = settings.load(outputs_file=str(c.outputs_file), identity_file=str(c.key),
                          known_hosts=str(c.known_hosts), user="root", retries=1, backoff_s=0.2)
        nodes = connection.open_nodes(hosts.resolve(s), s, workers=False)
        try:
            yield c, nodes.head
        finally:
            nodes.close()
    finally:
        c.close()  # kills everything started inside the namespace, Prometheus included



def _ready_through_tunnel(conn, head, timeout: float = 60) -> dict:
    """Prometheus' rules through an SSH tunnel, once it listens on the head's loopback: a tunnel opened before
    that fails in fabric's forwarding thread (the channel is refused) and surfaces when the tunnel closes."""
    import httpx

    wait = ("import socket, time\nfor _ in range(%d):\n    s = socket.socket(); s.settimeout(1)\n"
            "    if s.connect_ex(('127.0.0.1', %d)) == 0: break\n    time.sleep(1)\n" % (timeout, PROMETHEUS_PORT))
    head.exec(sys.executable, "-c", wait)
    port = free_port()
    with conn.forward_local(local_port=port, remote_port=PROMETHEUS_PORT, remote_host="127.0.0.1"):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=3).status_code == 200:
                    return httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus on the head never became ready"
            time.sleep(1)


def test_prometheus_on_the_head_behind_a_tunnel_and_idempotent(head):
    c, conn = head
    spec = resolve(preset="tiny").spec
    root = str(c.root / "dash")
    first = remote.install(conn, spec, root=root, temp_dir=str(c.root / f"r-{c.head.addr}"), with_grafana=False)
    assert "prometheus started" in first["changed"]
    assert first["tunnel"] == f"ssh -N -L 9090:127.0.0.1:9090 root@{c.head.addr}"
    pid = Path(root, "prometheus/prometheus.pid").read_text().strip()
    assert int(pid) in c.head.pids()  # it runs inside the head's namespace

    # Bound to the head's loopback only: its network address does not answer.
    r = c.head.exec(sys.executable, "-c", f"import socket; s=socket.socket(); s.settimeout(2); "
                                          f"print(s.connect_ex(('{c.head.addr}', {PROMETHEUS_PORT})))")
    assert r.stdout.strip() != "0"
    rules = _ready_through_tunnel(conn, c.head)
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert "GptOssTTFTAboveSLO" in names

    again = remote.install(conn, spec, root=root, temp_dir=str(c.root / f"r-{c.head.addr}"), with_grafana=False)
    assert any("reloaded" in u for u in again["unchanged"]) and "prometheus started" not in again["changed"]
    assert Path(root, "prometheus/prometheus.pid").read_text().strip() == pid
    assert sum(1 for p in c.head.pids() if "prometheus" in Path(f"/proc/{p}/cmdline").read_text()) == 1

    assert remote.uninstall(conn, root=root)["stopped"] == ["prometheus"]
    assert remote.uninstall(conn, root=root)["stopped"] == []


def test_cli_stop_on_the_cluster_reaches_the_head(head, encodings_dir, monkeypatch):
    """`ops dashboards --target cluster --stop` finds the head from the stack outputs, connects, and reports
    that nothing of ours runs there (idempotent stop)."""
    import json

    from typer.testing import CliRunner

    from ops.cli import app

    c, _ = head
    for k, v in c.env(encodings_dir).items():
        monkeypatch.setenv(k, v)
    r = CliRunner().invoke(app, ["dashboards", "--target", "cluster", "--stop", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"host": c.head.addr, "stopped": []}
