"""How a bench run is shown: a Rich table on stderr, JSON for scripts, a PNG of latency against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def table(runs: list[dict[str, Any]]):
    from rich.table import Table

    t = Table(title=f"ops bench: {runs[0]['model']} at {runs[0]['endpoint']} ({runs[0]['api']}, "
                    f"{runs[0]['input_len']} in / {runs[0]['output_len']} out)")
    t.add_column("metric", style="bold")
    for r in runs:
        t.add_column(f"concurrency {r['concurrency']}", justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("requests ok / sent", [f"{r['completed']} / {r['requests']}" for r in runs]),
        ("errors by status", [", ".join(f"{k}: {v}" for k, v in r["errors_by_status"].items()) or "none"
                              for r in runs]),
        ("duration (s)", [f"{r['duration_s']:.2f}" for r in runs]),
        ("request throughput (req/s)", [f"{r['request_throughput_rps']:.3f}" for r in runs]),
        ("output tokens/s", [f"{r['output_throughput_tps']:.1f}" for r in runs]),
        ("total tokens/s", [f"{r['total_token_throughput_tps']:.1f}" for r in runs]),
    ]
    for metric, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2el_ms", "E2E latency")):
        for p in ("mean", "p50", "p90", "p99"):
            rows.append((f"{label} {p} (ms)", [_ms(r[metric][p]) for r in runs]))
    rows.append(("client CPU (s)", [f"{r['client_cpu_s']:.2f}" for r in runs]))
    for name, cells in rows:
        t.add_row(name, *cells)
    return t


def plot(runs: list[dict[str, Any]], path: str | Path) -> Path:
    """Latency percentiles (TTFT, TPOT, ITL) against concurrency; throughput on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["concurrency"] for r in runs]
    fig, ax = plt.subplots(figsize=(8, 5))
    for metric, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL")):
        for p, style in (("p50", "-o"), ("p99", "--x")):
            ys = [r[metric][p] if r[metric][p] is not None else float("nan") for r in runs]
            ax.plot(xs, ys, style, label=f"{label} {p}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (requests in flight)")
    ax.set_ylabel("latency (ms)")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax2 = ax.twinx()
    ax2.plot(xs, [r["output_throughput_tps"] for r in runs], ":s", color="black", label="output tokens/s")
    ax2.set_ylabel("output tokens/s")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.set_title(f"{runs[0]['model']}: {runs[0]['input_len']} in / {runs[0]['output_len']} out")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
