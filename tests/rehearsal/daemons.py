"""The long-running programs the rehearsal starts: Docker daemons, a Docker registry, moto's server.

Every Docker daemon gets its own data root, exec root and socket, and the flags that keep it off the host's
firewall (`--bridge=none --iptables=false --ip-forward=false --ip-masq=false`): a daemon started with its
defaults sets the host's FORWARD policy to DROP and loads br_netfilter, which silently breaks every network
namespace test on the machine. Containers then only ever use `--network host` (the node's own namespace, as
on EC2). Each program can be started inside a node's namespaces (`enter`: the nsenter arguments).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.support, also when run as a script

from tests.support import free_port  # noqa: F401  (re-exported for the rehearsal modules)

DOCKERD_SAFE_FLAGS = ["--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
                      "--userland-proxy=false"]


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not ready within {timeout:.0f}s:\n{tail}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Dockerd:
    """One Docker daemon: its own state under `root`, its socket at `socket_path` (inside `enter`'s view)."""

    root: Path
    socket_path: str
    enter: list[str] = field(default_factory=list)  # nsenter prefix: the node's network (and mount) namespace
    insecure_registries: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 60) -> Dockerd:
        for d in ("data", "exec"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        log = self.root / "dockerd.log"
        argv = [*self.enter, "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "dockerd.pid"), "-H", self.host, "--storage-driver", "overlay2",
                *DOCKERD_SAFE_FLAGS, *[f"--insecure-registry={r}" for r in self.insecure_registries]]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.docker("version", check=False, timeout=10).returncode == 0, timeout,
                 f"dockerd ({self.root})", self.proc, log)
        return self

    def docker(self, *args: str, check: bool = True, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.enter, "docker", "-H", self.host, *args], capture_output=True, text=True,
                              check=check, timeout=timeout, **kw)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.docker("ps", "-aq", check=False, timeout=30)
            ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
            if ids:
                self.docker("rm", "--force", *ids, check=False, timeout=120)
        stop(self.proc, timeout=30)
        # containerd-shim processes of killed containers outlive a daemon that was SIGKILLed
        subprocess.run(["pkill", "-f", str(self.root / "exec")], check=False)


@dataclass
class Registry:
    """Debian's docker-registry (CNCF distribution) serving `storage` at host:port."""

    storage: Path
    host: str
    port: int
    workdir: Path
    enter: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "registry.yml"
        config.write_text("\n".join([
            "version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
            f"    rootdirectory: {self.storage}", "  delete:", "    enabled: false", "http:",
            f"  addr: {self.address}", ""]))
        log = self.workdir / "registry.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*self.enter, shutil.which("docker-registry") or "docker-registry", "serve",
                                          str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: port_open(self.host, self.port), 30, f"docker-registry on {self.address}", self.proc, log)
        return self

    def has_tag(self, repository: str, tag: str) -> bool:
        return (self.storage / "docker" / "registry" / "v2" / "repositories" / repository / "_manifests" / "tags"
                / tag / "current" / "link").is_file()

    def stop(self) -> None:
        stop(self.proc)


@dataclass
class MotoServer:
    """moto's server (the AWS control plane stand-in), with its state in memory."""

    host: str
    port: int
    workdir: Path
    enter: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        import sys

        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "moto.log"
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*self.enter, sys.executable, "-m", "moto.server", "-H", self.host,
                                          "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        wait_for(lambda: port_open(self.host, self.port), 60, f"moto server on {self.url}", self.proc, log)
        return self

    def stop(self) -> None:
        stop(self.proc)


@dataclass
class VpcDns:
    """The VPC's DNS resolver (AmazonProvidedDNS at the VPC's base + 2), by Debian's dnsmasq: every address of
    the VPC has its EC2 name, `ip-10-0-1-5.ec2.internal`, both ways, as EC2 names instances. Processes on a node
    resolve their own hostname through it (gloo, which vLLM's CPU workers use, does so for every process group;
    an unanswered lookup costs each one the resolver's timeout). Other names are answered at once (no upstream:
    the rehearsal has no internet)."""

    address: str
    cidr: str
    workdir: Path
    domain: str = "ec2.internal"
    proc: subprocess.Popen | None = None

    def start(self) -> VpcDns:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "dnsmasq.log"
        argv = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--bind-interfaces", f"--listen-address={self.address}", "--port=53", "--user=root", "--group=root",
                "--pid-file=", f"--log-facility={log}", f"--local=/{self.domain}/", f"--domain={self.domain}",
                f"--synth-domain={self.domain},{self.cidr},ip-"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _answers(self.address, self.cidr, self.domain), 30, f"dnsmasq on {self.address}", self.proc,
                 log)
        return self

    def stop(self) -> None:
        stop(self.proc)


def resolve(server: str, name: str, timeout: float = 1.0) -> str | None:
    """The A record `server` answers for `name` (one UDP query, RFC 1035 wire format), None if none."""
    import secrets
    import struct

    qid = secrets.randbelow(0xFFFF)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, 53))
            reply = s.recv(512)
        except OSError:
            return None
    rid, flags, _, answers = struct.unpack(">HHHH", reply[:8])
    if rid != qid or flags & 0xF or not answers:
        return None
    return ".".join(str(b) for b in reply[-4:])  # the (only) answer's RDATA closes the message


def _answers(server: str, cidr: str, domain: str) -> bool:
    """True once the resolver answers the EC2 name of the VPC's first address with that address."""
    import ipaddress

    first = str(next(ipaddress.ip_network(cidr).hosts()))
    return resolve(server, f"ip-{first.replace('.', '-')}.{domain}") == first
