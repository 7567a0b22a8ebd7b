"""Bad input is refused before anything is created, with a message naming the field and the fix."""

from __future__ import annotations

import textwrap

import pytest

from ops.spec import SpecError, parse_set, resolve

# (id, preset, flags, field, words in the message, words in the fix)
CASES = [
    ("unknown-model", None, {"model": "gpt-oss-7b"}, "model", "unknown model 'gpt-oss-7b'", "gpt-oss-20b"),
    ("unknown-model-typo", None, {"model": "gpt-oss-20"}, "model", "unknown model", "did you mean 'gpt-oss-20b'"),
    ("unknown-accelerator", "gpt-oss-20b", {"accelerator": "T4"}, "accelerator", "unknown accelerator 'T4'", "L4"),
    ("accelerator-typo", "gpt-oss-20b", {"accelerator": "L40"}, "accelerator", "unknown accelerator", "did you mean 'L40S'"),
    ("tp-not-dividing-gpus", "gpt-oss-120b", {"gpus_per_replica": 3}, "tensor_parallel_size",
     "does not divide gpus_per_replica 3", "multiple of 2"),
    ("gpus-not-tp-times-pp", "gpt-oss-120b", {"gpus_per_replica": 4}, "gpus_per_replica",
     "!= tensor_parallel_size 2", "set gpus_per_replica to 2"),
    ("tp-not-dividing-heads", "gpt-oss-120b", {"tensor_parallel_size": 3}, "tensor_parallel_size",
     "does not divide gpt-oss-120b's 64 attention heads", "power of two"),
    ("tp-zero", "gpt-oss-20b", {"tensor_parallel_size": 0}, "tensor_parallel_size", "out of range", "greater than or equal to 1"),
    ("pp-over-layers", "gpt-oss-20b", {"pipeline_parallel_size": 32, "gpus_per_replica": 32}, "pipeline_parallel_size",
     "more than gpt-oss-20b's 24 layers", "at most 24"),
    ("120b-on-one-l4", "gpt-oss-120b", {"accelerator": "L4", "tensor_parallel_size": 1}, "accelerator",
     "GiB of weights per GPU", "tensor_parallel_size"),
    ("120b-on-one-l40s", "gpt-oss-120b", {"tensor_parallel_size": 1}, "accelerator", "at utilisation 0.92 leaves 40.8 GiB per GPU",
     "tensor_parallel_size 2"),
    ("20b-low-utilisation", "gpt-oss-20b", {"gpu_memory_utilization": 0.5}, "accelerator", "utilisation 0.5",
     "tensor_parallel_size 2"),
    ("max-model-len-zero", "gpt-oss-20b", {"max_model_len": 0}, "max_model_len", "0 is not a context length", "positive"),
    ("max-model-len-negative", "gpt-oss-20b", {"max_model_len": -5}, "max_model_len", "-5 is not a context length", "positive"),
    ("max-model-len-over-limit", "gpt-oss-20b", {"max_model_len": 262144}, "max_model_len",
     "above gpt-oss-20b's limit of 131,072", "max_model_len <= 131072"),
    ("max-model-len-text", "gpt-oss-20b", {"max_model_len": "32k"}, "max_model_len", "'32k' is not a whole number", "digits"),
    ("min-over-max-replicas", "gpt-oss-20b", {"replicas": {"min": 3, "max": 2}}, "replicas",
     "min (3) is greater than max (2)", "replicas.min <= replicas.max"),
    ("max-replicas-zero", "gpt-oss-20b", {"replicas": {"min": 0, "max": 0}}, "replicas.max", "out of range", "greater than or equal to 1"),
    ("negative-min-replicas", "gpt-oss-20b", {"replicas": {"min": -1}}, "replicas.min", "out of range", "greater than or equal to 0"),
    ("stream-batching-interval-negative", "gpt-oss-20b", {"stream_batching_interval_ms": -1},
     "stream_batching_interval_ms", "out of range", "greater than or equal to 0"),
    ("unknown-reasoning-effort", "gpt-oss-20b", {"reasoning_effort": "max"}, "reasoning_effort", "'max' is not allowed",
     "'low', 'medium' or 'high'"),
    ("reasoning-effort-case", "gpt-oss-20b", {"reasoning_effort": "Low"}, "reasoning_effort", "'Low' is not allowed", "'low'"),
    ("instance-wrong-gpu", "gpt-oss-20b", {"aws": {"instance_type": "g5.xlarge"}}, "aws.instance_type",
     "g5.xlarge carries A10G GPUs, not L4", "accelerator: A10G"),
    ("instance-too-few-gpus", "gpt-oss-120b", {"aws": {"instance_type": "g6e.xlarge"}}, "aws.instance_type",
     "has 1 GPU(s) but one replica needs 2", "g6e.12xlarge"),
    ("instance-not-gpu", "gpt-oss-20b", {"aws": {"instance_type": "m5.large"}}, "aws.instance_type",
     "not a GPU instance type in the catalog", "g6.xlarge"),
    ("world-open-ipv4", "gpt-oss-20b", {"network": {"allow_cidrs": ["0.0.0.0/0"]}}, "network.allow_cidrs",
     "0.0.0.0/0 opens the endpoint to the whole internet", "network.allow_world: true"),
    ("world-open-ipv6", "gpt-oss-20b", {"network": {"allow_cidrs": ["203.0.113.0/24", "::/0"]}}, "network.allow_cidrs",
     "::/0 opens the endpoint", "allow_world"),
    ("bad-cidr", "gpt-oss-20b", {"network": {"allow_cidrs": ["10.0.0.300/24"]}}, "network.allow_cidrs",
     "'10.0.0.300/24' is not a CIDR", "203.0.113.0/24"),
    ("public-endpoint-empty-allowlist", "gpt-oss-20b", {"network": {"public_endpoint": True}}, "network.allow_cidrs",
     "public endpoint with an empty allow-list", "network.allow_cidrs"),
    ("tls-without-cert", "gpt-oss-20b", {"network": {"tls": True, "allow_cidrs": ["203.0.113.0/24"]}},
     "network.certificate_arn", "TLS needs an ACM certificate", "certificate_arn"),
    ("ssh-mode", "gpt-oss-20b", {"network": {"ssh": "password"}}, "network.ssh", "'password' is not allowed", "'ssm'"),
    ("gpu-memory-utilisation-over-1", "gpt-oss-20b", {"gpu_memory_utilization": 1.5}, "gpu_memory_utilization",
     "1.5 is not a fraction", "(0, 1]"),
    ("unknown-target", "gpt-oss-20b", {"target": "kubernetes"}, "target", "'kubernetes' is not allowed", "'local', 'cluster' or 'anyscale'"),
    ("unknown-field", None, {"max_model_length": 4096}, "max_model_length", "is not a spec field", "did you mean 'max_model_len'"),
    ("unknown-nested-field", "gpt-oss-20b", {"replicas": {"maximum": 3}}, "replicas.maximum", "is not a spec field", "remove it"),
    ("real-model-on-cpu", None, {"model": "gpt-oss-20b", "accelerator": "CPU"}, "accelerator",
     "gpt-oss-20b needs a GPU", "model: tiny"),
    ("anyscale-on-cpu", None, {"target": "anyscale"}, "accelerator", "Anyscale target serves on GPUs", "L4"),
    ("bad-region", "gpt-oss-20b", {"aws": {"region": "us-east"}}, "aws.region", "'us-east' is not an AWS region", "us-east-1"),
    ("reserved-tag", "gpt-oss-20b", {"tags": {"stack": "mine"}}, "tags", "tag 'stack' is set by gpt-oss-ops", "owner, ttl_hours"),
    ("negative-ttl", "gpt-oss-20b", {"ttl_hours": -1}, "ttl_hours", "out of range", "greater than 0"),
    ("bad-port", "gpt-oss-20b", {"port": 70000}, "port", "out of range", "less than or equal to 65535"),
    ("bad-name", "gpt-oss-20b", {"name": "My Service"}, "name", "'My Service' is not a valid name", "lower-case"),
    ("bad-model-id", "gpt-oss-20b", {"model_id": "my gpt"}, "model_id", "not a usable served model id", "my-gpt-oss"),
    ("bad-s3-source", "gpt-oss-20b", {"model_source": "s3://UPPER_case/x"}, "model_source", "is not an S3 path", "s3://BUCKET/PREFIX"),
    ("http-source", "gpt-oss-20b", {"model_source": "https://example.com/w"}, "model_source",
     "only s3:// and gs:// URLs", "Hugging Face id"),
    ("bad-api-key-env", "gpt-oss-20b", {"auth": {"api_key_env": "MY-KEY"}}, "auth.api_key_env",
     "not an environment variable name", "GPT_OSS_API_KEY"),
    ("bool-garbage", "gpt-oss-20b", {"aws": {"spot": "sometimes"}}, "aws.spot", "not true or false", "true or false"),
    ("unknown-preset", "gpt-oss-70b", {}, "preset", "unknown preset 'gpt-oss-70b'", "gpt-oss-20b"),
]


