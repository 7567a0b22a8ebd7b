"""Which AWS regions offer each GPU instance family the catalog knows.

A small, conservative table: a region is listed only where AWS's instance-type pages announced the family
(sources below). A stack aimed at a region that lacks the family would fail only after the VPC is built,
with an Auto Scaling error about unsupported instance types; checking here fails first, for free. AWS adds
regions over time: confirm with
`aws ec2 describe-instance-type-offerings --location-type region --filters Name=instance-type,Values=TYPE
--region REGION` and set `gpt-oss-ops:allowUnlistedRegion true` to go ahead.
"""

from __future__ import annotations

AS_OF = "2025-09-01"
SOURCES = (
    "https://aws.amazon.com/ec2/instance-types/g5/ (Regional availability)",
    "https://aws.amazon.com/ec2/instance-types/g6/ (Regional availability)",
    "https://aws.amazon.com/ec2/instance-types/g6e/ (Regional availability)",
    "https://aws.amazon.com/ec2/instance-types/p4/ (Regional availability)",
    "https://aws.amazon.com/ec2/instance-types/p5/ (Regional availability)",
    "https://aws.amazon.com/ec2/instance-types/m7i/ (Regional availability)",
    "AWS What's New announcements of each family's launch regions",
)

FAMILY_REGIONS: dict[str, frozenset[str]] = {
    "g5": frozenset({"us-east-1", "us-east-2", "us-west-2", "ca-central-1", "eu-central-1", "eu-west-1",
                     "eu-west-2", "ap-northeast-1", "ap-northeast-2", "ap-south-1"}),
    "g6": frozenset({"us-east-1", "us-east-2", "us-west-2", "eu-central-1", "eu-west-2", "ap-northeast-1",
                     "ap-south-1"}),
    "g6e": frozenset({"us-east-1", "us-east-2", "us-west-2", "ap-northeast-1"}),
    "p4d": frozenset({"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"}),
    "p4de": frozenset({"us-east-1", "us-west-2"}),
    "p5": frozenset({"us-east-1", "us-east-2", "us-west-2", "eu-north-1", "ap-northeast-1"}),
    "p5en": frozenset({"us-east-1", "us-east-2"}),
    # CPU clusters (the tiny model): general purpose, in every region this table lists for GPUs.
    "m7i": frozenset({"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-central-1",
                      "eu-west-1", "eu-west-2", "eu-north-1", "ap-northeast-1", "ap-northeast-2", "ap-south-1"}),
}


def family(instance_type: str) -> str:
    """`g6e.12xlarge` -> `g6e`."""
    return instance_type.split(".", 1)[0]


def regions_for(instance_type: str) -> frozenset[str]:
    return FAMILY_REGIONS.get(family(instance_type), frozenset())


def offered(instance_type: str, region: str) -> bool:
    return region in regions_for(instance_type)
