"""Compare `ops bench` with vLLM's own benchmark client (`vllm bench serve`) on the same server.

Both clients send the same load (random-length-free prompts of --input-len tokens, exactly --output-len
tokens generated with ignore_eos, streaming /v1/completions, --concurrency requests in flight, --requests in
total). The runs alternate (vLLM, ops, vLLM, ops, ...) so drift on a shared machine hits both alike. The
script prints mean TTFT, mean TPOT, mean ITL, output and request throughput from each client, the relative
difference, and the CPU time each client process used; it exits 1 when a difference exceeds --tolerance.

By default it starts vLLM's OpenAI API server on the tiny gpt-oss (CPU build) itself, holding the heavy-stack
lock, and stops it afterwards; --endpoint uses a server that is already running instead.

    .venv/bin/python bench/bench_vs_vllm.py                        # tiny model, local CPU server
    .venv/bin/python bench/bench_vs_vllm.py --endpoint http://HOST:8000 --model my-gpt-oss \\
        --tokenizer openai/gpt-oss-20b --input-len 1024 --output-len 256 --concurrency 16 --requests 200
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENCODINGS = ROOT.parent / "shared" / "tiktoken_encodings"
LOCK = "/tmp/gpt-oss-stack.lock"

# vLLM's benchmark client, driven through its module (the `vllm` console script of the CPU build cannot find
# its own package metadata).
VLLM_BENCH = ("import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
              "from vllm.benchmarks.serve import add_cli_args, main; p = FlexibleArgumentParser(); add_cli_args(p); "
              "main(p.parse_args(sys.argv[1:]))")

METRICS = [  # (label, key in vLLM's result JSON, function of an ops bench run)
    ("mean TTFT (ms)", "mean_ttft_ms", lambda r: r["ttft_ms"]["mean"]),
    ("median TTFT (ms)", "median_ttft_ms", lambda r: r["ttft_ms"]["p50"]),
    ("mean TPOT (ms)", "mean_tpot_ms", lambda r: r["tpot_ms"]["mean"]),
    ("median TPOT (ms)", "median_tpot_ms", lambda r: r["tpot_ms"]["p50"]),
    ("mean ITL (ms)", "mean_itl_ms", lambda r: r["itl_ms"]["mean"]),
    ("output tokens/s", "output_throughput", lambda r: r["output_throughput_tps"]),
    ("requests/s", "request_throughput", lambda r: r["request_throughput_rps"]),
]


def start_tiny_server(work: Path):
    """vLLM's OpenAI server on the tiny gpt-oss, ready; returns (process, base URL, checkpoint dir)."""
    sys.path.insert(0, str(ROOT))
    from ops import tiny_model
    from ops.bench import vllm_server

    model_dir = tiny_model.ensure(ENCODINGS, work / "tiny")
    server = vllm_server.start(model_dir, encodings_dir=ENCODINGS, log_path=work / "vllm-server.log")
    try:
        vllm_server.wait_ready(server, 400)
    except vllm_server.ServerExited as e:
        vllm_server.stop(server.proc)
        raise SystemExit(str(e))
    return server.proc, server.url, model_dir


def stop(proc: subprocess.Popen) -> None:
    from ops.bench import vllm_server

    vllm_server.stop(proc)


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_vllm_client(a, url: str, tokenizer: str, out_dir: Path, i: int) -> tuple[dict, float, float]:
    name = f"vllm-{i}.json"
    cmd = [sys.executable, "-c", VLLM_BENCH, "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
           "--model", a.model, "--tokenizer", tokenizer, "--dataset-name", "random",
           "--random-input-len", str(a.input_len), "--random-output-len", str(a.output_len),
           "--random-range-ratio", "0", "--num-prompts", str(a.requests), "--max-concurrency", str(a.concurrency),
           "--ignore-eos", "--temperature", "0", "--seed", str(1000 + i), "--num-warmups", "0", "--disable-tqdm",
           "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
           "--save-result", "--result-dir", str(out_dir), "--result-filename", name]
    cpu0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return json.loads((out_dir / name).read_text()), _child_cpu() - cpu0, time.perf_counter() - t0


