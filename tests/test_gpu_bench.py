"""The GPU bench's pieces that run without a GPU: the weightless checkpoint it writes, the flags it gives vLLM,
and the start-up lines it reads back. (The bench itself ran on a GPU: bench/results/gpu.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from app.llm_config import engine_cli_args, llm_config_kwargs
from ops import catalog, model_config, vllm_log
from ops.spec import resolve

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared" / "gpu" / "models"  # the published config.json files, beside the project


def _script(name: str):
    """bench/gpu/NAME.py as a module (the bench's scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"gpu_bench_{name}", ROOT / "bench" / "gpu" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bench():
    return _script("run")


@pytest.mark.parametrize("key", ["gpt-oss-20b", "gpt-oss-120b"])
def test_config_from_the_catalog_is_the_published_one(key):
    published = json.loads((PUBLISHED / key / "config.json").read_text())
    published.pop("transformers_version")
    assert model_config.hf_config(catalog.MODELS[key]) == published


def test_config_is_what_transformers_reads_as_gpt_oss(tmp_path):
    from transformers import AutoConfig

    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    out = model_config.write_dummy_checkpoint(catalog.MODELS["gpt-oss-120b"], tmp_path / "ckpt", tok)
    cfg = AutoConfig.from_pretrained(out)
    assert type(cfg).__name__ == "GptOssConfig"
    assert cfg.quantization_config["quant_method"] == "mxfp4"
    assert cfg.num_hidden_layers == 36 and cfg.num_local_experts == 128 and cfg.layer_types[:2] == [
        "sliding_attention", "full_attention"]


def _vllm_parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


@pytest.mark.parametrize("preset,acc", [("gpt-oss-20b", "L4"), ("gpt-oss-120b", "L40S"), ("gpt-oss-20b", "H200")])
def test_engine_flags_are_the_serve_configs_engine_arguments(preset, acc):
    """The flags bench/gpu gives `vllm serve` parse (with vLLM's own parser) back to exactly the engine_kwargs
    the Serve config carries for that spec."""
    spec = resolve(preset=preset, flags={"accelerator": acc, "target": "cluster"}).spec
    kw = llm_config_kwargs(spec, model_source="x", encodings_dir=None)["engine_kwargs"]
    ns = _vllm_parser().parse_args(["--model", "x", *engine_cli_args(kw)])
    assert {k: getattr(ns, k) for k in kw} == kw


def test_engine_overrides_reach_vllm_and_unknown_ones_are_refused():
    run = _bench()
    kw = run.engine_kwargs("gpt-oss-120b", "H200", 1, 131072, "defaults",
                           run.parse_overrides(['max_num_batched_tokens=16384',
                                                'compilation_config={"max_cudagraph_capture_size":512}']))
    ns = _vllm_parser().parse_args(["--model", "x", *engine_cli_args(kw)])
    assert ns.max_num_batched_tokens == 16384 and ns.max_model_len == 131072
    assert ns.compilation_config.max_cudagraph_capture_size == 512
    with pytest.raises(SystemExit):
        _vllm_parser().parse_args(["--model", "x", *engine_cli_args({"max_num_batched_tokenz": 1})])


def test_start_up_lines_read_back():
    log = """(EngineCore_DP0 pid=1) INFO 12-01 10:00:00 [gpu_model_runner.py:3380] Model loading took 13.5800 GiB memory and 9.1 seconds
(EngineCore_DP0 pid=1) INFO 12-01 10:00:30 [gpu_worker.py:400] Available KV cache memory: 111.36 GiB
(EngineCore_DP0 pid=1) INFO 12-01 10:00:30 [kv_cache_utils.py:1200] GPU KV cache size: 3,878,626 tokens
(EngineCore_DP0 pid=1) INFO 12-01 10:00:30 [kv_cache_utils.py:1204] Maximum concurrency for 32,768 tokens per request: 118.37x
(EngineCore_DP0 pid=1) INFO 12-01 10:01:30 [gpu_model_runner.py:4000] Graph capturing finished in 63 secs, took 1.03 GiB
INFO 12-01 09:59:00 [scheduler.py:200] Chunked prefill is enabled with max_num_batched_tokens=8192.
"""
    got = vllm_log.parse(log)
    assert got == {"model_loading_gib": 13.58, "available_kv_cache_gib": 111.36, "kv_cache_tokens": 3878626,
                   "max_concurrency_len": 32768, "max_concurrency": 118.37, "cuda_graph_capture_s": 63.0,
                   "cuda_graph_gib": 1.03, "max_num_batched_tokens": 8192}
    assert len(vllm_log.key_lines(log)) == 6


def test_a_level_that_paid_for_triton_compiles_says_so(tmp_path):
    """vLLM's JIT monitor logs each Triton compile after start-up (once per kernel; every compile, with its key,
    under --jit-monitor-verbose, which the bench passes where the release has it): the bench reads what the
    server logged while a level ran into that level's JSON, and the table marks the level."""
    run, table = _bench(), _script("table")
    assert run.observation_flags("0.24.0") == ["--jit-monitor-verbose"]
    assert run.observation_flags("0.11.0") == [] and run.observation_flags(None) == []
    log = tmp_path / "vllm.log"
    log.write_text("(EngineCore pid=1) WARNING 12-06 04:22:25 [jit_monitor.py:106] Triton kernel JIT compilation "
                   "during inference: _topk_forward. This causes a latency spike; consider extending warmup to "
                   "cover this shape/config.\n")
    mark = run.LogMark(log)
    with open(log, "a") as f:
        f.write("(EngineCore pid=1) WARNING 12-06 04:26:36 [jit_monitor.py:98] Triton kernel JIT compilation during "
                "inference: _combined_routing_memset (key=abc).\n(EngineCore pid=1) WARNING 12-06 04:26:37 "
                "[jit_monitor.py:98] Triton autotune/warmup candidate JIT compilation during inference: "
                "define_kernel.<locals>._empty_fn (key=None).\n")
    assert vllm_log.jit_compiles(mark.since()) == ["_combined_routing_memset", "define_kernel.<locals>._empty_fn"]
    assert vllm_log.jit_compiles(log.read_text())[0] == "_topk_forward"
    runs = [{"concurrency": 1, "total_token_throughput_tps": 630.2, "jit_compiles": []},
            {"concurrency": 64, "total_token_throughput_tps": 13014.9, "jit_compiles": ["_topk_forward"]}]
    result = _result(log={}, sweep={"runs": runs})
    text = table.table([result])
    assert "| 630 | | 13,015* |" in text.replace("|  |", "| |") and "Triton compiled kernels" in text


def _fixture_tool():
    return _script("fixture")


def _result(**extra):
    log = ("(EngineCore pid=1) INFO [gpu_model_runner.py:1] Model loading took 64.67 GiB memory and 30 seconds\n"
           "(EngineCore pid=1) INFO [gpu_worker.py:2] Available KV cache memory: 4.10 GiB\n")
    return {"label": "default", "model": "gpt-oss-120b", "accelerator": "H100", "tensor_parallel_size": 1,
            "max_model_len": 131072, "engine": "preset", "engine_kwargs": {"max_model_len": 131072,
                                                                          "max_num_batched_tokens": 16384},
            "command": ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/w/model",
                        "--served-model-name", "gpt-oss-120b", "--max-model-len", "131072", "--load-format", "dummy"],
            "cold_start": False, "measured_at": "2026-12-05T23:00:00+00:00",
            "versions": {"vllm": "0.24.0", "torch": "2.11.0+cu130"},
            "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": "81559", "driver": "580.1"}],
            "torch_memory": {"total_gib": 79.18}, "log_lines": log.splitlines(), **extra}


