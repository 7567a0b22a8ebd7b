"""Security groups.

- `cluster`: every Ray node. Ray's ports (pinned in infra/ports.py) are open only to members of the same
  group (self-referencing rules), never to an address range.
- `head`: the endpoint (Serve's HTTP port) from the spec's allow-list, or from the load balancer's group
  when TLS is terminated on an ALB; SSH from the allow-list only when network.ssh is "allowlist".
- `alb` (TLS only): HTTPS from the allow-list.
With network.ssh "ssm" (the default) no group opens port 22 to any address: operators tunnel through SSM
Session Manager. Only when a key pair is configured (SSH over SSM, the cluster target's `via=ssm`) does the
cluster group open 22 to its own members, so the head can be the jump host to the workers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import ports

HTTPS = 443
SSH = 22


@dataclass
class SecurityArgs:
    vpc_id: pulumi.Input[str]
    tags: dict[str, str]
    serve_port: int
    allow_cidrs: list[str]
    ssh_allowlist: bool
    alb: bool
    ssh_within_cluster: bool = False


def _cidr_args(cidr: str) -> dict[str, str]:
    return {"cidr_ipv6": cidr} if ipaddress.ip_network(cidr).version == 6 else {"cidr_ipv4": cidr}


class Security(pulumi.ComponentResource):
    cluster: aws.ec2.SecurityGroup
    head: aws.ec2.SecurityGroup
    alb: aws.ec2.SecurityGroup | None

    def __init__(self, name: str, args: SecurityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Security", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        def group(suffix: str, description: str) -> aws.ec2.SecurityGroup:
            return aws.ec2.SecurityGroup(f"{name}-{suffix}", vpc_id=args.vpc_id, description=description,
                                         tags={**tags, "Name": f"{name}-{suffix}"}, opts=child)

        def ingress(rule: str, sg: aws.ec2.SecurityGroup, port_from: int, port_to: int, description: str,
                    **source) -> None:
            aws.vpc.SecurityGroupIngressRule(f"{name}-{rule}", security_group_id=sg.id, ip_protocol="tcp",
                                             from_port=port_from, to_port=port_to, description=description,
                                             tags=tags, opts=child, **source)

        def egress_all(sg: aws.ec2.SecurityGroup, suffix: str) -> None:
            aws.vpc.SecurityGroupEgressRule(f"{name}-{suffix}-egress", security_group_id=sg.id, ip_protocol="-1",
                                            cidr_ipv4="0.0.0.0/0", description="outbound (NAT, S3, SSM)",
                                            tags=tags, opts=child)

        self.cluster = group("cluster", "Ray nodes: Ray ports open to this group only")
        rules = ports.cluster_rules(args.serve_port)
        if args.ssh_allowlist or args.ssh_within_cluster:
            rules.append(ports.PortRule("ssh", SSH, SSH))  # the head as jump host to the workers
        for r in rules:
            ingress(f"cluster-{r.name}", self.cluster, r.from_port, r.to_port, f"ray {r.name} within the cluster",
                    referenced_security_group_id=self.cluster.id)
        egress_all(self.cluster, "cluster")

        self.head = group("head", "Ray head: the endpoint from the allow-list")
        self.alb = None
        if args.alb:
            self.alb = group("alb", "Load balancer: HTTPS from the allow-list")
            for i, cidr in enumerate(args.allow_cidrs):
                ingress(f"alb-https-{i}", self.alb, HTTPS, HTTPS, f"https from {cidr}", **_cidr_args(cidr))
            aws.vpc.SecurityGroupEgressRule(f"{name}-alb-to-head", security_group_id=self.alb.id, ip_protocol="tcp",
                                            from_port=args.serve_port, to_port=args.serve_port,
                                            referenced_security_group_id=self.head.id,
                                            description="to the Serve endpoint", tags=tags, opts=child)
            ingress("head-endpoint-alb", self.head, args.serve_port, args.serve_port, "endpoint from the ALB",
                    referenced_security_group_id=self.alb.id)
        else:
            for i, cidr in enumerate(args.allow_cidrs):
                ingress(f"head-endpoint-{i}", self.head, args.serve_port, args.serve_port,
                        f"endpoint from {cidr}", **_cidr_args(cidr))
        if args.ssh_allowlist:
            for i, cidr in enumerate(args.allow_cidrs):
                ingress(f"head-ssh-{i}", self.head, SSH, SSH, f"ssh from {cidr}", **_cidr_args(cidr))

        self.register_outputs({"cluster_sg_id": self.cluster.id, "head_sg_id": self.head.id,
                               "alb_sg_id": self.alb.id if self.alb else None})