def run_ops_client(a, url: str, out_dir: Path, i: int) -> tuple[dict, float, float]:
    out = out_dir / f"ops-{i}.json"
    cmd = [str(ROOT / ".venv" / "bin" / "ops"), "bench", "--endpoint", url, "--model", a.model,
           "--concurrency", str(a.concurrency), "--requests", str(a.requests), "--input-len", str(a.input_len),
           "--output-len", str(a.output_len), "--seed", str(100_000 * (i + 2)), "--json", str(out)]
    cpu0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())["runs"][0], _child_cpu() - cpu0, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", help="use this running server instead of starting the tiny model")
    p.add_argument("--model", default="tiny", help="served model id")
    p.add_argument("--tokenizer", help="tokenizer for vLLM's client (default: the tiny model's directory)")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of each client (median reported)")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--abs-floor-ms", type=float, default=0.5,
                   help="latencies this close (ms) agree whatever their ratio (timer and chunk-arrival jitter)")
    p.add_argument("--json", type=Path, help="also write the comparison here")
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    proc = lock = None
    try:
        if a.endpoint:
            url, tokenizer = a.endpoint.rstrip("/").removesuffix("/v1"), a.tokenizer or a.model
        else:
            lock = open(LOCK, "w")
            print(f"waiting for {LOCK} ...", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
            print("starting vLLM (tiny gpt-oss, CPU) ...", file=sys.stderr)
            proc, url, model_dir = start_tiny_server(work)
            tokenizer = a.tokenizer or str(model_dir)
        # one short warm-up so neither client pays for the first compilation/caches
        run_ops_client(argparse.Namespace(**{**vars(a), "requests": 2, "concurrency": 1}), url, work, -1)
        vl, ours = [], []
        for i in range(a.rounds):
            print(f"round {i + 1}/{a.rounds}: vLLM bench serve ...", file=sys.stderr)
            vl.append(run_vllm_client(a, url, tokenizer, work, i))
            print(f"round {i + 1}/{a.rounds}: ops bench ...", file=sys.stderr)
            ours.append(run_ops_client(a, url, work, i))
    finally:
        if proc is not None:
            stop(proc)
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def avg(xs):  # the median of the rounds: robust to one round disturbed by other work on the machine
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    rows, ok = [], True
    for label, vkey, fn in METRICS:
        v = avg([r[vkey] for r, _, _ in vl])
        o = avg([fn(r) for r, _, _ in ours])
        diff = (o - v) / v if v else float("inf")
        agree = abs(diff) <= a.tolerance or ("(ms)" in label and abs(o - v) <= a.abs_floor_ms)
        ok = ok and agree
        rows.append({"metric": label, "vllm": v, "ops": o, "diff": diff, "agree": agree})
    cpu = {"vllm_client_cpu_s": avg([c for _, c, _ in vl]), "ops_client_cpu_s": avg([c for _, c, _ in ours]),
           "vllm_client_wall_s": avg([w for _, _, w in vl]), "ops_client_wall_s": avg([w for _, _, w in ours]),
           "ops_client_cpu_s_in_loop": avg([r["client_cpu_s"] for r, _, _ in ours])}
    print(f"\nload: {a.requests} requests, concurrency {a.concurrency}, {a.input_len} in / {a.output_len} out, "
          f"{a.rounds} alternating rounds, endpoint {url}")
    print(f"{'metric':<18} {'vllm bench':>12} {'ops bench':>12} {'diff':>8}")
    for r in rows:
        print(f"{r['metric']:<18} {r['vllm']:>12.2f} {r['ops']:>12.2f} {r['diff']:>+8.1%}"
              f"{'' if r['agree'] else '  <- outside tolerance'}")
    print(f"client process CPU per run (s): vLLM {cpu['vllm_client_cpu_s']:.2f} "
          f"(wall {cpu['vllm_client_wall_s']:.1f}), ops {cpu['ops_client_cpu_s']:.2f} "
          f"(wall {cpu['ops_client_wall_s']:.1f}; {cpu['ops_client_cpu_s_in_loop']:.2f} s inside the request loop)")
    print(f"{'PASS' if ok else 'FAIL'}: tolerance {a.tolerance:.0%} (or {a.abs_floor_ms:g} ms for latencies); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if a.json:
        a.json.write_text(json.dumps({"load": vars(a) | {"json": str(a.json)}, "metrics": rows, "cpu": cpu,
                                      "pass": ok}, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
