"""Print the GPU bench's results (the JSON files bench/gpu/run.py writes) as a Markdown table."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("gpu_*.json"))]


def table(results: list[dict]) -> str:
    head = ("| model | GPU | TP | context | engine | vLLM | start-up s | weights GiB | KV GiB | KV tokens | "
            "max concurrency | c=1 | c=16 | c=64 | c=256 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        log = r.get("log", {})
        gpu = (r.get("gpus") or [{}])[0].get("name", "?")
        tput = {run["concurrency"]: f"{run['total_token_throughput_tps']:,.0f}{'*' if run.get('jit_compiles') else ''}"
                for run in r.get("sweep", {}).get("runs", [])}
        cells = [r["model"], gpu, r["tensor_parallel_size"], f"{r['max_model_len']:,}",
                 f"{r['engine']}/{r['label']}" + (" (Serve app)" if r.get("server") == "serve" else ""),
                 r["versions"].get("vllm"), r.get("startup_s", "failed"),
                 log.get("model_loading_gib", ""), log.get("available_kv_cache_gib", ""),
                 f"{log['kv_cache_tokens']:,}" if "kv_cache_tokens" in log else "",
                 f"{log['max_concurrency']:.2f}x" if "max_concurrency" in log else "",
                 *(tput.get(c, "") for c in (1, 16, 64, 256))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if any(run.get("jit_compiles") for r in results for run in r.get("sweep", {}).get("runs", [])):
        lines.append("\n\\* Triton compiled kernels while this level was measured (its JSON names them): the level "
                     "paid for the compiles.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(rows(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gpu"))))
