"""Time-to-ready of `ops deploy --target local` against the bare tools it wraps, in one run.

Three ways to serve the same tiny gpt-oss checkpoint on this machine, each from a cold start (no Ray, no
engine running) until the first chat completion is answered:

  ops        `ops deploy --target local` (encodings + checkpoint check, ray start, Serve config, wait, smoke)
  serve-run  `ray start --head --num-cpus 8` + `serve run app.serve_gpt_oss:app` (the same application)
  vllm       `python -m vllm.entrypoints.openai.api_server` on the same checkpoint (no Ray at all)

Each is run --runs times (default 3, interleaved); the table (stderr) and JSON (stdout) give the median and
the ratios ops/serve-run (target <= 1.2) and ops/vllm. Run it alone, under the stack lock:

    flock /tmp/gpt-oss-stack.lock .venv/bin/python bench/deploy_time.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ops.bench import vllm_server  # noqa: E402
from ops.targets import local  # noqa: E402

MODEL = "my-gpt-oss"
VLLM_PORT = 8911
METHODS = ("ops", "serve-run", "vllm")


def _answered(base: str, key: str | None) -> bool:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.post(f"{base}/chat/completions", headers=headers, timeout=60,
                       json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
        return r.status_code == 200 and bool(r.json().get("choices"))
    except Exception:
        return False


def _wait_answer(base: str, key: str | None, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering")
        if _answered(base, key):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {base} within {timeout:.0f}s")


_stop = vllm_server.stop  # process-group stop, shared with the other benchmarks


def _cold() -> None:
    """Nothing of ours may be running when a timed start begins."""
    if local.port_in_use(local.GCS_PORT) or local.dashboard_up():
        local.stop_ray()
    for port in (8000, VLLM_PORT, local.GCS_PORT, local.DASHBOARD_PORT):
        deadline = time.monotonic() + 60
        while local.port_in_use(port) and time.monotonic() < deadline:
            time.sleep(1)
        if local.port_in_use(port):
            raise SystemExit(f"port {port} is still busy: stop what listens there before benchmarking")


def run_ops(env: dict[str, str], timeout: float) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ops", "deploy", "--target", "local", "--json",
                           "--timeout", str(timeout)], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    try:
        if proc.returncode != 0:
            raise RuntimeError(f"ops deploy failed:\n{proc.stderr[-2000:]}")
    finally:
        subprocess.run([sys.executable, "-m", "ops", "terminate", "--target", "local"], env=env, capture_output=True)
    return elapsed


def run_serve(env: dict[str, str], timeout: float, key: str) -> float:
    bin_dir = Path(sys.executable).parent
    env = dict(env, GPT_OSS_API_KEY=key)
    t0 = time.monotonic()
    proc = None
    try:
        subprocess.run([str(bin_dir / "ray"), "start", "--head", "--num-cpus", "8", "--dashboard-host", "127.0.0.1",
                        "--include-dashboard", "true", "--disable-usage-stats"], env=env, check=True,
                       capture_output=True)
        proc = subprocess.Popen([str(bin_dir / "serve"), "run", "--address", "auto", "app.serve_gpt_oss:app"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        _wait_answer("http://127.0.0.1:8000/v1", key, proc, timeout)
        return time.monotonic() - t0
    finally:
        _stop(proc)
        local.stop_ray()


def run_vllm(env: dict[str, str], timeout: float, model_dir: str) -> float:
    t0 = time.monotonic()
    server = vllm_server.start(model_dir, encodings_dir=env["TIKTOKEN_ENCODINGS_BASE"], log_path=os.devnull,
                               served_name=MODEL, port=VLLM_PORT, extra_env=env)
    proc = server.proc
    try:
        _wait_answer(f"{server.url}/v1", None, proc, timeout)
        return time.monotonic() - t0
    finally:
        _stop(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="cold starts per method (median reported; >= 1)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per start before giving up")
    ap.add_argument("--encodings", default=os.environ.get("TIKTOKEN_ENCODINGS_BASE") or
                    str(ROOT.parent / "shared" / "tiktoken_encodings"))
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown or args.runs < 1:
        ap.error(f"unknown method(s) {sorted(unknown)}; use {', '.join(METHODS)} and --runs >= 1")

    home = Path(tempfile.mkdtemp(prefix="gpt-oss-bench-"))
    env = dict(os.environ, GPT_OSS_OPS_HOME=str(home), TIKTOKEN_ENCODINGS_BASE=args.encodings, HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", VLLM_NO_USAGE_STATS="1")
    os.environ.update(GPT_OSS_OPS_HOME=str(home))
    from ops import tiny_model

    model_dir = str(tiny_model.ensure(args.encodings))  # built once, outside every timed start
    key = secrets.token_urlsafe(24)

    times: dict[str, list[float]] = {m: [] for m in methods}
    errors: list[dict[str, str]] = []
    for i in range(args.runs):
        for m in methods:
            _cold()
            try:
                t = (run_ops(env, args.timeout) if m == "ops" else run_serve(env, args.timeout, key)
                     if m == "serve-run" else run_vllm(env, args.timeout, model_dir))
            except Exception as e:  # a failed start is reported, not timed; the other runs still count
                errors.append({"method": m, "run": str(i + 1), "error": str(e)[-1500:]})
                print(f"run {i + 1}/{args.runs} {m}: FAILED {str(e)[-300:]}", file=sys.stderr, flush=True)
                continue
            times[m].append(round(t, 2))
            print(f"run {i + 1}/{args.runs} {m}: {t:.1f}s", file=sys.stderr, flush=True)

    if not all(times.values()):
        print(json.dumps({"runs": args.runs, "seconds": times, "errors": errors}, indent=2))
        return 1
    med = {m: round(statistics.median(v), 2) for m, v in times.items()}
    ratios = {}
    if "ops" in med and "serve-run" in med:
        ratios["ops/serve-run"] = round(med["ops"] / med["serve-run"], 3)
    if "ops" in med and "vllm" in med:
        ratios["ops/vllm"] = round(med["ops"] / med["vllm"], 3)
    if "serve-run" in med and "vllm" in med:
        ratios["serve-run/vllm"] = round(med["serve-run"] / med["vllm"], 3)
    result = {"runs": args.runs, "seconds": times, "median_s": med, "ratios": ratios, "target": {"ops/serve-run": 1.2},
              "meets_target": ratios.get("ops/serve-run", 0) <= 1.2 if "ops/serve-run" in ratios else None,
              "errors": errors,
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"time to first answer, cold start (median of {args.runs})")
    table.add_column("method")
    table.add_column("median s", justify="right")
    table.add_column("runs s")
    for m in methods:
        table.add_row(m, f"{med[m]:.1f}", ", ".join(f"{t:.1f}" for t in times[m]))
    console = Console(stderr=True)
    console.print(table)
    for name, r in ratios.items():
        console.print(f"{name} = {r:.2f}" + ("  (target <= 1.2)" if name == "ops/serve-run" else ""))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