def test_bench_result_becomes_a_planner_fixture(tmp_path):
    """bench/gpu/fixture.py writes what tests/test_plan_calibration.py reads: the header it requires, the
    engine arguments the run set, and a refusal marked as one."""
    import test_plan_calibration as cal

    tool = _fixture_tool()
    error = ("vLLM exited with 1:\nValueError: To serve at least one request with the model's max seq len (131072), "
             "(4.50 GiB KV cache is needed, which is larger than the available KV cache memory (4.10 GiB). Try ...")
    for extra, refused in (({}, False), ({"error": error}, True)):
        path = tmp_path / tool.fixture_name(_result(**extra))
        path.write_text(tool.fixture_text(_result(**extra), Path("bench/results/gpu/x.json")))
        f = cal.parse(path)
        h = f["head"]
        assert {"source", "gpu", "vllm_version", "model", "accelerator", "max_model_len"} <= set(h)
        assert h["vllm_version"] == "0.24.0" and h["max_num_batched_tokens"] == "16384"
        assert "max_num_seqs" not in h  # vLLM's default applies: the planner knows it per release
        assert "79.18 GiB" in h["gpu"] and h["command"].startswith("vllm serve DIR --served-model-name")
        assert f["model_loading_gib"] == 64.67 and f["available_kv_cache_gib"] == 4.10
        assert (h.get("refused") == "yes") is refused
        assert ("larger than the available KV cache memory" in path.read_text()) is refused
        assert path.name.startswith("gpt-oss-120b_H100_vllm-0.24.0_bench-128k-preset-default")


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "results" / "gpu").rglob("gpu_*.json")),
                         ids=lambda p: str(p.relative_to(ROOT / "bench" / "results" / "gpu")))
