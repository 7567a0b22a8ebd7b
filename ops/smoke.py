"""Real requests against a deployed endpoint, the way the gpt-oss clients send them, judged on what gpt-oss does.

Each check is one OpenAI-SDK call: a chat answer with its reasoning (under both `reasoning` and
`reasoning_content`) apart from the content; the same streamed, printed as the Ray guide's client prints it;
each reasoning effort, and the "Reasoning: low" system prompt (their reasoning lengths are reported); a tool
round in which the *model* calls the function, with arguments naming what was asked, then answers from the
result; the Responses API, plain and with a function-tool round (the model's `function_call` item, then the
answer to its `function_call_output`). Nothing is filled in for the model: a model that does not reason, call
the tool or finish fails the check that needed it.
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
        "description": "Get current weather in a given city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
RESPONSES_WEATHER_TOOL = {"type": "function", "name": "get_weather",
                          "description": WEATHER_TOOL["function"]["description"],
                          "parameters": WEATHER_TOOL["function"]["parameters"]}
CITY = "Paris"


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


def run(endpoint: str, model_id: str, api_key: str | None, *, max_tokens: int = 256,
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
        ("tool_round", lambda: _tool_round(c, model_id, max_tokens, say)),
        ("responses", lambda: _responses(c, model_id, max_tokens)),
        ("responses_tool_round", lambda: _responses_tool_round(c, model_id, max_tokens, say)),
    ]
    for name, fn in checks:
        t0 = time.monotonic()
        try:
            detail = fn()
            report.checks.append(Check(name, True, round(time.monotonic() - t0, 3), detail))
        except Exception as e:  # a failing check is data, not a crash
            report.checks.append(Check(name, False, round(time.monotonic() - t0, 3), error=f"{type(e).__name__}: {e}"))
    return report


def reasoning_of(part: Any) -> dict[str, str | None]:
    """The reasoning text of a message or delta under each name the endpoint may send it."""
    extra = getattr(part, "model_extra", None) or {}
    return {name: getattr(part, name, None) or extra.get(name) for name in ("reasoning", "reasoning_content")}


def _models(c, model_id: str) -> dict[str, Any]:
    ids = [m.id for m in c.models.list().data]
    assert model_id in ids, f"{model_id!r} not in /v1/models ({ids})"
    return {"models": ids}


def _answer(r) -> tuple[str, str, str]:
    """(reasoning, content, finish_reason) of a chat completion, the reasoning sent under both names."""
    choice = r.choices[0]
    names = reasoning_of(choice.message)
    assert names["reasoning"] == names["reasoning_content"], f"the two reasoning fields differ: {names}"
    return names["reasoning"] or "", choice.message.content or "", choice.finish_reason


def _chat(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "What is 2 + 2?"}],
                                  max_tokens=max_tokens)
    reasoning, content, finish = _answer(r)
    assert reasoning, "no reasoning (analysis channel) in the answer"
    assert content and content != reasoning, "no final answer apart from the reasoning"
    return {"finish_reason": finish, "completion_tokens": r.usage.completion_tokens if r.usage else None,
            "reasoning": reasoning[:200], "content": content[:200]}


def _chat_stream(c, model_id: str, max_tokens: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Streamed, printed as the Ray guide's client does: the reasoning first, then the answer."""
    stream = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Tell me a short joke."}],
                                       max_tokens=max_tokens, stream=True)
    chunks, reasoning, content = 0, [], []
    for chunk in stream:
        chunks += 1
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        names = reasoning_of(delta)
        if names["reasoning_content"]:
            reasoning.append(names["reasoning_content"])
        if delta.content:
            content.append(delta.content)
    say(f"[thinking] {''.join(reasoning)[:300]}")
    say(f"[answer]   {''.join(content)[:300]}")
    assert reasoning, "no reasoning_content streamed (the Ray guide's client would print no reasoning)"
    assert content, "no content streamed"
    return {"chunks": chunks, "reasoning_chars": len("".join(reasoning)), "content_chars": len("".join(content))}


