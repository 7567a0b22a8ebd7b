"""The network: a VPC over two or three AZs, public and private subnets, an internet gateway, one NAT
gateway, route tables, and a gateway endpoint for S3.

Why a NAT gateway and not only VPC endpoints: the nodes pull the serving image from a public registry,
download weights from the Hugging Face Hub or ModelScope and the tiktoken encodings from OpenAI's public
blob store; none of these has a VPC endpoint. The S3 gateway endpoint is free and keeps weight and
encoding traffic from the stack's bucket off the NAT (no per-GB NAT charge). SSM, ECR and CloudWatch go
through the NAT too; interface endpoints for them cost about $0.01/hour each per AZ, which is worth adding
only for clusters with no internet egress at all. One NAT gateway (not one per AZ) keeps the hourly cost
down; if its AZ fails, private nodes lose egress but not their in-VPC traffic.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class NetworkArgs:
    cidr: str
    region: str
    tags: dict[str, str]
    max_azs: int = 3


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        def named(suffix: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{suffix}"}

        zones = aws.get_availability_zones(state="available", opts=pulumi.InvokeOptions(parent=self))
        names = list(zones.names or [])[: args.max_azs]
        if len(names) < 2:
            raise ValueError(f"aws.region {args.region} reports {len(names)} available AZ(s); the stack needs "
                             "two. Fix: pick a region with at least two availability zones.")
        blocks = list(ipaddress.ip_network(args.cidr).subnets(new_prefix=ipaddress.ip_network(args.cidr).prefixlen + 4))

        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True,
                               enable_dns_support=True, tags=named("vpc"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=named("igw"), opts=child)

        self.public_subnets, self.private_subnets = [], []
        for i, az in enumerate(names):
            self.public_subnets.append(aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=str(blocks[i]), availability_zone=az,
                map_public_ip_on_launch=False, tags=named(f"public-{az}"), opts=child))
            self.private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=str(blocks[8 + i]), availability_zone=az,
                map_public_ip_on_launch=False, tags=named(f"private-{az}"), opts=child))

        eip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags=named("nat"), opts=child)
        nat = aws.ec2.NatGateway(f"{name}-nat", allocation_id=eip.id, subnet_id=self.public_subnets[0].id,
                                 tags=named("nat"), opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=named("public"), opts=child)
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags=named("private"), opts=child)
        for i, (pub, priv) in enumerate(zip(self.public_subnets, self.private_subnets)):
            aws.ec2.RouteTableAssociation(f"{name}-public-rta-{i}", subnet_id=pub.id, route_table_id=public_rt.id,
                                          opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-rta-{i}", subnet_id=priv.id,
                                          route_table_id=private_rt.id, opts=child)

        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[public_rt.id, private_rt.id], tags=named("s3"),
            opts=child)

        self.availability_zones = names
        self.register_outputs({
            "vpc_id": self.vpc.id,
            "public_subnet_ids": [s.id for s in self.public_subnets],
            "private_subnet_ids": [s.id for s in self.private_subnets],
            "availability_zones": names,
        })
