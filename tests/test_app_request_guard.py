"""The endpoint's edge checks on their own (pure ASGI, no Ray): a body over the limit, a body that is not JSON
or not an object, and `n` / token budgets out of range each get an OpenAI-shaped 4xx naming the field; a good
request reaches the app with its body unchanged. The live stack repeats this through Ray Serve."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app.request_guard import RequestGuardMiddleware

LIMITS = {"max_request_bytes": 2048, "max_n": 2, "max_tokens": 100}


def _client():
    seen: list[bytes] = []

    async def app(scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = RequestGuardMiddleware(app, limits=LIMITS)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t"), seen


def _post(path: str, content: bytes, headers: dict | None = None) -> tuple[httpx.Response, list[bytes]]:
    async def go():
        client, seen = _client()
        async with client:
            return await client.post(path, content=content, headers=headers or {}), seen
    return asyncio.run(go())


def _error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and body["error"]["type"] == "invalid_request_error", body
    return body["error"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"])
def test_invalid_json_is_a_400_on_every_route(path):
    r, seen = _post(path, b'{"model": "m", "messages": [')
    assert r.status_code == 400 and _error(r)["code"] == "invalid_json" and seen == []


def test_a_json_array_is_not_a_request():
    r, _ = _post("/v1/chat/completions", b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in _error(r)["message"]


def test_body_over_the_limit_is_413_declared_or_not():
    r, seen = _post("/v1/chat/completions", b"x" * 4096)
    assert r.status_code == 413 and _error(r)["code"] == "request_too_large" and seen == []

    async def chunked():
        for _ in range(10):
            yield b" " * 500

    async def go():
        client, seen = _client()
        async with client:
            return await client.post("/v1/chat/completions", content=chunked()), seen
    r, seen = asyncio.run(go())
    assert r.status_code == 413 and seen == []


@pytest.mark.parametrize("field,value", [("n", 3), ("n", 0), ("n", "2"), ("max_tokens", 101), ("max_tokens", 0),
                                         ("max_completion_tokens", 1000), ("max_output_tokens", 2.5),
                                         ("max_tokens", True)])
def test_out_of_range_fields_are_named(field, value):
    r, seen = _post("/v1/chat/completions", json.dumps({"model": "m", field: value}).encode())
    err = _error(r)
    assert r.status_code == 400 and err["param"] == field and err["code"] == "invalid_value" and seen == []
    assert field in err["message"]


def test_a_good_request_passes_unchanged():
    body = json.dumps({"model": "m", "n": 2, "max_tokens": 100, "messages": []}).encode()
    r, seen = _post("/v1/chat/completions", body, {"content-type": "application/json"})
    assert r.status_code == 200 and seen == [body]
    r, seen = _post("/v1/models", b"not json at all")  # not a JSON route: left to the app
    assert r.status_code == 200
