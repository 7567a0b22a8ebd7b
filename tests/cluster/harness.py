"""A real multi-host cluster on one machine: each "host" is a network namespace with its own address on a
private test bridge (10.200.N.0/24) and its own OpenSSH server (Debian's sshd, generated host keys, a key
generated per run, root login by key only).

The hosts share the filesystem, so the project's venv works on each of them; every host gets its own HOME
(sshd `SetEnv`) and Ray temp dir so nothing collides. Traffic never leaves the bridge. Everything a test
creates — namespaces, veths, the bridge, sshd and every process started inside a namespace (Ray, replicas) —
is removed in `TestCluster.close()`, which fixtures call in `finally`.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STACK_LOCK = "/tmp/gpt-oss-stack.lock"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _free_subnet() -> int:
    used = _ip("-4", "-o", "addr").stdout
    for _ in range(200):
        n = secrets.randbelow(240) + 10
        if f" 10.200.{n}." not in used:
            return n
    raise RuntimeError("no free 10.200.N.0/24 test subnet")


@dataclass
class Host:
    index: int
    netns: str
    addr: str
    dir: Path
    host_pub: str = ""
    sshd: subprocess.Popen | None = None

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.netns, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    def exec(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, **kw)


@dataclass
class TestCluster:
    uid: str
    subnet: int
    root: Path
    hosts: list[Host] = field(default_factory=list)
    bridge: str = ""
    key: Path | None = None
    known_hosts: Path | None = None
    outputs_file: Path | None = None
    api_key: str = ""
    _lock_fd: int | None = None

    __test__ = False  # not a pytest test class

    # -- what the `cluster` target needs ------------------------------------------------------------
    @property
    def head(self) -> Host:
        return self.hosts[0]

    def env(self, encodings_dir: Path) -> dict[str, str]:
        """GPT_OSS_* settings that point the cluster target at these hosts."""
        venv_bin = Path(sys.executable).parent
        return {
            "GPT_OSS_OUTPUTS_FILE": str(self.outputs_file),
            "GPT_OSS_SSH_KEY": str(self.key),
            "GPT_OSS_KNOWN_HOSTS": str(self.known_hosts),
            "GPT_OSS_SSH_USER": "root",
            "GPT_OSS_REMOTE_PYTHON": str(venv_bin / "python"),
            "GPT_OSS_REMOTE_RAY": str(venv_bin / "ray"),
            "GPT_OSS_REMOTE_SERVE": str(venv_bin / "serve"),
            "GPT_OSS_REMOTE_DIR": str(self.root / "remote"),
            "GPT_OSS_RAY_TEMP_DIR": str(self.root / "r-{host}"),
            "GPT_OSS_REMOTE_ENCODINGS": str(encodings_dir),
            "GPT_OSS_HEAD_NUM_CPUS": "8",
            "GPT_OSS_WORKER_NUM_CPUS": "2",
            "GPT_OSS_OBJECT_STORE_MEMORY": "200000000",
            "GPT_OSS_SSH_RETRIES": "2",
            "GPT_OSS_SSH_BACKOFF": "0.5",
            "GPT_OSS_DEPLOY_TIMEOUT": "600",
            "GPT_OSS_REMOTE_ENV": json.dumps({"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                                              "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
                                              "DO_NOT_TRACK": "1"}),
            "GPT_OSS_API_KEY": self.api_key,
            "GPT_OSS_OPS_HOME": str(self.root / "local-cache"),
        }

    # -- building ----------------------------------------------------------------------------------
    def add_host(self) -> Host:
        i = len(self.hosts)
        h = Host(index=i, netns=f"gos-{self.uid}-h{i}", addr=f"10.200.{self.subnet}.{10 + i}",
                 dir=self.root / f"h{i}")
        self.hosts.append(h)
        h.dir.mkdir(parents=True)
        (h.dir / "home").mkdir()
        outer, inner = f"gv{self.uid}{i}", f"gp{self.uid}{i}"
        _ip("netns", "add", h.netns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", h.netns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        for args in (["addr", "add", f"{h.addr}/24", "dev", inner], ["link", "set", inner, "up"],
                     ["link", "set", "lo", "up"]):
            _ip("-n", h.netns, *args)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(h.dir / "ssh_host_ed25519_key")],
                       check=True)
        h.host_pub = (h.dir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (h.dir / "sshd_config").write_text("\n".join([
            f"ListenAddress {h.addr}", "Port 22",
            f"HostKey {h.dir / 'ssh_host_ed25519_key'}",
            f"PidFile {h.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "Subsystem sftp internal-sftp", "MaxStartups 100:30:200", "MaxSessions 100",
            f"SetEnv HOME={h.dir / 'home'}", "",
        ]))
        self.start_sshd(h)
        self._write_files()
        return h

    def start_sshd(self, h: Host) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(h.dir / "sshd.log", "ab")
        h.sshd = subprocess.Popen(["ip", "netns", "exec", h.netns, "/usr/sbin/sshd", "-D", "-e",
                                   "-f", str(h.dir / "sshd_config")], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if h.sshd.poll() is not None:
                raise RuntimeError(f"sshd on {h.addr} exited: {(h.dir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((h.addr, 22), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd on {h.addr} did not listen within 20s")

    def kill_sshd(self, h: Host) -> None:
        """Drop SSH to the host: the listener and every open session (as a crashed node or a cut link would)."""
        if h.sshd and h.sshd.poll() is None:
            h.sshd.kill()
            h.sshd.wait()
        for pid in h.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() in ("sshd", "sshd-session"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def kill_processes(self, h: Host, *, keep_sshd: bool = True) -> int:
        """SIGKILL every process inside the host's namespace (e.g. its Ray node), sshd optionally spared."""
        n = 0
        for pid in h.pids():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if keep_sshd and comm.startswith("sshd"):
                    continue
                os.kill(pid, signal.SIGKILL)
                n += 1
            except (OSError, ProcessLookupError):
                pass
        return n

    def _write_files(self) -> None:
        lines = [f"{h.addr} {h.host_pub[0]} {h.host_pub[1]}\n" for h in self.hosts]
        self.known_hosts.write_text("".join(lines))
        self.outputs_file.write_text(json.dumps({"head": self.head.addr,
                                                 "workers": [h.addr for h in self.hosts[1:]]}))

    # -- teardown ----------------------------------------------------------------------------------
    def close(self) -> None:
        for h in self.hosts:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in h.pids():
                    try:
                        os.kill(pid, sig)
                    except (OSError, ProcessLookupError):
                        pass
                deadline = time.monotonic() + 5
                while h.pids() and time.monotonic() < deadline:
                    time.sleep(0.2)
            if h.sshd and h.sshd.poll() is None:
                h.sshd.kill()
            if h.sshd:
                h.sshd.wait(timeout=10)
            _ip("netns", "del", h.netns, check=False)
            _ip("link", "del", f"gv{self.uid}{h.index}", check=False)
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def create(n_hosts: int, *, stack_lock: bool = False) -> TestCluster:
    """n_hosts namespaces with sshd on a fresh bridge. With stack_lock, hold the heavy-stack lock until close()."""
    uid = secrets.token_hex(3)
    root = Path(f"/tmp/gos-{uid}")
    root.mkdir(mode=0o755)
    c = TestCluster(uid=uid, subnet=0, root=root, api_key=f"sk-test-{secrets.token_hex(12)}")
    try:
        if stack_lock:
            c._lock_fd = os.open(STACK_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(c._lock_fd, fcntl.LOCK_EX)
        c.subnet = _free_subnet()
        c.bridge = f"gb{uid}"
        _ip("link", "add", c.bridge, "type", "bridge")
        _ip("addr", "add", f"10.200.{c.subnet}.1/24", "dev", c.bridge)
        _ip("link", "set", c.bridge, "up")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"gpt-oss-ops-test-{uid}",
                        "-f", str(root / "id_ed25519")], check=True)
        (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
        c.key = root / "id_ed25519"
        c.known_hosts = root / "known_hosts"
        c.outputs_file = root / "outputs.json"
        for _ in range(n_hosts):
            c.add_host()
    except BaseException:
        c.close()
        raise
    return c
