"""End to end on the real local stack: `ops deploy --target local` (Ray Serve LLM + vLLM's CPU build + the tiny
gpt-oss trained to speak harmony), then the clients of the gpt-oss guides against it, judged on what they get:
reasoning apart from the answer under both field names, reasoning effort that changes the reasoning, tool calls
the model makes itself, the Responses API's function_call round, the Agents SDK example run as written; bad
input answered with OpenAI-shaped 4xx; Ray locked down (loopback only, token auth); status, smoke, logs and
terminate. Every request is at temperature 0 (the tiny model's generation_config makes greedy the default).

One deployment is shared by the module, with the spec's default reasoning effort set to low. Run by hand under
the stack lock: flock /tmp/gpt-oss-stack.lock .venv/bin/pytest -m stack tests/test_local_stack.py
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import httpx
import pytest

from ops.catalog import GPU_STREAM_INTERVAL
from tests.support import run_ops

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1800)]

MODEL = "my-gpt-oss"
ENCODINGS = Path(__file__).resolve().parents[2] / "shared" / "tiktoken_encodings"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather in a given city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
RESPONSES_WEATHER_TOOL = {"type": "function", **WEATHER_TOOL["function"]}  # the Responses API's flat form


def _env(home: Path, ray_tmp: Path) -> dict[str, str]:
    return {"GPT_OSS_OPS_HOME": str(home), "GPT_OSS_RAY_TEMP_DIR": str(ray_tmp),
            "TIKTOKEN_ENCODINGS_BASE": str(ENCODINGS), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "RAY_USAGE_STATS_ENABLED": "0"}


def ops(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_ops(*args, env=env, timeout=timeout)


def _ray_is_up() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir) -> dict[str, str]:
    ray_tmp = Path(f"/tmp/gr-{secrets.token_hex(3)}")
    ray_tmp.mkdir()
    yield _env(tmp_path_factory.mktemp("gpt-oss-ops-home"), ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def test_busy_port_is_refused_before_anything_starts(env):
    """8000 taken by someone else: a clear error naming the port and the fix, and no Ray left behind."""
    assert not _ray_is_up(), "a Ray cluster is already running on this machine; stop it first (ray stop)"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 8000))
    blocker.listen(1)
    try:
        proc = ops(env, "deploy", "--target", "local", timeout=300)
    finally:
        blocker.close()
    assert proc.returncode != 0
    assert "port 8000" in proc.stderr and "--set port=8001" in proc.stderr, proc.stderr
    assert not _ray_is_up(), "the failed deploy left Ray running"


# The module's stack streams as the GPU presets do, 20 tokens to a message (the local preset sends token by token;
# the other stacks' tests stream that way).
DEPLOY = ("--target", "local", "--set", "reasoning_effort=low", "--set", f"engine_args.stream_interval={GPU_STREAM_INTERVAL}")


@pytest.fixture(scope="module")
def deployed(env):
    home = Path(env["GPT_OSS_OPS_HOME"])
    proc = ops(env, "deploy", *DEPLOY, "--json")
    try:
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = json.loads(proc.stdout)
        key = (home / "api_key").read_text().strip()
        yield {"result": result, "key": key, "endpoint": result["endpoint"], "home": home, "env": env}
    finally:
        ops(env, "terminate", "--target", "local", timeout=300)


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
    assert stat.S_IMODE((home / "ray_auth_token").stat().st_mode) == 0o600
    assert any(c.startswith("serve application") for c in result["changed"])
    assert deployed["key"] not in json.dumps(result)  # the key itself is never printed


def test_second_deploy_converges(deployed):
    proc = ops(deployed["env"], "deploy", *DEPLOY, "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert not any(c.startswith("serve application") for c in result["changed"]), result
    assert any("already running" in u for u in result["unchanged"]), result
    assert result["api_key_hint"] == deployed["result"]["api_key_hint"]


def test_status_json(deployed):
    proc = ops(deployed["env"], "status", "--target", "local", "--json", timeout=120)
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



# ------------------------------------------------------------------------------------- Ray locked down


def _stack_pids(token_file: Path) -> list[int]:
    """Every process of this deployment's Ray: they all carry the target's token path in their environment."""
    want = f"RAY_AUTH_TOKEN_PATH={token_file}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if want in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _grpc_code(port: int, metadata) -> grpc.StatusCode:
    """The status of one call to a Serve replica's gRPC service (an empty request)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/ray.serve.ASGIService/HandleRequest")
        try:
            call(b"", metadata=metadata, timeout=10)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_every_listener_of_the_stack_is_on_loopback_and_ray_wants_its_token(deployed):
    from ops import ray_token
    from ops.doctor import checks

    token_file = deployed["home"] / "ray_auth_token"
    pids = set(_stack_pids(token_file))
    assert len(pids) >= 5, pids  # GCS, raylet, dashboard, agents, workers, the engine
    owners = checks.socket_owners()
    listeners = [(addr, port, owners[inode][1]) for addr, port, inode in checks._listeners("/proc")
                 if inode in owners and owners[inode][0] in pids]
    assert any(port == 6379 for _, port, _ in listeners) and any(port == 8000 for _, port, _ in listeners)
    beyond = [x for x in listeners if not checks.is_loopback(x[0])]
    # docs/local.md: the only exception is what Ray cannot bind to loopback (checks.RAY_UNBINDABLE), each a
    # gRPC server that refuses a call without the token or with a wrong one
    assert [x for x in beyond if not checks.unbindable(x[2], x[1])] == [], beyond
    for _, port, _ in beyond:
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            assert _grpc_code(port, metadata) == grpc.StatusCode.UNAUTHENTICATED, (port, metadata)
    jobs = "http://127.0.0.1:8265/api/jobs/"
    assert httpx.get(jobs, timeout=10).status_code == 401
    assert httpx.get(jobs, timeout=10, headers={"Authorization": "Bearer wrong"}).status_code in (401, 403)
    token = ray_token.read(token_file)
    assert httpx.get(jobs, timeout=10, headers=ray_token.headers(token)).status_code == 200
    proc = ops(deployed["env"], "doctor", "--json", timeout=300)
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert rows["ray-ports"]["status"] == "ok" and rows["ray-auth"]["status"] == "ok", rows


