"""The AWS side of the rehearsal: the real Pulumi program run under Pulumi's mocks, with moto's server behind
the mocks, so every resource the program registers is created in moto's model of AWS (which refuses what AWS
would: an unknown subnet, a launch template without an image, an instance profile that does not exist...).

The stack's outputs come from that same run; its launch templates hold the user-data the nodes boot. The Auto
Scaling group is moto's: it launches the workers, keeps the desired count (a terminated worker is replaced),
and takes `SetInstanceHealth` from a node that gave up. `destroy()` deletes what the run created, in reverse
order, the way `pulumi destroy` would; the orphan check then looks for anything left behind.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "infra"))

from infra_mocks import ACCOUNT, AwsMocks, run_program


def public_address(private: str) -> str:
    """The rehearsal's stand-in for an instance's public address: on the test bridge too (the rehearsal's
    internet), in the VPC block's last /24, which no subnet uses (public subnets are its blocks 0-2, private ones
    8-10), with the private address's host part."""
    a, b, c, d = (int(x) for x in private.split("."))
    return f"{a}.{b}.{(c - c % 16) + 15}.{d}"


def _tags(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in (inputs.get("tags") or {}).items()]


@dataclass
class MotoMocks(AwsMocks):
    """AwsMocks whose resources are created in moto (at `endpoint`), with moto's ids and attributes."""

    endpoint: str = ""
    created: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (type, id, state), in order
    public_ips: dict[str, str] = field(default_factory=dict)  # instance id -> its "public" address

    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        rid, state = super().new_resource(args)
        handler = getattr(self, "_" + args.typ.split(":")[-1][0].lower() + args.typ.split(":")[-1][1:], None)
        if handler is None or not args.typ.startswith("aws:"):
            return rid, state
        rid, extra = handler(args.name, dict(args.inputs), state)
        state.update(extra)
        for r in reversed(self.resources):
            if r.name == args.name and r.type == args.typ:
                r.id = rid
                break
        self.created.append((args.typ, rid, state))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ec2/getAmi:getAmi":
            self.calls.append((args.token, dict(args.args)))
            image = self.client("ec2").describe_images(Owners=["amazon"])["Images"][0]
            return {"id": image["ImageId"], "name": image.get("Name", ""), "rootDeviceName": "/dev/sda1",
                    "architecture": "x86_64"}
        return super().call(args)

    # -- network ------------------------------------------------------------------------------------------------
    def _vpc(self, name, i, s):
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock=i["cidrBlock"], TagSpecifications=[
            {"ResourceType": "vpc", "Tags": _tags(i)}])["Vpc"]
        return vpc["VpcId"], {"arn": f"arn:aws:ec2:{self.region}:{ACCOUNT}:vpc/{vpc['VpcId']}"}

    def _subnet(self, name, i, s):
        sub = self.client("ec2").create_subnet(VpcId=i["vpcId"], CidrBlock=i["cidrBlock"],
                                               AvailabilityZone=i["availabilityZone"], TagSpecifications=[
                                                   {"ResourceType": "subnet", "Tags": _tags(i)}])["Subnet"]
        return sub["SubnetId"], {"arn": sub.get("SubnetArn", "")}

    def _internetGateway(self, name, i, s):
        ec2 = self.client("ec2")
        igw = ec2.create_internet_gateway(TagSpecifications=[
            {"ResourceType": "internet-gateway", "Tags": _tags(i)}])["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=i["vpcId"])
        return igw, {}

    def _eip(self, name, i, s):
        a = self.client("ec2").allocate_address(Domain="vpc", TagSpecifications=[
            {"ResourceType": "elastic-ip", "Tags": _tags(i)}])
        return a["AllocationId"], {"publicIp": a["PublicIp"], "allocationId": a["AllocationId"]}

    def _natGateway(self, name, i, s):
        nat = self.client("ec2").create_nat_gateway(SubnetId=i["subnetId"], AllocationId=i["allocationId"],
                                                    TagSpecifications=[{"ResourceType": "natgateway",
                                                                        "Tags": _tags(i)}])["NatGateway"]
        return nat["NatGatewayId"], {}

    def _routeTable(self, name, i, s):
        ec2 = self.client("ec2")
        rt = ec2.create_route_table(VpcId=i["vpcId"], TagSpecifications=[
            {"ResourceType": "route-table", "Tags": _tags(i)}])["RouteTable"]["RouteTableId"]
        for r in i.get("routes") or []:
            target = {k: v for k, v in (("GatewayId", r.get("gatewayId")), ("NatGatewayId", r.get("natGatewayId")))
                      if v}
            ec2.create_route(RouteTableId=rt, DestinationCidrBlock=r["cidrBlock"], **target)
        return rt, {}

    def _routeTableAssociation(self, name, i, s):
        a = self.client("ec2").associate_route_table(RouteTableId=i["routeTableId"], SubnetId=i["subnetId"])
        return a["AssociationId"], {}

    def _vpcEndpoint(self, name, i, s):
        ep = self.client("ec2").create_vpc_endpoint(VpcId=i["vpcId"], ServiceName=i["serviceName"],
                                                    VpcEndpointType=i.get("vpcEndpointType", "Gateway"),
                                                    RouteTableIds=i.get("routeTableIds") or [])["VpcEndpoint"]
        return ep["VpcEndpointId"], {}

    def _securityGroup(self, name, i, s):
        ec2 = self.client("ec2")
        sg = ec2.create_security_group(
            GroupName=name, Description=i.get("description") or name, VpcId=i["vpcId"],
            TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(i)}])
        # The provider removes the egress rule AWS adds to a new group; the program's own rules replace it.
        ec2.revoke_security_group_egress(GroupId=sg["GroupId"], IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        return sg["GroupId"], {"arn": f"arn:aws:ec2:{self.region}:{ACCOUNT}:security-group/{sg['GroupId']}"}

    def _securityGroupIngressRule(self, name, i, s):
        return self._rule(i, ingress=True)

    def _securityGroupEgressRule(self, name, i, s):
        return self._rule(i, ingress=False)

    def _rule(self, i, ingress: bool):
        perm: dict[str, Any] = {"IpProtocol": str(i.get("ipProtocol", "tcp"))}
        if perm["IpProtocol"] != "-1":
            perm.update(FromPort=int(i["fromPort"]), ToPort=int(i["toPort"]))
        if i.get("cidrIpv4"):
            perm["IpRanges"] = [{"CidrIp": i["cidrIpv4"]}]
        if i.get("cidrIpv6"):
            perm["Ipv6Ranges"] = [{"CidrIpv6": i["cidrIpv6"]}]
        if i.get("referencedSecurityGroupId"):
            perm["UserIdGroupPairs"] = [{"GroupId": i["referencedSecurityGroupId"]}]
        ec2 = self.client("ec2")
        call = ec2.authorize_security_group_ingress if ingress else ec2.authorize_security_group_egress
        out = call(GroupId=i["securityGroupId"], IpPermissions=[perm])
        rules = out.get("SecurityGroupRules") or [{}]
        return rules[0].get("SecurityGroupRuleId", f"sgr-{len(self.created):017x}"), {}

    # -- storage, secrets, identity -----------------------------------------------------------------------------
    def _bucket(self, name, i, s):
        s3 = self.client("s3")
        s3.create_bucket(Bucket=s["bucket"])
        if i.get("tags"):
            s3.put_bucket_tagging(Bucket=s["bucket"], Tagging={"TagSet": _tags(i)})
        return s["bucket"], {}

    def _bucketPolicy(self, name, i, s):
        # The stack's policy denies every request not made over TLS, and moto enforces it; the rehearsal's AWS
        # endpoint is plain HTTP, so the policy is kept (the infra tests and parliament check it) but not applied.
        return f"{i['bucket']}-policy", {}

    def _bucketPublicAccessBlock(self, name, i, s):
        cfg = {k[0].upper() + k[1:]: bool(i[k]) for k in ("blockPublicAcls", "blockPublicPolicy",
                                                           "ignorePublicAcls", "restrictPublicBuckets")}
        cfg = {"BlockPublicAcls": cfg["BlockPublicAcls"], "BlockPublicPolicy": cfg["BlockPublicPolicy"],
               "IgnorePublicAcls": cfg["IgnorePublicAcls"], "RestrictPublicBuckets": cfg["RestrictPublicBuckets"]}
        self.client("s3").put_public_access_block(Bucket=i["bucket"], PublicAccessBlockConfiguration=cfg)
        return f"{i['bucket']}-pab", {}

    def _bucketVersioning(self, name, i, s):
        status = i["versioningConfiguration"]["status"]
        self.client("s3").put_bucket_versioning(Bucket=i["bucket"], VersioningConfiguration={"Status": status})
        return f"{i['bucket']}-versioning", {}

    def _bucketServerSideEncryptionConfiguration(self, name, i, s):
        rule = i["rules"][0]
        self.client("s3").put_bucket_encryption(Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"]},
            "BucketKeyEnabled": bool(rule.get("bucketKeyEnabled"))}]})
        return f"{i['bucket']}-sse", {}

    def _logGroup(self, name, i, s):
        logs = self.client("logs")
        logs.create_log_group(logGroupName=s["name"], tags={k: str(v) for k, v in (i.get("tags") or {}).items()})
        if i.get("retentionInDays"):
            logs.put_retention_policy(logGroupName=s["name"], retentionInDays=int(i["retentionInDays"]))
        return s["name"], {}

    def _parameter(self, name, i, s):
        value = i["value"]
        if isinstance(value, dict):  # a Pulumi secret arrives wrapped
            value = next(v for k, v in value.items() if k != "4dabf18193072939515e22adb298388d")
        self.client("ssm").put_parameter(Name=i["name"], Type=i["type"], Value=value, Overwrite=True,
                                         Description=i.get("description", ""))
        return i["name"], {"arn": f"arn:aws:ssm:{self.region}:{ACCOUNT}:parameter{i['name']}"}

    def _role(self, name, i, s):
        r = self.client("iam").create_role(RoleName=s["name"], AssumeRolePolicyDocument=i["assumeRolePolicy"],
                                           Description=i.get("description", ""), Tags=_tags(i))["Role"]
        return s["name"], {"arn": r["Arn"], "name": s["name"]}

    def _rolePolicy(self, name, i, s):
        self.client("iam").put_role_policy(RoleName=i["role"], PolicyName=name, PolicyDocument=i["policy"])
        return f"{i['role']}:{name}", {}

    def _instanceProfile(self, name, i, s):
        iam = self.client("iam")
        p = iam.create_instance_profile(InstanceProfileName=s["name"], Tags=_tags(i))["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=s["name"], RoleName=i["role"])
        return s["name"], {"arn": p["Arn"], "name": s["name"]}

    # -- compute ------------------------------------------------------------------------------------------------
    def _launchTemplate(self, name, i, s):
        data: dict[str, Any] = {
            "ImageId": i["imageId"], "InstanceType": i["instanceType"], "UserData": i["userData"],
            "IamInstanceProfile": {"Arn": i["iamInstanceProfile"]["arn"]},
            "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": i["metadataOptions"]["httpTokens"],
                                "HttpPutResponseHopLimit": int(i["metadataOptions"]["httpPutResponseHopLimit"])},
            "BlockDeviceMappings": [{"DeviceName": b["deviceName"], "Ebs": {
                "VolumeSize": int(b["ebs"]["volumeSize"]), "VolumeType": b["ebs"]["volumeType"],
                "Encrypted": str(b["ebs"]["encrypted"]).lower() == "true", "DeleteOnTermination": True}}
                for b in i.get("blockDeviceMappings") or []],
            "TagSpecifications": [{"ResourceType": t["resourceType"], "Tags": _tags(t)}
                                  for t in i.get("tagSpecifications") or []],
        }
        if i.get("keyName"):
            data["KeyName"] = i["keyName"]
        if i.get("vpcSecurityGroupIds"):
            data["SecurityGroupIds"] = list(i["vpcSecurityGroupIds"])
        lt = self.client("ec2").create_launch_template(LaunchTemplateName=s["name"], LaunchTemplateData=data,
                                                       TagSpecifications=[{"ResourceType": "launch-template",
                                                                           "Tags": _tags(i)}])["LaunchTemplate"]
        return lt["LaunchTemplateId"], {"latestVersion": int(lt["LatestVersionNumber"])}

    def _instance(self, name, i, s):
        ec2 = self.client("ec2")
        lt = i["launchTemplate"]
        res = ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": lt["id"],
                                                                        "Version": str(lt["version"])},
                                SubnetId=i["subnetId"], SecurityGroupIds=list(i["vpcSecurityGroupIds"]),
                                TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(i)}])
        inst = res["Instances"][0]
        private = inst["PrivateIpAddress"]
        public = public_address(private) if i.get("associatePublicIpAddress") else ""
        if public:
            self.public_ips[inst["InstanceId"]] = public
        return inst["InstanceId"], {"privateIp": private, "private_ip": private, "publicIp": public,
                                    "public_ip": public}

    def _group(self, name, i, s):
        asg = self.client("autoscaling")
        kw: dict[str, Any] = {"AutoScalingGroupName": s["name"], "MinSize": int(i["minSize"]),
                              "MaxSize": int(i["maxSize"]), "DesiredCapacity": int(i["desiredCapacity"]),
                              "VPCZoneIdentifier": ",".join(i["vpcZoneIdentifiers"]),
                              "HealthCheckType": i.get("healthCheckType", "EC2"),
                              "HealthCheckGracePeriod": int(i.get("healthCheckGracePeriod", 300)),
                              "Tags": [{"Key": t["key"], "Value": str(t["value"]),
                                        "PropagateAtLaunch": bool(t.get("propagateAtLaunch"))} for t in i["tags"]]}
        if i.get("launchTemplate"):
            kw["LaunchTemplate"] = {"LaunchTemplateId": i["launchTemplate"]["id"],
                                    "Version": str(i["launchTemplate"]["version"])}
        else:
            spec = i["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
            kw["LaunchTemplate"] = {"LaunchTemplateId": spec["launchTemplateId"], "Version": str(spec["version"])}
        asg.create_auto_scaling_group(**kw)
        return s["name"], {"arn": f"arn:aws:autoscaling:{self.region}:{ACCOUNT}:autoScalingGroup:x:"
                                  f"autoScalingGroupName/{s['name']}"}

    # -- teardown -------------------------------------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """Delete what the run created, newest first (what `pulumi destroy` does); returns what it deleted."""
        done = []
        ec2, asg, s3 = self.client("ec2"), self.client("autoscaling"), self.client("s3")
        for typ, rid, state in reversed(self.created):
            kind = typ.split(":")[-1]
            if kind == "Group":
                asg.delete_auto_scaling_group(AutoScalingGroupName=rid, ForceDelete=True)
            elif kind == "Instance":
                ec2.terminate_instances(InstanceIds=[rid])
            elif kind == "LaunchTemplate":
                ec2.delete_launch_template(LaunchTemplateId=rid)
            elif kind == "NatGateway":
                ec2.delete_nat_gateway(NatGatewayId=rid)
            elif kind == "Eip":
                ec2.release_address(AllocationId=rid)
            elif kind == "Bucket":
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=rid):
                    objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                    if objs:
                        s3.delete_objects(Bucket=rid, Delete={"Objects": objs})
                s3.delete_bucket(Bucket=rid)
            elif kind == "LogGroup":
                self.client("logs").delete_log_group(logGroupName=rid)
            elif kind == "Parameter":
                self.client("ssm").delete_parameter(Name=rid)
            elif kind == "InstanceProfile":
                iam = self.client("iam")
                for role in iam.get_instance_profile(InstanceProfileName=rid)["InstanceProfile"]["Roles"]:
                    iam.remove_role_from_instance_profile(InstanceProfileName=rid, RoleName=role["RoleName"])
                iam.delete_instance_profile(InstanceProfileName=rid)
            elif kind == "RolePolicy":
                role, _, policy = rid.partition(":")
                self.client("iam").delete_role_policy(RoleName=role, PolicyName=policy)
            elif kind == "Role":
                self.client("iam").delete_role(RoleName=rid)
            elif kind == "SecurityGroup":
                ec2.delete_security_group(GroupId=rid)
            elif kind == "RouteTableAssociation":
                ec2.disassociate_route_table(AssociationId=rid)
            elif kind == "RouteTable":
                ec2.delete_route_table(RouteTableId=rid)
            elif kind == "VpcEndpoint":
                ec2.delete_vpc_endpoints(VpcEndpointIds=[rid])
            elif kind == "InternetGateway":
                vpcs = [a["VpcId"] for a in ec2.describe_internet_gateways(InternetGatewayIds=[rid])[
                    "InternetGateways"][0].get("Attachments", [])]
                for vpc in vpcs:
                    ec2.detach_internet_gateway(InternetGatewayId=rid, VpcId=vpc)
                ec2.delete_internet_gateway(InternetGatewayId=rid)
            elif kind == "Subnet":
                ec2.delete_subnet(SubnetId=rid)
            elif kind == "Vpc":
                ec2.delete_vpc(VpcId=rid)
            else:
                continue
            done.append(f"{kind} {rid}")
        self.created.clear()
        return done


@dataclass
class Stack:
    mocks: MotoMocks
    outputs: dict[str, Any]

    def output_json(self) -> dict[str, Any]:
        """What `pulumi stack output --json --show-secrets` prints."""
        return json.loads(json.dumps(self.outputs, default=str))

    def user_data(self, launch_template_id: str) -> str:
        from infra.userdata import decode

        ec2 = self.mocks.client("ec2")
        v = ec2.describe_launch_template_versions(LaunchTemplateId=launch_template_id)["LaunchTemplateVersions"]
        return decode(v[-1]["LaunchTemplateData"]["UserData"])


def up(config: dict[str, str], *, endpoint: str, region: str, stack: str,
       secret_keys: tuple[str, ...] = ()) -> Stack:
    """Run the Pulumi program with moto behind the mocks (the rehearsal's `pulumi up`)."""
    from infra.stack import main

    mocks = MotoMocks(region=region, endpoint=endpoint)
    run = run_program(main, config=config, region=region, stack=stack, secret_keys=secret_keys, mocks=mocks)
    return Stack(mocks, run.outputs)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
