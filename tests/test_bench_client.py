"""The bench client against a scripted OpenAI-style server (aiohttp.web on loopback, in the same event loop).

The server streams server-sent events with known pauses, so the client's timing, token counting and error
classification can be checked without a model: TTFT is at least the pause before the first chunk, there is
one inter-token gap per chunk after the first, and every failure lands under its status with its message.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from ops.bench import client

FIRST_PAUSE_S = 0.05
GAP_S = 0.01
TOKENS = 6
PROMPTS = web.AppKey("prompts", list)
PEERS = web.AppKey("peers", list)


def _event(data) -> bytes:
    return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


async def _completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[PROMPTS].append(body["prompt"])
    request.app[PEERS].append(request.transport.get_extra_info("peername"))
    mode = body["model"]
    if mode == "missing":
        return web.json_response({"error": {"message": "The model `missing` does not exist."}}, status=404)
    if request.headers.get("Authorization") != "Bearer k" and mode == "auth":
        return web.json_response({"error": {"message": "Unauthorized"}}, status=401)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b": keep-alive comment\n\n")
    await asyncio.sleep(FIRST_PAUSE_S)
    if mode == "stall":
        await asyncio.sleep(10)
    if mode == "broken":
        await resp.write(_event({"error": {"message": "engine died", "code": 500}}))
        return resp
    if mode == "empty":
        await resp.write(_event("[DONE]"))
        return resp
    for i in range(TOKENS):
        if i:
            await asyncio.sleep(GAP_S)
        await resp.write(_event({"choices": [{"index": 0, "text": f" t{i}"}]}))
    await resp.write(_event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": TOKENS}}))
    await resp.write(_event("[DONE]"))
    await asyncio.sleep(GAP_S)  # the body's end comes a moment after [DONE], as from a busy server
    return resp


async def _bench(**overrides) -> dict:
    app = web.Application()
    app[PROMPTS] = prompts = []
    app[PEERS] = peers = []
    app.router.add_post("/v1/completions", _completions)
    runner = web.AppRunner(app, shutdown_timeout=0.2)  # do not wait out a stalled handler
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        cfg = client.BenchConfig(**{"endpoint": f"http://127.0.0.1:{port}", "model": "ok", "requests": 4,
                                    "concurrency": 2, **overrides})
        return await client.run(cfg) | {"prompts_seen": prompts, "connections": len(set(peers))}
    finally:
        await runner.cleanup()


def test_streamed_timings_and_tokens_follow_the_server():
    r = asyncio.run(_bench())
    assert r["completed"] == 4 and r["failed"] == 0
    assert len(r["prompts_seen"]) == 5 and len(set(r["prompts_seen"])) == 5  # one warm-up, untimed, own prompt
    assert r["connections"] == 2  # one per request in flight, kept alive: no connection set-up inside a TTFT
    assert r["output_tokens"] == 4 * TOKENS and r["input_tokens"] == 4 * 11  # from the usage chunk
    assert r["ttft_ms"]["p50"] >= FIRST_PAUSE_S * 1000  # the comment line before it is not a token
    assert r["itl_ms"]["p50"] >= GAP_S * 1000
    assert r["tpot_ms"]["mean"] >= GAP_S * 1000
    assert r["output_throughput_tps"] > 0 and r["errors_by_status"] == {}


def test_http_errors_are_counted_by_status_with_the_servers_message():
    r = asyncio.run(_bench(model="missing", warmup=0))
    assert r["failed"] == 4 and r["errors_by_status"] == {"404": 4}
    assert "does not exist" in r["first_error"]


def test_a_failed_warmup_stops_the_level_before_the_timed_requests():
    r = asyncio.run(_bench(model="missing"))
    assert r["warmup_failed"] and r["errors_by_status"] == {"404": 1} and len(r["prompts_seen"]) == 1
    assert r["completed"] == 0 and "does not exist" in r["first_error"]


def test_the_api_key_is_sent_as_a_bearer_token():
    assert asyncio.run(_bench(model="auth", warmup=0))["errors_by_status"] == {"401": 4}
    assert asyncio.run(_bench(model="auth", api_key="k"))["completed"] == 4


@pytest.mark.parametrize("model,status,needle", [
    ("broken", "stream-error", "engine died"),
    ("empty", "no-tokens", "without a token"),
])
def test_a_stream_without_tokens_is_a_failure(model, status, needle):
    r = asyncio.run(_bench(model=model, warmup=0))
    assert r["errors_by_status"] == {status: 4} and needle in r["first_error"]


def test_a_stalled_stream_times_out_and_the_deadline_cancels_the_rest():
    r = asyncio.run(_bench(model="stall", request_timeout_s=0.5, warmup=0))
    assert r["errors_by_status"] == {"timeout": 4}
    r = asyncio.run(_bench(model="stall", requests=3, concurrency=1, deadline_s=0.5, warmup=0))
    assert r["errors_by_status"] == {"deadline": 3} and r["duration_s"] < 5
