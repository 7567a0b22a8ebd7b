"""The whole AWS stack for one DeploymentSpec: a pure function of the spec, so tests build it under mocks.

`build(spec, stack, options)` checks the spec (infra.checks) before registering anything, then creates the
region's provider and the components: Network -> Security -> Storage, Secrets -> NodeIdentity -> Compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import checks, sizing, userdata
from infra.compute import Compute, ComputeArgs, head_is_public
from infra.iam import IamArgs, NodeIdentity, worker_group_arn
from infra.network import Network, NetworkArgs
from infra.options import InfraOptions, ecr_repository_arn
from infra.secrets import Secrets, SecretsArgs
from infra.security import Security, SecurityArgs
from infra.storage import Storage, StorageArgs
from ops.spec import DeploymentSpec


@dataclass
class StackResult:
    """The built stack and what `pulumi stack output` shows operators."""

    network: Network
    security: Security
    storage: Storage
    identity: NodeIdentity
    compute: Compute
    outputs: dict[str, Any]


class GptOssCluster(pulumi.ComponentResource):
    def __init__(self, name: str, spec: DeploymentSpec, stack: str, options: InfraOptions,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = spec.resource_tags(stack)
        net = spec.network
        # A key pair serves SSH from the allow-list, or SSH over SSM (port 22 then opens inside the cluster only).
        key_name = options.key_name if net.ssh != "none" else None

        self.network = Network(f"{name}-net", NetworkArgs(cidr=options.vpc_cidr, region=spec.aws.region, tags=tags),
                               child)
        self.security = Security(f"{name}-sg", SecurityArgs(
            vpc_id=self.network.vpc.id, tags=tags, serve_port=spec.port, allow_cidrs=list(net.allow_cidrs),
            ssh_allowlist=net.ssh == "allowlist", alb=net.tls, ssh_within_cluster=key_name is not None), child)
        self.storage = Storage(f"{name}-data", StorageArgs(tags=tags, existing_bucket=spec.aws.weights_bucket), child)
        self.secrets = Secrets(f"{name}-secrets", SecretsArgs(stack=stack, region=spec.aws.region, tags=tags,
                                                              api_key=options.api_key, hub_token=options.hub_token,
                                                              ray_token=options.ray_token), child)
        ident = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        group_arn = pulumi.Output.all(ident.arn, ident.account_id).apply(
            lambda v: worker_group_arn(v[0].split(":")[1], spec.aws.region, v[1], stack))
        self.identity = NodeIdentity(f"{name}-node", IamArgs(
            tags=tags, bucket_arn=self.storage.bucket_arn, secret_arns=self.secrets.arns,
            log_group_arn=self.storage.log_group.arn, worker_group_arn=group_arn,
            ecr_repository_arn=ecr_repository_arn(options.image)), child)
        self.compute = Compute(f"{name}-ray", ComputeArgs(
            spec=spec, stack=stack, image=options.image, key_name=key_name,
            tags=tags, public_subnet_ids=[s.id for s in self.network.public_subnets],
            private_subnet_ids=[s.id for s in self.network.private_subnets], vpc_id=self.network.vpc.id,
            cluster_sg_id=self.security.cluster.id, head_sg_id=self.security.head.id,
            alb_sg_id=self.security.alb.id if self.security.alb else None,
            instance_profile_arn=self.identity.profile.arn, instance_profile_name=self.identity.profile.name, bucket_name=self.storage.bucket_name,
            log_group_name=self.storage.log_group.name, api_key_param=self.secrets.api_key_name,
            hub_token_param=self.secrets.hub_token_name, ray_token_param=self.secrets.ray_token_name), child)

        it = spec.instance_type
        cost = sizing.estimate(spec, it)
        c = self.compute
        self.outputs: dict[str, Any] = {
            "endpoint_url": c.endpoint_url,
            "head_private_ip": c.head.private_ip,
            "head_public_ip": c.head.public_ip if head_is_public(spec) else "",
            "head_instance_id": c.head.id,
            "tunnels": c.tunnels,
            "worker_asg_name": c.workers.name,
            "worker_instance_type": it.name,
            # Not `workers`: ops.remote.hosts reads that key as a list of worker addresses.
            "worker_counts": {"min": c.worker_counts.min, "desired": c.worker_counts.desired,
                              "max": c.worker_counts.max},
            "region": spec.aws.region,
            "weights_bucket": self.storage.bucket_name,
            "log_group": self.storage.log_group.name,
            # For the cluster target (ops/remote): how to reach the nodes this stack boots and run things there.
            "node_access": node_access(spec, key_name),
            "api_key_parameter": self.secrets.api_key_name,
            "hub_token_parameter": self.secrets.hub_token_name,
            "ray_token_parameter": self.secrets.ray_token_name,
            "weights_mirror": self.storage.bucket_name.apply(lambda b: userdata.mirror_prefix(spec, b)),
            "estimated_usd_per_hour": cost.usd_per_hour,
            "estimate_basis": cost.basis,
        }
        self.register_outputs(self.outputs)


def node_access(spec: DeploymentSpec, key_name: str | None) -> dict[str, Any]:
    """What the cluster target needs to work on the nodes: the SSH route the stack opened (straight to the head
    from the allow-list, else SSH over SSM Session Manager), the login user, the commands the boot script
    installs (they run inside the node's Ray container), the shared paths, and where each node reports its
    boot. The nodes start Ray themselves; the target never does."""
    via = "ssh" if spec.network.ssh == "allowlist" else "ssm"
    return {"via": via, "ssh": key_name is not None, "user": userdata.OPERATOR_USER, "python": "gpt-oss-python",
            "ray": "ray", "serve": "serve", "start_ray": False, "remote_dir": userdata.REMOTE_DIR,
            "encodings_dir": userdata.IMAGE_ENCODINGS_DIR, "model_dir": userdata.model_dir(spec),
            "ray_temp_dir": "/tmp/ray", "state_dir": userdata.STATE_DIR}


def build(spec: DeploymentSpec, stack: str, options: InfraOptions | None = None,
          source: str | None = None) -> StackResult:
    """Check the spec for AWS, then register every resource of the stack. Raises SpecError before any
    resource exists when the spec cannot be provisioned."""
    options = options or InfraOptions()
    checks.check(spec, options, source)
    tags = spec.resource_tags(stack)
    provider = aws.Provider(f"aws-{spec.aws.region}", region=spec.aws.region, default_tags={"tags": tags})
    cluster = GptOssCluster(spec.name, spec, stack, options, pulumi.ResourceOptions(providers={"aws": provider}))
    return StackResult(cluster.network, cluster.security, cluster.storage, cluster.identity, cluster.compute,
                       cluster.outputs)


def main() -> dict[str, Any]:
    """The Pulumi program: read the config once, build, export (and return) the outputs. Bad input stops here,
    before any resource."""
    from infra import config
    from ops.spec import SpecError

    try:
        resolved, options = config.read()
        result = build(resolved.spec, pulumi.get_stack(), options, source="pulumi config")
    except SpecError as e:
        raise pulumi.RunError(str(e)) from None
    for key, value in result.outputs.items():
        pulumi.export(key, value)
    return result.outputs
