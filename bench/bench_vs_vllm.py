"""Compare `ops bench` with vLLM's own benchmark client (`vllm bench serve`) on the same server.

Both clients send the same load: streaming /v1/completions, prompts of --input-len tokens (different for
every request), exactly --output-len tokens generated (ignore_eos), --concurrency requests in flight,
--requests in total. At each concurrency level the runs alternate (vLLM, ops, vLLM, ops, ...) for --rounds
rounds so drift on a shared machine hits both alike, and each client's mean over the rounds (the highest and
the lowest round dropped) is compared. The script prints mean and median TTFT and TPOT, mean ITL, output and
request throughput from each client with the relative difference, and the CPU time each client spent in its
request loop; it exits 1 when any difference exceeds --tolerance.

By default it starts vLLM's OpenAI API server on the tiny gpt-oss (CPU build) itself, holding the heavy-stack
lock, pins the server's processes for steady streaming (see vllm_server.pin_engine_beside_worker) and stops
it afterwards; --endpoint uses a server that is already running instead.

    .venv/bin/python bench/bench_vs_vllm.py                        # tiny model, local CPU server, 1,4,16
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENCODINGS = ROOT.parent / "shared" / "tiktoken_encodings"
LOCK = "/tmp/gpt-oss-stack.lock"

# vLLM's benchmark client, driven through its module (the `vllm` console script of the CPU build cannot find
# its own package metadata). One process serves every run, so the seconds it takes to import vLLM and torch
# are paid once: it reads one JSON list of `vllm bench serve` arguments per line on stdin, runs the benchmark
# and answers on its original stdout with the CPU time of the `benchmark()` coroutine (the request loop).
# vLLM's own printing goes to stderr, which the script sends to a log file.
VLLM_CLIENT = """
import json, os, sys, time
proto = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import vllm.benchmarks.serve as serve
from vllm.utils.argparse_utils import FlexibleArgumentParser

untimed, cpu = serve.benchmark, {}

async def timed(*a, **k):
    cpu0 = time.process_time()
    try:
        return await untimed(*a, **k)
    finally:
        cpu["s"] = time.process_time() - cpu0

serve.benchmark = timed
parser = FlexibleArgumentParser()
serve.add_cli_args(parser)
print("ready", file=proto, flush=True)
for line in sys.stdin:
    serve.main(parser.parse_args(json.loads(line)))
    print(repr(cpu["s"]), file=proto, flush=True)
"""


class VllmClient:
    """vLLM's benchmark client in one long-lived process (see VLLM_CLIENT)."""

    def __init__(self, log_path: Path, cpus: set[int] | None):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", VLLM_CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self._answer()

    def _answer(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"vLLM's benchmark client ended; its log is {self.log.name}")
        return line.strip()

    def run(self, a, url: str, tokenizer: str, out_dir: Path, tag: str) -> dict:
        name = f"vllm-{tag}.json"
        args = ["--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
                "--model", a.model, "--tokenizer", tokenizer, "--num-prompts", str(a.requests),
                "--max-concurrency", str(a.concurrency), "--ignore-eos", "--temperature", "0",
                "--seed", str(_seed(tag)), "--num-warmups", "0", "--disable-tqdm",
                # its initial test request re-sends the run's first prompt, which then finds its prefix cached;
                # this long-lived process is warm anyway, and ops bench warms up with a prompt of its own
                "--ready-check-timeout-sec", "0",
                "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
                "--save-result", "--result-dir", str(out_dir), "--result-filename", name]
        if a.vllm_dataset == "random":  # vLLM's own: random token ids, exactly --input-len of them
            args += ["--dataset-name", "random", "--random-input-len", str(a.input_len),
                     "--random-output-len", str(a.output_len), "--random-range-ratio", "0"]
        else:  # the same kind of prompts ops bench sends (other seeds: no prefix-cache hits between the two)
            from ops.bench.client import make_prompt

            prompts = out_dir / f"vllm-{tag}.jsonl"
            first = _ops_seed("vllm-" + tag)
            prompts.write_text("".join(json.dumps({"prompt": make_prompt(a.input_len, first + i)}) + "\n"
                                       for i in range(a.requests)))
            args += ["--dataset-name", "custom", "--dataset-path", str(prompts), "--custom-output-len",
                     str(a.output_len), "--skip-chat-template", "--disable-shuffle"]
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        cpu = float(self._answer())
        return json.loads((out_dir / name).read_text()) | {"client_cpu_s": cpu}

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


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
    """vLLM's OpenAI server on the tiny gpt-oss, ready and pinned; (process, base URL, checkpoint, API CPUs)."""
    from ops import tiny_model
    from ops.bench import vllm_server

    model_dir = tiny_model.ensure(ENCODINGS, work / "tiny")
    server = vllm_server.start(model_dir, encodings_dir=ENCODINGS, log_path=work / "vllm-server.log")
    try:
        vllm_server.wait_ready(server, 400)
    except vllm_server.ServerExited as e:
        vllm_server.stop(server.proc)
        raise SystemExit(str(e))
    placement = vllm_server.pin_engine_beside_worker(server)
    if placement:
        print(f"pinned vLLM's engine core beside its worker on CPUs {placement['engine_core_and_worker']}, "
              f"API server on {placement['api_server']} (steady streaming; bench/README.md)", file=sys.stderr)
    return server.proc, server.url, model_dir, set(placement["api_server"]) if placement else None


