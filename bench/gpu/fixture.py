"""Turn GPU bench results (bench/results/gpu/gpu_*.json) into the planner's calibration fixtures
(tests/fixtures/vllm_logs/*.txt): a header naming the source, GPU, vLLM release, model and engine arguments,
then vLLM's start-up lines as the run printed them.

    python bench/gpu/fixture.py bench/results/gpu/gpu_gpt-oss-20b_H100_tp1_32k_preset_default.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "vllm_logs"
sys.path.insert(0, str(ROOT))

from ops.doctor.signatures import SIGNATURES  # noqa: E402


def refusal_line(result: dict) -> str | None:
    """The line in which vLLM refused to start for want of KV-cache memory (the doctor's "kv-cache" signatures),
    if the run ended so."""
    kv = [sig.pattern for sig in SIGNATURES if sig.check == "kv-cache"]
    lines = [line for line in result.get("error", "").splitlines() if any(p.search(line) for p in kv)]
    return lines[-1] if lines else None


# The engine arguments that change what vLLM logs at start-up (weights, KV cache, graphs); the others (the
# stream interval, parsers, Ray Serve's batching) leave those lines as they are.
MEMORY_ARGS = ("max_num_batched_tokens", "max_num_seqs", "block_size", "gpu_memory_utilization",
               "max_cudagraph_capture_size")
CONFIGURATION = ("vllm_version", "model", "accelerator", "tensor_parallel_size", "max_model_len", *MEMORY_ARGS)


def configuration(head: dict[str, str]) -> dict[str, str | None]:
    """What decides a run's start-up figures, from a fixture's header: two runs of one configuration log the
    same figures, so one fixture holds both."""
    return {key: head.get(key) for key in CONFIGURATION}


def run_configuration(result: dict) -> dict[str, str | None]:
    """`configuration()` of a bench result (bare vLLM or the Serve app alike)."""
    kw = result.get("engine_kwargs", {})
    return configuration({"vllm_version": result["versions"]["vllm"], "model": result["model"],
                          "accelerator": result["accelerator"],
                          "tensor_parallel_size": str(result["tensor_parallel_size"]),
                          "max_model_len": str(result["max_model_len"]),
                          **{key: str(kw[key]) for key in MEMORY_ARGS if kw.get(key) is not None}})


def header(result: dict, source: Path) -> dict[str, str]:
    gpu = (result.get("gpus") or [{}])[0]
    torch_total = (result.get("torch_memory") or {}).get("total_gib")
    head = {
        "source": f"measured for this project by bench/gpu/run.py on {result['measured_at'][:10]} "
                  f"({source.as_posix()} and the log beside it; --load-format dummy weights of the real shapes, "
                  f"{'cold caches' if result.get('cold_start') else 'warm caches'})",
        "gpu": f"{gpu.get('name', '?')} ({int(float(gpu.get('memory_total_mib', 0))):,} MiB; torch reports "
               f"{torch_total} GiB), driver {gpu.get('driver', '?')}, torch {result['versions'].get('torch')}",
        "command": "vllm serve DIR " + " ".join(result["command"][result["command"].index("--served-model-name"):]),
        **{k: v for k, v in run_configuration(result).items() if v is not None},
    }
    if result.get("partial"):
        head["note"] = "partial run: " + result["partial"]
    if refusal_line(result):
        head["refused"] = "yes"
        head["available_bound_gib"] = "0.5"
    return head


def fixture_text(result: dict, source: Path) -> str:
    lines = [f"# {k}: {v}" for k, v in header(result, source).items()]
    refused = refusal_line(result)
    return "\n".join(lines + list(result.get("log_lines", [])) + ([refused] if refused else [])) + "\n"


def fixture_name(result: dict) -> str:
    return (f"{result['model']}_{result['accelerator']}_vllm-{result['versions']['vllm']}_bench-"
            f"{result['max_model_len'] // 1024}k-{result['engine']}-{result['label']}_{result['measured_at'][:10]}.txt")


def main(paths: list[str]) -> int:
    for p in map(Path, paths):
        result = json.loads(p.read_text())
        if not result.get("log_lines"):
            print(f"{p}: no start-up lines (the server did not get that far); no fixture", file=sys.stderr)
            continue
        out = FIXTURES / fixture_name(result)
        rel = p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p
        out.write_text(fixture_text(result, rel))
        print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
