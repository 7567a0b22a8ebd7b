"""Rehearsal nodes: what EC2 does with an instance, done on this machine.

Each instance moto launched (the head `run_instances`, the workers its Auto Scaling group) becomes a node:
- a network namespace on the test bridge holding the instance's private address, with a default route to the
  bridge (the VPC router) and an iptables INPUT policy rendered from the stack's security group rules;
- an instance metadata service (IMDSv2, imds.py) at 169.254.169.254 inside that namespace;
- a container (systemd-nspawn, booting real systemd) on an overlay of the AMI stand-in (ami.py), with its own
  /var/lib/docker, whose cloud-init finds the instance's user-data (the launch template's, as moto holds it)
  and its metadata in a NoCloud seed, and runs it: write_files, then runcmd, which enables the boot unit.
Nothing of the boot is done by the harness: Docker, the boot script, Ray, the weights all come from the
user-data. Destroying a node kills its container (everything inside dies with its PID namespace) and removes
its namespace, overlay and disks, as terminating an instance would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
NSPAWN_FLAGS = ["--boot", "--register=no", "--keep-unit", "--capability=all",
                "--system-call-filter=@keyring bpf", "--resolv-conf=off", "--timezone=off", "--link-journal=no"]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Node:
    instance_id: str
    address: str
    role: str
    root: Path  # this node's state on the host
    netns: str
    machine: str
    public_address: str = ""  # a second address on the bridge, as an Elastic IP is NATed onto the instance
    procs: list[subprocess.Popen] = field(default_factory=list)
    nspawn: subprocess.Popen | None = None

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    def leader(self) -> int | None:
        """PID (on the host) of the container's PID 1 (systemd)."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            return None
        todo = [self.nspawn.pid]
        while todo:
            pid = todo.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for c in children:
                try:
                    if Path(f"/proc/{c}/comm").read_text().strip() == "systemd":
                        return int(c)
                except OSError:
                    continue
                todo.append(int(c))
        return None

    def exec(self, *argv: str, timeout: float = 120, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the node (all of its namespaces), as root."""
        pid = self.leader()
        if pid is None:
            raise RuntimeError(f"node {self.machine} is not running")
        return subprocess.run(["nsenter", "-t", str(pid), "-a", *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, **kw)

    def read(self, path: str) -> str | None:
        r = self.exec("cat", path, timeout=30)
        return r.stdout if r.returncode == 0 else None

    def boot_status(self) -> dict:
        try:
            return json.loads(self.read("/var/lib/gpt-oss/status.json") or "{}")
        except ValueError:
            return {}

    def journal(self, unit: str, lines: int = 60) -> str:
        return self.exec("journalctl", "-u", unit, "--no-pager", "-n", str(lines), timeout=30).stdout


@dataclass
class Hypervisor:
    """Boots and destroys nodes for the instances of one rehearsal stack."""

    run_dir: Path
    bridge: str
    gateway: str
    prefix: int
    ami_rootfs: Path
    endpoint_url: str  # moto, as every AWS client on the nodes reaches it
    region: str
    uid: str
    dns: str  # the VPC's resolver (region.VpcDns), as DHCP hands it to an EC2 instance
    nodes: dict[str, Node] = field(default_factory=dict)
    booted: int = 0  # nodes ever booted (names their namespaces and links)

    def boot(self, *, instance_id: str, address: str, role: str, user_data: str, public_key: str,
             firewall: list[list[str]], tags: dict[str, str], instance_role: str, public_address: str = "") -> Node:
        n = self.booted
        self.booted += 1
        node = Node(instance_id, address, role, self.run_dir / instance_id, f"gos-{self.uid}-n{n}",
                    f"{role}-{instance_id[-6:]}", public_address=public_address)
        self.nodes[instance_id] = node
        node.root.mkdir(parents=True)
        self._network(node, n, firewall)
        self._imds(node, user_data, tags, instance_role)
        self._root(node, user_data, public_key)
        self._start(node)
        return node

    # -- the instance's network --------------------------------------------------------------------------------
    def _network(self, node: Node, n: int, firewall: list[list[str]]) -> None:
        outer, inner = f"go{self.uid}{n}", f"gi{self.uid}{n}"
        ip("netns", "add", node.netns)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", node.netns)
        ip("link", "set", outer, "master", self.bridge)
        ip("link", "set", outer, "up")
        for args in (["link", "set", "lo", "up"], ["addr", "add", f"{node.address}/{self.prefix}", "dev", inner],
                     ["link", "set", inner, "up"], ["route", "add", "default", "via", self.gateway],
                     ["addr", "add", "169.254.169.254/32", "dev", "lo"]):
            ip("-n", node.netns, *args)
        if node.public_address:
            ip("-n", node.netns, "addr", "add", f"{node.public_address}/{self.prefix}", "dev", inner)
        for rule in firewall:  # the security group stand-in
            subprocess.run(["ip", "netns", "exec", node.netns, "iptables", *rule], check=True, capture_output=True)

    # -- the instance metadata service --------------------------------------------------------------------------
    def _imds(self, node: Node, user_data: str, tags: dict[str, str], instance_role: str) -> None:
        meta = {"instance-id": node.instance_id, "region": self.region, "availability-zone": f"{self.region}a",
                "local-ipv4": node.address, "public-ipv4": node.address, "role": instance_role,
                "user-data": user_data, "tags": tags}
        (node.root / "imds.json").write_text(json.dumps(meta))
        log = open(node.root / "imds.log", "ab")
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, str(HERE / "imds.py"),
                                 str(node.root / "imds.json")], stdout=log, stderr=log, start_new_session=True)
        node.procs.append(proc)
        probe = "import socket; socket.create_connection(('169.254.169.254', 80), timeout=1).close()"
        deadline = time.monotonic() + 30  # the instance boots only once its metadata service answers, as on EC2
        while subprocess.run(["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, "-c", probe],
                             capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the metadata service of {node.machine} did not start: "
                                   + (node.root / "imds.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)

    # -- the instance's disks: an overlay of the AMI, its own Docker data ---------------------------------------
    def _root(self, node: Node, user_data: str, public_key: str) -> None:
        for d in ("upper", "work", "merged", "docker"):
            (node.root / d).mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.ami_rootfs},upperdir={node.root / 'upper'},workdir={node.root / 'work'}",
                        str(node.merged)], check=True)
        seed = node.merged / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True)
        (seed / "user-data").write_text(user_data)
        # EC2's hostname for the address (cloud-init sets it), which the VPC's resolver answers.
        (seed / "meta-data").write_text(json.dumps({"instance-id": node.instance_id,
                                                    "local-hostname": "ip-" + node.address.replace(".", "-"),
                                                    "public-keys": [public_key]}))
        resolv = node.merged / "etc/resolv.conf"
        resolv.unlink(missing_ok=True)
        resolv.write_text(f"nameserver {self.dns}\nsearch ec2.internal\n")
        # Where every AWS client on this instance finds the AWS API (moto), as an AMI baked for a VPC endpoint
        # would say it; systemd passes it to every unit.
        conf = node.merged / "etc/systemd/system.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "10-aws-endpoint.conf").write_text(
            f"[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL={self.endpoint_url} AWS_DEFAULT_REGION={self.region}\n")
        # Debian's Docker 20.10 (the stand-in's) does not take its awslogs credentials from an IMDSv2-only
        # metadata service, which the DLAMI's current Docker does; its daemon gets the role's credentials here.
        dropin = node.merged / "etc/systemd/system/docker.service.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "10-instance-role.conf").write_text(
            "[Service]\nEnvironment=AWS_ACCESS_KEY_ID=ASIAREHEARSAL AWS_SECRET_ACCESS_KEY=rehearsal-secret\n")

    def _start(self, node: Node) -> None:
        log = open(node.root / "console.log", "ab")
        node.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", str(node.merged), "-M", node.machine, *NSPAWN_FLAGS,
             f"--network-namespace-path=/run/netns/{node.netns}", f"--bind={node.root / 'docker'}:/var/lib/docker"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while node.leader() is None:
            if node.nspawn.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {node.machine} did not boot:\n"
                                   + (node.root / "console.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)

    # -- waiting ------------------------------------------------------------------------------------------------
    def wait_boot(self, node: Node, states: tuple[str, ...] = ("ready",), timeout: float = 900) -> dict:
        """Wait until the node's own boot reports one of `states` (status.json); returns that status."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            if node.leader() is not None:
                status = node.boot_status()
                if status.get("state") in states:
                    return status
            time.sleep(3)
        raise AssertionError(f"node {node.machine} ({node.address}) did not reach {states} in {timeout:.0f}s; last "
                             f"status {status}\n{node.journal('gpt-oss-boot') if node.leader() else ''}")

    # -- terminating --------------------------------------------------------------------------------------------
    def destroy(self, instance_id: str) -> None:
        node = self.nodes.pop(instance_id, None)
        if node is None:
            return
        pid = node.leader()
        if pid:
            os.kill(pid, signal.SIGKILL)  # the PID namespace, and every process in it, goes with its init
        if node.nspawn is not None:
            try:
                node.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.nspawn.kill()
                node.nspawn.wait(timeout=10)
        for p in node.procs:
            p.kill()
            p.wait(timeout=10)
        subprocess.run(["umount", "-l", str(node.merged)], capture_output=True)
        ip("netns", "del", node.netns, check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(node.root)], capture_output=True)

    def close(self) -> None:
        for instance_id in list(self.nodes):
            self.destroy(instance_id)
