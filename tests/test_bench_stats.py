"""Pure statistics of ops bench, checked against numpy and against hand-worked requests (no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ops.bench.stats import RequestResult, aggregate, percentile, summary, tpot


@pytest.mark.parametrize("values", [[1.0], [3.0, 1.0], [0.5, 0.1, 0.9, 0.3], list(range(1, 101)),
                                    [0.012, 0.5, 0.013, 0.0125, 2.0, 0.011, 0.014]])
@pytest.mark.parametrize("p", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_is_numpys_linear(values, p):
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12)


def test_percentile_of_nothing_is_nan_and_summary_is_empty():
    assert math.isnan(percentile([], 50))
    assert summary([]) == {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}


def test_tpot_excludes_the_first_token():
    # 1 s to the first token, then 9 more tokens over 0.9 s: 100 ms per output token.
    assert tpot(latency=1.9, ttft=1.0, output_tokens=10) == pytest.approx(0.1)
    assert tpot(latency=1.0, ttft=1.0, output_tokens=1) is None
    assert tpot(latency=1.0, ttft=1.0, output_tokens=0) is None


def test_aggregate_counts_errors_by_status_and_throughput_over_wall_clock():
    ok = [RequestResult(ok=True, ttft=0.2, latency=1.2, itl=[0.1] * 10, prompt_tokens=100, output_tokens=11),
          RequestResult(ok=True, ttft=0.4, latency=2.4, itl=[0.2] * 10, prompt_tokens=100, output_tokens=11)]
    bad = [RequestResult(ok=False, status="404", error="model not found"),
           RequestResult(ok=False, status="404"), RequestResult(ok=False, status="timeout")]
    r = aggregate(ok + bad, duration_s=4.0)
    assert (r["requests"], r["completed"], r["failed"]) == (5, 2, 3)
    assert r["errors_by_status"] == {"404": 2, "timeout": 1}
    assert r["output_tokens"] == 22 and r["input_tokens"] == 200
    assert r["request_throughput_rps"] == pytest.approx(0.5)
    assert r["output_throughput_tps"] == pytest.approx(5.5)
    assert r["total_token_throughput_tps"] == pytest.approx(55.5)
    assert r["ttft_ms"]["mean"] == pytest.approx(300.0)
    assert r["ttft_ms"]["p50"] == pytest.approx(300.0)
    assert r["tpot_ms"]["p50"] == pytest.approx(150.0)  # 100 ms and 200 ms per token
    assert r["itl_ms"]["p90"] == pytest.approx(200.0)
    assert r["e2el_ms"]["max"] == pytest.approx(2400.0)
