"""The orphan check against moto's EC2 / EBS / ELBv2 server on loopback, with resources left behind on purpose.

moto runs as a real HTTP server (ThreadedMotoServer on 127.0.0.1, a free port); boto3 talks to it through
`endpoint_url` with fake credentials, exactly as it would talk to AWS. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest

from ops import catalog, orphans
from ops.errors import OpsError
from ops.spec import DeploymentSpec

REGION = "us-east-1"
STACK = "gpt-oss-prod"


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch):
    """A clean moto account per test, and a boto3 session with fake credentials pointed at it."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).read()
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    return session, moto_url


def _ec2(aws):
    session, url = aws
    return session.client("ec2", endpoint_url=url)


def _tags(stack: str, **extra: str) -> list[dict[str, str]]:
    tags = DeploymentSpec(owner="ops-team").resource_tags(stack)
    tags.update(extra)
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _launch(aws, instance_type: str, tags: list[dict[str, str]] | None, count: int = 1) -> list[str]:
    ec2 = _ec2(aws)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    kwargs = {}
    if tags is not None:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    res = ec2.run_instances(ImageId=ami, InstanceType=instance_type, MinCount=count, MaxCount=count, **kwargs)
    return [i["InstanceId"] for i in res["Instances"]]


def test_gpu_instances_left_behind_fail_with_ids_and_prices(aws):
    session, url = aws
    gpu = _launch(aws, "g6.xlarge", _tags(STACK, Name="gpt-oss-worker"), count=2)
    head = _launch(aws, catalog.HEAD_INSTANCE_TYPE, _tags(STACK, Name="gpt-oss-head"))

    with pytest.raises(OpsError) as e:
        orphans.check(STACK, REGION, endpoint_url=url, session=session)
    err = e.value
    assert err.code == 1
    for iid in gpu:
        assert iid in err.message and iid in err.fix
    assert "g6.xlarge" in err.message and "$0.8048/h" in err.message
    assert f"${2 * 0.8048:.4g}/h" in err.message  # the total for both
    assert head[0] in err.message  # the CPU head is listed among the rest
    assert f"aws ec2 terminate-instances --region {REGION}" in err.fix

    report = orphans.find(STACK, REGION, endpoint_url=url, session=session)
    assert sorted(i.id for i in report.gpu_instances) == sorted(gpu)
    assert report.usd_per_hour == pytest.approx(2 * 0.8048 + catalog.HEAD_USD_PER_HOUR)


def test_untagged_and_other_stacks_pass(aws, capsys):
    session, url = aws
    _launch(aws, "g6.xlarge", None)  # someone else's, untagged
    _launch(aws, "g6e.xlarge", _tags("another-stack"))  # our project, another stack
    _launch(aws, "g5.xlarge", [{"Key": "stack", "Value": STACK}])  # same stack name, not our project

    report = orphans.check(STACK, REGION, endpoint_url=url, session=session)
    assert report.clean and report.instances == [] and report.usd_per_hour == 0


def test_terminated_instances_are_ignored(aws):
    session, url = aws
    ids = _launch(aws, "p5.48xlarge", _tags(STACK))
    _ec2(aws).terminate_instances(InstanceIds=ids)

    report = orphans.check(STACK, REGION, endpoint_url=url, session=session)
    assert report.instances == [] and report.gpu_instances == []


def test_stopped_gpu_instance_still_fails(aws):
    session, url = aws
    ids = _launch(aws, "g6e.12xlarge", _tags(STACK))
    _ec2(aws).stop_instances(InstanceIds=ids)
    with pytest.raises(OpsError, match=ids[0] + r" \(g6e.12xlarge, stopped"):
        orphans.check(STACK, REGION, endpoint_url=url, session=session)


def test_unknown_gpu_type_is_caught_and_priced_as_unknown(aws):
    session, url = aws
    ids = _launch(aws, "g4dn.xlarge", _tags(STACK))  # not in the catalog, still an NVIDIA GPU family
    with pytest.raises(OpsError) as e:
        orphans.check(STACK, REGION, endpoint_url=url, session=session)
    assert f"{ids[0]} (g4dn.xlarge, running, unknown $/h)" in e.value.message
    assert "does not price" in e.value.message


