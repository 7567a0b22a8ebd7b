"""Fan-out deploy benchmark: how the SSH part of `ops deploy --target cluster` scales with the node count.

For 1, 2 and 4 hosts (network namespaces running sshd, built by tests/cluster/harness.py; needs root) it
times the per-node work the cluster target does over Fabric: connect and run a command on every node
(ThreadingGroup), read the installed bundle hash, upload + verify + unpack the app bundle (one thread per
node), and the next per-node setup step (a config-file hash check run with the installed bundle's code).
Every repeat uses fresh remote directories, so the upload really happens on each node. Prints one line per
host count and the ratio 4 hosts / 1 host (target <= 1.5: the fan-out runs in parallel, so more nodes should
cost little more wall time).

    sudo .venv/bin/python bench/fanout_deploy.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

from ops.remote import bundle, hosts, settings  # noqa: E402
from ops.remote.connection import fanout, open_nodes  # noqa: E402


def one_run(c: "harness.TestCluster", tag: str, b: bundle.Bundle) -> float:
    s = settings.load(outputs_file=str(c.outputs_file), identity_file=str(c.key), known_hosts=str(c.known_hosts),
                      user="root", remote_python=sys.executable, remote_dir=str(c.root / f"{tag}-{{host}}"))
    nodes = open_nodes(hosts.resolve(s), s)
    try:
        t0 = time.perf_counter()
        fanout(nodes.all, s, ["true"], what="ssh")
        sent, _ = bundle.sync(nodes.all, s, b)
        assert len(sent) == len(nodes.all), "every node should have received the bundle"
        # The per-node setup step deploy runs next: check a config file's hash with the installed bundle's code.
        fanout(nodes.all, s, lambda h: ["env", f"PYTHONPATH={bundle.remote_bundle_dir(s.remote_dir_for(h), b.sha256)}",
                                        s.remote_python, "-m", "ops.remote.serve_remote", "sha",
                                        f"{s.remote_dir_for(h)}/config/api_key"], what="setup")
        return time.perf_counter() - t0
    finally:
        nodes.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    a = ap.parse_args()
    b = bundle.build()
    results = {}
    for n in a.hosts:
        c = harness.create(n)
        try:
            one_run(c, "warmup", b)  # first SSH handshake and Python start-up caches
            times = [one_run(c, f"r{i}", b) for i in range(a.repeat)]
        finally:
            c.close()
        results[n] = {"median_s": statistics.median(times), "runs_s": times}
        print(f"{n} host(s): median {results[n]['median_s']:.2f}s  runs {', '.join(f'{t:.2f}' for t in times)}",
              file=sys.stderr)
    lo, hi = min(a.hosts), max(a.hosts)
    ratio = results[hi]["median_s"] / results[lo]["median_s"]
    verdict = "OK" if ratio <= 1.5 else "ABOVE TARGET"
    print(f"ratio {hi} hosts / {lo} host: {ratio:.2f} (target <= 1.5: {verdict}); bundle {b.size // 1024} KiB",
          file=sys.stderr)
    if a.json:
        print(json.dumps({"bundle_bytes": b.size, "results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
