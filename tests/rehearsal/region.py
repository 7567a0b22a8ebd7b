"""The rehearsal's AWS region on this machine: a private network (the VPC) on a bridge, moto (AWS's control
plane), and a registry holding the serving image. `open_region()` is used by the test fixtures and by
bench/rehearsal_boot.py alike; everything is torn down when it exits, also on failure.

The serving image and the AMI stand-in are built beforehand (`make rehearsal-assets`, part of `make test`:
tests/rehearsal/image.py and ami.py); nothing here downloads anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import ami
import image
from daemons import MotoServer, Registry, VpcDns, free_port
from nodes import Hypervisor, ip

STACK_LOCK = "/tmp/gpt-oss-stack.lock"
REGION = "us-east-1"
STACK = "rehearsal"
KEY_PAIR = "rehearsal-key"


def _free_block() -> int:
    """A free 10.200.X.0/20 (X a multiple of 16) for the rehearsal's VPC."""
    used = ip("-4", "-o", "addr").stdout + ip("-4", "route").stdout
    for _ in range(50):
        x = 16 * (secrets.randbelow(14) + 1)
        if not any(f" 10.200.{x + i}." in used for i in range(16)):
            return x
    raise RuntimeError("no free 10.200.X.0/20 block for the rehearsal")


@dataclass
class Cloud:
    """The rehearsal's AWS region: the VPC's network on a bridge, moto, the image registry."""

    uid: str
    block: int
    run_dir: Path
    bridge: str
    moto: MotoServer
    registry: Registry
    key: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def dns(self) -> str:
        """AmazonProvidedDNS: the VPC's base address + 2."""
        return f"10.200.{self.block}.2"

    @property
    def gateway(self) -> str:
        return f"10.200.{self.block}.1"

    @property
    def vpc_cidr(self) -> str:
        return f"10.200.{self.block}.0/20"

    @property
    def image(self) -> str:
        return f"{self.registry.address}/{image.REPOSITORY}:{image.tag()}"

    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.moto.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def assets_built() -> bool:
    """The AMI stand-in and the serving image of this tree are built (`make rehearsal-assets`)."""
    return (ami.rootfs().parent / ".complete").is_file() and Registry(
        image.registry_storage(), "", 0, Path("/")).has_tag(image.REPOSITORY, image.tag())


@contextmanager
def open_region() -> Iterator[Cloud]:
    """A fresh region: bridge, moto, registry, the operator's SSH key, AWS_* pointing at moto (restored after).
    Holds the stack lock (one Ray-running stack at a time on this machine)."""
    if not assets_built():
        raise RuntimeError("the rehearsal's AMI stand-in and serving image are not built: run "
                           "`make rehearsal-assets` (part of `make test`)")
    lock = os.open(STACK_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(lock, fcntl.LOCK_EX)
    uid = secrets.token_hex(2)
    run_dir = ROOT / ".ops" / "rehearsal" / "run" / uid  # not under /tmp: the nodes mount their own /tmp
    run_dir.mkdir(parents=True)
    block = _free_block()
    bridge = f"gr{uid}"
    procs: list = []
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"10.200.{block}.1/20", "dev", bridge)
        ip("addr", "add", f"10.200.{block}.2/20", "dev", bridge)
        ip("link", "set", bridge, "up")
        gw = f"10.200.{block}.1"
        procs.append(VpcDns(f"10.200.{block}.2", f"10.200.{block}.0/20", run_dir / "dns").start())
        moto = MotoServer(gw, free_port(gw), run_dir / "moto").start()
        procs.append(moto)
        registry = Registry(image.registry_storage(), gw, 5000, run_dir / "registry").start()
        procs.append(registry)
        key = run_dir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rehearsal", "-f", str(key)], check=True)
        env = {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield Cloud(uid, block, run_dir, bridge, moto, registry, key, env)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    finally:
        for p in reversed(procs):
            p.stop()
        ip("link", "del", bridge, check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(run_dir)], capture_output=True)
        os.close(lock)


def hypervisor(cloud: Cloud, name: str) -> Hypervisor:
    return Hypervisor(run_dir=cloud.run_dir / name, bridge=cloud.bridge, gateway=cloud.gateway, prefix=20,
                      ami_rootfs=ami.rootfs(), endpoint_url=cloud.moto.url, region=REGION, uid=cloud.uid + name[:1],
                      dns=cloud.dns)


def write_outputs(path: Path, outputs: dict) -> Path:
    path.write_text(json.dumps(outputs, indent=1, default=str))
    return path
