"""ops plan: the report's fields, the instance and cost choice, bad input, and the CLI's JSON and exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ops import capacity, catalog
from ops.cli import app
from ops.errors import OpsError
from ops.plan import PlanError, PlanInput, plan

KEYS = {"weights_gib_per_gpu", "kv_bytes_per_token", "kv_cache_tokens", "max_concurrency", "fits", "instance_type",
        "usd_per_hour", "available_kv_cache_gib", "non_kv_overhead_gib", "vllm_log_line"}


def test_20b_on_l4_fits_on_the_cheapest_l4_instance():
    r = plan(PlanInput(model="20b", accelerator="L4", max_model_len=32768))
    assert KEYS <= set(r)
    assert r["fits"] and r["instance_type"] == "g6.xlarge" and r["usd_per_hour"] == 0.8048
    assert r["gpu_memory_utilization"] == 0.92  # the default of the vLLM modelled (0.29, as Ray pins) when none is given
    assert r["vllm_version"] == "0.29.0"
    # 24 layers x 8 KV heads x 64 x (K and V) x bf16
    assert r["kv_bytes_per_token"] == 24 * 8 * 64 * 2 * 2
    assert r["max_concurrency"] * 32768 == pytest.approx(r["kv_cache_tokens"], abs=1)
    assert r["vllm_log_line"].startswith(f"GPU KV cache size: {r['kv_cache_tokens']:,} tokens")


def test_sliding_window_layers_make_long_contexts_cheaper_than_all_full_attention():
    """Half of gpt-oss's layers keep only a 128-token window, so a 131k request needs a bit more than half the
    blocks of a model with full attention everywhere."""
    m = catalog.model("20b")
    s = capacity.EngineSettings()
    per_req = capacity.blocks_per_request(m, 131072, s)
    full_only = 2 * (131072 // 16)
    assert full_only / 2 < per_req < full_only * 0.55


def test_concurrency_target_picks_the_cheapest_fleet_and_prices_tokens():
    one = plan(PlanInput(model="120b", accelerator="L40S", tensor_parallel_size=2, max_model_len=32768))
    target = int(one["max_concurrency"] * 3) + 1  # needs 4 replicas = 8 L40S
    r = plan(PlanInput(model="120b", accelerator="L40S", tensor_parallel_size=2, max_model_len=32768,
                       concurrency=target, budget_usd_per_hour=20.0, output_tokens_per_s=1000))
    assert r["replicas"] == 4
    # 2 x g6e.12xlarge (4 GPUs, $10.493) beats 1 x g6e.48xlarge (8 GPUs, $30.131) and 4 x g6e.24xlarge
    assert (r["instance_type"], r["instances"]) == ("g6e.12xlarge", 2)
    assert r["usd_per_hour"] == pytest.approx(2 * 10.493)
    assert r["within_budget"] is False
    assert r["usd_per_million_output_tokens"] == pytest.approx(2 * 10.493 / (1000 * 4 * 3600) * 1e6, rel=1e-3)


def test_120b_at_full_context_on_one_h100_does_not_fit_and_says_what_does():
    r = plan(PlanInput(model="120b", accelerator="H100", max_model_len=131072))
    assert not r["fits"]
    assert "lower max_model_len" in r["fix"]
    smaller = int(r["fix"].split("to ")[1].split(" ")[0])
    assert plan(PlanInput(model="120b", accelerator="H100", max_model_len=smaller))["fits"]
    assert not plan(PlanInput(model="120b", accelerator="H100", max_model_len=smaller + 16))["fits"]


def test_fp8_kv_cache_doubles_the_tokens_in_the_same_memory():
    bf16 = plan(PlanInput(model="20b", accelerator="L4", max_model_len=32768, kv_cache_memory_gib=4.0))
    fp8 = plan(PlanInput(model="20b", accelerator="L4", max_model_len=32768, kv_cache_memory_gib=4.0,
                         kv_cache_dtype="fp8"))
    assert abs(fp8["num_gpu_blocks"] - 2 * bf16["num_gpu_blocks"]) <= 1  # floor division of the same memory
    assert fp8["kv_bytes_per_token"] * 2 == bf16["kv_bytes_per_token"]


def test_the_release_decides_whether_120b_at_full_context_fits_one_h100():
    """vllm-project/vllm#27508's configuration: vLLM 0.11 refused it (its profiling sampler kept ~6.5 GiB for
    1,024 sequences); the planner says so for 0.11, names the context that fits, and lets a later release in."""
    args = dict(model="120b", accelerator="H100", max_model_len=131072, gpu_memory_utilization=0.95,
                max_num_batched_tokens=1024)
    old = plan(PlanInput(**args, vllm_version="0.11.0"))
    assert not old["fits"] and "cannot hold one 131,072-token request" in old["reason"]
    assert "lower max_model_len" in old["fix"] and old["vllm_version"] == "0.11.0"
    assert plan(PlanInput(**args, vllm_version="0.24.0"))["fits"]


def test_fewer_cuda_graph_sizes_leave_more_kv_cache_from_the_flag_and_the_preset():
    """vLLM 0.24 takes its CUDA-graph estimate out of the KV budget; capturing up to 256 (35 sizes, not 83) halves
    it for 20b (0.58 -> 0.29 GiB logged on an H100). The flag and a preset's engine_args both reach the plan."""
    args = dict(model="20b", accelerator="H100", max_model_len=32768, vllm_version="0.24.0")
    default, small = plan(PlanInput(**args)), plan(PlanInput(**args, max_cudagraph_capture_size=256))
    assert (default["cudagraph_capture_sizes"], small["cudagraph_capture_sizes"]) == (83, 35)
    assert small["available_kv_cache_gib"] - default["available_kv_cache_gib"] == pytest.approx(0.29, abs=0.005)
    out = CliRunner().invoke(app, ["plan", "--model", "20b", "--accelerator", "H100", "--vllm-version", "0.24.0",
                                   "--max-cudagraph-capture-size", "256", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["available_kv_cache_gib"] == small["available_kv_cache_gib"]


def test_a_plan_at_the_edge_of_the_kv_cache_warns():
    too_long = plan(PlanInput(model="120b", accelerator="H100", max_model_len=131072, vllm_version="0.11.0",
                              gpu_memory_utilization=0.95))
    longest = int(too_long["fix"].split("max_model_len to ")[1].split()[0])  # the longest context that fits
    edge = plan(PlanInput(model="120b", accelerator="H100", max_model_len=longest, vllm_version="0.11.0",
                          gpu_memory_utilization=0.95))
    assert edge["fits"] and edge["warnings"] and "--overhead-gib" in edge["warnings"][0]
    assert plan(PlanInput(model="120b", accelerator="H100", tensor_parallel_size=2,
                          max_model_len=131072))["warnings"] == []
    assert plan(PlanInput(model="20b", accelerator="L4"))["warnings"] == []


def test_unknown_vllm_release_names_the_nearest_modelled_one():
    with pytest.raises(PlanError) as e:
        plan(PlanInput(model="20b", accelerator="H100", vllm_version="0.27.1"))
    assert e.value.field == "vllm_version" and "--vllm-version 0.29.0" in e.value.fix


def test_cpu_plan_uses_the_local_stack_kv_space_and_block_size():
    r = plan(PlanInput(model="tiny", accelerator="CPU", max_model_len=2048))
    assert r["block_size"] == 128 and r["available_kv_cache_gib"] == 1.0
    assert r["instance_type"] is None and r["fits"]


@pytest.mark.parametrize("kwargs,field", [
    ({"model": "gpt-oss-7b"}, "model"),
    ({"accelerator": "TPU"}, "accelerator"),
    ({"tensor_parallel_size": 3}, "tp"),
    ({"max_model_len": 200000}, "max_model_len"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"concurrency": 0}, "concurrency"),
    ({"gpus_per_replica": 3}, "num_gpus"),
    ({"kv_cache_dtype": "int4"}, "kv_cache_dtype"),
])
def test_bad_input_names_the_field_and_the_fix(kwargs, field):
    base = {"model": "20b", "accelerator": "L4"}
    with pytest.raises(PlanError) as e:
        plan(PlanInput(**{**base, **kwargs}))
    assert e.value.field == field and e.value.fix


def test_cli_json_on_stdout_and_exit_codes():
    runner = CliRunner()
    ok = runner.invoke(app, ["plan", "--model", "gpt-oss-20b", "--accelerator", "L4", "--tp", "1",
                             "--max-model-len", "32768", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert KEYS <= set(data) and data["fits"]
    no = runner.invoke(app, ["plan", "--model", "120b", "--accelerator", "L4", "--tp", "1", "--json"])
    assert no.exit_code == 1 and json.loads(no.stdout)["fits"] is False
    bad = runner.invoke(app, ["plan", "--model", "20b", "--accelerator", "L4", "--tp", "3"])
    assert isinstance(bad.exception, OpsError) and "tp" in bad.exception.message


def test_cli_takes_the_preset_and_flags_override_it():
    runner = CliRunner()
    r = json.loads(runner.invoke(app, ["plan", "--preset", "gpt-oss-120b", "--json"]).stdout)
    assert (r["model"], r["accelerator"], r["tensor_parallel_size"]) == ("gpt-oss-120b", "L40S", 2)
    r = json.loads(runner.invoke(app, ["plan", "-p", "120b", "--accelerator", "H100", "--tp", "1",
                                       "--max-model-len", "8192", "--gpu-memory-utilization", "0.95",
                                       "--json"]).stdout)
    assert (r["accelerator"], r["tensor_parallel_size"], r["gpu_memory_utilization"]) == ("H100", 1, 0.95)


def test_check_fit_contract_used_by_the_spec():
    fit = capacity.check_fit(catalog.model("20b"), catalog.accelerator("L4"), tp=1, max_model_len=32768)
    assert fit.fits and fit.reason == "fits" and fit.fix == ""
    no = capacity.check_fit(catalog.model("120b"), catalog.accelerator("L4"), tp=1, max_model_len=32768)
    assert not no.fits and "tensor_parallel_size 4" in no.fix