def _effort(c, model_id: str, effort: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Explain gravity briefly."}],
                                  max_tokens=max_tokens, reasoning_effort=effort)
    reasoning, content, finish = _answer(r)
    assert reasoning, f"no reasoning at reasoning_effort={effort}"
    return {"finish_reason": finish, "reasoning_chars": len(reasoning), "content": content[:120]}


def _system_low(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.chat.completions.create(model=model_id, max_tokens=max_tokens, messages=[
        {"role": "system", "content": "Reasoning: low"}, {"role": "user", "content": "Name a prime number."}])
    reasoning, content, finish = _answer(r)
    assert reasoning, "no reasoning with the 'Reasoning: low' system prompt"
    return {"finish_reason": finish, "reasoning_chars": len(reasoning), "content": content[:120]}


def _tool_round(c, model_id: str, max_tokens: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The model must call get_weather itself, for the city asked about; then answer from the tool's result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"What's the weather in {CITY}?"}]
    first = c.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=max_tokens)
    msg = first.choices[0].message
    calls = msg.tool_calls or []
    assert calls, f"the model made no tool call (finish_reason {first.choices[0].finish_reason}, content " \
                  f"{(msg.content or '')[:120]!r})"
    call = calls[0]
    assert call.function.name == "get_weather", f"called {call.function.name!r}, not get_weather"
    args = json.loads(call.function.arguments)
    assert CITY.lower() in json.dumps(args).lower(), f"arguments {args} do not name {CITY}"
    say(f"[tool call] {call.function.name}({call.function.arguments})")
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": call.function.name,
                                                         "arguments": call.function.arguments}}]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": CITY, "sky": "sunny"})})
    second = c.chat.completions.create(model=model_id, messages=messages, tools=[WEATHER_TOOL], max_tokens=max_tokens)
    _, content, finish = _answer(second)
    assert content, f"no answer after the tool's result (finish_reason {finish})"
    say(f"[after the tool] {content[:200]}")
    return {"tool_call": call.function.name, "arguments": args, "first_finish_reason": first.choices[0].finish_reason,
            "final": content[:200], "final_finish_reason": finish}


def _responses(c, model_id: str, max_tokens: int) -> dict[str, Any]:
    r = c.responses.create(model=model_id, input="Explain what MXFP4 quantization is.",
                           instructions="You are a helpful assistant.", max_output_tokens=max_tokens)
    types = [o.type for o in r.output]
    assert r.status == "completed", f"status {r.status} ({types})"
    assert r.output_text, "no output_text"
    return {"id": r.id, "status": r.status, "output_types": types, "output_text": r.output_text[:200]}


def _responses_tool_round(c, model_id: str, max_tokens: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The model's own function_call item, then its answer to the function_call_output (what the Agents SDK
    sends back)."""
    items: list[Any] = [{"role": "user", "content": f"What's the weather in {CITY}?"}]
    first = c.responses.create(model=model_id, input=items, tools=[RESPONSES_WEATHER_TOOL],
                               max_output_tokens=max_tokens)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls, f"the model made no function_call (status {first.status}, {[o.type for o in first.output]})"
    call = calls[0]
    assert call.name == "get_weather" and CITY.lower() in call.arguments.lower(), (call.name, call.arguments)
    say(f"[function_call] {call.name}({call.arguments})")
    items += [o.model_dump(exclude_none=True) for o in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id,
                  "output": json.dumps({"city": CITY, "sky": "sunny"})})
    second = c.responses.create(model=model_id, input=items, tools=[RESPONSES_WEATHER_TOOL],
                                max_output_tokens=max_tokens)
    assert second.status == "completed" and second.output_text, \
        f"no answer after the function_call_output (status {second.status}, {[o.type for o in second.output]})"
    return {"call": {"name": call.name, "arguments": call.arguments}, "status": second.status,
            "output_text": second.output_text[:200]}
