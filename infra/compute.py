"""Compute: the Deep Learning AMI, launch templates, the Ray head instance, the GPU worker Auto Scaling
Group, and (with TLS) the load balancer in front of the endpoint.

Every launch template requires IMDSv2 (http_tokens "required", hop limit 2 so containers on the node can
use it too), encrypts its gp3 root volume and tags the instances, volumes and network interfaces it
launches; the Auto Scaling Group propagates the same tags at launch.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import ports, sizing, userdata
from ops.remote.hosts import ROLE_TAG, STACK_TAG
from ops.spec import DeploymentSpec

# Deep Learning Base OSS Nvidia Driver GPU AMI: NVIDIA driver, Docker and the NVIDIA container toolkit,
# published by Amazon for G and P instances (https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html).
DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
# Root device of Ubuntu AMIs; an aws.ami_id override is assumed to be Ubuntu-based like the DLAMI.
DEFAULT_ROOT_DEVICE = "/dev/sda1"
SSH_USER = userdata.OPERATOR_USER
METADATA_OPTIONS = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2}
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Ray Serve's proxy health route.
HEALTH_PATH = "/-/healthz"


@dataclass
class ComputeArgs:
    spec: DeploymentSpec
    stack: str
    image: str
    key_name: str | None
    tags: dict[str, str]
    public_subnet_ids: list[pulumi.Input[str]]
    private_subnet_ids: list[pulumi.Input[str]]
    vpc_id: pulumi.Input[str]
    cluster_sg_id: pulumi.Input[str]
    head_sg_id: pulumi.Input[str]
    alb_sg_id: pulumi.Input[str] | None
    instance_profile_arn: pulumi.Input[str]
    instance_profile_name: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    log_group_name: pulumi.Input[str]
    api_key_param: str
    hub_token_param: str
    ray_token_param: str = ""


def head_is_public(spec: DeploymentSpec) -> bool:
    """The head gets a public address only to serve the endpoint directly or to take SSH from the allow-list."""
    net = spec.network
    return (net.public_endpoint and not net.tls) or net.ssh == "allowlist"


def node_role_tags(stack: str, role: str) -> dict[str, str]:
    """The tags the cluster target finds nodes by when no stack outputs are at hand (ops.remote.hosts)."""
    return {STACK_TAG: stack, ROLE_TAG: role}


class Compute(pulumi.ComponentResource):
    def __init__(self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Compute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec, tags = args.spec, args.tags
        it = spec.instance_type
        assert it is not None  # infra.checks refuses specs without a GPU instance

        if spec.aws.ami_id:
            ami_id: pulumi.Input[str] = spec.aws.ami_id
            root_device: pulumi.Input[str] = DEFAULT_ROOT_DEVICE
        else:
            ami = aws.ec2.get_ami_output(
                most_recent=True, owners=["amazon"],
                filters=[{"name": "name", "values": [DLAMI_NAME]}, {"name": "architecture", "values": ["x86_64"]},
                         {"name": "state", "values": ["available"]}],
                opts=pulumi.InvokeOptions(parent=self))
            ami_id, root_device = ami.id, ami.root_device_name
        self.ami_id = pulumi.Output.from_input(ami_id)

        def context(role: str, bucket: str, log_group: str, head_address: str | None = None) -> userdata.BootContext:
            return userdata.BootContext(role=role, stack=args.stack, image=args.image, bucket=bucket,
                                        api_key_param=args.api_key_param, hub_token_param=args.hub_token_param,
                                        ray_token_param=args.ray_token_param, log_group=log_group,
                                        head_address=head_address)

        def template(role: str, instance_type: str, root_gib: int, user_data: pulumi.Output[str],
                     security_groups: list[pulumi.Input[str]] | None) -> aws.ec2.LaunchTemplate:
            node_tags = {**tags, **node_role_tags(args.stack, role), "Name": f"{name}-{role}"}
            return aws.ec2.LaunchTemplate(
                f"{name}-{role}-lt", name_prefix=f"gpt-oss-{args.stack}-{role}-", image_id=ami_id,
                instance_type=instance_type, key_name=args.key_name,
                iam_instance_profile={"arn": args.instance_profile_arn},
                vpc_security_group_ids=security_groups,
                metadata_options=METADATA_OPTIONS,
                block_device_mappings=[{"device_name": root_device, "ebs": {
                    "volume_size": root_gib, "volume_type": "gp3", "encrypted": "true",
                    "delete_on_termination": "true"}}],
                user_data=user_data.apply(userdata.encode),
                tag_specifications=[{"resource_type": kind, "tags": node_tags}
                                    for kind in ("instance", "volume", "network-interface")],
                update_default_version=True, tags=tags, opts=child)

        # ---- head: Ray GCS, dashboard, Serve controller and proxy (no GPU work) ----------------------------
        head_ud = pulumi.Output.all(args.bucket_name, args.log_group_name).apply(
            lambda v: userdata.render(spec, context("head", v[0], v[1])))
        self.head_template = template("head", spec.aws.head_instance_type, sizing.head_root_gib(), head_ud, None)
        public = head_is_public(spec)
        self.head = aws.ec2.Instance(
            f"{name}-head",
            launch_template={"id": self.head_template.id, "version": self.head_template.latest_version.apply(str)},
            subnet_id=(args.public_subnet_ids if public else args.private_subnet_ids)[0],
            associate_public_ip_address=public,
            # Also named on the instance itself: the provider then retries while a new profile propagates in IAM.
            iam_instance_profile=args.instance_profile_name,
            vpc_security_group_ids=[args.cluster_sg_id, args.head_sg_id],
            metadata_options=METADATA_OPTIONS,
            root_block_device={"volume_size": sizing.head_root_gib(), "volume_type": "gp3", "encrypted": True,
                               "delete_on_termination": True},
            volume_tags={**tags, "Name": f"{name}-head"},
            tags={**tags, **node_role_tags(args.stack, "head"), "Name": f"{name}-head"}, opts=child)

        # ---- GPU workers ------------------------------------------------------------------------------------
        worker_ud = pulumi.Output.all(args.bucket_name, args.log_group_name, self.head.private_ip).apply(
            lambda v: userdata.render(spec, context("worker", v[0], v[1], v[2])))
        self.worker_template = template("worker", it.name, sizing.worker_root_gib(spec), worker_ud,
                                        [args.cluster_sg_id])
        counts = sizing.worker_counts(spec, it)
        lt_ref = {"id": self.worker_template.id, "version": self.worker_template.latest_version.apply(str)}
        spot: dict = {}
        if spec.aws.spot:
            spot = {"capacity_rebalance": True, "mixed_instances_policy": {
                "launch_template": {
                    "launch_template_specification": {"launch_template_id": self.worker_template.id,
                                                      "version": self.worker_template.latest_version.apply(str)},
                    "overrides": [{"instance_type": t} for t in sizing.spot_alternatives(it)]},
                # On-demand for the replicas.min floor, spot above it.
                "instances_distribution": {"on_demand_base_capacity": counts.min,
                                           "on_demand_percentage_above_base_capacity": 0,
                                           "spot_allocation_strategy": "price-capacity-optimized"}}}
        self.workers = aws.autoscaling.Group(
            f"{name}-workers", name_prefix=f"gpt-oss-{args.stack}-workers-",
            min_size=counts.min, desired_capacity=counts.desired, max_size=counts.max,
            vpc_zone_identifiers=args.private_subnet_ids, health_check_type="EC2", health_check_grace_period=900,
            launch_template=None if spec.aws.spot else lt_ref,
            instance_refresh={"strategy": "Rolling", "preferences": {"min_healthy_percentage": 50}},
            tags=[{"key": k, "value": v, "propagate_at_launch": True}
                  for k, v in {**tags, **node_role_tags(args.stack, "worker"), "Name": f"{name}-worker"}.items()],
            opts=child, **spot)
        self.worker_counts = counts

        # ---- endpoint ---------------------------------------------------------------------------------------
        self.alb = None
        if spec.network.tls:
            self.alb = aws.lb.LoadBalancer(
                f"{name}-alb", load_balancer_type="application", internal=not spec.network.public_endpoint,
                security_groups=[args.alb_sg_id],
                subnets=args.public_subnet_ids if spec.network.public_endpoint else args.private_subnet_ids,
                drop_invalid_header_fields=True, tags=tags, opts=child)
            tg = aws.lb.TargetGroup(
                f"{name}-tg", port=spec.port, protocol="HTTP", target_type="instance", vpc_id=args.vpc_id,
                health_check={"path": HEALTH_PATH, "port": "traffic-port", "matcher": "200"}, tags=tags, opts=child)
            aws.lb.TargetGroupAttachment(f"{name}-tg-head", target_group_arn=tg.arn, target_id=self.head.id,
                                         port=spec.port, opts=child)
            aws.lb.Listener(f"{name}-https", load_balancer_arn=self.alb.arn, port=443, protocol="HTTPS",
                            ssl_policy=TLS_POLICY, certificate_arn=spec.network.certificate_arn,
                            default_actions=[{"type": "forward", "target_group_arn": tg.arn}], tags=tags, opts=child)
            self.endpoint_url = pulumi.Output.concat("https://", self.alb.dns_name, "/v1")
        elif spec.network.public_endpoint:
            self.endpoint_url = pulumi.Output.concat("http://", self.head.public_ip, f":{spec.port}/v1")
        else:
            self.endpoint_url = pulumi.Output.concat("http://", self.head.private_ip, f":{spec.port}/v1")

        self.tunnels = pulumi.Output.all(self.head.id, self.head.public_ip).apply(
            lambda v: tunnel_commands(spec, instance_id=v[0], public_ip=v[1] or None,
                                      key_pair=args.key_name is not None))
        self.register_outputs({"head_id": self.head.id, "head_private_ip": self.head.private_ip,
                               "worker_asg_name": self.workers.name, "endpoint_url": self.endpoint_url})


def tunnel_commands(spec: DeploymentSpec, *, instance_id: str, public_ip: str | None,
                    key_pair: bool = False) -> dict[str, dict[str, str]]:
    """How to reach the Ray dashboard, Grafana and the endpoint on the head from a laptop: SSM port forwarding
    always; SSH straight to the head with network.ssh "allowlist", SSH over SSM when a key pair is installed."""
    out: dict[str, dict[str, str]] = {}
    for what, port in (("ray_dashboard", ports.DASHBOARD), ("grafana", ports.GRAFANA), ("endpoint", spec.port)):
        ssm = shlex.join(["aws", "ssm", "start-session", "--region", spec.aws.region, "--target", instance_id,
                          "--document-name", "AWS-StartPortForwardingSession", "--parameters",
                          f'{{"portNumber":["{port}"],"localPortNumber":["{port}"]}}'])
        forward = ["ssh", "-N", "-L", f"{port}:127.0.0.1:{port}"]
        if spec.network.ssh == "allowlist" and public_ip:
            ssh = shlex.join([*forward, f"{SSH_USER}@{public_ip}"])
        elif key_pair:
            proxy = shlex.join(["aws", "ssm", "start-session", "--region", spec.aws.region, "--target", instance_id,
                                "--document-name", "AWS-StartSSHSession", "--parameters", "portNumber=22"])
            ssh = shlex.join([*forward, "-o", f"ProxyCommand={proxy}", f"{SSH_USER}@{instance_id}"])
        else:
            ssh = f"SSH is closed (network.ssh={spec.network.ssh}); use the SSM command"
        out[what] = {"local_url": f"http://localhost:{port}", "ssm": ssm, "ssh": ssh}
    return out