@pytest.mark.parametrize("case_id,preset,flags,field,message,fix", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_names_field_and_fix(case_id, preset, flags, field, message, fix):
    with pytest.raises(SpecError) as exc:
        resolve(preset=preset, flags=flags)
    problems = exc.value.problems
    assert problems, "a SpecError must carry at least one problem"
    p = next((p for p in problems if p.field == field), None)
    assert p is not None, f"no problem for field {field!r}; got {[str(p) for p in problems]}"
    assert message in p.message, p.message
    assert fix in p.fix, p.fix
    # The rendered error (what users see) carries the field, the cause and the fix.
    text = str(exc.value)
    assert field in text and message in text and "Fix:" in text


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


def write(tmp_path, text):
    f = tmp_path / "stack.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def test_malformed_yaml_reports_line_and_column(tmp_path):
    f = write(tmp_path, """\
        model: gpt-oss-20b
        accelerator: L4
        replicas:
          min: 1
         max: 2
        """)
    with pytest.raises(SpecError) as exc:
        resolve(file=f)
    p = exc.value.problems[0]
    assert p.field == "file"
    assert "malformed YAML at line 5, column 2" in p.message
    assert "indentation" in p.fix


def test_unclosed_quote_reports_position(tmp_path):
    f = write(tmp_path, 'model: "gpt-oss-20b\naccelerator: L4\n')
    with pytest.raises(SpecError) as exc:
        resolve(file=f)
    assert "malformed YAML at line" in exc.value.problems[0].message


def test_top_level_list_is_refused(tmp_path):
    f = write(tmp_path, "- model: gpt-oss-20b\n")
    with pytest.raises(SpecError) as exc:
        resolve(file=f)
    assert "the top level is a list, not a mapping" in exc.value.problems[0].message


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as exc:
        resolve(file=tmp_path / "nope.yaml")
    assert "does not exist" in exc.value.problems[0].message


def test_file_errors_name_the_file(tmp_path):
    f = write(tmp_path, "preset: gpt-oss-20b\nmax_model_len: 0\n")
    with pytest.raises(SpecError) as exc:
        resolve(file=f)
    assert str(f) in str(exc.value)
    assert exc.value.problems[0].field == "max_model_len"


def test_set_without_equals():
    with pytest.raises(SpecError) as exc:
        parse_set(["replicas.max"])
    assert "has no '='" in exc.value.problems[0].message
    assert "--set field=value" in exc.value.problems[0].fix


def test_world_allowed_with_explicit_override():
    spec = resolve(preset="gpt-oss-20b", flags={"network": {"allow_cidrs": ["0.0.0.0/0"], "allow_world": True}}).spec
    assert spec.network.allow_cidrs == ["0.0.0.0/0"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(SpecError) as exc:
        resolve(preset="gpt-oss-20b", flags={"max_model_len": 0, "reasoning_effort": "max", "port": 0})
    fields = {p.field for p in exc.value.problems}
    assert {"max_model_len", "reasoning_effort", "port"} <= fields


def test_context_the_kv_cache_cannot_hold():
    """Weights fit but one max_model_len request does not: find such a utilisation with the memory model
    itself (so the case stays valid as the model is calibrated) and check the spec refuses it."""
    from ops import capacity, catalog

    m, acc = catalog.model("gpt-oss-20b"), catalog.accelerator("L4")
    util = next(u / 100 for u in range(50, 100)
                if "cannot hold one" in capacity.check_fit(m, acc, tp=1, max_model_len=131072, util=u / 100).reason)
    with pytest.raises(SpecError) as exc:
        resolve(preset="gpt-oss-20b", flags={"max_model_len": 131072, "gpu_memory_utilization": util})
    p = exc.value.problems[0]
    assert "cannot hold one 131,072-token request" in p.message and "lower max_model_len" in p.fix


def test_engine_args_reach_the_serve_config_and_the_plan(tmp_path):
    from app.llm_config import llm_config_kwargs

    spec = resolve(preset="gpt-oss-20b", flags={"accelerator": "H100", "engine_args": {
        "max_num_batched_tokens": 16384, "max_cudagraph_capture_size": 512}}).spec
    kw = llm_config_kwargs(spec, model_source="x", encodings_dir=None)["engine_kwargs"]
    assert kw["max_num_batched_tokens"] == 16384 and kw["max_cudagraph_capture_size"] == 512
    f = tmp_path / "stack.yaml"
    f.write_text("preset: gpt-oss-20b\naccelerator: H100\nengine_args: {max_num_batched_tokens: 16384}\n")
    from ops.cli.plan_cmd import _spec_fields

    assert _spec_fields(None, f, None, None, None, None, None, None)["max_num_batched_tokens"] == 16384


@pytest.mark.parametrize("args,field,message,fix", [
    ({"max_num_batched_tokenz": 8192}, "engine_args.max_num_batched_tokenz", "not an engine argument of vLLM 0.29",
     "vllm serve --help"),
    ({"max_model_len": 8192}, "engine_args.max_model_len", "set by the spec itself", "spec field max_model_len"),
])
def test_engine_args_the_release_does_not_accept_are_refused_before_deploy(args, field, message, fix):
    with pytest.raises(SpecError) as e:
        resolve(preset="gpt-oss-20b", flags={"engine_args": args})
    p = e.value.problems[0]
    assert p.field == field and message in p.message and fix in p.fix


def test_engine_arg_of_a_later_release_names_the_release():
    from ops import vllm_releases

    why, fix = vllm_releases.refusal("stream_interval", "0.11.0")
    assert "not an engine argument of vLLM 0.11.0" in why
    assert "vLLM 0.14.1 or later" in fix
    assert vllm_releases.refusal("stream_interval", "0.29.0") is None
