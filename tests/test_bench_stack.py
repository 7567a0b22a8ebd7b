"""ops bench against a real server: vLLM's OpenAI API server (CPU build) serving the tiny gpt-oss.

One server for the module, started under the heavy-stack lock and stopped (process group) even on failure.
The same start-up log also checks the planner: what vLLM logs as "CPU KV cache size" is what ops plan says.
"""

from __future__ import annotations

import fcntl
import json

import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.errors import OpsError

pytestmark = pytest.mark.stack

LOCK = "/tmp/gpt-oss-stack.lock"
MODEL_ID = "tiny"
MAX_LEN = 2048


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory, encodings_dir):
    from ops import tiny_model
    from ops.bench import vllm_server

    work = tmp_path_factory.mktemp("bench")
    model_dir = tiny_model.ensure(encodings_dir, work / "tiny")
    log_path = work / "vllm.log"
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one heavy stack at a time on this machine
        try:
            with vllm_server.running(model_dir, encodings_dir=encodings_dir, log_path=log_path,
                                     served_name=MODEL_ID, max_model_len=MAX_LEN) as server:
                yield server.url, log_path
        except vllm_server.ServerExited as e:
            pytest.fail(str(e))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def test_bench_sweep_reports_sane_latencies_tokens_and_a_plot(tiny_server, tmp_path):
    url, _ = tiny_server
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = CliRunner().invoke(app, ["bench", "--endpoint", url, "--model", MODEL_ID, "--concurrency", "1,2",
                                      "--requests", "4", "--input-len", "32", "--output-len", "16",
                                      "--timeout", "120", "--deadline", "300", "--json", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    assert [r["concurrency"] for r in runs] == [1, 2]
    for r in runs:
        assert r["completed"] == 4 and r["failed"] == 0 and r["errors_by_status"] == {}
        assert r["output_tokens"] == 4 * 16  # ignore_eos: exactly --output-len each
        assert 4 * 32 <= r["input_tokens"] <= 4 * 40  # about --input-len; exact count from the server's usage
        assert 0 < r["ttft_ms"]["p50"] <= r["ttft_ms"]["p99"] < r["e2el_ms"]["max"]
        assert 0 < r["tpot_ms"]["p50"] and 0 < r["itl_ms"]["p50"]
        assert r["output_throughput_tps"] > 0 and r["request_throughput_rps"] > 0
        assert r["client_cpu_s"] < r["duration_s"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chat_api_streams_too(tiny_server, tmp_path):
    url, _ = tiny_server
    out = tmp_path / "chat.json"
    result = CliRunner().invoke(app, ["bench", "--endpoint", url + "/v1", "--model", MODEL_ID, "--api", "chat",
                                      "--requests", "2", "--output-len", "8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())["runs"][0]
    assert r["completed"] == 2 and r["output_tokens"] == 16 and r["ttft_ms"]["p50"] > 0


def test_wrong_model_id_is_counted_as_errors_by_status(tiny_server, tmp_path):
    url, _ = tiny_server
    out = tmp_path / "bad.json"
    result = CliRunner().invoke(app, ["bench", "--endpoint", url, "--model", "no-such-model", "--requests", "3",
                                      "--concurrency", "3", "--json", str(out)])
    assert isinstance(result.exception, OpsError)
    r = json.loads(out.read_text())["runs"][0]
    assert r["warmup_failed"] and r["errors_by_status"] == {"404": 1}  # the 3 timed requests were not sent
    assert "no-such-model" in r["first_error"]


def test_planner_equals_what_this_vllm_logged(tiny_server):
    """The running engine's own "CPU KV cache size: N tokens, Maximum concurrency ...: Cx" line."""
    import re

    from ops.plan import PlanInput, plan

    _, log_path = tiny_server
    text = log_path.read_text()
    m = re.search(r"(?:GPU|CPU) KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: "
                  r"([\d.]+)x", text)
    assert m, text[-2000:]
    p = plan(PlanInput(model="tiny", accelerator="CPU", max_model_len=MAX_LEN, kv_cache_memory_gib=1.0))
    assert p["kv_cache_tokens"] == int(m.group(1).replace(",", ""))
    assert f"{p['max_concurrency']:.2f}" == m.group(3)


def test_bench_comparison_reads_the_servers_own_view_of_a_run(tiny_server, tmp_path):
    """bench/bench_vs_vllm.py referees the two clients with the server's histograms: over one ops bench run
    they count every request (the warm-up one too) and give means no client timing enters."""
    from tests import scripts

    bench_vs_vllm = scripts.bench_vs_vllm()

    url, _ = tiny_server
    before = bench_vs_vllm.scrape(url)
    result = CliRunner().invoke(app, ["bench", "--endpoint", url, "--model", MODEL_ID, "--requests", "3",
                                      "--input-len", "16", "--output-len", "8", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    after = bench_vs_vllm.scrape(url)
    for name in bench_vs_vllm.SERVER_METRICS.values():
        assert after[name][1] - before[name][1] == (4 * 7 if "inter_token" in name else 4), name
    view = bench_vs_vllm.server_view(before, after)
    assert 0 < view["itl"] < view["e2e"] and 0 < view["ttft"] < view["e2e"]
    assert bench_vs_vllm.scrape("http://127.0.0.1:9") is None  # nothing listening: no referee, raw figures
