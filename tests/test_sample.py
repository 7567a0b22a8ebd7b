"""Direct sampling with harmony (the vLLM guide's recipe, `ops sample`) on the trained tiny gpt-oss: harmony
renders the prefill, its stop tokens go to vLLM's SamplingParams, `LLM.generate` runs on vLLM's CPU build, and
the completion tokens are parsed back into harmony messages, a tool call into its recipient and arguments."""

from __future__ import annotations

import json
import os

import pytest

from ops import sample
from tests.support import run_ops

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]
WEATHER = "get_weather(city): Get current weather in a given city"
RETURN, CALL = 200002, 200012


@pytest.fixture(scope="module")
def llm(tiny_model_dir, encodings_dir):
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(encodings_dir)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    engine = sample.engine(str(tiny_model_dir), max_model_len=2048)
    yield engine
    del engine


def test_the_model_reasons_then_answers_and_stops(llm):
    r = sample.sample(llm, "How many r's in strawberry?")
    channels = [m["channel"] for m in r.messages]
    assert channels == ["analysis", "final"], r.messages
    assert r.completion_tokens[-1] == RETURN and r.stop_reason == str(RETURN)
    assert all(m["role"] == "assistant" for m in r.messages)  # harmony's Message.to_dict()


def test_reasoning_effort_changes_the_length_of_the_analysis(llm):
    lengths = {}
    for effort in ("low", "high"):
        r = sample.sample(llm, "Explain gravity briefly.", reasoning_effort=effort)
        lengths[effort] = len(r.messages[0]["content"][0]["text"])
        assert r.messages[0]["channel"] == "analysis"
    assert lengths["low"] < lengths["high"], lengths


def test_a_tool_call_is_parsed_into_its_recipient_and_arguments(llm):
    r = sample.sample(llm, "What's the weather in Tokyo?", tools=[sample.FunctionTool.parse(WEATHER)])
    call = r.messages[-1]
    assert r.completion_tokens[-1] == CALL, r.messages
    assert call["channel"] == "commentary" and call["recipient"] == "functions.get_weather"
    assert sample.tool_call(call) == ("get_weather", {"city": "Tokyo"})


def test_ops_sample_prints_parsed_messages(tiny_model_dir, encodings_dir):
    proc = run_ops("sample", "What's the weather in Berlin right now?", "--model", str(tiny_model_dir),
                   "--tool", WEATHER, "--json", env={"TIKTOKEN_ENCODINGS_BASE": str(encodings_dir)}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["stop_reason"] == str(CALL) and out["completion_tokens"] > 0
    assert sample.tool_call(out["messages"][-1]) == ("get_weather", {"city": "Berlin"})
    text = run_ops("sample", "--help").stdout
    assert "harmony" in text and "--tool" in text


def test_a_tool_that_is_not_a_tool_is_refused():
    proc = run_ops("sample", "hi", "--tool", "get weather!", "--model", "/nowhere", timeout=120)
    assert proc.returncode == 2 and "NAME(PARAM, ...)" in " ".join(proc.stderr.split())
