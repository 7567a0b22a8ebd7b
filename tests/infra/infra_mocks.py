"""Run the Pulumi program under `pulumi.runtime.set_mocks`: no CLI, no plugins, no AWS.

The mocks stand in for AWS's control plane only: they answer the data-source calls the stack makes
(AMI lookup, availability zones, caller identity, partition) with real-shaped results and echo each new
resource's inputs back as its state, plus the computed attributes the program reads (ids, ARNs, IPs, names).
Tests then assert on what was registered.
"""

from __future__ import annotations

import inspect
import runpy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pulumi


PROJECT = "gpt-oss-ops"
STACK = "ci"
ACCOUNT = "123456789012"


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    id: str = ""
    provider: str = ""


@dataclass
class AwsMocks(pulumi.runtime.Mocks):
    region: str = "us-east-1"
    resources: list[Registered] = field(default_factory=list)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    call_providers: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        record = Registered(args.typ, args.name, dict(args.inputs), provider=args.provider or "")
        with self._lock:
            self.resources.append(record)
            n = len(self.resources)
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        t = args.typ
        if t == "aws:ec2/instance:Instance":
            rid = f"i-0{n:016x}"
            state.update(private_ip=f"10.42.128.{n % 250 + 4}", public_ip=f"198.51.100.{n % 250 + 4}"
                         if args.inputs.get("associatePublicIpAddress") else "")
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            rid = f"lt-0{n:016x}"
            state["latestVersion"] = 1
        elif t == "aws:s3/bucket:Bucket":
            state["bucket"] = f"{args.name}-{n:07x}"
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            state["name"] = f"{args.inputs.get('namePrefix', '/')}{n:012x}"
            state["arn"] = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:{state['name']}"
        elif t == "aws:autoscaling/group:Group":
            state["name"] = f"{args.inputs.get('namePrefix', args.name)}{n:08x}"
        elif t == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{args.name}-{n}.{self.region}.elb.amazonaws.com"
        state.setdefault("arn", f"arn:aws:mock:{self.region}:{ACCOUNT}:{args.name}")
        state.setdefault("name", f"{args.name}-{n:07x}")  # Pulumi's auto-naming: logical name + suffix
        record.id = rid
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append((args.token, dict(args.args)))
        self.call_providers.append(args.provider or "")
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0123456789abcdef0", "name": "Deep Learning Base OSS Nvidia Driver GPU AMI "
                    "(Ubuntu 22.04) 20250901", "rootDeviceName": "/dev/sda1", "architecture": "x86_64"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{s}" for s in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(len(names))], "id": self.region}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AIDAEXAMPLE",
                    "id": ACCOUNT}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        raise NotImplementedError(f"no mock for {args.token}")

    # -- helpers for assertions ---------------------------------------------------------------------------
    def of_type(self, token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str, name_part: str = "") -> Registered:
        found = [r for r in self.of_type(token) if name_part in r.name]
        assert len(found) == 1, f"expected one {token} named *{name_part}*, got {[r.name for r in found]}"
        return found[0]


@dataclass
class Run:
    mocks: AwsMocks
    outputs: dict[str, Any]
    result: Any = None


def run_program(build: Callable[[], Any], *, config: dict[str, str] | None = None, region: str = "us-east-1",
                stack: str = STACK, secret_keys: tuple[str, ...] = (), mocks: AwsMocks | None = None) -> Run:
    """Run `build()` under fresh mocks; resolve its outputs (a dict of Inputs) once every RPC is done.

    Pass `mocks` to inspect what was registered even when the program raises."""
    from pulumi.runtime import settings

    mocks = mocks or AwsMocks(region=region)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in (config or {}).items()},
                                  secret_keys=[f"{PROJECT}:{k}" for k in secret_keys])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    run = Run(mocks, {})

    @pulumi.runtime.test
    def _go():
        outputs = build()
        if isinstance(outputs, dict):
            return pulumi.Output.from_input(outputs).apply(run.outputs.update)
        run.result = outputs
        return None

    _go()
    return run


def run_main(config: dict[str, str], *, region: str = "us-east-1", stack: str = STACK,
             secret_keys: tuple[str, ...] = (), mocks: AwsMocks | None = None) -> Run:
    """Run the real Pulumi program (infra/__main__.py) with the given `gpt-oss-ops:*` config.

    The registry check of the serving image needs the image's registry (Docker Hub for the default): these
    runs skip it unless the config asks for it (imageCheck), the rehearsal runs it against its own registry."""
    main = Path(__file__).resolve().parents[2] / "infra" / "__main__.py"
    config = {"imageCheck": "false", **config}
    return run_program(lambda: runpy.run_path(str(main), run_name="__main__") and None, config=config,
                       region=region, stack=stack, secret_keys=secret_keys, mocks=mocks)


def taggable(token: str) -> bool:
    """Whether the pulumi-aws resource type takes `tags` (read from the SDK's own class signature)."""
    if not token.startswith("aws:"):
        return False
    import importlib

    import pulumi_aws

    _, module_path, cls_name = token.split(":")
    module = module_path.split("/")[0]
    mod = pulumi_aws if module == "index" else importlib.import_module(f"pulumi_aws.{module}")
    cls = getattr(mod, cls_name)
    return "tags" in inspect.signature(cls._internal_init).parameters
