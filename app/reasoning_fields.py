"""Reasoning under both names clients read: `reasoning` (vLLM >= 0.11, today's clients) and
`reasoning_content` (vLLM 0.10, the Ray Serve LLM gpt-oss guide's streaming client, many SDK wrappers).

vLLM 0.29 sends only `reasoning`, so a client written for `reasoning_content` prints no reasoning at all. The
ingress passes every chat completion through these functions: a message or delta that has `reasoning` gets
`reasoning_content` with the same text (and the other way round), streamed and not. Pure functions on JSON,
so they are tested without Ray.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

NAMES = ("reasoning", "reasoning_content")


def mirror(part: dict[str, Any]) -> bool:
    """Give a message/delta both names; True when it changed."""
    have = {n: part.get(n) for n in NAMES if part.get(n) is not None}
    if not have or len(have) == 2:
        return False
    text = next(iter(have.values()))
    for n in NAMES:
        part.setdefault(n, text)
        if part[n] is None:
            part[n] = text
    return True


def completion(body: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion or chat.completion.chunk document, with both names in every choice."""
    for choice in body.get("choices") or []:
        for key in ("message", "delta"):
            if isinstance(choice.get(key), dict):
                mirror(choice[key])
    return body


def sse_event(event: str) -> str:
    """One server-sent event ("data: {...}"), rewritten when it carries a chunk with reasoning."""
    prefix = "data: "
    if not event.startswith(prefix) or event.startswith("data: [DONE]"):
        return event
    payload = event[len(prefix):]
    stripped = payload.rstrip("\n")
    try:
        body = json.loads(stripped)
    except ValueError:
        return event
    if not isinstance(body, dict) or not body.get("choices"):
        return event
    return prefix + json.dumps(completion(body)) + payload[len(stripped):]


async def sse_stream(chunks: AsyncIterator[Any]) -> AsyncIterator[str]:
    """Re-emit an SSE stream event by event (events may arrive split across or packed into chunks)."""
    buffer = ""
    async for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, (bytes, bytearray)) else str(chunk)
        while "\n\n" in buffer:
            event, buffer = buffer.split("\n\n", 1)
            yield sse_event(event) + "\n\n"
    if buffer:
        yield sse_event(buffer)
