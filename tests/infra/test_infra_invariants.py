"""Safety invariants checked over EVERY resource the real program registers, for several configurations:
no internet ingress to Ray's ports or SSH, IMDSv2 everywhere, every volume and bucket encrypted, every
taggable resource carrying the five tags the orphan check searches by, no secret outside its SSM parameter."""

from __future__ import annotations

import ipaddress
import json

import pytest

from infra_mocks import STACK, run_main, taggable
from infra_specs import FIVE_TAGS, FULL_SPEC_YAML
from infra import ports

SECRET = "sk-test-0123456789-never-in-user-data"
# Ray's internal ports (the Serve HTTP port is the endpoint, which the allow-list may reach).
RAY_PORTS = [(r.from_port, r.to_port) for r in ports.cluster_rules(8000) if r.name != "serve-http"]

CONFIGS = {
    "preset-20b": ({"preset": "gpt-oss-20b"}, "us-east-1", {"model": "gpt-oss-20b", "owner": "unknown", "ttl": "none"}),
    "ssh-over-ssm": ({"preset": "gpt-oss-20b", "keyName": "ops-key"}, "us-east-1", {"model": "gpt-oss-20b"}),
    "model-120b": ({"model": "gpt-oss-120b", "owner": "ops@example.com", "ttl_hours": "24"}, "us-east-1",
                   {"model": "gpt-oss-120b", "owner": "ops@example.com", "ttl": "24h"}),
    "spec-file-full": ({"specFile": "SPEC_FILE", "keyName": "ops-key"}, "us-west-2",
                       {"model": "gpt-oss-20b", "owner": "ml-platform", "ttl": "8h"}),
    "world-endpoint": ({"preset": "gpt-oss-20b", "network": json.dumps(
        {"allow_cidrs": ["0.0.0.0/0", "::/0"], "allow_world": True, "public_endpoint": True})}, "us-east-1",
        {"model": "gpt-oss-20b"}),
    "tls-internal-spot-secrets": ({
        "preset": "gpt-oss-120b",
        "aws": json.dumps({"region": "us-east-2", "spot": True, "ami_id": "ami-0abcdef1234567890",
                           "weights_bucket": "team-weights"}),
        "network": json.dumps({"allow_cidrs": ["10.0.0.0/8"], "tls": True, "certificate_arn":
                               "arn:aws:acm:us-east-2:123456789012:certificate/11111111-2222-3333-4444-555555555555"}),
        "apiKey": SECRET, "hubToken": SECRET + "-hub"}, "us-east-2", {"model": "gpt-oss-120b"}),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def program(request, tmp_path_factory):
    config, region, tags = CONFIGS[request.param]
    config = dict(config)
    if config.get("specFile") == "SPEC_FILE":
        path = tmp_path_factory.mktemp("spec") / "spec.yaml"
        path.write_text(FULL_SPEC_YAML)
        config["specFile"] = str(path)
    secret_keys = tuple(k for k in ("apiKey", "hubToken") if k in config)
    run = run_main(config, region=region, secret_keys=secret_keys)
    return request.param, run, {"project": "gpt-oss-ops", "stack": STACK, **tags}


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _cidr_ingress(mocks):
    """(cidr, port range, resource) for every address-range ingress, standalone rules and inline ones."""
    for r in mocks.resources:
        if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            cidr = r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")
            if cidr:
                yield cidr, (int(r.inputs["fromPort"]), int(r.inputs["toPort"])), r
        elif r.type in ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/securityGroupRule:SecurityGroupRule"):
            blocks = r.inputs.get("ingress", []) if r.type.endswith("SecurityGroup") else (
                [r.inputs] if r.inputs.get("type") == "ingress" else [])
            for b in blocks:
                for cidr in b.get("cidrBlocks", []) + b.get("ipv6CidrBlocks", []):
                    yield cidr, (int(b["fromPort"]), int(b["toPort"])), r


def test_program_registers_a_cluster(program):
    name, run, _ = program
    types = {r.type for r in run.mocks.resources}
    assert {"aws:ec2/vpc:Vpc", "aws:ec2/instance:Instance", "aws:autoscaling/group:Group",
            "aws:ec2/launchTemplate:LaunchTemplate", "aws:iam/role:Role"} <= types, name


def test_everything_goes_through_the_spec_regions_provider(program):
    """No resource or lookup falls back to the default provider (whose region is not the spec's)."""
    name, run, _ = program
    region = run.mocks.one("pulumi:providers:aws").inputs["region"]
    assert region == run.mocks.region
    want = f"pulumi:providers:aws::aws-{region}::"
    for r in run.mocks.resources:
        if r.type.startswith("aws:"):
            assert want in r.provider, (name, r.type, r.name, r.provider)
    assert run.mocks.call_providers and all(want in p for p in run.mocks.call_providers), name


def test_no_internet_ingress_to_ray_ports_or_ssh(program):
    name, run, _ = program
    seen = list(_cidr_ingress(run.mocks))
    if name == "world-endpoint":  # the explicit override opens the endpoint, and only the endpoint
        assert {(c, rng) for c, rng, _ in seen} == {("0.0.0.0/0", (8000, 8000)), ("::/0", (8000, 8000))}
    for cidr, rng, r in seen:
        # Ray's ports are never open to any address range, only to the cluster's own group.
        assert not any(_overlaps(rng, p) for p in RAY_PORTS), (name, r.name, cidr, rng)
        if ipaddress.ip_network(cidr).prefixlen == 0:
            assert not _overlaps(rng, (22, 22)), (name, r.name)
            assert r.inputs["securityGroupId"].endswith(("sg-head-id", "sg-alb-id")), (name, r.name)


def test_imdsv2_required_everywhere(program):
    name, run, _ = program
    checked = 0
    for r in run.mocks.resources:
        if r.type in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
            assert r.inputs.get("metadataOptions", {}).get("httpTokens") == "required", (name, r.name)
            checked += 1
    assert checked >= 3


def test_every_volume_and_bucket_encrypted(program):
    name, run, _ = program
    m = run.mocks
    for r in m.resources:
        if r.type == "aws:ec2/launchTemplate:LaunchTemplate":
            assert r.inputs["blockDeviceMappings"], r.name
            assert all(b["ebs"]["encrypted"] == "true" for b in r.inputs["blockDeviceMappings"]), (name, r.name)
        elif r.type == "aws:ec2/instance:Instance":
            assert r.inputs["rootBlockDevice"]["encrypted"] is True, (name, r.name)
            assert all(b["encrypted"] is True for b in r.inputs.get("ebsBlockDevices", [])), (name, r.name)
        elif r.type == "aws:ebs/volume:Volume":
            assert r.inputs.get("encrypted") is True, (name, r.name)
        elif r.type in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            sse = [x for x in m.of_type("aws:s3/bucketServerSideEncryptionConfiguration:"
                                        "BucketServerSideEncryptionConfiguration") if x.inputs["bucket"] == r.id]
            pab = [x for x in m.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
                   if x.inputs["bucket"] == r.id]
            assert sse and pab, (name, r.name)


def test_every_taggable_resource_has_the_five_tags(program):
    name, run, want = program
    tagged = 0
    for r in run.mocks.resources:
        if not taggable(r.type):
            continue
        tags = r.inputs.get("tags")
        if r.type == "aws:autoscaling/group:Group":
            assert all(t["propagateAtLaunch"] for t in tags), (name, r.name)
            tags = {t["key"]: t["value"] for t in tags}
        assert tags and set(FIVE_TAGS) <= set(tags), (name, r.type, r.name, tags)
        assert {k: tags[k] for k in want} == want, (name, r.name)
        tagged += 1
        if r.type == "aws:ec2/launchTemplate:LaunchTemplate":
            specs = {s["resourceType"]: s["tags"] for s in r.inputs["tagSpecifications"]}
            assert {"instance", "volume"} <= set(specs), (name, r.name)
            assert all({k: t[k] for k in want} == want for t in specs.values()), (name, r.name)
    assert tagged >= 20
    provider = run.mocks.one("pulumi:providers:aws")
    assert set(FIVE_TAGS) <= set(json.loads(provider.inputs["defaultTags"])["tags"])


def test_no_secret_outside_its_parameter(program):
    name, run, _ = program
    for r in run.mocks.resources:
        if r.type == "aws:ssm/parameter:Parameter":
            continue
        blob = json.dumps(r.inputs, default=str)
        if r.type == "aws:ec2/launchTemplate:LaunchTemplate":
            from infra.userdata import decode

            blob += decode(r.inputs["userData"])
        assert SECRET not in blob, (name, r.name)
    if name == "tls-internal-spot-secrets":
        params = {p.inputs["name"]: p.inputs for p in run.mocks.of_type("aws:ssm/parameter:Parameter")}
        assert set(params) >= {f"/gpt-oss-ops/{STACK}/api-key", f"/gpt-oss-ops/{STACK}/hub-token"}
        assert all(p["type"] == "SecureString" for p in params.values())
        # The value reaches the parameter as a Pulumi secret (encrypted in state), not as plain text.
        value = params[f"/gpt-oss-ops/{STACK}/api-key"]["value"]
        assert isinstance(value, dict) and SECRET in value.values() and len(value) == 2