def stop(proc: subprocess.Popen) -> None:
    from ops.bench import vllm_server

    vllm_server.stop(proc)


def _seed(tag: str) -> int:
    """A different seed for every run, so no run finds its prompts in vLLM's prefix cache."""
    import zlib

    return zlib.crc32(tag.encode()) % 1_000_000


def _ops_seed(tag: str) -> int:
    """ops bench's prompts are make_prompt(input_len, seed + i): seeds this far apart never share a prompt."""
    return 100_000 * _seed(tag)


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_ops_client(a, url: str, out_dir: Path, tag: str, cpus: set[int] | None) -> dict:
    """One `ops bench` run as a user runs it (its own process); adds the whole process's CPU time."""
    out = out_dir / f"ops-{tag}.json"
    cmd = [str(ROOT / ".venv" / "bin" / "ops"), "bench", "--endpoint", url, "--model", a.model,
           "--concurrency", str(a.concurrency), "--requests", str(a.requests), "--input-len", str(a.input_len),
           "--output-len", str(a.output_len), "--seed", str(_ops_seed("ops-" + tag)), "--json", str(out)]
    cpu0 = _child_cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    return json.loads(out.read_text())["runs"][0] | {"process_cpu_s": _child_cpu() - cpu0}


def over_rounds(xs: list[float]) -> float:
    """Mean over the rounds without the highest and the lowest one (when there are five or more): one round
    disturbed by other work on the machine does not decide the result, the rest all count."""
    xs = sorted(xs)
    if len(xs) >= 5:
        xs = xs[1:-1]
    return sum(xs) / len(xs)


def compare_level(a, level: int, url: str, tokenizer: str, work: Path, vllm: VllmClient,
                  cpus: set[int] | None) -> dict:
    """Alternating rounds of both clients at one concurrency level and the comparison of their figures."""
    run = argparse.Namespace(**{**vars(a), "concurrency": level, "requests": a.requests or max(32, 16 * level)})
    vl, ours = [], []
    for i in range(a.rounds):
        tag = f"c{level}-{i}"
        print(f"concurrency {level}: round {i + 1}/{a.rounds}", file=sys.stderr)
        vl.append(vllm.run(run, url, tokenizer, work, tag))
        ours.append(run_ops_client(run, url, work, tag, cpus))
    rows = []
    for label, vkey, fn in METRICS:
        v = over_rounds([r[vkey] for r in vl])
        o = over_rounds([fn(r) for r in ours])
        diff = (o - v) / v if v else float("inf")
        agree = abs(diff) <= a.tolerance or ("(ms)" in label and abs(o - v) <= a.abs_floor_ms)
        rows.append({"metric": label, "vllm": v, "ops": o, "diff": diff, "agree": agree,
                     "vllm_rounds": [r[vkey] for r in vl], "ops_rounds": [fn(r) for r in ours]})
    cpu = {"vllm_request_loop_s": over_rounds([r["client_cpu_s"] for r in vl]),
           "ops_request_loop_s": over_rounds([r["client_cpu_s"] for r in ours]),
           "ops_process_s": over_rounds([r["process_cpu_s"] for r in ours]),
           "ops_run_s": over_rounds([r["duration_s"] for r in ours])}
    return {"concurrency": level, "requests": run.requests, "metrics": rows, "cpu": cpu,
            "pass": all(r["agree"] for r in rows)}


