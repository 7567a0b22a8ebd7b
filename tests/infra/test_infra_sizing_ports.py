"""Worker arithmetic, root volume sizes and the pinned-port bookkeeping."""

from __future__ import annotations

import math
import re

import pytest

from infra import ports, regions, sizing
from ops import catalog
from ops.spec import resolve


@pytest.mark.parametrize("preset,tp,rmin,rmax,instance", [
    ("gpt-oss-20b", 1, 1, 2, "g6.xlarge"),
    ("gpt-oss-20b", 1, 0, 8, "g6.12xlarge"),
    ("gpt-oss-20b", 2, 3, 5, "g6.12xlarge"),
    ("gpt-oss-120b", 2, 1, 3, "g6e.12xlarge"),
    ("gpt-oss-120b", 4, 2, 2, "g6e.48xlarge"),
])
def test_workers_are_replicas_times_gpus_over_instance_gpus(preset, tp, rmin, rmax, instance):
    spec = resolve(preset=preset, flags={"tensor_parallel_size": tp, "replicas": {"min": rmin, "max": rmax},
                                         "aws": {"instance_type": instance}}).spec
    it = catalog.INSTANCE_TYPES[instance]
    c = sizing.worker_counts(spec, it)
    assert c.min == math.ceil(rmin * tp / it.gpus)
    assert c.max == c.desired == math.ceil(rmax * tp / it.gpus)
    assert c.replicas_per_instance == it.gpus // tp


def test_default_instances_are_the_cheapest_that_hold_a_replica():
    assert resolve(preset="gpt-oss-20b").spec.instance_type.name == "g6.xlarge"  # one L4
    it = resolve(preset="gpt-oss-120b").spec.instance_type
    assert it.accelerator == "L40S" and it.gpus >= 2


def test_root_volume_holds_the_weights_only_where_no_instance_store_does():
    for preset in ("gpt-oss-20b", "gpt-oss-120b"):
        spec = resolve(preset=preset).spec
        size = sizing.worker_root_gib(spec)
        assert size >= sizing.min_root_gib(spec) + sizing.HEADROOM_GIB and size % 10 == 0
        # Every catalog GPU instance has NVMe instance store, where the DLAMI mounts it and the weights go.
        assert sizing.weights_on_instance_store(spec)
        assert sizing.min_root_gib(spec) == sizing.AMI_ROOT_GIB + sizing.IMAGE_GIB
        # A custom AMI may not mount it: the root volume holds the weights then.
        custom = resolve(preset=preset, flags={"aws": {"ami_id": "ami-0123456789abcdef0"}}).spec
        assert not sizing.weights_on_instance_store(custom)
        assert sizing.min_root_gib(custom) >= spec.model_info.checkpoint_gib + sizing.AMI_ROOT_GIB + sizing.IMAGE_GIB
    spec = resolve(preset="gpt-oss-20b", flags={"aws": {"root_volume_gib": 500}}).spec
    assert sizing.worker_root_gib(spec) == 500


def test_spot_alternatives_keep_the_gpu_kind_and_count():
    for name, it in catalog.INSTANCE_TYPES.items():
        alts = sizing.spot_alternatives(it)
        assert alts[0] == name
        assert all(catalog.INSTANCE_TYPES[a].accelerator == it.accelerator for a in alts)
        assert all(catalog.INSTANCE_TYPES[a].gpus == it.gpus for a in alts)


def test_every_pinned_port_is_named_by_a_cluster_rule():
    rules = ports.cluster_rules(8000)
    for head in (True, False):
        args = ports.ray_start_args(head=head, head_address="10.0.0.1")
        pinned = [int(m.group(1)) for a in args if (m := re.fullmatch(r"--[a-z-]+-port=(\d+)", a))]
        pinned += [int(a.split(":")[-1]) for a in args if a.startswith("--address=")]
        assert pinned
        for port in pinned:
            if port == ports.DASHBOARD:
                # The dashboard (and Ray's job API) listens on the head's loopback: no rule opens it.
                assert head and "--dashboard-host=127.0.0.1" in args
                assert not any(r.from_port <= port <= r.to_port for r in rules)
                continue
            assert any(r.from_port <= port <= r.to_port for r in rules), port
    assert len({r.name for r in rules}) == len(rules)


def test_every_catalog_gpu_family_has_regions():
    for name in catalog.INSTANCE_TYPES:
        assert regions.regions_for(name), name
    assert regions.offered("g6.xlarge", "us-east-1") and not regions.offered("g6.xlarge", "sa-east-1")
