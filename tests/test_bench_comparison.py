"""The arithmetic of bench/bench_vs_vllm.py: trimmed means over rounds and the server-drift correction."""

from __future__ import annotations

import argparse

import pytest

from tests import scripts

b = scripts.bench_vs_vllm()

REF = {"ttft": 20.0, "itl": 6.0, "e2e": 800.0}


def test_a_latency_moves_by_what_the_servers_own_latency_moved():
    slow_run = {"ttft": 22.0, "itl": 6.6, "e2e": 880.0}  # the server itself 10 % slower in this run
    assert b.steady(27.0, "ttft", slow_run, REF) == pytest.approx(25.0)
    assert b.steady(6.62, "itl", slow_run, REF) == pytest.approx(6.02)


def test_a_throughput_scales_with_the_servers_request_latency():
    assert b.steady(450.0, "e2e", {"ttft": 22.0, "itl": 6.6, "e2e": 880.0}, REF) == pytest.approx(495.0)
    assert b.steady(450.0, "e2e", REF, REF) == 450.0


def test_every_compared_metric_follows_a_server_figure():
    assert {follows for *_, follows in b.METRICS} <= set(b.SERVER_METRICS)


def test_rounds_drop_their_extremes_from_five_on():
    assert b.over_rounds([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0
    assert b.over_rounds([1.0, 3.0]) == 2.0


def test_server_view_needs_requests_in_the_run():
    before = {name: (1.0, 10.0) for name in b.SERVER_METRICS.values()}
    after = {name: (1.5, 20.0) for name in b.SERVER_METRICS.values()}
    assert b.server_view(before, after) == {k: pytest.approx(50.0) for k in b.SERVER_METRICS}
    assert b.server_view(before, before) is None
    assert b.server_view(None, after) is None


def test_the_verdict_names_a_metric_outside_tolerance_and_honours_the_floor():
    a = argparse.Namespace(tolerance=0.05, abs_floor_ms=0.0)
    assert b._diff(a, 10.0, 10.4, "mean TTFT (ms)") == (pytest.approx(0.04), True)
    assert b._diff(a, 10.0, 10.6, "mean TTFT (ms)")[1] is False
    a.abs_floor_ms = 1.0
    assert b._diff(a, 10.0, 10.6, "mean TTFT (ms)")[1] is True
    assert b._diff(a, 10.0, 10.6, "output tokens/s")[1] is False
