"""Which machines make up the stack: resolved from the stack's outputs, never typed in by hand.

Three sources, in order: an outputs JSON file (what `pulumi stack output --json` prints, or a plain
`{"head": ..., "workers": [...]}` list), the Pulumi CLI for a named stack, and — when neither is at hand —
the EC2 instances tagged with the stack name (boto3). Worker addresses come from the outputs when listed,
else from the worker Auto Scaling group.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.errors import OpsError
from ops.remote.settings import ENV, ClusterSettings

RUNBOOK = "docs/cluster.md"
# Tags the infra program puts on every instance (looked up when no outputs are available).
STACK_TAG = "gpt-oss-ops:stack"
ROLE_TAG = "gpt-oss-ops:role"


@dataclass(frozen=True)
class ClusterHosts:
    """Addresses to SSH to (`head`, `workers`) and the addresses Ray nodes use among themselves."""

    head: str  # address operators SSH to
    head_private: str  # address the workers join (GCS) and Ray binds on the head
    workers: list[str] = field(default_factory=list)
    endpoint: str | None = None  # OpenAI-compatible base URL when the stack exports one
    region: str | None = None
    worker_asg_name: str | None = None
    head_instance_id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def all(self) -> list[str]:
        return [self.head, *self.workers]


def resolve(settings: ClusterSettings) -> ClusterHosts:
    """The stack's hosts, from the first source that has them."""
    return from_outputs(outputs(settings), settings)


def node_access(out: dict[str, Any]) -> dict[str, Any] | None:
    """How the stack's nodes are reached and what they run (infra/stack.py exports it), when it does."""
    value = _value(out, "node_access")
    return value if isinstance(value, dict) else None


def outputs(settings: ClusterSettings) -> dict[str, Any]:
    """The stack's outputs: the outputs file, `pulumi stack output`, or the EC2 tags (in that order)."""
    if settings.outputs_file:
        path = Path(settings.outputs_file).expanduser()
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise OpsError(f"cannot read the stack outputs file {path}: {e.strerror}.",
                           fix=f"write it with `pulumi stack output --json --stack NAME > {path}`.", code=2) from e
        except ValueError as e:
            raise OpsError(f"{path} is not JSON: {e}.",
                           fix="write it with `pulumi stack output --json --stack NAME`.", code=2) from e
        if not isinstance(data, dict):
            raise OpsError(f"{path} holds no JSON object.", fix="write the stack outputs as a JSON object.", code=2)
        return data
    if settings.stack and shutil.which("pulumi"):
        argv = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", settings.stack]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise OpsError(f"`pulumi stack output` failed for stack {settings.stack!r}: "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}.",
                           fix="check the stack name (`pulumi stack ls`) and that you are logged in to its backend.",
                           code=2)
        return json.loads(proc.stdout or "{}")
    if settings.stack:
        return _outputs_from_tags(settings)
    raise OpsError("no stack to deploy to: the cluster target needs the stack's hosts.",
                   fix=f"pass --stack NAME (or set {ENV['stack']}), or --outputs FILE (or {ENV['outputs_file']}) "
                       "with the output of `pulumi stack output --json`.", runbook=RUNBOOK, code=2)


def _outputs_from_tags(settings: ClusterSettings) -> dict[str, Any]:
    """Without the Pulumi CLI: the running instances tagged with the stack name."""
    import boto3

    region = settings.region or "us-east-1"
    ec2 = boto3.client("ec2", region_name=region)
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{STACK_TAG}", "Values": [settings.stack]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])
    out: dict[str, Any] = {"region": region, "workers": []}
    for page in pages:
        for res in page["Reservations"]:
            for inst in res["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                addr = inst.get("PrivateIpAddress")
                if tags.get(ROLE_TAG) == "head":
                    out["head_private_ip"] = addr
                    out["head_public_ip"] = inst.get("PublicIpAddress")
                    out["head_instance_id"] = inst["InstanceId"]
                elif addr:
                    out["workers"].append(addr)
    if "head_private_ip" not in out:
        raise OpsError(f"no running head instance tagged {STACK_TAG}={settings.stack} in {region}.",
                       fix="check the stack name and region, or run `pulumi up` first.", runbook=RUNBOOK, code=2)
    return out


def _asg_workers(asg_name: str, region: str) -> list[str]:
    import boto3

    asg = boto3.client("autoscaling", region_name=region)
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    ids = [i["InstanceId"] for g in groups for i in g.get("Instances", [])
           if i.get("LifecycleState") == "InService"]
    if not ids:
        return []
    ec2 = boto3.client("ec2", region_name=region)
    found = []
    for res in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
        found += [i["PrivateIpAddress"] for i in res["Instances"] if i.get("PrivateIpAddress")]
    return sorted(found)


def _value(outputs: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = outputs.get(k)
        if isinstance(v, dict) and "value" in v:  # `pulumi stack output --json` of secrets / older CLIs
            v = v["value"]
        if v not in (None, "", []):
            return v
    return None


def from_outputs(outputs: dict[str, Any], settings: ClusterSettings) -> ClusterHosts:
    """Map the stack's exported keys (or the plain host-list form) onto hosts."""
    head_public = _value(outputs, "head_public_ip")
    head_private = _value(outputs, "head_private_ip")
    head_plain = _value(outputs, "head")
    if settings.via == "ssh":
        head = head_plain or head_public or head_private
    else:  # bastion and SSM reach the private address
        head = head_plain or head_private or head_public
    if not head:
        raise OpsError("the stack outputs name no head node (head_public_ip / head_private_ip / head).",
                       fix="run `pulumi up` for the stack, or pass the outputs of the right stack.",
                       runbook=RUNBOOK, code=2)
    region = settings.region or _value(outputs, "region")
    workers = _value(outputs, "workers", "worker_private_ips") or []
    asg = _value(outputs, "worker_asg_name")
    if not workers and asg and region:
        workers = _asg_workers(asg, region)
    if isinstance(workers, str):
        workers = [w for w in workers.replace(",", " ").split() if w]
    return ClusterHosts(
        head=str(head), head_private=str(head_private or head), workers=[str(w) for w in workers],
        endpoint=_value(outputs, "endpoint", "endpoint_url"), region=region, worker_asg_name=asg,
        head_instance_id=_value(outputs, "head_instance_id"), outputs=outputs,
    )
