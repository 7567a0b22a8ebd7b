"""Checks only the AWS stack needs, run before the first resource is registered.

ops.spec already refuses what cannot work anywhere (model x GPU x parallelism x context, a public endpoint
with an empty allow-list, a world-open CIDR without the explicit override). What is left here is what
cannot work on AWS in particular: a region without the GPU family, a root volume smaller than the weights,
SSH that would be open to the internet or unreachable.
"""

from __future__ import annotations

import ipaddress
import re

from infra import regions, sizing
from infra.options import InfraOptions
from ops import catalog
from ops.spec import DeploymentSpec, Problem, SpecError, Target

_AMI = re.compile(r"ami-[0-9a-f]{8}([0-9a-f]{9})?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ACM_ARN = re.compile(r"arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+")
_KEY_NAME = re.compile(r"[\x20-\x7e]{1,255}")


def problems(spec: DeploymentSpec, options: InfraOptions) -> list[Problem]:
    """Every reason the spec cannot be provisioned on AWS, each naming its field and its fix."""
    found: list[Problem] = []
    if spec.target is not Target.cluster:
        found.append(Problem("target", f"{spec.target.value!r} is not served by the AWS Ray cluster stack.",
                             "pick a GPU preset (pulumi config set gpt-oss-ops:preset gpt-oss-20b), or set target: "
                             "cluster (pulumi config set gpt-oss-ops:target cluster) to serve this spec on the "
                             "stack (the tiny model on CPU instances rehearses the whole path for cents an hour); "
                             "or deploy with `ops deploy` to the local or anyscale target instead of `pulumi up`."))
        return found
    it = spec.instance_type
    gpus = spec.gpus_per_replica or 1
    if it is None:
        most = max((i.gpus for i in catalog.instances_for(spec.accelerator)), default=0)
        found.append(Problem("tensor_parallel_size",
                             f"one replica needs {gpus} {spec.accelerator} GPUs but no catalog instance carries more "
                             f"than {most}.",
                             f"lower tensor_parallel_size x pipeline_parallel_size to at most {most}, or pick an "
                             f"accelerator with larger instances."))
        return found
    if it.accelerator != "CPU" and it.gpus < gpus:  # also refused by ops.spec for an explicit aws.instance_type
        found.append(Problem("tensor_parallel_size", f"{it.name} has {it.gpus} GPU(s) but one replica needs {gpus}.",
                             f"use {', '.join(i.name for i in catalog.instances_for(it.accelerator, gpus)) or 'a larger instance'}."))

    if not options.allow_unlisted_region and not regions.offered(it.name, spec.aws.region):
        where = ", ".join(sorted(regions.regions_for(it.name))) or "none listed"
        found.append(Problem("aws.region", f"{it.name} ({regions.family(it.name)} family) is not listed for "
                                           f"{spec.aws.region} in infra/regions.py (as of {regions.AS_OF}).",
                             f"use one of {where}; or, if `aws ec2 describe-instance-type-offerings` shows "
                             f"{it.name} in {spec.aws.region}, set gpt-oss-ops:allowUnlistedRegion true."))

    need = sizing.min_root_gib(spec)
    if spec.aws.root_volume_gib is not None and spec.aws.root_volume_gib < need:
        weights = ("" if sizing.weights_on_instance_store(spec) else
                   f" and {spec.model}'s weights ({spec.model_info.checkpoint_gib:g} GiB)")
        found.append(Problem("aws.root_volume_gib",
                             f"{spec.aws.root_volume_gib} GiB cannot hold the AMI ({sizing.AMI_ROOT_GIB} GiB) and "
                             f"the serving image (~{sizing.IMAGE_GIB} GiB){weights}.",
                             f"set aws.root_volume_gib >= {need} (recommended {need + sizing.HEADROOM_GIB}), or unset "
                             "it to size the volume from the model."))
    if spec.aws.ami_id is not None and not _AMI.fullmatch(spec.aws.ami_id):
        found.append(Problem("aws.ami_id", f"{spec.aws.ami_id!r} is not an AMI id.",
                             "write ami- followed by 8 or 17 hex digits, or unset it to use the Deep Learning AMI."))
    if spec.aws.weights_bucket is not None and not _BUCKET.fullmatch(spec.aws.weights_bucket):
        found.append(Problem("aws.weights_bucket", f"{spec.aws.weights_bucket!r} is not an S3 bucket name.",
                             "use 3-63 lower-case letters, digits, '.' and '-', or unset it to create one."))

    net = spec.network
    world = [c for c in net.allow_cidrs if ipaddress.ip_network(c).prefixlen == 0]
    if net.ssh == "allowlist":
        if not net.allow_cidrs:
            found.append(Problem("network.ssh", "SSH from the allow-list needs a non-empty network.allow_cidrs.",
                                 "add your own network to network.allow_cidrs, or use network.ssh: ssm (the default)."))
        if world:
            found.append(Problem("network.ssh", f"{world[0]} in network.allow_cidrs would open SSH to the internet.",
                                 "use network.ssh: ssm (tunnels through SSM Session Manager), or list narrower CIDRs."))
        if not options.key_name:
            found.append(Problem("network.ssh", "SSH from the allow-list needs an EC2 key pair.",
                                 "pulumi config set gpt-oss-ops:keyName NAME (an existing key pair in the region), "
                                 "or use network.ssh: ssm."))
        elif not _KEY_NAME.fullmatch(options.key_name):
            found.append(Problem("keyName", f"{options.key_name!r} is not an EC2 key pair name.",
                                 "use the name shown by `aws ec2 describe-key-pairs`."))
    if net.ssh == "none" and options.key_name:
        found.append(Problem("keyName", "network.ssh is none, so no key pair is installed on the nodes.",
                             "remove it (pulumi config rm gpt-oss-ops:keyName), or set network.ssh: ssm for SSH over "
                             "Session Manager."))
    if net.public_endpoint and not spec.auth.enabled:
        found.append(Problem("auth.enabled", "a public endpoint without authentication would serve anyone.",
                             "keep auth.enabled: true (the default), or set network.public_endpoint: false."))
    if net.tls and net.certificate_arn:
        m = _ACM_ARN.fullmatch(net.certificate_arn)
        if not m:
            found.append(Problem("network.certificate_arn", f"{net.certificate_arn!r} is not an ACM certificate ARN.",
                                 "copy the ARN from `aws acm list-certificates`."))
        elif m.group(1) != spec.aws.region:
            found.append(Problem("network.certificate_arn",
                                 f"the certificate is in {m.group(1)} but the stack is in {spec.aws.region}; "
                                 "a load balancer can only use a certificate from its own region.",
                                 f"request or import the certificate in {spec.aws.region}."))
    found += _image_problems(options)
    found += _model_source_problems(spec)
    try:
        vpc = ipaddress.ip_network(options.vpc_cidr)
        if vpc.version != 4 or not 16 <= vpc.prefixlen <= 20:
            raise ValueError
    except ValueError:
        found.append(Problem("vpcCidr", f"{options.vpc_cidr!r} is not an IPv4 block from /16 to /20.",
                             "set gpt-oss-ops:vpcCidr to e.g. 10.42.0.0/16."))
    return found


def _image_problems(options: InfraOptions) -> list[Problem]:
    from infra import image

    try:
        if options.image_check:
            image.check_exists(options.image)
        else:
            image.check_reference(options.image)
    except image.ImageProblem as e:
        return [Problem(image.FIELD, e.message, e.fix)]
    return []


def _model_source_problems(spec: DeploymentSpec) -> list[Problem]:
    """A weights source the nodes' role cannot read fails every worker's boot: refuse it here."""
    src = spec.model_source or ""
    own = spec.aws.weights_bucket
    mirror = f"s3://{own or 'STACK-BUCKET'}/models/{spec.model}/"
    if src.startswith("gs://"):
        return [Problem("model_source", f"{src} is in Google Cloud Storage; the nodes on AWS have no credentials "
                                        "for it.", f"copy the checkpoint to {mirror} and unset model_source.")]
    if src.startswith("s3://"):
        bucket = src[5:].split("/", 1)[0]
        if bucket != own:
            return [Problem("model_source", f"{src} is outside the stack's bucket: the nodes' role may read only "
                                            f"{'s3://' + own if own else 'the bucket the stack creates'}.",
                            f"set aws.weights_bucket: {bucket} (the stack then uses that bucket), or copy the "
                            f"checkpoint to {mirror} and unset model_source.")]
    return []


def check(spec: DeploymentSpec, options: InfraOptions, source: str | None = None) -> None:
    """Raise SpecError listing every problem; returns quietly when the stack can be built."""
    found = problems(spec, options)
    if found:
        raise SpecError(found, source)
