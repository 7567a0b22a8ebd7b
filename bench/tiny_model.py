"""The tiny gpt-oss that speaks harmony: what training it costs, and what serving it costs against the
random-weight checkpoint of the same architecture it replaced.

1. Training: `ops.tiny_model.ensure` into an empty model cache, timed (it renders the corpus, trains, exports
   and writes the tokenizer); the checkpoint's parameters and bytes on disk.
2. Deploy time-to-ready: `ops deploy --target local --set model_source=DIR` from a cold start (no Ray running)
   until the deploy's own smoke request is answered, for the trained checkpoint and for a random-weight one
   (same config, same tokenizer), interleaved, --runs each; medians and the ratio trained/random.

Run it alone, under the stack lock (it starts and stops the local Ray):

    flock /tmp/gpt-oss-stack.lock .venv/bin/python bench/tiny_model.py --runs 2
    flock /tmp/gpt-oss-stack.lock .venv/bin/python bench/tiny_model.py --model-cache .ops/models  # no training

Prints a table on stderr and JSON on stdout (bench/results/ keeps recorded runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def train(encodings: str, cache: Path | None = None) -> tuple[Path, dict]:
    """Train into an empty model cache, timed; or, given a cache that already holds this recipe's checkpoint
    (e.g. the one `make test` trained), take it and the training time its marker recorded."""
    from ops import tiny_model

    os.environ["GPT_OSS_MODEL_CACHE"] = str(cache or tempfile.mkdtemp(prefix="tiny-bench-models-"))
    if cache is not None and not tiny_model.is_complete(tiny_model.default_dir()):
        raise SystemExit(f"{cache} holds no checkpoint of the current recipe: leave --model-cache out to train")
    t0 = time.monotonic()
    path = tiny_model.ensure(encodings)
    seconds = None if cache is not None else round(time.monotonic() - t0, 1)
    marker = json.loads((path / tiny_model.MARKER).read_text())
    return path, {"seconds": seconds, "from_cache": str(cache) if cache else None,
                  "train_seconds": marker["train_seconds"],
                  "steps": marker["steps"], "examples": marker["examples"],
                  "trained_vocab": marker["trained_vocab"], "parameters": marker["parameters"],
                  "safetensors_bytes": _du(path) - sum(p.stat().st_size for p in path.iterdir()
                                                      if p.is_file() and p.suffix != ".safetensors"),
                  "checkpoint_bytes": _du(path)}


def random_twin(trained: Path, dest: Path) -> Path:
    """The same architecture and tokenizer with random weights: what the local target served before."""
    import torch
    from transformers import GptOssForCausalLM

    from ops import catalog, tiny_train

    shutil.copytree(trained, dest)
    for f in dest.glob("*.safetensors"):
        f.unlink()
    torch.manual_seed(1234)
    GptOssForCausalLM(tiny_train.config(catalog.MODELS["tiny"])).to(torch.bfloat16).save_pretrained(
        dest, safe_serialization=True)
    return dest


def deploy_seconds(model_dir: Path, env: dict[str, str], timeout: float) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ops", "deploy", "--target", "local", "--json", "--timeout",
                           str(timeout), "--set", f"model_source={model_dir}"], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    subprocess.run([sys.executable, "-m", "ops", "terminate", "--target", "local"], env=env, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ops deploy failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="cold deploys per checkpoint (median reported)")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--model-cache", type=Path, help="use the checkpoint already trained in this cache and the "
                    "training time it recorded, instead of training into an empty one (e.g. .ops/models)")
    ap.add_argument("--encodings", default=os.environ.get("TIKTOKEN_ENCODINGS_BASE") or
                    str(ROOT.parent / "shared" / "tiktoken_encodings"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tiny-bench-"))
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = args.encodings
    trained, training = train(args.encodings, args.model_cache)
    took = "cached" if training["seconds"] is None else f"{training['seconds']}s"
    print(f"training: {took}, of which {training['train_seconds']}s training steps, "
          f"{training['parameters']:,} parameters, "
          f"{training['checkpoint_bytes'] / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    random = random_twin(trained, work / "random")
    env = dict(os.environ, GPT_OSS_OPS_HOME=str(work / "home"), GPT_OSS_RAY_TEMP_DIR=f"/tmp/gr-bench-{os.getpid()}",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", VLLM_NO_USAGE_STATS="1")
    times: dict[str, list[float]] = {"trained": [], "random": []}
    for i in range(args.runs):
        for name, path in (("trained", trained), ("random", random)):
            t = deploy_seconds(path, env, args.timeout)
            times[name].append(round(t, 1))
            print(f"run {i + 1}/{args.runs} {name}: {t:.1f}s", file=sys.stderr, flush=True)
    med = {k: round(statistics.median(v), 1) for k, v in times.items()}
    result = {"training": training, "deploy_seconds": times, "deploy_median_s": med,
              "ratio_trained_over_random": round(med["trained"] / med["random"], 3),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    print(f"deploy time-to-ready: trained {med['trained']}s, random {med['random']}s, ratio "
          f"{result['ratio_trained_over_random']}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
