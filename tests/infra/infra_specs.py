"""Shared spec builders and readers for the infra tests."""

from __future__ import annotations

from typing import Any

from infra_mocks import Registered

FIVE_TAGS = ("project", "stack", "model", "owner", "ttl")

# A spec for the cluster target that turns every optional part on: TLS on a public ALB, SSH from the
# allow-list (IPv4 and IPv6), spot workers, another region, owner/ttl/extra tags.
FULL_SPEC_YAML = """\
preset: gpt-oss-20b
name: team-gpt
target: cluster
owner: ml-platform
ttl_hours: 8
tags: {team: research}
replicas: {min: 2, max: 4}
network:
  allow_cidrs: [203.0.113.0/24, "2001:db8::/32"]
  public_endpoint: true
  tls: true
  certificate_arn: arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789
  ssh: allowlist
aws:
  region: us-west-2
  spot: true
"""


def user_data(lt: Registered) -> str:
    from infra.userdata import decode

    return decode(lt.inputs["userData"])


def ingress_rules(mocks) -> list[Registered]:
    return mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def ports_of(rule: Registered) -> tuple[int, int]:
    return int(rule.inputs["fromPort"]), int(rule.inputs["toPort"])


def source_of(rule: Registered) -> Any:
    i = rule.inputs
    return i.get("cidrIpv4") or i.get("cidrIpv6") or i.get("referencedSecurityGroupId")
