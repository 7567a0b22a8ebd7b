"""Sizes and costs derived from the spec: root volumes, worker counts, the hourly estimate.

Pure functions of a validated DeploymentSpec and the catalog, so the stack, the bad-input checks and the
tests agree on one number each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ops import catalog
from ops.spec import DeploymentSpec

# Root volume parts, in GiB. The Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) ships a 75 GiB
# root snapshot (the AMI's block device mapping; a launch with less is refused by EC2).
AMI_ROOT_GIB = 75
# The serving image unpacked (CUDA runtime, torch, vLLM, Ray): about 25 GiB; rounded up.
IMAGE_GIB = 30
# Logs, Ray's object spilling and temp files, the next image during an upgrade.
HEADROOM_GIB = 20


def weights_on_instance_store(spec: DeploymentSpec) -> bool:
    """Whether the workers keep the weights on their NVMe instance store: the boot script puts them there
    whenever the Deep Learning AMI has mounted one (/opt/dlami/nvme), so true for the DLAMI (no aws.ami_id)
    on an instance type whose instance store holds the checkpoint. A custom AMI may not mount it: the root
    volume then holds the weights."""
    it = spec.instance_type
    gb = spec.model_info.checkpoint_gib * 1.1 * 1.0737  # GiB -> GB, with 10% for partial files
    return bool(it and spec.aws.ami_id is None and it.instance_store_gb >= gb)


def min_root_gib(spec: DeploymentSpec) -> int:
    """The least a worker's root volume can be: AMI + serving image (+ the weights the boot downloads, which is
    only what vLLM loads, when there is no instance store to hold them)."""
    weights = 0.0 if weights_on_instance_store(spec) else spec.model_info.checkpoint_gib
    return math.ceil(AMI_ROOT_GIB + IMAGE_GIB + weights)


def worker_root_gib(spec: DeploymentSpec) -> int:
    """The spec's size when set, else the minimum + headroom, rounded up to a multiple of 10 GiB."""
    if spec.aws.root_volume_gib is not None:
        return spec.aws.root_volume_gib
    return int(math.ceil((min_root_gib(spec) + HEADROOM_GIB) / 10) * 10)


def head_root_gib() -> int:
    """The head holds the image but no weights (it carries no GPU work)."""
    return AMI_ROOT_GIB + IMAGE_GIB + HEADROOM_GIB


@dataclass(frozen=True)
class WorkerCounts:
    """GPU worker instances for the spec's replica bounds: replicas x gpus_per_replica / GPUs per instance."""

    min: int
    desired: int
    max: int
    replicas_per_instance: int


def workers_for(replicas: int, spec: DeploymentSpec, it: catalog.InstanceType) -> int:
    return math.ceil(replicas * (spec.gpus_per_replica or 1) / it.replica_slots)


def worker_counts(spec: DeploymentSpec, it: catalog.InstanceType) -> WorkerCounts:
    """min from replicas.min, max from replicas.max; desired = max, because no Ray autoscaler grows the group:
    Ray Serve scales replicas between min and max only on GPUs that already exist."""
    lo, hi = workers_for(spec.replicas.min, spec, it), workers_for(spec.replicas.max, spec, it)
    return WorkerCounts(min=lo, desired=hi, max=hi,
                        replicas_per_instance=max(1, it.replica_slots // (spec.gpus_per_replica or 1)))


def head_usd_per_hour(head_type: str) -> float | None:
    if head_type == catalog.HEAD_INSTANCE_TYPE:
        return catalog.HEAD_USD_PER_HOUR
    it = catalog.INSTANCE_TYPES.get(head_type)
    return it.usd_per_hour if it else None


@dataclass(frozen=True)
class CostEstimate:
    usd_per_hour: float | None
    head: float | None
    workers: float
    worker_count: int
    basis: str


def estimate(spec: DeploymentSpec, it: catalog.InstanceType) -> CostEstimate:
    """On-demand $/hour of the instances at desired capacity (catalog prices; spot only lowers it)."""
    counts = worker_counts(spec, it)
    head = head_usd_per_hour(spec.aws.head_instance_type)
    workers = round(counts.desired * it.usd_per_hour, 4)
    total = round(head + workers, 4) if head is not None else None
    basis = (f"on-demand {catalog.PRICE_REGION} prices as of {catalog.PRICE_AS_OF} ({catalog.PRICE_SOURCE}): "
             f"head {spec.aws.head_instance_type} + {counts.desired} x {it.name}; excludes EBS, NAT gateway, "
             "load balancer and data transfer")
    return CostEstimate(total, head, workers, counts.desired, basis)


def spot_alternatives(it: catalog.InstanceType) -> list[str]:
    """Instance types that can stand in for `it` in a spot pool: same GPU kind and count, cheapest first.

    Same GPU count keeps the worker arithmetic right whichever type the pool hands out."""
    same = [i.name for i in catalog.instances_for(it.accelerator, it.gpus) if i.gpus == it.gpus]
    return [it.name] + [n for n in same if n != it.name][:2]