def print_level(a, res: dict) -> None:
    cpu = res["cpu"]
    print(f"\nconcurrency {res['concurrency']}: {res['requests']} requests per run, {a.input_len} in / "
          f"{a.output_len} out, {a.rounds} alternating rounds")
    print(f"{'metric':<18} {'vllm bench':>12} {'ops bench':>12} {'diff':>8}")
    for r in res["metrics"]:
        print(f"{r['metric']:<18} {r['vllm']:>12.2f} {r['ops']:>12.2f} {r['diff']:>+8.1%}"
              f"{'' if r['agree'] else '  <- outside tolerance'}")
    print(f"client CPU per run: request loop vLLM {cpu['vllm_request_loop_s']:.2f} s, ops "
          f"{cpu['ops_request_loop_s']:.2f} s ({cpu['ops_request_loop_s'] / cpu['ops_run_s']:.1%} of its "
          f"{cpu['ops_run_s']:.1f} s run); the whole `ops bench` process {cpu['ops_process_s']:.2f} s")


def parse_cpus(text: str) -> list[int]:
    cpus: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        cpus = []
    if not cpus:
        raise argparse.ArgumentTypeError(f"--client-cpus {text!r}: give CPU numbers, e.g. 1 or 2-3 or 0,2")
    return cpus


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"--concurrency {text!r}: give positive integers, e.g. 1,4,16")
    return levels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", help="use this running server instead of starting the tiny model")
    p.add_argument("--model", default="tiny", help="served model id")
    p.add_argument("--tokenizer", help="tokenizer for vLLM's client (default: the tiny model's directory)")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--concurrency", type=parse_levels, default=[1, 4, 16], help="levels, comma-separated")
    p.add_argument("--requests", type=int, help="per run (default: 16 x concurrency, at least 32)")
    p.add_argument("--rounds", type=int, default=8,
                   help="alternating rounds of each client per level (the mean over the rounds, the highest and "
                        "lowest dropped, is compared)")
    p.add_argument("--client-cpus", type=parse_cpus,
                   help="run both clients on these CPUs, e.g. 1 or 2-3 (default: the CPUs left to the API server "
                        "when the script starts it, else wherever the kernel puts them)")
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--abs-floor-ms", type=float, default=0.0,
                   help="latencies this close (ms) agree whatever their ratio (default 0: off)")
    p.add_argument("--vllm-dataset", choices=["ops", "random"], default="ops",
                   help="prompts for vLLM's client: 'ops' = the same kind ops bench sends (random common words, "
                        "through vLLM's custom dataset), so only the clients differ; 'random' = vLLM's random "
                        "dataset (random token ids, which cost the server more to tokenize)")
    p.add_argument("--json", type=Path, help="also write the comparison here")
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    proc = lock = vllm = None
    results = []
    cpus = set(a.client_cpus) if a.client_cpus else None
    try:
        if a.endpoint:
            url, tokenizer = a.endpoint.rstrip("/").removesuffix("/v1"), a.tokenizer or a.model
        else:
            lock = open(LOCK, "w")
            print(f"waiting for {LOCK} ...", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
            print("starting vLLM (tiny gpt-oss, CPU) ...", file=sys.stderr)
            proc, url, model_dir, api_cpus = start_tiny_server(work)
            tokenizer = a.tokenizer or str(model_dir)
            cpus = cpus or api_cpus
        if cpus:
            print(f"both clients run on CPUs {sorted(cpus)}", file=sys.stderr)
        print("starting vLLM's benchmark client ...", file=sys.stderr)
        vllm = VllmClient(work / "vllm-client.log", cpus)
        # one short warm-up so neither client pays for the first compilation/caches
        run_ops_client(argparse.Namespace(**{**vars(a), "requests": 2, "concurrency": 1}), url, work, "warmup", cpus)
        for level in a.concurrency:
            results.append(compare_level(a, level, url, tokenizer, work, vllm, cpus))
            print_level(a, results[-1])
    finally:
        if vllm is not None:
            vllm.close()
        if proc is not None:
            stop(proc)
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    ok = all(r["pass"] for r in results)
    print(f"\n{'PASS' if ok else 'FAIL'}: every metric within {a.tolerance:.0%}"
          f"{f' (or {a.abs_floor_ms:g} ms for latencies)' if a.abs_floor_ms else ''} at concurrency "
          f"{','.join(map(str, a.concurrency))}; endpoint {url}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if a.json:
        a.json.write_text(json.dumps({"load": vars(a) | {"json": str(a.json)}, "levels": results, "pass": ok},
                                     indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
