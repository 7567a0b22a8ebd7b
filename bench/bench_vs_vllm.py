"""Compare `ops bench` with vLLM's own benchmark client (`vllm bench serve`) on the same server.

Both clients send the same load: streaming /v1/completions, prompts of --input-len tokens (different for
every request), exactly --output-len tokens generated (ignore_eos), --concurrency requests in flight,
--requests in total. At each concurrency level the runs alternate (vLLM, ops, vLLM, ops, ...) for --rounds
rounds so drift on a shared machine hits both alike, and each client's mean over the rounds (the highest and
the lowest round dropped) is compared. The script prints mean and median TTFT and TPOT, mean ITL, output and
request throughput from each client with the relative difference, and the CPU time each client spent in its
request loop; it exits 1 when any difference exceeds --tolerance.

Around every run it also reads the server's own TTFT, inter-token and request latency histograms (/metrics),
which no client's timing enters. On a busy machine the server runs faster or slower from run to run, and a
client is not wrong to see that; the "steady" figures remove it (each run's figure moved by what the server's
own matching figure moved against its mean over the level, see steady()) and are what the verdict judges
unless --judge raw. Raw figures are printed beside them.

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


# (label, key in vLLM's result JSON, function of an ops bench run, the server's own figure it follows)
METRICS = [
    ("mean TTFT (ms)", "mean_ttft_ms", lambda r: r["ttft_ms"]["mean"], "ttft"),
    ("median TTFT (ms)", "median_ttft_ms", lambda r: r["ttft_ms"]["p50"], "ttft"),
    ("mean TPOT (ms)", "mean_tpot_ms", lambda r: r["tpot_ms"]["mean"], "itl"),
    ("median TPOT (ms)", "median_tpot_ms", lambda r: r["tpot_ms"]["p50"], "itl"),
    ("mean ITL (ms)", "mean_itl_ms", lambda r: r["itl_ms"]["mean"], "itl"),
    ("output tokens/s", "output_throughput", lambda r: r["output_throughput_tps"], "e2e"),
    ("requests/s", "request_throughput", lambda r: r["request_throughput_rps"], "e2e"),
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


# The server's own view of each run, from its Prometheus histograms (sum and count before and after the run):
# means measured inside vLLM's API server as outputs leave the engine, before HTTP, so no client's timing is
# in them. On a busy machine the server itself runs faster or slower from one run to the next (on 2 shared
# CPUs, by 10 % and more); these figures show by how much, and `steady()` takes that drift out.
SERVER_METRICS = {"ttft": "vllm:time_to_first_token_seconds", "itl": "vllm:inter_token_latency_seconds",
                  "e2e": "vllm:e2e_request_latency_seconds"}


def scrape(url: str) -> dict[str, tuple[float, float]] | None:
    """(sum, count) of each SERVER_METRICS histogram, or None when the server has no /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    out = {name: [0.0, 0.0] for name in SERVER_METRICS.values()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for suffix, slot in (("_sum", 0), ("_count", 1)):
                base = sample.name.removesuffix(suffix)
                if base != sample.name and base in out:
                    out[base][slot] += sample.value
    return {k: (s, c) for k, (s, c) in out.items()}


def server_view(before: dict | None, after: dict | None) -> dict[str, float] | None:
    """The server's mean TTFT, inter-token latency and request latency (ms) over one run."""
    if before is None or after is None:
        return None
    view = {}
    for key, name in SERVER_METRICS.items():
        (s0, c0), (s1, c1) = before[name], after[name]
        if c1 <= c0:
            return None
        view[key] = 1000 * (s1 - s0) / (c1 - c0)
    return view


def steady(value: float, follows: str, run: dict[str, float], ref: dict[str, float]) -> float:
    """A client's figure for one run as it would have been had the server run at its reference speed `ref`
    (the mean of the server's own figures over every run of the level, both clients'). A latency moves by
    what the server's own matching latency moved; a throughput (requests in flight / request latency) scales
    with the server's request latency."""
    if follows == "e2e":
        return value * run["e2e"] / ref["e2e"]
    return value - run[follows] + ref[follows]


def _diff(a, v: float, o: float, label: str) -> tuple[float, bool]:
    diff = (o - v) / v if v else float("inf")
    return diff, abs(diff) <= a.tolerance or ("(ms)" in label and abs(o - v) <= a.abs_floor_ms)


def compare_level(a, level: int, url: str, tokenizer: str, work: Path, vllm: VllmClient,
                  cpus: set[int] | None) -> dict:
    """Alternating rounds of both clients at one concurrency level and the comparison of their figures."""
    run = argparse.Namespace(**{**vars(a), "concurrency": level, "requests": a.requests or max(32, 16 * level)})
    vl, ours = [], []
    for i in range(a.rounds):
        tag = f"c{level}-{i}"
        print(f"concurrency {level}: round {i + 1}/{a.rounds}", file=sys.stderr)
        m0 = scrape(url)
        vl.append(vllm.run(run, url, tokenizer, work, tag))
        m1 = scrape(url)
        ours.append(run_ops_client(run, url, work, tag, cpus))
        vl[-1]["server"], ours[-1]["server"] = server_view(m0, m1), server_view(m1, scrape(url))
    views = [r["server"] for r in vl + ours]
    ref = ({k: sum(v[k] for v in views) / len(views) for k in SERVER_METRICS} if all(views) else None)
    rows = []
    for label, vkey, fn, follows in METRICS:
        vr, orr = [r[vkey] for r in vl], [fn(r) for r in ours]
        row = {"metric": label, "vllm_rounds": vr, "ops_rounds": orr}
        row["vllm"], row["ops"] = over_rounds(vr), over_rounds(orr)
        row["diff"], row["agree"] = _diff(a, row["vllm"], row["ops"], label)
        if ref:
            row["vllm_steady"] = over_rounds([steady(x, follows, r["server"], ref) for x, r in zip(vr, vl)])
            row["ops_steady"] = over_rounds([steady(x, follows, r["server"], ref) for x, r in zip(orr, ours)])
            row["diff_steady"], row["agree_steady"] = _diff(a, row["vllm_steady"], row["ops_steady"], label)
        rows.append(row)
    cpu = {"vllm_request_loop_s": over_rounds([r["client_cpu_s"] for r in vl]),
           "ops_request_loop_s": over_rounds([r["client_cpu_s"] for r in ours]),
           "ops_process_s": over_rounds([r["process_cpu_s"] for r in ours]),
           "ops_run_s": over_rounds([r["duration_s"] for r in ours])}
    server = ({"during_vllm": [r["server"] for r in vl], "during_ops": [r["server"] for r in ours],
               "reference": ref} if ref else None)
    judged = "steady" if ref and a.judge == "steady" else "raw"
    return {"concurrency": level, "requests": run.requests, "metrics": rows, "cpu": cpu, "server": server,
            "judged": judged, "pass": all(r["agree_steady" if judged == "steady" else "agree"] for r in rows)}


def print_level(a, res: dict) -> None:
    cpu, steady_cols = res["cpu"], res["server"] is not None
    print(f"\nconcurrency {res['concurrency']}: {res['requests']} requests per run, {a.input_len} in / "
          f"{a.output_len} out, {a.rounds} alternating rounds")
    head = f"{'metric':<18} {'vllm bench':>11} {'ops bench':>11} {'diff':>8}"
    if steady_cols:
        head += f"  | steady: {'vllm bench':>11} {'ops bench':>11} {'diff':>8}"
    print(head)
    for r in res["metrics"]:
        line = f"{r['metric']:<18} {r['vllm']:>11.2f} {r['ops']:>11.2f} {r['diff']:>+8.1%}"
        if steady_cols:
            line += f"  |         {r['vllm_steady']:>11.2f} {r['ops_steady']:>11.2f} {r['diff_steady']:>+8.1%}"
        ok = r["agree_steady"] if res["judged"] == "steady" else r["agree"]
        print(line + ("" if ok else "  <- outside tolerance"))
    if steady_cols:
        s = res["server"]
        for key, label in (("itl", "inter-token latency"), ("ttft", "TTFT")):
            v = over_rounds([x[key] for x in s["during_vllm"]])
            o = over_rounds([x[key] for x in s["during_ops"]])
            print(f"server's own mean {label}: {v:.2f} ms during vLLM's runs, {o:.2f} ms during ops bench's "
                  f"({o / v - 1:+.1%}); 'steady' takes that drift out")
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
    p.add_argument("--judge", choices=["steady", "raw"], default="steady",
                   help="figures the verdict uses: 'steady' = with the server's own drift from run to run taken "
                        "out (its /metrics; raw figures are printed beside them), 'raw' = as each client measured")
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
    judged = "steady" if results and all(r["judged"] == "steady" for r in results) else "raw"
    print(f"\n{'PASS' if ok else 'FAIL'}: every {judged} metric within {a.tolerance:.0%}"
          f"{f' (or {a.abs_floor_ms:g} ms for latencies)' if a.abs_floor_ms else ''} at concurrency "
          f"{','.join(map(str, a.concurrency))}; endpoint {url}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if a.json:
        a.json.write_text(json.dumps({"load": vars(a) | {"json": str(a.json)}, "levels": results, "pass": ok},
                                     indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
