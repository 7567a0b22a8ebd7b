"""Stack configuration -> spec: structured keys (as `pulumi config set --path` stores them), a spec file,
both together, and the AWS-only settings."""

from __future__ import annotations

import json

import pytest

from infra_specs import FULL_SPEC_YAML
from infra.config import spec_from_values
from ops.spec import SpecError


def test_model_alone_means_its_preset():
    resolved, options = spec_from_values({"model": "gpt-oss-120b"})
    spec = resolved.spec
    assert (spec.accelerator, spec.tensor_parallel_size, spec.target.value) == ("L40S", 2, "cluster")
    assert resolved.provenance["accelerator"] == "preset:gpt-oss-120b"
    assert resolved.provenance["model"] == "pulumi-config"
    assert options.image.startswith("rayproject/ray-llm:2.60.0") and options.key_name is None


def test_structured_path_keys():
    # `pulumi config set --path 'gpt-oss-ops:network.allow_cidrs[0]' 203.0.113.7/32` stores the object as JSON;
    # scalars set with --path arrive as text.
    values = {"preset": "gpt-oss-20b", "network": json.dumps({"allow_cidrs": ["203.0.113.7/32"], "public_endpoint": "true"}),
              "replicas": json.dumps({"min": "2", "max": "3"}), "owner": "ml-platform", "ttl_hours": "12",
              "max_model_len": "16384", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/gpt-oss:1",
              "keyName": "ops", "vpcCidr": "10.60.0.0/16"}
    resolved, options = spec_from_values(values)
    spec = resolved.spec
    assert spec.network.allow_cidrs == ["203.0.113.7/32"] and spec.network.public_endpoint is True
    assert (spec.replicas.min, spec.replicas.max, spec.max_model_len) == (2, 3, 16384)
    assert spec.resource_tags("dev")["ttl"] == "12h"
    assert resolved.provenance["network.allow_cidrs"] == "pulumi-config"
    assert (options.image, options.key_name, options.vpc_cidr) == (values["image"], "ops", "10.60.0.0/16")


def test_spec_file_with_config_on_top(tmp_path):
    (tmp_path / "spec.yaml").write_text(FULL_SPEC_YAML)
    resolved, _ = spec_from_values({"specFile": "spec.yaml", "aws": json.dumps({"region": "us-east-1"})},
                                   base_dir=tmp_path)
    spec = resolved.spec
    assert spec.aws.region == "us-east-1"  # the config key wins...
    assert spec.aws.spot is True and spec.network.tls  # ...and the file's other aws/network values stay
    assert spec.owner == "ml-platform" and spec.replicas.max == 4
    assert resolved.provenance["aws.region"] == "file:spec.yaml + pulumi-config"


def test_missing_spec_file_names_the_file(tmp_path):
    with pytest.raises(SpecError) as err:
        spec_from_values({"specFile": "nope.yaml"}, base_dir=tmp_path)
    assert err.value.problems[0].field == "file" and "nope.yaml" in str(err.value)


def test_secrets_pass_through_untouched():
    marker = object()
    _, options = spec_from_values({"preset": "gpt-oss-20b"}, secrets={"apiKey": marker})
    assert options.api_key is marker and options.hub_token is None


def test_bad_structured_value_names_the_field():
    with pytest.raises(SpecError) as err:
        spec_from_values({"preset": "gpt-oss-20b", "replicas": json.dumps({"min": 3, "max": 1})})
    assert err.value.problems[0].field == "replicas" and "Fix" in str(err.value)
