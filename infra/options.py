"""Settings of the AWS stack that are not part of the deployment spec (the spec stays cloud-neutral)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Ray's published LLM image for the Ray release the project pins (Ray Serve LLM + the CUDA build of vLLM Ray
# pins). Ray builds ray-llm for Python 3.12 and CUDA 13.0 only (docker/ray-llm/Dockerfile: "ray-llm supports
# Python 3.12 only", CUDA_CODE=cu130; tags from ci/ray_ci/docker_container.py: VERSION[-extra]-py312-cu130).
# Override with `pulumi config set gpt-oss-ops:image REGISTRY/IMAGE:TAG`, e.g. the project's own image
# built from app/Dockerfile, which bakes in the tiktoken encodings. infra/image.py checks the reference.
RAY_VERSION = "2.60.0"
DEFAULT_IMAGE = f"rayproject/ray-llm:{RAY_VERSION}-py312-cu130"
# The user Ray's (and Anyscale's) images run as: `ray`, uid 1000, group `users` (gid 100). Host directories
# the container writes (Ray's temp dir, the weights) are created for it.
IMAGE_USER = (1000, 100)
DEFAULT_VPC_CIDR = "10.42.0.0/16"


@dataclass(frozen=True)
class InfraOptions:
    """What the stack needs beyond the spec.

    api_key / hub_token are Pulumi secrets (Outputs) when the operator sets them with
    `pulumi config set --secret`; the stack then stores them as SSM SecureString parameters. When unset, the
    parameters are expected to exist already (`aws ssm put-parameter`); either way nodes read them at boot.
    """

    image: str = DEFAULT_IMAGE
    image_check: bool = True  # ask the image's registry whether the tag exists (imageCheck: false skips it)
    key_name: str | None = None
    allow_unlisted_region: bool = False
    vpc_cidr: str = DEFAULT_VPC_CIDR
    api_key: Any = None
    hub_token: Any = None
    ray_token: Any = None


_ECR = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/(?P<repo>[^:@]+)")


def ecr_repository_arn(image: str) -> str | None:
    """The ECR repository ARN of an image reference, or None for other registries (the nodes then need pull
    rights on exactly that repository)."""
    m = _ECR.match(image)
    if not m:
        return None
    partition = "aws-cn" if m.group("cn") else "aws"
    return f"arn:{partition}:ecr:{m.group('region')}:{m.group('account')}:repository/{m.group('repo')}"
