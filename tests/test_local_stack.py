"""End to end on the real local stack: `ops deploy --target local` (Ray Serve LLM + vLLM's CPU build + the tiny
gpt-oss), then the OpenAI SDK, the Agents SDK, auth, bad inputs, status, smoke, logs and terminate against it.

One deployment is shared by the module. The model has random weights, so tests assert on the protocol
(status codes, fields, event types, streaming), never on the text. Run by hand under the stack lock:
    flock /tmp/gpt-oss-stack.lock .venv/bin/pytest -m stack tests/test_local_stack.py
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

MODEL = "my-gpt-oss"
ENCODINGS = Path(__file__).resolve().parents[2] / "shared" / "tiktoken_encodings"
# With random weights the model almost never samples a stop token; this bias makes it stop at once, so a
# Responses/Agents turn ends "completed" instead of "incomplete" (max_output_tokens).
STOP_NOW = {"logit_bias": {"200002": 100}}


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, GPT_OSS_OPS_HOME=str(home), TIKTOKEN_ENCODINGS_BASE=str(ENCODINGS),
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", COLUMNS="200")


def ops(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops", *args], env=_env(home), capture_output=True, text=True,
                          timeout=timeout)


def _ray_is_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gpt-oss-ops-home")


def test_busy_port_is_refused_before_anything_starts(home):
    """8000 taken by someone else: a clear error naming the port and the fix, and no Ray left behind."""
    assert not _ray_is_up(), "a Ray cluster is already running on this machine; stop it first (ray stop)"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 8000))
    blocker.listen(1)
    try:
        proc = ops(home, "deploy", "--target", "local", timeout=300)
    finally:
        blocker.close()
    assert proc.returncode != 0
    assert "port 8000" in proc.stderr and "--set port=8001" in proc.stderr, proc.stderr
    assert not _ray_is_up(), "the failed deploy left Ray running"


@pytest.fixture(scope="module")
def deployed(home):
    proc = ops(home, "deploy", "--target", "local", "--json")
    try:
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = json.loads(proc.stdout)
        key = (home / "api_key").read_text().strip()
        yield {"result": result, "key": key, "endpoint": result["endpoint"], "home": home}
    finally:
        ops(home, "terminate", "--target", "local", timeout=300)


@pytest.fixture(scope="module")
def client(deployed):
    from openai import OpenAI

    return OpenAI(base_url=deployed["endpoint"], api_key=deployed["key"], timeout=120, max_retries=0)


# ------------------------------------------------------------------------------------------ deploy


def test_deploy_reports_endpoint_and_key_file(deployed):
    result, home = deployed["result"], deployed["home"]
    assert result["endpoint"] == "http://127.0.0.1:8000/v1" and result["model_id"] == MODEL
    key_file = home / "api_key"
    assert result["api_key_hint"] == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any(c.startswith("serve application") for c in result["changed"])
    assert deployed["key"] not in json.dumps(result)  # the key itself is never printed


def test_second_deploy_converges(deployed):
    proc = ops(deployed["home"], "deploy", "--target", "local", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert not any(c.startswith("serve application") for c in result["changed"]), result
    assert any("already running" in u for u in result["unchanged"]), result
    assert result["api_key_hint"] == deployed["result"]["api_key_hint"]


def test_status_json(deployed):
    proc = ops(deployed["home"], "status", "--target", "local", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["running"] is True and st["app_status"] == "RUNNING"
    assert st["endpoint"] == deployed["endpoint"] and st["model_id"] == MODEL
    assert st["details"]["api_key_file"] == str(deployed["home"] / "api_key")
    assert {d["status"] for d in st["deployments"].values()} == {"HEALTHY"}
    assert all(d["replicas"].get("RUNNING") == 1 for d in st["deployments"].values())


# -------------------------------------------------------------------------------------------- auth


def test_models_need_the_key(deployed, client):
    from openai import AuthenticationError, OpenAI

    assert [m.id for m in client.models.list().data] == [MODEL]
    bad = OpenAI(base_url=deployed["endpoint"], api_key="not-the-key", max_retries=0)
    with pytest.raises(AuthenticationError) as e:
        bad.models.list()
    assert e.value.status_code == 401
    body = e.value.body
    assert body["code"] == "invalid_api_key" and body["type"] == "invalid_request_error" and body["param"] is None
    r = httpx.post(f"{deployed['endpoint']}/chat/completions", json={"model": MODEL, "messages": []}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(f"{deployed['endpoint']}/responses", json={"model": MODEL, "input": "hi"},
                   headers={"Authorization": "Bearer nope"}, timeout=30)
    assert r.status_code == 401


# -------------------------------------------------------------------------------------------- chat


def test_chat_plain(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
    assert r.object == "chat.completion" and r.model == MODEL
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens > 0


def test_chat_streamed_with_reasoning_fields(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=24, stream=True, reasoning_effort="low"))
    # Ray Serve batches stream pieces (stream_batching_interval_ms), so the chunk count varies; what the client
    # gets is still a stream of chat.completion.chunk events whose deltas carry the text.
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    text = "".join((d.content or "") + (getattr(d, "reasoning_content", None) or getattr(d, "reasoning", None) or "")
                   for d in deltas)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("length", "stop")


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort(client, effort):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8,
                                       reasoning_effort=effort)
    assert r.choices[0].message.role == "assistant"


def test_system_prompt_reasoning_low(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=8, messages=[
        {"role": "system", "content": "Reasoning: low"}, {"role": "user", "content": "Hi"}])
    assert r.choices[0].message.role == "assistant"


def test_tool_round_over_chat(client):
    from ops.smoke import _tool_round

    detail = _tool_round(client, MODEL, 16)
    assert detail["tool_call"] == "get_weather" and detail["final_finish_reason"] in ("length", "stop", "tool_calls")


# --------------------------------------------------------------------------------------- responses


def test_responses_plain_and_with_instructions(client):
    r = client.responses.create(model=MODEL, input="Say hello.", max_output_tokens=16)
    assert r.object == "response" and r.model == MODEL and r.status in ("completed", "incomplete")
    assert r.output and r.usage.output_tokens > 0
    r = client.responses.create(model=MODEL, input="Say hello.", instructions="Answer in French.",
                                max_output_tokens=16)
    assert r.object == "response" and r.output


def test_responses_completed_and_streamed(client):
    r = client.responses.create(model=MODEL, input="Hi", max_output_tokens=16, extra_body=STOP_NOW)
    assert r.status == "completed" and r.output[0].type == "message"
    events = [e.type for e in client.responses.create(model=MODEL, input="Hi", max_output_tokens=16, stream=True)]
    assert events[0] == "response.created" and events[-1] in ("response.completed", "response.incomplete")
    assert "response.output_item.added" in events


def test_responses_function_tool_round(client):
    tool = {"type": "function", "name": "get_weather", "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    items = [{"role": "user", "content": "Weather in Paris?"},
             {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
             {"type": "function_call_output", "call_id": "call_1", "output": '{"sky":"sunny"}'}]
    r = client.responses.create(model=MODEL, input=items, tools=[tool], max_output_tokens=16)
    assert r.object == "response" and r.output
    assert [t.name for t in r.tools] == ["get_weather"]


def test_agents_sdk_agent_with_function_tool(deployed):
    from agents import (Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool,
                        set_tracing_disabled)
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    async def run():
        model = OpenAIResponsesModel(model=MODEL, openai_client=AsyncOpenAI(base_url=deployed["endpoint"],
                                                                            api_key=deployed["key"], max_retries=0))
        agent = Agent(name="weather", instructions="Answer with the weather tool.", model=model, tools=[get_weather],
                      model_settings=ModelSettings(max_tokens=16, extra_body=STOP_NOW))
        fresh = await Runner.run(agent, "What's the weather in Paris?", max_turns=3)
        # The round after a tool call: the SDK sends the call and its output back as Responses input items.
        after_tool = await Runner.run(agent, [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny in Paris"}], max_turns=3)
        return fresh, after_tool

    fresh, after_tool = asyncio.run(run())
    for result in (fresh, after_tool):
        assert isinstance(result.final_output, str)
        assert result.raw_responses and result.raw_responses[-1].response_id


# ------------------------------------------------------------------------------------------ bad input


def _post(deployed, path: str, headers: dict[str, str] | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {deployed['key']}", **(headers or {})}
    return httpx.post(f"{deployed['endpoint']}{path}", headers=headers, timeout=60, **kw)


@pytest.mark.parametrize("path,body", [("/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                                       ("/responses", {"input": "hi"})])
def test_unknown_model_is_openai_404(deployed, path, body):
    r = _post(deployed, path, json={"model": "gpt-5-nope", **body})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model" and "gpt-5-nope" in err["message"]


@pytest.mark.parametrize("path", ["/chat/completions", "/responses"])
def test_malformed_body_is_400(deployed, path):
    r = _post(deployed, path, content=b'{"model": "my-gpt-oss", ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    wrong_type = {"model": MODEL, "messages": "not-a-list"} if path == "/chat/completions" else \
        {"model": MODEL, "input": 42}
    r = _post(deployed, path, json=wrong_type)
    assert r.status_code == 400 and r.json()["error"]["message"]


@pytest.mark.parametrize("path,body", [
    ("/chat/completions", {"messages": [{"role": "user", "content": "hello " * 3000}], "max_tokens": 8}),
    ("/responses", {"input": "hello " * 3000, "max_output_tokens": 8})])
def test_prompt_longer_than_context_is_400_with_the_limit(deployed, path, body):
    r = _post(deployed, path, json={"model": MODEL, **body})
    assert r.status_code == 400, r.text
    assert "2048" in r.json()["error"]["message"]


# ------------------------------------------------------------------------------------ smoke, logs, end


def test_smoke_cli_json(deployed):
    proc = ops(deployed["home"], "smoke", "--target", "local", "--json", "--max-tokens", "16", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["failed"] == 0
    assert {c["name"] for c in report["checks"]} >= {"chat_stream", "reasoning_effort_high", "tool_round",
                                                     "responses", "responses_tool_round"}


def test_smoke_fails_with_a_wrong_key(deployed, tmp_path):
    bad = tmp_path / "bad-key"
    bad.write_text("nope\n")
    proc = ops(deployed["home"], "smoke", "--target", "local", "--json", "--api-key-file", str(bad), timeout=300)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False


def test_logs_cli(deployed):
    proc = ops(deployed["home"], "logs", "--target", "local", "--json", "-n", "5", timeout=60)
    assert proc.returncode == 0, proc.stderr
    logs = json.loads(proc.stdout)
    assert any("controller" in p for p in logs) and any("GptOss" in p for p in logs)


def test_terminate_twice(deployed):
    first = ops(deployed["home"], "terminate", "--target", "local", "--json", timeout=300)
    assert first.returncode == 0, first.stderr
    assert "ray head" in json.loads(first.stdout)["stopped"]
    assert not _ray_is_up()
    second = ops(deployed["home"], "terminate", "--target", "local", timeout=120)
    assert second.returncode == 0 and "nothing was running" in second.stderr
    st = ops(deployed["home"], "status", "--target", "local", "--json", timeout=60)
    assert json.loads(st.stdout)["running"] is False
