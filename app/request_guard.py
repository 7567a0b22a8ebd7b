"""Bad requests answered at the edge, before a replica sees them: OpenAI-shaped 4xx errors naming the field.

Ray Serve LLM's ingress answers a body that is not JSON with `500 Internal Server Error`, takes a body of any
size into memory, and forwards any `n` or `max_tokens` to the engine. This ASGI middleware sits in front of
it (inside the API-key check, so an unauthenticated client learns nothing) and, for the JSON routes:

- a declared or actual body over `max_request_bytes` -> 413 `request_too_large` (the body is not read past
  the limit);
- a body that is not JSON, or not a JSON object -> 400 `invalid_json`;
- `n` or a token budget (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) that is not a whole
  number in range -> 400 `invalid_value` with `param` naming it.

A request that passes is handed on with its body unchanged. Pure ASGI: no Ray, no vLLM, testable alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/v1/score",
               "/tokenize", "/detokenize")
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 4 * 1024 * 1024
    max_n: int = 4
    max_tokens: int | None = None

    @classmethod
    def from_args(cls, data: dict[str, Any] | None) -> "Limits":
        data = dict(data or {})
        return cls(max_request_bytes=int(data.get("max_request_bytes") or cls.max_request_bytes),
                   max_n=int(data.get("max_n") or cls.max_n),
                   max_tokens=int(data["max_tokens"]) if data.get("max_tokens") else None)


class RequestRefused(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": "invalid_request_error",
                                     "param": self.param, "code": self.code}}).encode()


def check_fields(body: Any, limits: Limits) -> None:
    """Raise RequestRefused for a body that is not an object, or an out-of-range `n` / token budget."""
    if not isinstance(body, dict):
        raise RequestRefused(400, f"the request body must be a JSON object, not {type(body).__name__}.",
                             "invalid_json")
    n = body.get("n")
    if n is not None and (not _whole(n) or not 1 <= n <= limits.max_n):
        raise RequestRefused(400, f"'n' must be a whole number from 1 to {limits.max_n} on this endpoint; got "
                                  f"{json.dumps(n)[:40]}.", "invalid_value", "n")
    for name in TOKEN_FIELDS:
        v = body.get(name)
        if v is None:
            continue
        top = limits.max_tokens
        if not _whole(v) or v < 1 or (top is not None and v > top):
            bound = f"from 1 to {top}" if top is not None else "of at least 1"
            raise RequestRefused(400, f"'{name}' must be a whole number {bound} on this endpoint; got "
                                      f"{json.dumps(v)[:40]}.", "invalid_value", name)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class RequestGuardMiddleware:
    """ASGI middleware applying `Limits` to POSTs on the JSON routes; everything else passes untouched."""

    def __init__(self, app, *, limits: dict[str, Any] | None = None):
        self.app = app
        self.limits = Limits.from_args(limits)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in JSON_ROUTES:
            return await self.app(scope, receive, send)
        try:
            body = await self._read(scope, receive)
            try:
                data = json.loads(body)
            except ValueError as e:  # also UnicodeDecodeError
                raise RequestRefused(400, f"the request body is not valid JSON ({e}).", "invalid_json") from None
            check_fields(data, self.limits)
        except RequestRefused as e:
            return await _refuse(send, e)

        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect message, when it comes

        return await self.app(scope, replay, send)

    async def _read(self, scope, receive) -> bytes:
        limit = self.limits.max_request_bytes
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length" and value.isdigit() and int(value) > limit:
                raise RequestRefused(413, f"the request body is {int(value):,} bytes; this endpoint accepts at "
                                          f"most {limit:,}.", "request_too_large")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestRefused(413, f"the request body is over {limit:,} bytes, the most this endpoint "
                                          "accepts.", "request_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


async def _refuse(send, e: RequestRefused) -> None:
    body = e.body()
    await send({"type": "http.response.start", "status": e.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
