"""Real requests against a deployed endpoint, the way the gpt-oss clients send them.

Each check is one OpenAI-SDK call (chat plain and streamed with reasoning, each reasoning effort, the
"Reasoning: low" system prompt, a tool-call round, the Responses API with a function-tool round) and reports
protocol facts: fields present, chunks received, call ids matched. It does not judge the text, because the
local tiny model has random weights; on a real model the printed answers show whether it reasons.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
RESPONSES_WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city.",
                          "parameters": WEATHER_TOOL["function"]["parameters"]}


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SmokeReport:
    endpoint: str
    model_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "model_id": self.model_id, "ok": self.ok,
                "passed": sum(c.ok for c in self.checks), "failed": sum(not c.ok for c in self.checks),
                "checks": [asdict(c) for c in self.checks]}


def client(endpoint: str, api_key: str | None, timeout: float = 120.0):
    from openai import OpenAI

    return OpenAI(base_url=endpoint, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0)


def run(endpoint: str, model_id: str, api_key: str | None, *, max_tokens: int = 48,
        echo: Callable[[str], None] | None = None) -> SmokeReport:
    """Run every check; never raises for a failing check (each one records its error)."""
    c = client(endpoint, api_key)
    say = echo or (lambda _s: None)
    report = SmokeReport(endpoint, model_id)
    checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("models", lambda: _models(c, model_id)),
        ("chat", lambda: _chat(c, model_id, max_tokens)),
        ("chat_stream", lambda: _chat_stream(c, model_id, max_tokens, say)),
        *[(f"reasoning_effort_{e}", (lambda e=e: _effort(c, model_id, e, max_tokens))) for e in ("low", "medium", "high")],
        ("system_reasoning_low", lambda: _system_low(c, model_id, max_tokens)),
        ("tool_round", lambda: _tool_round(c, model_id, max_tokens)),
        ("responses", lambda: _responses(c, model_id, max_tokens)),
        ("responses_tool_round", lambda: _responses_tool_round(c, model_id, max_tokens)),
    ]
    for name, fn in checks:
        t0 = time.monotonic()
        try:
            detail = fn()
            report.checks.append(Check(name, True, round(time.monotonic() - t0, 3), detail))
        except Exception as e:  # a failing check is data, not a crash
            report.checks.append(Check(name, False, round(time.monotonic() - t0, 3), error=f"{type(e).__name__}: {e}"))
    return report


def _models(c, model_id: str) -> dict[str, Any]:
    ids = [m.id for m in c.models.list().data]
    assert model_id in ids, f"{model_id!r} not in /v1/models ({ids})"
    return {"models": ids}


def _chat(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "What is 2 + 2?"}],
                                  max_tokens=max_tokens)
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    return {"finish_reason": choice.finish_reason, "completion_tokens": r.usage.completion_tokens if r.usage else None,
            "content": (choice.message.content or "")[:200],
            "reasoning_content": (_reasoning(choice.message) or "")[:200]}


def _reasoning(message: Any) -> str | None:
    return getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None) or (
        (getattr(message, "model_extra", None) or {}).get("reasoning_content"))


def _chat_stream(c, model_id: str, max_tokens: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Streamed with reasoning, printed as the seed client does: thinking first, then the answer."""
    stream = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Tell me a short joke."}],
                                       max_tokens=max_tokens, stream=True, reasoning_effort="low")
    chunks, reasoning, content = 0, [], []
    for chunk in stream:
        chunks += 1
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        r = _reasoning(delta)
        if r:
            reasoning.append(r)
        if delta.content:
            content.append(delta.content)
    assert chunks > 0, "no chunks streamed"
    say(f"[thinking] {''.join(reasoning)[:300]}")
    say(f"[answer]   {''.join(content)[:300]}")
    return {"chunks": chunks, "reasoning_chars": len("".join(reasoning)), "content_chars": len("".join(content))}


def _effort(c, model_id: str, effort: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Explain gravity briefly."}],
                                  max_tokens=max_tokens, reasoning_effort=effort)
    assert r.choices and r.choices[0].message.role == "assistant"
    return {"finish_reason": r.choices[0].finish_reason}


def _system_low(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, max_tokens=max_tokens, messages=[
        {"role": "system", "content": "Reasoning: low"}, {"role": "user", "content": "Name a prime number."}])
    assert r.choices
    return {"finish_reason": r.choices[0].finish_reason}


def _tool_round(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    """Ask with a tool (tool_choice naming it), answer the call, and get the final reply.

    A real gpt-oss calls get_weather here. vLLM renders gpt-oss tools through harmony and does not constrain
    a named tool_choice, so a model with random weights rarely emits a call: then the round continues from a
    recorded call, which still checks that tool definitions, assistant tool_calls and tool results are
    accepted and answered.
    """
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = c.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=max_tokens,
                                      tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert first.choices and first.choices[0].message.role == "assistant"
    calls = first.choices[0].message.tool_calls or []
    if calls:
        call_id, name, arguments = calls[0].id, calls[0].function.name, calls[0].function.arguments
    else:
        call_id, name, arguments = "call_smoke_1", "get_weather", json.dumps({"city": "Paris"})
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]})
    messages.append({"role": "tool", "tool_call_id": call_id, "content": json.dumps({"city": "Paris", "sky": "sunny"})})
    second = c.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=max_tokens)
    assert second.choices and second.choices[0].message.role == "assistant"
    return {"model_called_tool": bool(calls), "tool_call": name, "arguments": arguments[:200],
            "first_finish_reason": first.choices[0].finish_reason,
            "final_finish_reason": second.choices[0].finish_reason}


def _responses(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.responses.create(model=model_id, input="Say hello.", instructions="You are terse.",
                           max_output_tokens=max_tokens)
    assert r.object == "response" and r.output is not None
    return {"id": r.id, "status": r.status, "output_types": [o.type for o in r.output],
            "output_text": (r.output_text or "")[:200]}


def _responses_tool_round(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    """A function-tool round over the Responses API: a prior function_call and its function_call_output."""
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"type": "function_call", "call_id": "call_smoke_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_smoke_1", "output": '{"sky": "sunny", "celsius": 21}'},
    ]
    r = c.responses.create(model=model_id, input=items, tools=[RESPONSES_WEATHER_TOOL], max_output_tokens=max_tokens)
    assert r.object == "response"
    return {"status": r.status, "output_types": [o.type for o in r.output]}
