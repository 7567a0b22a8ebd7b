"""Specs that cannot work are refused by the real program before any resource is registered, with a
message naming the field and the fix."""

from __future__ import annotations

import json

import pulumi
import pytest

from infra_mocks import AwsMocks, run_main

CERT_EU = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"

CASES = {
    # region without the GPU family (infra/regions.py)
    "region-without-family": ({"preset": "gpt-oss-20b", "aws": json.dumps({"region": "sa-east-1"})},
                              "aws.region", "allowUnlistedRegion"),
    # TP larger than the instance's GPU count (explicit instance; refused by ops.spec)
    "tp-above-instance-gpus": ({"preset": "gpt-oss-120b", "aws": json.dumps({"instance_type": "g6e.xlarge"})},
                               "aws.instance_type", "g6e.12xlarge"),
    # TP larger than any catalog instance of that GPU (infra check)
    "tp-above-any-instance": ({"preset": "gpt-oss-20b", "tensor_parallel_size": "16"},
                              "tensor_parallel_size", "at most 8"),
    # a GPU instance type the catalog does not have
    "instance-not-in-catalog": ({"preset": "gpt-oss-20b", "aws": json.dumps({"instance_type": "g4dn.xlarge"})},
                                "aws.instance_type", "g6.xlarge"),
    # disk smaller than the weights + AMI + image
    "root-volume-too-small": ({"preset": "gpt-oss-120b", "aws": json.dumps({"root_volume_gib": 100})},
                              "aws.root_volume_gib", ">= 105"),
    # empty allow-list with a public endpoint (refused by ops.spec)
    "public-endpoint-empty-allowlist": ({"preset": "gpt-oss-20b", "network": json.dumps({"public_endpoint": True})},
                                        "network.allow_cidrs", "203.0.113.0/24"),
    # the world without the explicit override
    "world-cidr-without-override": ({"preset": "gpt-oss-20b", "network": json.dumps({"allow_cidrs": ["0.0.0.0/0"]})},
                                    "network.allow_cidrs", "allow_world"),
    "ssh-allowlist-empty": ({"preset": "gpt-oss-20b", "keyName": "k", "network": json.dumps({"ssh": "allowlist"})},
                            "network.ssh", "allow_cidrs"),
    "ssh-allowlist-world": ({"preset": "gpt-oss-20b", "keyName": "k", "network": json.dumps(
        {"ssh": "allowlist", "allow_cidrs": ["0.0.0.0/0"], "allow_world": True})}, "network.ssh", "network.ssh: ssm"),
    "ssh-allowlist-no-key": ({"preset": "gpt-oss-20b", "network": json.dumps(
        {"ssh": "allowlist", "allow_cidrs": ["203.0.113.0/24"]})}, "network.ssh", "keyName"),
    "key-pair-with-ssh-none": ({"preset": "gpt-oss-20b", "keyName": "k", "network": json.dumps({"ssh": "none"})},
                               "keyName", "network.ssh: ssm"),
    "public-endpoint-no-auth": ({"preset": "gpt-oss-20b", "auth": json.dumps({"enabled": False}), "network": json.dumps(
        {"public_endpoint": True, "allow_cidrs": ["203.0.113.0/24"]})}, "auth.enabled", "auth.enabled: true"),
    "certificate-other-region": ({"preset": "gpt-oss-20b", "network": json.dumps(
        {"tls": True, "certificate_arn": CERT_EU, "allow_cidrs": ["10.0.0.0/8"]})}, "network.certificate_arn",
        "us-east-1"),
    "bad-ami-id": ({"preset": "gpt-oss-20b", "aws": json.dumps({"ami_id": "ubuntu-22.04"})}, "aws.ami_id", "ami-"),
    "cpu-default-preset": ({}, "target", "gpt-oss-20b"),
    "local-target": ({"preset": "gpt-oss-20b", "target": "local"}, "target", "target: cluster"),
    "typo-config-key": ({"preset": "gpt-oss-20b", "modle": "gpt-oss-120b"}, "gpt-oss-ops:modle", "'model'"),
    "unknown-model": ({"model": "gpt-oss-200b"}, "model", "gpt-oss-20b"),
    "bad-bool-setting": ({"preset": "gpt-oss-20b", "allowUnlistedRegion": "maybe"}, "allowUnlistedRegion", "true"),
    "bad-vpc-cidr": ({"preset": "gpt-oss-20b", "vpcCidr": "10.0.0.0/8"}, "vpcCidr", "10.42.0.0/16"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_resource(case):
    config, field, fix_part = CASES[case]
    mocks = AwsMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_main(config, mocks=mocks)
    message = str(err.value)
    assert mocks.resources == [], [r.name for r in mocks.resources]
    assert mocks.calls == []  # not even an AMI or AZ lookup
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"- {field}:")), None)
    assert line is not None, message
    assert "Fix:" in line and fix_part in line.split("Fix:", 1)[1], line


def test_every_problem_is_listed_at_once():
    mocks = AwsMocks()
    config = {"preset": "gpt-oss-120b", "aws": json.dumps({"region": "sa-east-1", "root_volume_gib": 50}),
              "network": json.dumps({"ssh": "allowlist"})}
    with pytest.raises(pulumi.RunError) as err:
        run_main(config, mocks=mocks)
    fields = [ln.strip()[2:].split(":")[0] for ln in str(err.value).splitlines() if ln.strip().startswith("- ")]
    assert {"aws.region", "aws.root_volume_gib", "network.ssh"} <= set(fields)
    assert mocks.resources == []


def test_unlisted_region_goes_ahead_when_allowed():
    run = run_main({"preset": "gpt-oss-20b", "allowUnlistedRegion": "true", "aws": json.dumps({"region": "sa-east-1"})},
                   region="sa-east-1")
    assert run.mocks.one("pulumi:providers:aws").inputs["region"] == "sa-east-1"
    assert run.mocks.of_type("aws:autoscaling/group:Group")