# --------------------------------------------------------------------------- what the model answers


def _chat(client, **kw):
    kw.setdefault("messages", [{"role": "user", "content": "How many r's in strawberry?"}])
    return client.chat.completions.create(model=MODEL, max_tokens=256, temperature=0, **kw)


def _reasoning(message) -> str:
    from ops.smoke import reasoning_of

    names = reasoning_of(message)
    assert names["reasoning"] == names["reasoning_content"], names
    return names["reasoning"] or ""


def test_reasoning_comes_apart_from_the_answer_under_both_names(client):
    r = _chat(client)
    msg, choice = r.choices[0].message, r.choices[0]
    assert _reasoning(msg) and msg.content and _reasoning(msg) != msg.content
    assert choice.finish_reason == "stop" and not msg.tool_calls


def test_the_ray_guide_streaming_client_prints_reasoning_then_the_answer(deployed):
    """The client code of the Ray Serve LLM gpt-oss guide, as written but for the URL, key and prompt."""
    script = textwrap.dedent(f"""
        from urllib.parse import urljoin
        from openai import OpenAI

        api_key = {deployed["key"]!r}
        base_url = "http://127.0.0.1:8000"

        client = OpenAI(base_url=urljoin(base_url, "v1"), api_key=api_key)

        # Example query
        response = client.chat.completions.create(
            model="my-gpt-oss",
            messages=[
                {{"role": "user", "content": "How many r's in strawberry"}}
            ],
            stream=True
        )

        # Stream
        for chunk in response:
            # Stream reasoning content
            if hasattr(chunk.choices[0].delta, "reasoning_content"):
                data_reasoning = chunk.choices[0].delta.reasoning_content
                if data_reasoning:
                    print("R:" + data_reasoning, end="", flush=True)
            # Later, stream the final answer
            if hasattr(chunk.choices[0].delta, "content"):
                data_content = chunk.choices[0].delta.content
                if data_content:
                    print("C:" + data_content, end="", flush=True)
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "R:" in out and "C:" in out and out.index("R:") < out.index("C:"), out


def test_reasoning_effort_changes_the_reasoning(client):
    lengths = {e: len(_reasoning(_chat(client, reasoning_effort=e).choices[0].message))
               for e in ("low", "medium", "high")}
    assert lengths["low"] < lengths["medium"] < lengths["high"], lengths
    # "Reasoning: low" in the system prompt (vLLM renders it into the developer message) wins over the request's
    system_low = _chat(client, reasoning_effort="high", messages=[
        {"role": "system", "content": "Reasoning: low. You are an AI travel assistant."},
        {"role": "user", "content": "What are the three main touristic spots to see in Paris?"}])
    assert len(_reasoning(system_low.choices[0].message)) < lengths["high"]


def test_the_specs_reasoning_effort_is_the_default_and_a_request_overrides_it(client):
    """The module deployed with reasoning_effort=low: a request naming none reasons as `low` does."""
    default = _reasoning(_chat(client).choices[0].message)
    low = _reasoning(_chat(client, reasoning_effort="low").choices[0].message)
    high = _reasoning(_chat(client, reasoning_effort="high").choices[0].message)
    assert default == low and len(high) > len(default)


def test_the_model_calls_the_tool_then_answers_from_its_result(client):
    messages = [{"role": "user", "content": "What's the weather in Berlin right now?"}]
    first = _chat(client, messages=messages, tools=[WEATHER_TOOL])
    msg = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and msg.tool_calls, msg
    call = msg.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Berlin"}
    assert _reasoning(msg)  # it reasoned before calling
    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
                 {"role": "tool", "tool_call_id": call.id, "content": "The weather in Berlin is rainy."}]
    second = _chat(client, messages=messages, tools=[WEATHER_TOOL])
    answer = second.choices[0].message
    assert second.choices[0].finish_reason == "stop" and not answer.tool_calls
    assert "Berlin" in (answer.content or "") and "rainy" in answer.content


def _streamed_chat(client, **kw) -> tuple[dict, int]:
    """A streamed chat put back together (reasoning, content, tool calls, finish) and how many chunks it took."""
    kw.setdefault("messages", [{"role": "user", "content": "How many r's in strawberry?"}])
    got = {"reasoning": "", "content": "", "calls": {}, "finish": None}
    chunks = 0
    for chunk in client.chat.completions.create(model=MODEL, max_tokens=256, temperature=0, stream=True, **kw):
        if not chunk.choices:
            continue
        chunks += 1
        choice = chunk.choices[0]
        got["reasoning"] += _reasoning(choice.delta) or ""
        got["content"] += choice.delta.content or ""
        for call in choice.delta.tool_calls or []:
            entry = got["calls"].setdefault(call.index, {"name": "", "arguments": ""})
            entry["name"] += (call.function and call.function.name) or ""
            entry["arguments"] += (call.function and call.function.arguments) or ""
        got["finish"] = choice.finish_reason or got["finish"]
    return got, chunks


BERLIN = {"messages": [{"role": "user", "content": "What's the weather in Berlin right now?"}], "tools": [WEATHER_TOOL]}


@pytest.mark.parametrize("kw", [{}, BERLIN], ids=["answer", "tool-call"])
def test_chat_streamed_in_the_gpu_presets_chunks_is_the_whole_answer(client, kw):
    """The module's stack streams as the GPU presets do, 20 tokens to a message (engine_args.stream_interval):
    the harmony parsers, Ray Serve LLM and the ingress must give reasoning, answer and tool-call arguments whole
    when a chunk spans a channel or a call's boundary."""
    whole = _chat(client, **kw)
    msg = whole.choices[0].message
    streamed, chunks = _streamed_chat(client, **kw)
    calls = {i: {"name": c.function.name, "arguments": c.function.arguments} for i, c in enumerate(msg.tool_calls or [])}
    assert streamed == {"reasoning": _reasoning(msg), "content": msg.content or "", "calls": calls,
                        "finish": whole.choices[0].finish_reason}
    assert bool(calls) == bool(kw) and streamed["reasoning"]
    tokens = whole.usage.completion_tokens
    assert chunks <= -(-tokens // GPU_STREAM_INTERVAL) + 4 < tokens, (tokens, chunks)  # chunked: the setting arrived


def test_responses_streamed_in_the_gpu_presets_chunks_is_the_whole_response(client):
    """/v1/responses streamed from an engine that hands out 20 tokens at a time, through the replica's gathering
    of its events (vLLM's stream has an event per token even so; tests/test_responses_batching.py): the same
    reasoning, text and call arguments as the response not streamed."""
    for kw in ({"input": "Explain what MXFP4 quantization is."},
               {"input": "What's the weather in Paris?", "tools": [RESPONSES_WEATHER_TOOL]}):
        whole = client.responses.create(model=MODEL, temperature=0, **kw)
        text = {"response.reasoning_text.delta": "", "response.output_text.delta": "",
                "response.function_call_arguments.delta": ""}
        for event in client.responses.create(model=MODEL, temperature=0, stream=True, **kw):
            if event.type in text:
                text[event.type] += event.delta
            if event.type == "response.completed":
                done = event.response
        reasoning = "".join(c.text for o in whole.output if o.type == "reasoning" for c in o.content or [])
        arguments = "".join(o.arguments for o in whole.output if o.type == "function_call")
        assert text == {"response.reasoning_text.delta": reasoning, "response.output_text.delta": whole.output_text,
                        "response.function_call_arguments.delta": arguments}, kw
        assert reasoning and bool(arguments) == ("tools" in kw)
        assert [o.type for o in done.output] == [o.type for o in whole.output]


def test_responses_plain_completed_and_streamed(client):
    r = client.responses.create(model=MODEL, input="Explain what MXFP4 quantization is.",
                                instructions="You are a helpful assistant.", temperature=0)
    assert r.status == "completed" and [o.type for o in r.output] == ["reasoning", "message"] and r.output_text
    events = [e.type for e in client.responses.create(model=MODEL, input="Say hello.", temperature=0, stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events


def test_responses_function_call_item_and_its_follow_up(client):
    items: list = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=items, tools=[RESPONSES_WEATHER_TOOL], temperature=0)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    items += [o.model_dump(exclude_none=True) for o in first.output]
    items.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "The weather in Paris is sunny."})
    second = client.responses.create(model=MODEL, input=items, tools=[RESPONSES_WEATHER_TOOL], temperature=0)
    assert second.status == "completed" and "Paris" in second.output_text and "sunny" in second.output_text


def test_the_vllm_guides_agents_sdk_example_completes(deployed, tmp_path):
    """The haiku agent of the vLLM gpt-oss guide, as written but for base URL, key and model name (and the
    comma the guide's listing misses after `model=...`)."""
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio
        from openai import AsyncOpenAI
        from agents import Agent, Runner, function_tool, OpenAIResponsesModel, set_tracing_disabled

        set_tracing_disabled(True)

        @function_tool
        def get_weather(city: str):
            print(f"[debug] getting weather for {{city}}")
            return f"The weather in {{city}} is sunny."


        async def main(model: str, api_key: str):
            agent = Agent(
                name="Assistant",
                instructions="You only respond in haikus.",
                model=OpenAIResponsesModel(
                    model="my-gpt-oss",
                    openai_client=AsyncOpenAI(
                        base_url="{deployed['endpoint']}",
                        api_key={deployed['key']!r},
                    ),
                ),
                tools=[get_weather],
            )

            result = await Runner.run(agent, "What's the weather in Tokyo?")
            print(result.final_output)

        if __name__ == "__main__":
            asyncio.run(main("my-gpt-oss", "unused"))
        """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines[0] == "[debug] getting weather for Tokyo", proc.stdout
    assert len(lines) > 1 and "Tokyo" in "\n".join(lines[1:]), proc.stdout  # the final output, after the tool


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


def test_a_stream_of_bad_requests_gets_named_4xx_and_the_server_keeps_serving(deployed, client):
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    cases: list[tuple[str, dict, int, str | None]] = []
    for path in ("/chat/completions", "/completions", "/responses", "/embeddings"):
        cases += [(path, {"content": b'{"model": "my-gpt-oss", '}, 400, None),  # invalid JSON
                  (path, {"content": b"\xff\xfe not even text"}, 400, None),
                  (path, {"content": b"[1, 2, 3]"}, 400, None)]  # JSON, but not an object
    big = b'{"model": "my-gpt-oss", "messages": [{"role": "user", "content": "' + b"x" * (5 * 1024 * 1024) + b'"}]}'
    cases += [("/chat/completions", {"content": big}, 413, None), ("/responses", {"content": big}, 413, None)]
    for field, value in (("n", 5), ("n", 0), ("n", "two"), ("max_tokens", 100000), ("max_tokens", -1),
                         ("max_completion_tokens", 99999), ("max_tokens", 1.5)):
        cases.append(("/chat/completions", {"json": {**chat, field: value}}, 400, field))
    cases += [("/responses", {"json": {"model": MODEL, "input": "hi", "max_output_tokens": 100000}}, 400,
               "max_output_tokens"),
              ("/completions", {"json": {"model": MODEL, "prompt": "hi", "max_tokens": 4096}}, 400, "max_tokens")]
    assert len(cases) >= 20
    for path, kw, status, param in cases:
        r = _post(deployed, path, headers={"content-type": "application/json"}, **kw)
        assert r.status_code == status, (path, status, r.status_code, r.text[:300])
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"]
        if param:
            assert err["param"] == param and param in err["message"], err
    assert _chat(client).choices[0].message.content  # and the next good request is answered


@pytest.mark.parametrize("path,body", [
    ("/chat/completions", {"messages": [{"role": "user", "content": "hello " * 3000}], "max_tokens": 8}),
    ("/responses", {"input": "hello " * 3000, "max_output_tokens": 8})])
def test_prompt_longer_than_context_is_400_with_the_limit(deployed, path, body):
    r = _post(deployed, path, json={"model": MODEL, **body})
    assert r.status_code == 400, r.text
    assert "2048" in r.json()["error"]["message"]


# ------------------------------------------------------------------------------------ smoke, logs, end


def test_smoke_cli_json(deployed):
    proc = ops(deployed["env"], "smoke", "--target", "local", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["failed"] == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["tool_round"]["detail"]["arguments"] == {"city": "Paris"}
    assert checks["chat"]["detail"]["reasoning"] and checks["chat_stream"]["detail"]["reasoning_chars"] > 0
    assert checks["responses_tool_round"]["detail"]["status"] == "completed"
    efforts = [checks[f"reasoning_effort_{e}"]["detail"]["reasoning_chars"] for e in ("low", "medium", "high")]
    assert efforts == sorted(efforts) and efforts[0] < efforts[2]


def test_smoke_fails_with_a_wrong_key(deployed, tmp_path):
    bad = tmp_path / "bad-key"
    bad.write_text("nope\n")
    proc = ops(deployed["env"], "smoke", "--target", "local", "--json", "--api-key-file", str(bad), timeout=300)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False


def test_logs_cli(deployed):
    proc = ops(deployed["env"], "logs", "--target", "local", "--json", "-n", "5", timeout=60)
    assert proc.returncode == 0, proc.stderr
    logs = json.loads(proc.stdout)
    assert any("controller" in p for p in logs) and any("GptOss" in p for p in logs)
    assert all(p.startswith(deployed["env"]["GPT_OSS_RAY_TEMP_DIR"]) for p in logs)  # this deployment's own Ray


def test_terminate_twice(deployed):
    first = ops(deployed["env"], "terminate", "--target", "local", "--json", timeout=300)
    assert first.returncode == 0, first.stderr
    assert "ray head" in json.loads(first.stdout)["stopped"]
    assert not _ray_is_up()
    assert _stack_pids(deployed["home"] / "ray_auth_token") == []  # no engine or worker outlives it
    second = ops(deployed["env"], "terminate", "--target", "local", timeout=120)
    assert second.returncode == 0 and "nothing was running" in second.stderr
    st = ops(deployed["env"], "status", "--target", "local", "--json", timeout=60)
    assert json.loads(st.stdout)["running"] is False