def test_every_committed_gpu_result_is_a_calibration_fixture(path):
    """Each committed GPU run's KV-cache figures are a fixture the planner is held to. A run of a configuration
    that already has one (the same run on another machine, under Serve, or with an argument that does not touch
    memory, such as the stream interval) must have logged that fixture's figures."""
    import test_plan_calibration as cal

    tool = _fixture_tool()
    result = json.loads(path.read_text())
    if "refused_by_spec" in result:
        return
    want = tool.run_configuration(result)
    same = [f for f in map(cal.parse, cal.LOGS) if tool.configuration(f["head"]) == want]
    assert same, f"no fixture of this configuration: run `python bench/gpu/fixture.py {path.relative_to(ROOT)}`"
    keys = ("model_loading_gib", "available_kv_cache_gib", "kv_cache_tokens", "max_concurrency")
    for f in same:
        assert {k: f.get(k) for k in keys} == {k: result["log"].get(k) for k in keys}, f["head"]["source"]


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "bench" / "results" / "gpu").rglob("gpu_*.json"))
                                  if "server_config" in json.loads(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT / "bench" / "results" / "gpu")))
def test_the_planner_counts_the_cuda_graphs_each_gpu_run_captured(path):
    """The capture sizes the planner scales vLLM's CUDA-graph estimate by are those the real server ran with
    (its engine config, /server_info): 83 with gpt-oss's default, 35 at max_cudagraph_capture_size=256."""
    from ops.vllm_releases import cudagraph_capture_sizes

    result = json.loads(path.read_text())
    ran = result["server_config"]["compilation_config"]["cudagraph_capture_sizes"]
    budget = result["server_config"]["scheduler_config"]["max_num_batched_tokens"]
    assert cudagraph_capture_sizes(result["engine_kwargs"].get("max_cudagraph_capture_size"), budget) == ran


def test_a_configuration_the_spec_refuses_is_recorded_not_started(tmp_path, capsys):
    """120b at 131,072 tokens on one H100 does not fit (vLLM 0.24 had 4.41 GiB for the KV cache at 32,768 and
    one 131,072-token request needs 4.79): the bench writes the spec's refusal and starts nothing."""
    run = _bench()
    args = run.argparse.Namespace(label=None, tp=1, accelerator="H100", engine="preset", engine_arg=[],
                                  server="vllm", work=str(tmp_path / "work"), out=str(tmp_path))
    result = run.run_one(args, "gpt-oss-120b", 131072)
    assert "cannot hold one 131,072-token request" in result["refused_by_spec"]
    saved = json.loads((tmp_path / "gpu_gpt-oss-120b_H100_tp1_128k_preset_default.json").read_text())
    assert saved["refused_by_spec"] == result["refused_by_spec"] and "startup_s" not in saved
    assert "refused by the spec" in capsys.readouterr().out