def test_tagged_volume_and_load_balancer_are_warnings(aws, capsys):
    session, url = aws
    ec2 = _ec2(aws)
    vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=200, VolumeType="gp3", Encrypted=True,
                            TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(STACK)}])["VolumeId"]
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3",
                      TagSpecifications=[{"ResourceType": "volume", "Tags": _tags("another-stack")}])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    elb = session.client("elbv2", endpoint_url=url)
    elb.create_load_balancer(Name="gpt-oss-prod-alb", Subnets=subnets, Type="application",
                             Tags=_tags(STACK))
    elb.create_load_balancer(Name="someone-elses-alb", Subnets=subnets, Type="application",
                             Tags=[{"Key": "team", "Value": "web"}])

    report = orphans.check(STACK, REGION, endpoint_url=url, session=session)
    assert [v.id for v in report.volumes] == [vol] and report.volumes[0].type == "gp3 200 GiB"
    assert [lb.id for lb in report.load_balancers] == ["gpt-oss-prod-alb"]
    assert not report.clean and report.gpu_instances == []
    printed = capsys.readouterr().err
    assert vol in printed and "gpt-oss-prod-alb" in printed and "someone-elses-alb" not in printed
    assert json.loads(json.dumps(report.to_dict()))["volumes"][0]["id"] == vol


def test_many_load_balancers_are_tag_checked_in_batches(aws):
    session, url = aws
    ec2 = _ec2(aws)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=f"{REGION}{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    elb = session.client("elbv2", endpoint_url=url)
    for n in range(23):  # more than one DescribeTags batch of 20
        elb.create_load_balancer(Name=f"lb-{n:02d}", Subnets=subnets, Tags=_tags(STACK if n == 22 else "other"))
    report = orphans.find(STACK, REGION, endpoint_url=url, session=session)
    assert [lb.id for lb in report.load_balancers] == ["lb-22"]


def test_unreachable_aws_is_an_actionable_error(aws):
    session, url = aws
    bad = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=REGION)
    # An endpoint with nothing listening: botocore's connection error becomes one sentence with a fix.
    with pytest.raises(OpsError) as e:
        orphans.find(STACK, REGION, endpoint_url="http://127.0.0.1:9", session=bad)
    assert e.value.code == 3 and "could not reach AWS" in e.value.message


def test_price_and_gpu_recognition():
    assert orphans.price("g6.xlarge") == (True, 0.8048)
    assert orphans.price(catalog.HEAD_INSTANCE_TYPE) == (False, catalog.HEAD_USD_PER_HOUR)
    assert orphans.price("p3.2xlarge") == (True, None)
    assert orphans.price("t3.micro") == (False, None)
    assert orphans.stack_tags("x") == {"project": "gpt-oss-ops", "stack": "x"}


def test_everything_a_stack_bills_for_is_found_by_its_tags(aws):
    """NAT gateway, Elastic IP, Auto Scaling group, bucket and log group of the stack are reported; another
    stack's are not. (Auto Scaling groups come from their own API: the tagging API does not list them.)"""
    session, url = aws
    ec2 = _ec2(aws)
    mine, other = _tags(STACK), _tags("someone-else")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    for tags in (mine, other):
        alloc = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tags}])
        ec2.create_nat_gateway(SubnetId=subnet, AllocationId=alloc["AllocationId"],
                               TagSpecifications=[{"ResourceType": "natgateway", "Tags": tags}])
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    lt = ec2.create_launch_template(LaunchTemplateName="w", LaunchTemplateData={"ImageId": image,
                                                                                 "InstanceType": "m7i.xlarge"})
    asg = session.client("autoscaling", endpoint_url=url)
    for name, tags in (("mine-workers", mine), ("other-workers", other)):
        asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1, DesiredCapacity=0,
                                      VPCZoneIdentifier=subnet,
                                      LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"]},
                                      Tags=[{**t, "PropagateAtLaunch": True} for t in tags])
    s3 = session.client("s3", endpoint_url=url)
    logs = session.client("logs", endpoint_url=url)
    for name, tags in (("mine-weights", mine), ("other-weights", other)):
        s3.create_bucket(Bucket=name)
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
        logs.create_log_group(logGroupName=f"/gpt-oss-ops/{name}", tags={t["Key"]: t["Value"] for t in tags})

    report = orphans.find(STACK, REGION, endpoint_url=url, session=session)
    assert [n.state for n in report.nat_gateways] in (["available"], ["pending"])
    assert len(report.elastic_ips) == 1
    assert [g.id for g in report.auto_scaling_groups] == ["mine-workers"]
    assert [b.id for b in report.buckets] == ["mine-weights"]
    assert [g.id for g in report.log_groups] == ["/gpt-oss-ops/mine-weights"]
    assert not report.clean and not report.gpu_instances
    warnings = " ".join(report.warnings())
    assert "Auto Scaling group" in warnings and "NAT gateway" in warnings and "bucket" in warnings
    data = report.to_dict()
    assert data["clean"] is False and data["auto_scaling_groups"][0]["id"] == "mine-workers"
