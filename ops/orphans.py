"""The orphan check: after a teardown, is anything of the stack still running (and billing) on AWS?

`pulumi destroy` can stop half-way (a dependency violation, an expired session, a crash), and a GPU instance
left behind costs dollars per hour without anyone noticing. Every taggable resource the stack creates carries
the stack's tags (`DeploymentSpec.resource_tags`: project=gpt-oss-ops, stack=NAME), so the check searches by
them, for everything a stack bills for: EC2 instances that are not terminated, EBS volumes, load balancers
(elbv2), the NAT gateway and its Elastic IP, Auto Scaling groups (which would launch instances again), the
bucket and the log group (the Resource Groups Tagging API finds these two; it does not list Auto Scaling
groups, so they are asked for directly). Each instance is priced from the catalog's on-demand $/h. A GPU
instance left behind is an error (OpsError, exit code 1, listing ids, types and $/h); everything else is a
warning.

`ops terminate --verify` runs it after the teardown; `check()` is the entry point.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ops.errors import OpsError

RUNBOOK = "docs/anyscale.md#orphan-check"
# Instance states that still exist as far as money is concerned (stopped instances keep their EBS volumes and
# can be started again); `shutting-down` is on its way out and only warned about; `terminated` is gone.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
LEAVING_STATES = ["shutting-down"]
# NVIDIA GPU families (g*, gr*, p*): a type the catalog does not list is still recognised as a GPU instance.
_GPU_FAMILY = re.compile(r"^(g\d+[a-z]*|gr\d+[a-z]*|p\d+[a-z]*)\.")


@dataclass
class Leftover:
    """One resource of the stack that still exists."""

    kind: str  # instance | volume | load_balancer
    id: str
    type: str  # instance type, volume type and size, or load balancer type
    state: str
    gpu: bool = False
    usd_per_hour: float | None = None  # instances only; None when the catalog does not price the type
    name: str | None = None

    def describe(self) -> str:
        if self.kind == "instance":
            price = f"${self.usd_per_hour:.4g}/h" if self.usd_per_hour is not None else "unknown $/h"
            if self.state == "stopped":
                price += " when running; its volumes bill while stopped"
            return f"{self.id} ({self.type}, {self.state}, {price})"
        return f"{self.id} ({self.type}, {self.state})"


@dataclass
class OrphanReport:
    stack: str
    region: str
    instances: list[Leftover] = field(default_factory=list)
    volumes: list[Leftover] = field(default_factory=list)
    load_balancers: list[Leftover] = field(default_factory=list)
    leaving: list[Leftover] = field(default_factory=list)  # instances already shutting down
    nat_gateways: list[Leftover] = field(default_factory=list)
    elastic_ips: list[Leftover] = field(default_factory=list)
    auto_scaling_groups: list[Leftover] = field(default_factory=list)
    buckets: list[Leftover] = field(default_factory=list)
    log_groups: list[Leftover] = field(default_factory=list)

    @property
    def gpu_instances(self) -> list[Leftover]:
        return [i for i in self.instances if i.gpu]

    @property
    def usd_per_hour(self) -> float:
        """What the running instances left behind cost per hour (priced ones only; see `unpriced`)."""
        return sum(i.usd_per_hour or 0.0 for i in self.instances if i.state != "stopped")

    @property
    def unpriced(self) -> list[Leftover]:
        return [i for i in self.instances if i.usd_per_hour is None]

    def groups(self) -> list[list[Leftover]]:
        return [self.instances, self.volumes, self.load_balancers, self.leaving, self.nat_gateways,
                self.elastic_ips, self.auto_scaling_groups, self.buckets, self.log_groups]

    @property
    def clean(self) -> bool:
        return not any(self.groups())

    def warnings(self) -> list[str]:
        out = []
        cpu = [i for i in self.instances if not i.gpu]
        if cpu:
            out.append(f"{len(cpu)} instance(s) of stack {self.stack!r} still exist: "
                       + ", ".join(i.describe() for i in cpu))
        if self.leaving:
            out.append(f"{len(self.leaving)} instance(s) are shutting down: "
                       + ", ".join(i.describe() for i in self.leaving) + " (run the check again in a minute)")
        if self.volumes:
            out.append(f"{len(self.volumes)} EBS volume(s) tagged stack={self.stack} remain (billed per GB-month): "
                       + ", ".join(v.describe() for v in self.volumes))
        if self.load_balancers:
            out.append(f"{len(self.load_balancers)} load balancer(s) tagged stack={self.stack} remain (billed per "
                       "hour): " + ", ".join(lb.describe() for lb in self.load_balancers))
        for items, what in ((self.auto_scaling_groups, "Auto Scaling group(s) (they launch instances again)"),
                            (self.nat_gateways, "NAT gateway(s) (billed per hour and per GB)"),
                            (self.elastic_ips, "Elastic IP(s) (billed per hour)"),
                            (self.buckets, "bucket(s) (billed per GB-month; emptied and deleted by hand)"),
                            (self.log_groups, "log group(s) (billed per GB stored)")):
            if items:
                out.append(f"{len(items)} {what} tagged stack={self.stack} remain: "
                           + ", ".join(i.describe() for i in items))
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(clean=self.clean, usd_per_hour=round(self.usd_per_hour, 4), warnings=self.warnings(),
                    gpu_instances=[i.id for i in self.gpu_instances])
        return data


def stack_tags(stack: str) -> dict[str, str]:
    """The two tags that identify a stack's resources, as the spec writes them on every resource."""
    from ops.spec import DeploymentSpec

    tags = DeploymentSpec().resource_tags(stack)
    return {"project": tags["project"], "stack": tags["stack"]}