def test_a_helper_that_outlives_the_servers_group_is_ended_by_pid():
    """vLLM leaves a helper in a session of its own that keeps GPU memory after the server's process group is
    killed: the bench records the server's tree while it runs and ends what outlived the group (the orphan reaper
    of ops.engine_orphans does the signalling, so only a pid still running the same command line is touched)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = _bench()
    server = subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '307'], "
                               "start_new_session=True); time.sleep(300)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (tree := run.server_tree(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p.title for p in tree.values()] == ["sleep 307"]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    helper = next(iter(tree))
    assert os.path.exists(f"/proc/{helper}")  # in a session of its own: the group's kill missed it
    assert run.reap_leftovers(tree) == [helper]
    assert run.reap_leftovers(tree) == []  # gone (or a zombie of init's): nothing is signalled twice


def test_the_bench_end_to_end_on_vllms_cpu_build(tiny_model_dir, encodings_dir, tmp_path):
    """bench/gpu/run.py as it runs on a GPU, on vLLM's CPU build and the tiny gpt-oss: the server starts with the
    flags, the start-up lines are read back, the warm-up burst and the sweep run, the JSON and log are written,
    and bench/gpu/fixture.py turns the result into a fixture the planner's calibration test reads."""
    import subprocess
    import sys

    import test_plan_calibration as cal

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu" / "run.py"), "--model", "tiny", "--accelerator", "CPU",
         "--engine", "defaults", "--checkpoint", str(tiny_model_dir), "--encodings", str(encodings_dir),
         "--max-model-len", "2048", "--concurrency", "1,2", "--requests-per-level", "1", "--repeats", "3",
         "--input-len", "16", "--output-len", "8", "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_tiny_CPU_tp1_2k_defaults_default.json").read_text())
    assert result["startup_s"] > 0 and result["versions"]["vllm"]
    assert result["log"]["available_kv_cache_gib"] == 1 and result["log"]["max_concurrency_len"] == 2048
    assert result["warmup_burst"]["completed"] == 2 and result["warmup_burst"]["jit_compiles"] == []
    assert "--jit-monitor-verbose" in result["command"]  # vLLM 0.29's CPU build accepts it too
    assert all(r["jit_compiles"] == [] for r in result["sweep"]["runs"])  # no Triton on the CPU backend
    for level in result["sweep"]["runs"]:  # the median of three repeats, each one's figure kept
        assert len(level["repeats_total_tok_s"]) == 3
        assert level["repeats_jit_compiles"] == [0, 0, 0]
        assert sorted(level["repeats_total_tok_s"])[1] == round(level["total_token_throughput_tps"], 1)
    assert [(r["concurrency"], r["completed"], r["output_tokens"]) for r in result["sweep"]["runs"]] == [
        (1, 1, 8), (2, 2, 16)]
    assert (out / "gpu_tiny_CPU_tp1_2k_defaults_default.log").stat().st_size > 0
    tool = _fixture_tool()
    path = tmp_path / tool.fixture_name(result)
    path.write_text(tool.fixture_text(result, Path("x.json")))
    f = cal.parse(path)
    assert f["max_concurrency"] == result["log"]["max_concurrency"] and f["head"]["accelerator"] == "CPU"


def test_the_serve_app_end_to_end_on_vllms_cpu_build(tiny_model_dir, encodings_dir, ray_temp_dir, tmp_path):
    """bench/gpu/run.py --server serve, the peer of the bare run: our Serve application deployed by the local
    target (Ray with token auth, the rendered Serve config through the dashboard) on the same checkpoint with the
    same engine arguments, swept through the authenticated endpoint, vLLM's start-up lines read back from Ray's
    worker logs, and everything torn down after."""
    import os
    import subprocess
    import sys

    import yaml

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu" / "run.py"), "--model", "tiny", "--accelerator", "CPU",
         "--server", "serve", "--checkpoint", str(tiny_model_dir), "--encodings", str(encodings_dir),
         "--max-model-len", "2048", "--concurrency", "1,2", "--requests-per-level", "1", "--input-len", "16",
         "--output-len", "8", "--work", str(tmp_path / "work"), "--out", str(out),
         "--set", "stream_batching_interval_ms=0"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "GPT_OSS_RAY_TEMP_DIR": str(ray_temp_dir)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_tiny_CPU_tp1_2k_preset_default_serve.json").read_text())
    assert result["server"] == "serve" and result["startup_s"] > 0 and "error" not in result
    app = yaml.safe_load(result["serve_config_text"])["applications"][0]
    assert app["import_path"] == "app.serve_gpt_oss:build_app"
    llm = app["args"]["llm_configs"][0]
    # what the bare run passes as flags, plus random weights and the compile log
    assert llm["engine_kwargs"] == {**result["engine_kwargs"], "load_format": "dummy", "jit_monitor_verbose": True}
    assert llm["model_loading_config"]["model_source"] == str(tiny_model_dir)
    # the bench's --set reaches the spec: streamed chunks sent as they come (Ray Serve LLM batches them by default)
    assert llm["experimental_configs"] == {"stream_batching_interval_ms": 0}
    assert "--set stream_batching_interval_ms=0" in result["command"]
    assert app["args"]["auth"]["enabled"] and app["args"]["auth"]["api_key_file"]
    assert [(r["concurrency"], r["completed"], r["output_tokens"]) for r in result["sweep"]["runs"]] == [
        (1, 1, 8), (2, 2, 16)]
    assert result["log"]["available_kv_cache_gib"] == 1 and result["log"]["max_concurrency_len"] == 2048
    assert "ray head" in result["teardown"]["stopped"]
    left = subprocess.run(["pgrep", "-f", str(ray_temp_dir)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes of this bench's Ray still run: {left}"
