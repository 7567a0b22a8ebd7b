"""Boot-to-serving on the rehearsed production path: how long a stack takes from its instances' launch to an
answering endpoint, stage by stage, and how a 4-worker stack compares with a 1-worker one.

For each worker count (default 1 and 4), a fresh rehearsal region (tests/rehearsal: moto behind the Pulumi
mocks, a local registry, the VPC's resolver): `pulumi up` with replicas.max = N (N CPU workers and the head),
the weights mirror and the encodings in the stack's bucket, every instance booted at once from the user-data
the program rendered (as EC2 and the Auto Scaling group launch them), then `ops deploy --target cluster
--stack` until the endpoint answers. The stages come from each node's own boot timeline (status.json):

    os         machine start -> the boot unit's first step (systemd, cloud-init)
    secrets    SSM parameters (API key, Ray token)
    encodings  tiktoken files from the bucket, SHA-256 checked
    image      docker pull of the serving image
    weights    the checkpoint from the bucket's mirror (workers)
    ray        the Ray container started
    join       until the head's GCS lists the node ALIVE
    serving    `ops deploy`: bundle, app code, Serve config, the replica loading the model, smoke test

It prints, per worker count, the median of each boot stage over the nodes, the slowest node's boot, the deploy,
and the total; then the ratio of the totals (N=4 / N=1).

    sudo .venv/bin/python bench/rehearsal_boot.py [--workers 1 4] [--repeat 1] [--json]

Needs root and the rehearsal's assets (`make rehearsal-assets`); minutes per run on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "rehearsal"))
sys.path.insert(0, str(ROOT))

import provision  # noqa: E402
import region  # noqa: E402

from ops import tiny_model  # noqa: E402
from tests.support import MODEL_CACHE, run_ops  # noqa: E402

BOOT_STAGES = ("os", "secrets", "encodings", "image", "weights", "ray", "join")


def stages(status: dict, launched: float) -> dict[str, float]:
    """Seconds per boot stage of one node, from its status.json timeline."""
    timeline = [(e["step"], e["at"]) for e in status.get("timeline", [])]
    out = {"os": timeline[0][1] - launched} if timeline else {}
    for (step, at), (_, nxt) in zip(timeline, timeline[1:]):
        if step in BOOT_STAGES:
            out[step] = out.get(step, 0.0) + nxt - at
    out["boot"] = timeline[-1][1] - launched if timeline else 0.0
    return {k: round(v, 1) for k, v in out.items()}


def one_run(workers: int, model_dir: Path, encodings: Path) -> dict:
    with region.open_region() as cloud:
        st = provision.up(cloud, model_dir, encodings, replicas=json.dumps({"min": 1, "max": workers}))
        hv = provision.nodes(cloud)
        try:
            launched = time.time()
            booted = provision.boot_all(cloud, st, hv)
            provision.refresh_firewalls(st, hv)
            per_node = {n.role + "-" + n.instance_id[-6:]: stages(hv.wait_boot(n, timeout=1800), launched)
                        for n in booted}
            ready = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                opts = provision.ops_options(cloud, st, Path(tmp) / "known_hosts")
                proc = run_ops("deploy", "--preset", "tiny", "--set", "owner=rehearsal", *opts, "--json",
                               env=cloud.env, timeout=1800)
            if proc.returncode != 0:
                raise SystemExit(f"ops deploy failed with {workers} worker(s):\n{proc.stderr[-4000:]}")
            serving = time.time()
        finally:
            hv.close()
    return {"nodes": len(per_node), "per_node": per_node, "boot_s": round(ready - launched, 1),
            "serving_s": round(serving - ready, 1), "total_s": round(serving - launched, 1)}


def summary(runs: list[dict]) -> dict:
    med = {s: statistics.median(r["per_node"][n][s] for r in runs for n in r["per_node"] if s in r["per_node"][n])
           for s in BOOT_STAGES if any(s in v for r in runs for v in r["per_node"].values())}
    return {"nodes": runs[0]["nodes"], "stage_median_s": {k: round(v, 1) for k, v in med.items()},
            "boot_s": statistics.median(r["boot_s"] for r in runs),
            "serving_s": statistics.median(r["serving_s"] for r in runs),
            "total_s": statistics.median(r["total_s"] for r in runs), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, systemd-nspawn): sudo .venv/bin/python bench/rehearsal_boot.py")
    os.environ.setdefault("GPT_OSS_MODEL_CACHE", str(MODEL_CACHE))  # where make test trains it
    encodings = Path(os.environ.get("TIKTOKEN_ENCODINGS_BASE") or ROOT.parent / "shared" / "tiktoken_encodings")
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(encodings)
    model_dir = tiny_model.ensure(encodings)
    results = {}
    for n in a.workers:
        runs = []
        for i in range(a.repeat):
            print(f"{n} worker(s), run {i + 1}/{a.repeat} ...", file=sys.stderr, flush=True)
            runs.append(one_run(n, model_dir, encodings))
        results[n] = summary(runs)
    lo, hi = min(a.workers), max(a.workers)
    ratio = round(results[hi]["total_s"] / results[lo]["total_s"], 2) if lo != hi else None
    if a.json:
        print(json.dumps({"results": results, "ratio": ratio, "ratio_of": [hi, lo]}, indent=2))
        return
    for n, r in results.items():
        stages_line = "  ".join(f"{k} {v:g}" for k, v in r["stage_median_s"].items())
        print(f"{n} worker(s) + head ({r['nodes']} nodes): boot {r['boot_s']:g}s (slowest node), "
              f"deploy to serving {r['serving_s']:g}s, total {r['total_s']:g}s")
        print(f"    median stage seconds over the nodes: {stages_line}")
    if ratio is not None:
        print(f"ratio {hi} workers / {lo} worker(s), launch to serving: {ratio}")


if __name__ == "__main__":
    main()