def price(instance_type: str) -> tuple[bool, float | None]:
    """(is it a GPU instance, on-demand $/h from the catalog or None when the catalog does not list it)."""
    from ops import catalog

    known = catalog.INSTANCE_TYPES.get(instance_type)
    if known is not None:
        return known.gpus > 0, known.usd_per_hour
    if instance_type == catalog.HEAD_INSTANCE_TYPE:
        return False, catalog.HEAD_USD_PER_HOUR
    return bool(_GPU_FAMILY.match(instance_type)), None


def find(stack: str, region: str, *, endpoint_url: str | None = None, session: Any = None) -> OrphanReport:
    """List what is left of the stack in the region. Read-only: describes, never modifies."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    tags = stack_tags(stack)
    report = OrphanReport(stack=stack, region=region)
    with _aws_errors(region):
        ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint_url)
        tag_filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=tag_filters + [{"Name": "instance-state-name", "Values": LIVE_STATES + LEAVING_STATES}])
        for page in pages:
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    gpu, usd = price(inst["InstanceType"])
                    left = Leftover("instance", inst["InstanceId"], inst["InstanceType"], inst["State"]["Name"],
                                    gpu=gpu, usd_per_hour=usd, name=_name(inst.get("Tags")))
                    (report.leaving if left.state in LEAVING_STATES else report.instances).append(left)
        for page in ec2.get_paginator("describe_volumes").paginate(Filters=tag_filters):
            for vol in page.get("Volumes", []):
                report.volumes.append(Leftover("volume", vol["VolumeId"], f"{vol['VolumeType']} {vol['Size']} GiB",
                                               vol["State"], name=_name(vol.get("Tags"))))

        elb = session.client("elbv2", region_name=region, endpoint_url=endpoint_url)
        lbs = [lb for page in elb.get_paginator("describe_load_balancers").paginate()
               for lb in page.get("LoadBalancers", [])]
        for i in range(0, len(lbs), 20):  # DescribeTags takes at most 20 ARNs
            batch = {lb["LoadBalancerArn"]: lb for lb in lbs[i:i + 20]}
            for desc in elb.describe_tags(ResourceArns=list(batch)).get("TagDescriptions", []):
                have = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
                if all(have.get(k) == v for k, v in tags.items()):
                    lb = batch[desc["ResourceArn"]]
                    report.load_balancers.append(Leftover(
                        "load_balancer", lb["LoadBalancerName"], lb.get("Type", "application"),
                        lb.get("State", {}).get("Code", "unknown"), name=lb["LoadBalancerArn"]))
        _networking(session.client("ec2", region_name=region, endpoint_url=endpoint_url), tag_filters, report)
        _scaling_groups(session.client("autoscaling", region_name=region, endpoint_url=endpoint_url), tags, report)
        _tagged(session.client("resourcegroupstaggingapi", region_name=region, endpoint_url=endpoint_url), tags,
                report)
    for group in report.groups():
        group.sort(key=lambda r: r.id)
    return report


def _networking(ec2: Any, tag_filters: list[dict[str, Any]], report: OrphanReport) -> None:
    live = {"pending", "available", "deleting"}
    want = {f["Name"][4:]: f["Values"][0] for f in tag_filters}
    for page in ec2.get_paginator("describe_nat_gateways").paginate(Filter=tag_filters):
        for nat in page.get("NatGateways", []):
            have = {t["Key"]: t["Value"] for t in nat.get("Tags", [])}
            # Checked here too: not every implementation of the API applies tag filters to NAT gateways.
            if nat.get("State") in live and all(have.get(k) == v for k, v in want.items()):
                report.nat_gateways.append(Leftover("nat_gateway", nat["NatGatewayId"], "nat", nat["State"],
                                                    name=_name(nat.get("Tags"))))
    for addr in ec2.describe_addresses(Filters=tag_filters).get("Addresses", []):
        report.elastic_ips.append(Leftover("elastic_ip", addr.get("AllocationId") or addr["PublicIp"], "eip",
                                           "associated" if addr.get("AssociationId") else "unassociated",
                                           name=addr.get("PublicIp")))


def _scaling_groups(asg: Any, tags: dict[str, str], report: OrphanReport) -> None:
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    for page in asg.get_paginator("describe_auto_scaling_groups").paginate(Filters=filters):
        for g in page.get("AutoScalingGroups", []):
            report.auto_scaling_groups.append(Leftover(
                "auto_scaling_group", g["AutoScalingGroupName"],
                f"{g.get('DesiredCapacity', 0)} desired / {len(g.get('Instances', []))} running",
                g.get("Status") or "active"))


def _tagged(tagging: Any, tags: dict[str, str], report: OrphanReport) -> None:
    """Buckets and log groups, by tag, through the Resource Groups Tagging API."""
    filters = [{"Key": k, "Values": [v]} for k, v in tags.items()]
    for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters,
                                                                ResourceTypeFilters=["s3", "logs"]):
        for r in page.get("ResourceTagMappingList", []):
            arn = r["ResourceARN"]
            if arn.startswith("arn:aws") and ":s3:::" in arn:
                report.buckets.append(Leftover("bucket", arn.split(":::", 1)[1], "s3", "exists"))
            elif ":logs:" in arn:
                report.log_groups.append(Leftover("log_group", arn.split(":log-group:", 1)[1].removesuffix(":*"),
                                                  "logs", "exists"))


def check(stack: str, region: str, *, endpoint_url: str | None = None, session: Any = None,
          quiet: bool = False) -> OrphanReport:
    """find() and judge: raise OpsError (code 1) if a GPU instance of the stack remains, print warnings for
    everything else that remains, and return the report."""
    report = find(stack, region, endpoint_url=endpoint_url, session=session)
    gpus = report.gpu_instances
    if gpus:
        total = sum(i.usd_per_hour or 0.0 for i in gpus if i.state != "stopped")
        unknown = " (plus instances the catalog does not price)" if any(i.usd_per_hour is None for i in gpus) else ""
        ids = " ".join(i.id for i in gpus)
        others = report.warnings()
        raise OpsError(
            f"{len(gpus)} GPU instance(s) of stack {stack!r} are still there in {region}: "
            + ", ".join(i.describe() for i in gpus) + f" — ${total:.4g}/h{unknown}."
            + ("" if not others else " Also: " + " ".join(others)),
            fix=(f"run the teardown again (`ops terminate --target cluster`), or terminate them directly: "
                 f"aws ec2 terminate-instances --region {region} --instance-ids {ids}"),
            runbook=RUNBOOK, code=1)
    if not quiet:
        from ops.console import err

        for line in report.warnings():
            err.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
        if report.clean:
            err.print(f"[green]clean[/] nothing tagged stack={stack} is left in {region}", soft_wrap=True)
    return report


def _name(tags: list[dict[str, str]] | None) -> str | None:
    return next((t["Value"] for t in tags or [] if t.get("Key") == "Name"), None)


class _aws_errors:
    """Credentials and permission failures become one actionable error instead of a botocore traceback."""

    def __init__(self, region: str):
        self.region = region

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, OpsError):
            return False
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            raise OpsError("the orphan check found no AWS credentials.",
                           fix="configure them (aws configure / AWS_PROFILE / SSO login) and run the check again.",
                           runbook=RUNBOOK, code=3) from exc
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            raise OpsError(f"AWS refused the orphan check in {self.region}: {code}: {exc}",
                           fix="allow ec2:DescribeInstances, ec2:DescribeVolumes, ec2:DescribeNatGateways, "
                               "ec2:DescribeAddresses, autoscaling:DescribeAutoScalingGroups, "
                               "elasticloadbalancing:DescribeLoadBalancers, elasticloadbalancing:DescribeTags and "
                               "tag:GetResources for these credentials, then run the check again.", runbook=RUNBOOK,
                           code=3) from exc
        if isinstance(exc, BotoCoreError):
            raise OpsError(f"the orphan check could not reach AWS in {self.region}: {exc}",
                           fix="check the network and the region name, then run the check again.",
                           runbook=RUNBOOK, code=3) from exc
        return False
