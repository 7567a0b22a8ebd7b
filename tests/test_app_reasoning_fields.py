"""Reasoning under both names, on real vLLM 0.29 response objects serialised as the ingress sends them: a client
reading `reasoning_content` (the Ray guide's) and one reading `reasoning` (vLLM's) both get the text."""

from __future__ import annotations

import asyncio
import json

from app import reasoning_fields


def test_a_completion_gets_both_names():
    from vllm.entrypoints.openai.chat_completion.protocol import (ChatCompletionResponse,
                                                                   ChatCompletionResponseChoice, ChatMessage)
    from vllm.entrypoints.serve.engine.protocol import UsageInfo

    resp = ChatCompletionResponse(model="m", choices=[ChatCompletionResponseChoice(
        index=0, message=ChatMessage(role="assistant", content="4", reasoning="add them"))],
        usage=UsageInfo(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    body = reasoning_fields.completion(json.loads(resp.model_dump_json()))
    msg = body["choices"][0]["message"]
    assert msg["reasoning"] == msg["reasoning_content"] == "add them" and msg["content"] == "4"


def test_a_message_without_reasoning_is_left_alone():
    body = {"choices": [{"message": {"role": "assistant", "content": "x", "reasoning": None}}]}
    assert reasoning_fields.completion(json.loads(json.dumps(body))) == body


def test_a_stream_split_anywhere_gets_both_names():
    events = ['data: {"choices": [{"index": 0, "delta": {"reasoning": "thin"}}]}\n\n',
              'data: {"choices": [{"index": 0, "delta": {"content": "ok"}}]}\n\n', "data: [DONE]\n\n"]
    raw = "".join(events).encode()

    async def pieces():  # cut the stream into 7-byte chunks, across event boundaries
        for i in range(0, len(raw), 7):
            yield raw[i:i + 7]

    async def collect():
        return [e async for e in reasoning_fields.sse_stream(pieces())]

    out = asyncio.run(collect())
    assert out[-1] == "data: [DONE]\n\n" and len(out) == 3
    first = json.loads(out[0][len("data: "):])
    assert first["choices"][0]["delta"] == {"reasoning": "thin", "reasoning_content": "thin"}
    assert json.loads(out[1][len("data: "):])["choices"][0]["delta"] == {"content": "ok"}
