"""The rehearsal's stand-in for the Deep Learning AMI: a Debian root filesystem the nodes boot (systemd-nspawn,
real systemd as PID 1), built once before the suite and cached by a content hash of its recipe.

    python tests/rehearsal/ami.py build      # what `make test` runs (a no-op when the cache holds it)

What it keeps of the AMI, because the boot script and the cluster target depend on it: systemd, Docker
(Debian's docker.io, started by systemd), OpenSSH, cloud-init (which runs the user-data exactly as on EC2:
its write_files, then its runcmd, here from a NoCloud seed the rehearsal writes), curl, python3, sudo, and the
AWS CLI; the login user `ubuntu` (cloud-init's default user, key from the instance's metadata). What it adds
because it runs inside a container on a shared machine: the Docker daemon's settings that keep it off the
host's firewall (bridge none, no iptables, no IP forwarding), its registry on the test bridge marked plain
HTTP, and a unit that makes the cgroup controllers writable for the container runtime (systemd-nspawn mounts
them read-only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SUITE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "docker.io", "openssh-server", "cloud-init", "curl",
            "ca-certificates", "python3", "iproute2", "sudo", "procps", "iptables", "less"]
AWSCLI = "awscli==1.46.2"  # the AWS CLI v1 from PyPI (Debian's v2.9 predates AWS_ENDPOINT_URL support)

DAEMON_JSON = {
    "bridge": "none", "iptables": False, "ip-forward": False, "ip-masq": False, "userland-proxy": False,
    "storage-driver": "overlay2", "insecure-registries": ["10.200.0.0/16"],
}
CLOUD_CFG = """\
# The rehearsal's cloud-init: the NoCloud seed the harness writes stands in for EC2's metadata service.
datasource_list: [ NoCloud, None ]
# The node's address is set on its network namespace from outside, as EC2's DHCP would hand it out.
network: {config: disabled}
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""
CGROUP_UNIT = """\
[Unit]
Description=Writable cgroup controllers for the node's container runtime (systemd-nspawn mounts them read-only)
DefaultDependencies=no
Before=containerd.service docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mount -o remount,rw /sys/fs/cgroup; for c in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$c"; done'

[Install]
WantedBy=sysinit.target
"""
AWS_LAUNCHER = """\
#!/usr/bin/python3
import sys
sys.path.insert(0, "/usr/local/lib/aws-cli")
from awscli.clidriver import main
sys.exit(main())
"""


def cache_dir() -> Path:
    return Path(os.environ.get("GPT_OSS_REHEARSAL_CACHE") or ROOT / ".ops" / "rehearsal")


def recipe() -> dict:
    return {"suite": SUITE, "packages": PACKAGES, "awscli": AWSCLI, "daemon": DAEMON_JSON, "cloud": CLOUD_CFG,
            "cgroup": CGROUP_UNIT, "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}


def tag() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


def rootfs() -> Path:
    return cache_dir() / f"ami-{tag()}" / "rootfs"


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)


def build(log=print) -> Path:
    target = rootfs()
    if (target.parent / ".complete").is_file():
        log(f"rehearsal AMI {target.parent.name} already in {cache_dir()}")
        return target
    for tool in ("mmdebstrap", "systemd-nspawn"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run `make system-deps` (scripts/system-deps.sh)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ami-build-", dir=cache_dir()))
    try:
        root = work / "rootfs"
        log(f"rehearsal AMI {target.parent.name}: Debian {SUITE} with systemd, docker.io, sshd, cloud-init")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                        str(root)], check=True)
        log("rehearsal AMI: the AWS CLI")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location",
                        "--disable-pip-version-check", "--target", str(root / "usr/local/lib/aws-cli"), AWSCLI],
                       check=True)
        _write(root, "/usr/local/bin/aws", AWS_LAUNCHER, 0o755)
        _write(root, "/etc/docker/daemon.json", json.dumps(DAEMON_JSON, indent=2) + "\n")
        _write(root, "/etc/cloud/cloud.cfg.d/90-rehearsal.cfg", CLOUD_CFG)
        _write(root, "/etc/systemd/system/cgroup-rw.service", CGROUP_UNIT)
        wants = root / "etc/systemd/system/sysinit.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "cgroup-rw.service").symlink_to("/etc/systemd/system/cgroup-rw.service")
        # No login prompts on the container's console; journald keeps logs in memory.
        for unit in ("console-getty.service", "getty@.service", "systemd-networkd-wait-online.service"):
            (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
        _write(root, "/etc/systemd/journald.conf.d/rehearsal.conf", "[Journal]\nStorage=volatile\n")
        # The host keys mmdebstrap generated would be shared by every node: cloud-init makes each its own.
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
        (target.parent / ".complete").write_text(json.dumps(recipe(), indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(build())
