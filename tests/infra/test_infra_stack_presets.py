"""The stack each preset (and a full cluster spec) produces under Pulumi mocks: the resources and the
properties that matter — ports, CIDRs, IMDS, encryption, instance types, Auto Scaling sizes, tags, outputs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import yaml

from infra_mocks import run_program
from infra_specs import FIVE_TAGS, FULL_SPEC_YAML, ingress_rules, ports_of, source_of, user_data
from infra import ports, stack
from infra.options import InfraOptions
from ops import catalog
from ops.spec import resolve

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
RAY_PORTS = {(r.from_port, r.to_port) for r in ports.cluster_rules(8000)}


def build(spec, options=None, stack_name="ci"):
    # No registry to ask here (the rehearsal checks images against its own): the reference check only.
    options = dataclasses.replace(options or InfraOptions(), image_check=False)
    return run_program(lambda: stack.build(spec, stack_name, options).outputs,
                       region=spec.aws.region, stack=stack_name)


@pytest.fixture(scope="module")
def run20():
    spec = resolve(preset="gpt-oss-20b").spec
    return spec, build(spec)


@pytest.fixture(scope="module")
def run120():
    spec = resolve(preset="gpt-oss-120b").spec
    return spec, build(spec)


@pytest.fixture(scope="module")
def run_full():
    spec = resolve(file_data=yaml.safe_load(FULL_SPEC_YAML), file_label="test").spec
    return spec, build(spec, InfraOptions(key_name="ops-key"))


def test_20b_network_spans_azs_with_public_private_nat_and_routes(run20):
    _, r = run20
    m = r.mocks
    vpc = m.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.42.0.0/16"
    subnets = m.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if "public" in s.name]
    private = [s for s in subnets if "private" in s.name]
    assert len(public) == len(private) >= 2
    assert len({s.inputs["availabilityZone"] for s in private}) == len(private)
    assert not any(s.inputs.get("mapPublicIpOnLaunch") for s in subnets)
    m.one("aws:ec2/internetGateway:InternetGateway")
    m.one("aws:ec2/natGateway:NatGateway")
    routes = {rt.name: rt.inputs["routes"] for rt in m.of_type("aws:ec2/routeTable:RouteTable")}
    pub_rt = next(v for k, v in routes.items() if "public" in k)
    priv_rt = next(v for k, v in routes.items() if "private" in k)
    assert pub_rt[0]["cidrBlock"] == "0.0.0.0/0" and pub_rt[0]["gatewayId"].endswith("igw-id")
    assert priv_rt[0]["natGatewayId"].endswith("nat-id")
    assert len(m.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")) == len(subnets)
    s3 = m.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert s3.inputs["serviceName"] == "com.amazonaws.us-east-1.s3" and s3.inputs["vpcEndpointType"] == "Gateway"


def test_20b_security_groups_keep_ray_inside_and_ssh_closed(run20):
    _, r = run20
    rules = ingress_rules(r.mocks)
    cluster_sg = r.mocks.one("aws:ec2/securityGroup:SecurityGroup", "cluster").name + "-id"
    ray = [x for x in rules if x.inputs["securityGroupId"] == cluster_sg]
    # Every pinned Ray port (GCS, dashboard, client, metrics, node/object manager, agents, workers) is named,
    # each open only to the cluster's own group.
    assert {ports_of(x) for x in ray} == RAY_PORTS
    assert all(x.inputs.get("referencedSecurityGroupId") == cluster_sg for x in ray)
    assert not any("cidrIpv4" in x.inputs or "cidrIpv6" in x.inputs for x in ray)
    # Default network: empty allow-list and SSM -> nothing at all opens from an address range, no port 22.
    assert not any(22 in range(ports_of(x)[0], ports_of(x)[1] + 1) for x in rules)
    assert not any("cidrIpv4" in x.inputs or "cidrIpv6" in x.inputs for x in rules)


def test_20b_compute_l4_worker_group_and_launch_templates(run20):
    spec, r = run20
    m = r.mocks
    worker_lt = m.one(LT, "worker")
    head_lt = m.one(LT, "head")
    assert worker_lt.inputs["instanceType"] == "g6.xlarge" == spec.instance_type.name
    assert catalog.INSTANCE_TYPES["g6.xlarge"].accelerator == "L4"
    assert head_lt.inputs["instanceType"] == catalog.HEAD_INSTANCE_TYPE
    for lt in (worker_lt, head_lt):
        assert lt.inputs["metadataOptions"]["httpTokens"] == "required"
        assert lt.inputs["imageId"] == "ami-0123456789abcdef0"
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3"
        kinds = {t["resourceType"]: t["tags"] for t in lt.inputs["tagSpecifications"]}
        assert {"instance", "volume"} <= set(kinds)
        assert all(set(FIVE_TAGS) <= set(t) for t in kinds.values())
    # The weights go on g6.xlarge's 250 GB NVMe: AMI 75 + image 30 = 105 (min) + 20 headroom -> 130.
    assert worker_lt.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 130
    asg = m.one(ASG)
    # replicas 1..2, one GPU each, one L4 per g6.xlarge: 1..2 workers.
    assert (asg.inputs["minSize"], asg.inputs["desiredCapacity"], asg.inputs["maxSize"]) == (1, 2, 2)
    assert asg.inputs["launchTemplate"]["id"] == worker_lt.id and "mixedInstancesPolicy" not in asg.inputs
    assert all(s.endswith("-id") and "private" in s for s in asg.inputs["vpcZoneIdentifiers"])
    tags = {t["key"]: t for t in asg.inputs["tags"]}
    assert all(tags[k]["propagateAtLaunch"] for k in FIVE_TAGS)
    head = m.one("aws:ec2/instance:Instance")
    assert head.inputs["metadataOptions"]["httpTokens"] == "required"
    assert head.inputs["rootBlockDevice"]["encrypted"] is True
    assert head.inputs["associatePublicIpAddress"] is False and "private" in head.inputs["subnetId"]
    assert head.inputs["iamInstanceProfile"].startswith("deploy-gpt-oss-node-profile-")
    ami_calls = [a for t, a in m.calls if t == "aws:ec2/getAmi:getAmi"]
    assert ami_calls and ami_calls[0]["owners"] == ["amazon"] and ami_calls[0]["mostRecent"] is True
    assert "Deep Learning" in ami_calls[0]["filters"][0]["values"][0]


def test_20b_storage_and_iam(run20):
    _, r = run20
    m = r.mocks
    bucket = m.one("aws:s3/bucket:Bucket")
    bid = bucket.name + "-id"
    assert m.one("aws:s3/bucketVersioning:BucketVersioning").inputs == {
        "bucket": bid, "versioningConfiguration": {"status": "Enabled"}}
    sse = m.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["bucket"] == bid
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    pab = m.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(pab[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))

    # No AWS-managed policy: AmazonSSMManagedInstanceCore would let any container read every SSM parameter.
    assert m.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []
    doc = json.loads(m.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert not any(a.startswith("ssm:GetParameter") for a in by_sid["SessionManager"]["Action"])
    assert "ssmmessages:OpenDataChannel" in by_sid["SessionManager"]["Action"]
    assert by_sid["OwnHealth"]["Resource"] == [
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/gpt-oss-ci-workers-*"]
    bucket_arn = f"arn:aws:s3:::{r.outputs['weights_bucket']}"
    assert by_sid["WeightsRead"]["Resource"] == [f"{bucket_arn}/*"]
    assert all(a.startswith("s3:Get") or a == "s3:ListBucket" for s in doc["Statement"] if s["Sid"].startswith("Weights")
               for a in s["Action"])
    assert by_sid["SecretsRead"]["Resource"] == [
        "arn:aws:ssm:us-east-1:123456789012:parameter/gpt-oss-ops/ci/api-key",
        "arn:aws:ssm:us-east-1:123456789012:parameter/gpt-oss-ops/ci/hub-token",
        "arn:aws:ssm:us-east-1:123456789012:parameter/gpt-oss-ops/ci/ray-token"]
    for s in doc["Statement"]:
        writes = [a for a in s["Action"] if not a.split(":")[1].startswith(("Get", "List", "Describe"))]
        if writes and "*" in s["Resource"] and s["Sid"] != "SessionManager":
            # PutMetricData has no resource-level permissions: "*" is allowed only fenced by namespace.
            assert writes == ["cloudwatch:PutMetricData"]
            assert s["Condition"]["StringEquals"]["cloudwatch:namespace"] == "gpt-oss-ops"


def test_20b_outputs(run20):
    spec, r = run20
    o = r.outputs
    head = r.mocks.one("aws:ec2/instance:Instance")
    assert o["endpoint_url"].startswith("http://10.42.") and o["endpoint_url"].endswith(":8000/v1")
    assert o["head_private_ip"] and o["head_public_ip"] == ""
    assert o["region"] == "us-east-1"
    assert o["worker_asg_name"].startswith("gpt-oss-ci-workers-")
    assert o["worker_counts"] == {"min": 1, "desired": 2, "max": 2}
    assert o["estimated_usd_per_hour"] == pytest.approx(catalog.HEAD_USD_PER_HOUR + 2 * 0.8048)
    dash = o["tunnels"]["ray_dashboard"]["ssm"]
    assert "AWS-StartPortForwardingSession" in dash and '"8265"' in dash and o["head_instance_id"] in dash
    assert '"3000"' in o["tunnels"]["grafana"]["ssm"]
    assert "SSH is closed" in o["tunnels"]["grafana"]["ssh"]
    assert head.inputs["tags"]["gpt-oss-ops:role"] == "head" and head.inputs["tags"]["gpt-oss-ops:stack"] == "ci"
    worker_lt = r.mocks.one(LT, "worker")
    instance_tags = next(t["tags"] for t in worker_lt.inputs["tagSpecifications"] if t["resourceType"] == "instance")
    assert instance_tags["gpt-oss-ops:role"] == "worker" and instance_tags["gpt-oss-ops:stack"] == "ci"
    asg_tags = {t["key"]: t for t in r.mocks.one(ASG).inputs["tags"]}
    assert asg_tags["gpt-oss-ops:role"]["value"] == "worker" and asg_tags["gpt-oss-ops:role"]["propagateAtLaunch"]


def test_outputs_are_what_the_cluster_target_reads(run20):
    """ops.remote.hosts maps `pulumi stack output --json` onto the hosts it deploys to."""
    from moto import mock_aws

    from ops.remote.hosts import from_outputs
    from ops.remote.settings import ClusterSettings

    _, r = run20
    as_json = json.loads(json.dumps(r.outputs))  # what `pulumi stack output --json` prints
    with mock_aws():  # the worker group lookup goes to (fake) AWS: no instances yet
        hosts = from_outputs(as_json, ClusterSettings(via="ssm"))
    assert hosts.head == hosts.head_private == r.outputs["head_private_ip"]
    assert hosts.endpoint == r.outputs["endpoint_url"] and hosts.region == "us-east-1"
    assert hosts.worker_asg_name == r.outputs["worker_asg_name"] and hosts.workers == []
    assert hosts.head_instance_id == r.outputs["head_instance_id"]
    access = r.outputs["node_access"]
    assert access["remote_dir"] == ClusterSettings(user=access["user"]).resolved_remote_dir
    assert access["encodings_dir"] == ClusterSettings().encodings_dir
    assert access["model_dir"] == "/opt/models/gpt-oss-20b" and access["python"] == "gpt-oss-python"


def test_120b_l40s_tp2_on_a_four_gpu_instance(run120):
    spec, r = run120
    it = spec.instance_type
    assert spec.tensor_parallel_size == 2 and it.accelerator == "L40S" and it.gpus >= 2
    m = r.mocks
    worker_lt = m.one(LT, "worker")
    assert worker_lt.inputs["instanceType"] == it.name == "g6e.12xlarge"
    asg = m.one(ASG)
    # replicas x gpus_per_replica / GPUs per instance, rounded up: 1x2/4 -> 1, 2x2/4 -> 1.
    want = (math.ceil(1 * 2 / it.gpus), math.ceil(2 * 2 / it.gpus), math.ceil(2 * 2 / it.gpus))
    assert (asg.inputs["minSize"], asg.inputs["desiredCapacity"], asg.inputs["maxSize"]) == want == (1, 1, 1)
    # 60.8 GiB of weights go on g6e.12xlarge's 3.8 TB NVMe: AMI 75 + image 30 + 20 headroom -> 130.
    assert worker_lt.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 130
    worker_ud = user_data(worker_lt)
    assert "--num-gpus=4" in worker_ud and "accelerator_type:L40S" in worker_ud
    assert r.outputs["estimated_usd_per_hour"] == pytest.approx(catalog.HEAD_USD_PER_HOUR + it.usd_per_hour)
    assert all(t["value"] == "gpt-oss-120b" for t in asg.inputs["tags"] if t["key"] == "model")


def test_full_cluster_spec_tls_alb_ssh_allowlist_spot(run_full):
    spec, r = run_full
    m = r.mocks
    provider = m.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-west-2"
    assert json.loads(provider.inputs["defaultTags"])["tags"]["ttl"] == "8h"

    sgs = {sg.name.rsplit("-", 1)[1]: sg.name + "-id" for sg in m.of_type("aws:ec2/securityGroup:SecurityGroup")}
    rules = ingress_rules(m)
    alb_rules = [x for x in rules if x.inputs["securityGroupId"] == sgs["alb"]]
    assert {(ports_of(x), source_of(x)) for x in alb_rules} == {((443, 443), "203.0.113.0/24"),
                                                                 ((443, 443), "2001:db8::/32")}
    head_rules = [x for x in rules if x.inputs["securityGroupId"] == sgs["head"]]
    endpoint = [x for x in head_rules if ports_of(x) == (8000, 8000)]
    assert [source_of(x) for x in endpoint] == [sgs["alb"]]  # the endpoint only from the load balancer
    ssh = [x for x in head_rules if ports_of(x) == (22, 22)]
    assert sorted(source_of(x) for x in ssh) == ["2001:db8::/32", "203.0.113.0/24"]
    cluster = [x for x in rules if x.inputs["securityGroupId"] == sgs["cluster"]]
    assert all(source_of(x) == sgs["cluster"] for x in cluster)

    alb = m.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["internal"] is False and alb.inputs["securityGroups"] == [sgs["alb"]]
    listener = m.one("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (443, "HTTPS")
    assert listener.inputs["certificateArn"] == spec.network.certificate_arn
    assert m.one("aws:lb/targetGroup:TargetGroup").inputs["port"] == 8000

    asg = m.one(ASG)
    assert (asg.inputs["minSize"], asg.inputs["desiredCapacity"], asg.inputs["maxSize"]) == (2, 4, 4)
    mip = asg.inputs["mixedInstancesPolicy"]
    assert mip["instancesDistribution"]["onDemandBaseCapacity"] == 2
    assert mip["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 0
    overrides = [o["instanceType"] for o in mip["launchTemplate"]["overrides"]]
    assert overrides[0] == "g6.xlarge" and all(catalog.INSTANCE_TYPES[t].gpus == 1 for t in overrides)
    assert all(catalog.INSTANCE_TYPES[t].accelerator == "L4" for t in overrides)
    assert "launchTemplate" not in asg.inputs and asg.inputs["capacityRebalance"] is True
    tags = {t["key"]: t["value"] for t in asg.inputs["tags"]}
    assert tags["owner"] == "ml-platform" and tags["ttl"] == "8h" and tags["team"] == "research"
    assert all(lt.inputs["keyName"] == "ops-key" for lt in m.of_type(LT))

    o = r.outputs
    assert o["endpoint_url"] == f"https://{alb.name}-{_index(m, alb)}.us-west-2.elb.amazonaws.com/v1"
    assert o["head_public_ip"].startswith("198.51.100.")
    assert o["tunnels"]["ray_dashboard"]["ssh"] == f"ssh -N -L 8265:127.0.0.1:8265 ubuntu@{o['head_public_ip']}"
    assert o["region"] == "us-west-2"


def _index(m, res) -> int:
    return m.resources.index(res) + 1


def test_private_ecr_image_gets_pull_rights_on_that_repository_only():
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/gpt-oss-serve:2.60.0"
    spec = resolve(preset="gpt-oss-20b").spec
    r = build(spec, InfraOptions(image=image))
    doc = json.loads(r.mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["EcrPull"]["Resource"] == ["arn:aws:ecr:us-east-1:123456789012:repository/gpt-oss-serve"]
    assert by_sid["EcrToken"]["Action"] == ["ecr:GetAuthorizationToken"]
    assert f"IMAGE='{image}'" in user_data(r.mocks.one(LT, "worker"))
    # Public registries need no ECR statement at all.
    plain = json.loads(build(spec).mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert not any(s["Sid"].startswith("Ecr") for s in plain["Statement"])


def test_endpoint_tunnel_for_a_private_endpoint(run20):
    _, r = run20
    ep = r.outputs["tunnels"]["endpoint"]
    assert ep["local_url"] == "http://localhost:8000" and '"8000"' in ep["ssm"]


def test_ssh_over_ssm_opens_22_inside_the_cluster_only():
    spec = resolve(preset="gpt-oss-20b").spec  # network.ssh: ssm (the default)
    r = build(spec, InfraOptions(key_name="ops-key"))
    rules = ingress_rules(r.mocks)
    ssh = [x for x in rules if ports_of(x) == (22, 22)]
    cluster_sg = r.mocks.one("aws:ec2/securityGroup:SecurityGroup", "cluster").id
    assert [(x.inputs["securityGroupId"], source_of(x)) for x in ssh] == [(cluster_sg, cluster_sg)]
    assert all(lt.inputs["keyName"] == "ops-key" for lt in r.mocks.of_type(LT))
    cmd = r.outputs["tunnels"]["ray_dashboard"]["ssh"]
    assert "AWS-StartSSHSession" in cmd and cmd.startswith("ssh -N -L 8265:127.0.0.1:8265 -o ")
    assert cmd.endswith(f"ubuntu@{r.outputs['head_instance_id']}")
    # Without a key pair nothing opens 22 at all.
    plain = build(spec)
    assert not [x for x in ingress_rules(plain.mocks) if ports_of(x) == (22, 22)]
