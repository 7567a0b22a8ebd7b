"""Presets equal the documented configurations; catalog figures match the real model configs."""

from __future__ import annotations

import pytest

from ops import catalog
from ops.spec import resolve


def test_20b_preset_is_the_documented_configuration():
    spec = resolve(preset="gpt-oss-20b").spec
    assert (spec.model, spec.accelerator, spec.max_model_len) == ("gpt-oss-20b", "L4", 32768)
    assert (spec.replicas.min, spec.replicas.max) == (1, 2)
    assert spec.tensor_parallel_size == 1 and spec.gpus_per_replica == 1
    assert spec.resolved_model_source == "openai/gpt-oss-20b"
    assert spec.instance_type.name == "g6.xlarge"  # cheapest L4 instance
    assert spec.attention_backend == "TRITON_ATTN"  # L4 has no FlashAttention 3 sinks


@pytest.mark.parametrize("accelerator", ["L40S", "A100-40G"])
def test_120b_preset_is_the_documented_configuration(accelerator):
    spec = resolve(preset="gpt-oss-120b", flags={"accelerator": accelerator}).spec
    assert (spec.model, spec.max_model_len, spec.tensor_parallel_size) == ("gpt-oss-120b", 32768, 2)
    assert (spec.replicas.min, spec.replicas.max) == (1, 2)
    assert spec.gpus_per_replica == 2
    it = spec.instance_type
    assert it.accelerator == accelerator and it.gpus >= 2


def test_tiny_is_the_embedded_default():
    r = resolve()
    assert (r.spec.model, r.spec.accelerator, r.spec.target.value) == ("tiny", "CPU", "local")
    assert r.provenance["model"] == "preset:tiny"
    assert r.spec.instance_type is None and r.spec.attention_backend is None


def test_modelscope_mirror():
    spec = resolve(preset="gpt-oss-20b", flags={"use_modelscope": True}).spec
    assert spec.resolved_model_source == "openai-mirror/gpt-oss-20b"


def test_layers_resolve_in_order(tmp_path):
    f = tmp_path / "stack.yaml"
    f.write_text("preset: gpt-oss-20b\nmax_model_len: 16384\nreplicas: {max: 3}\nowner: sre-team\n")
    r = resolve(file=f, flags={"max_model_len": 8192})
    assert r.spec.max_model_len == 8192 and r.provenance["max_model_len"] == "flag:--max-model-len"
    assert r.spec.replicas.max == 3 and r.provenance["replicas.max"] == f"file:{f}"
    assert r.spec.replicas.min == 1 and r.provenance["replicas.min"] == "preset:gpt-oss-20b"
    assert r.spec.owner == "sre-team"
    # presets are data: resolving never changes them
    assert catalog.PRESETS["gpt-oss-20b"]["replicas"] == {"min": 1, "max": 2}


def test_hopper_keeps_default_attention():
    spec = resolve(preset="gpt-oss-120b", flags={"accelerator": "H100", "tensor_parallel_size": 1}).spec
    assert spec.attention_backend is None
    assert catalog.accelerator("H100").fa3_sinks and not catalog.accelerator("L40S").fa3_sinks


ARCH_FIELDS = ["num_hidden_layers", "num_local_experts", "num_experts_per_tok", "num_attention_heads",
               "num_key_value_heads", "head_dim", "hidden_size", "intermediate_size", "vocab_size",
               "sliding_window", "max_position_embeddings"]

# gpt-oss-20b's config.json differs from the 120b defaults only in depth and expert count.
CONFIG_20B_OVERRIDES = {"num_hidden_layers": 24, "num_local_experts": 32}


@pytest.mark.parametrize("key,overrides", [("gpt-oss-120b", {}), ("gpt-oss-20b", CONFIG_20B_OVERRIDES)])
def test_catalog_matches_transformers_gpt_oss_config(key, overrides):
    import transformers
    cfg = transformers.GptOssConfig(**overrides)
    m = catalog.MODELS[key]
    for field in ARCH_FIELDS:
        assert getattr(m, field) == getattr(cfg, field), field
    assert list(m.layer_types) == list(cfg.layer_types)
    assert m.full_attention_layers == m.sliding_attention_layers == m.num_hidden_layers // 2


def test_model_card_figures():
    m20, m120 = catalog.MODELS["gpt-oss-20b"], catalog.MODELS["gpt-oss-120b"]
    assert (round(m20.total_params_b), m20.active_params_b) == (21, 3.6)
    assert (round(m120.total_params_b), m120.active_params_b) == (117, 5.1)
    assert m20.min_vram_gb == 16 and m120.weights_gib < catalog.accelerator("H100").memory_gib


def test_tiny_checkpoint_has_the_real_architecture(tmp_path, encodings_dir):
    from ops import tiny_model

    d = tiny_model.ensure(encodings_dir, tmp_path / "tiny")
    import json

    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["GptOssForCausalLM"] and cfg["model_type"] == "gpt_oss"
    # gpt-oss alternates sliding-window and full attention, starting with a sliding layer, as in the 20b's config
    n = cfg["num_hidden_layers"]
    assert cfg["head_dim"] == 64 and n >= 2
    assert cfg["layer_types"] == ["sliding_attention", "full_attention"] * (n // 2) + ["sliding_attention"] * (n % 2)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    assert tok.convert_tokens_to_ids(["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>"]) == \
        [200006, 200005, 200008, 200007, 200002]
    # idempotent: a second call reuses the cached build
    mtime = (d / "model.safetensors").stat().st_mtime_ns
    assert tiny_model.ensure(encodings_dir, d) == d and (d / "model.safetensors").stat().st_mtime_ns == mtime


def test_instance_catalog_is_consistent():
    for it in catalog.INSTANCE_TYPES.values():
        assert it.accelerator in catalog.ACCELERATORS and it.usd_per_hour > 0 and it.vcpus > 0
        # GPU instances hold at least one GPU; CPU ones (the m7i family, for the tiny model) none
        assert (it.gpus == 0) if it.accelerator == "CPU" else (it.gpus >= 1), it
    for fam, acc in [("g5.", "A10G"), ("g6.", "L4"), ("g6e.", "L40S"), ("p4d.", "A100-40G"), ("p4de.", "A100-80G"),
                     ("p5.", "H100"), ("p5en.", "H200")]:
        assert any(n.startswith(fam) and i.accelerator == acc for n, i in catalog.INSTANCE_TYPES.items()), fam
    assert catalog.PRICE_SOURCE and catalog.PRICE_AS_OF


def test_120b_on_one_h100_preset_runs_on_the_cheapest_single_h100():
    spec = resolve(preset="120b-h100").spec
    assert (spec.model, spec.accelerator, spec.tensor_parallel_size, spec.max_model_len) == (
        "gpt-oss-120b", "H100", 1, 32768)
    assert spec.instance_type.name == "p5.4xlarge" and spec.attention_backend is None
    from ops.plan import PlanInput, plan

    r = plan(PlanInput(model=spec.model, accelerator=spec.accelerator, max_model_len=spec.max_model_len))
    assert r["fits"] and r["instance_type"] == "p5.4xlarge" and r["max_concurrency"] > 1
