"""Direct sampling with harmony, as the vLLM gpt-oss guide does it without a server.

openai-harmony renders the conversation for completion (system message with the reasoning effort and date,
developer message with instructions and function tools, the user's message, then `<|start|>assistant`);
harmony's stop tokens for assistant actions (`<|return|>`, `<|call|>`) go to vLLM's `SamplingParams`; vLLM's
`LLM.generate` runs the model on the prefill's token ids; the completion's token ids are parsed back into
harmony messages: the analysis, a tool call (its recipient `functions.NAME` and JSON arguments), the final
answer. vLLM is imported only when sampling.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ops.errors import OpsError

_TOOL = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\((?P<params>[A-Za-z0-9_, ]*)\)(?:\s*:\s*(?P<desc>.*))?")


@dataclass(frozen=True)
class FunctionTool:
    name: str
    parameters: dict[str, Any]
    description: str = ""

    @classmethod
    def parse(cls, text: str) -> "FunctionTool":
        """`get_weather(city)` or `get_weather(city, unit): Get the weather` (string parameters)."""
        m = _TOOL.fullmatch(text.strip())
        if not m:
            raise OpsError(f"{text!r} is not a tool.", fix="write NAME(PARAM, ...) with an optional ': DESCRIPTION', "
                                                           "e.g. --tool 'get_weather(city): Get current weather'.",
                           code=2)
        params = [p.strip() for p in m.group("params").split(",") if p.strip()]
        schema = {"type": "object", "properties": {p: {"type": "string"} for p in params}, "required": params}
        return cls(m.group("name"), schema, (m.group("desc") or "").strip())


@dataclass
class SampleResult:
    prompt_tokens: int
    completion_tokens: list[int]
    stop_reason: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)  # harmony messages, Message.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": len(self.completion_tokens),
                "stop_reason": self.stop_reason, "messages": self.messages}


def prefill(user: str, *, instructions: str | None = None, tools: list[FunctionTool] = (),
            reasoning_effort: str | None = None, date: str | None = None) -> list[int]:
    """The conversation rendered for completion by the assistant, as token ids."""
    from openai_harmony import (Conversation, DeveloperContent, Message, ReasoningEffort, Role, SystemContent,
                                ToolDescription)

    system = SystemContent.new().with_conversation_start_date(date or datetime.date.today().isoformat())
    if reasoning_effort:
        system = system.with_reasoning_effort({"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM,
                                               "high": ReasoningEffort.HIGH}[reasoning_effort])
    messages = [Message.from_role_and_content(Role.SYSTEM, system)]
    if instructions or tools:
        dev = DeveloperContent.new()
        if instructions:
            dev = dev.with_instructions(instructions)
        if tools:
            dev = dev.with_function_tools([ToolDescription.new(t.name, t.description, parameters=t.parameters)
                                           for t in tools])
        messages.append(Message.from_role_and_content(Role.DEVELOPER, dev))
    messages.append(Message.from_role_and_content(Role.USER, user))
    return _encoding().render_conversation_for_completion(Conversation.from_messages(messages), Role.ASSISTANT)


def _encoding():
    from openai_harmony import HarmonyEncodingName, HarmonyError, load_harmony_encoding

    try:
        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    except HarmonyError as e:
        raise OpsError(f"harmony cannot load its vocab: {e}.",
                       fix="export TIKTOKEN_ENCODINGS_BASE=DIR (ops encodings fetch --dest DIR).",
                       runbook="docs/runbooks/harmony-vocab-download.md") from e


def engine(model: str, *, max_model_len: int = 2048, **kwargs: Any):
    """vLLM's offline engine for the model (on a machine without a GPU, its CPU build)."""
    from vllm import LLM

    return LLM(model=model, max_model_len=max_model_len, **kwargs)


def sample(llm, user: str, *, instructions: str | None = None, tools: list[FunctionTool] = (),
           reasoning_effort: str | None = None, max_tokens: int = 256, temperature: float = 0.0,
           date: str | None = None) -> SampleResult:
    """One completion: render with harmony, generate with vLLM (stopping on harmony's stop tokens), parse back."""
    from openai_harmony import Role
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    enc = _encoding()
    ids = prefill(user, instructions=instructions, tools=tools, reasoning_effort=reasoning_effort, date=date)
    stop_tokens = enc.stop_tokens_for_assistant_actions()
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, stop_token_ids=stop_tokens)
    out = llm.generate([TokensPrompt(prompt_token_ids=ids)], sampling_params=params, use_tqdm=False)[0].outputs[0]
    tokens = list(out.token_ids)
    # The stop token itself: vLLM reports it as stop_reason, except for one the checkpoint also lists as EOS
    # (<|return|>), which ends with stop_reason None and finish_reason "stop".
    if isinstance(out.stop_reason, (int, str)):
        stop = out.stop_reason
    elif out.finish_reason == "stop" and tokens and tokens[-1] in stop_tokens:
        stop = tokens[-1]
    else:
        stop = out.finish_reason
    try:
        parsed = enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)
    except Exception as e:  # noqa: BLE001 - a truncated completion is still reported, with what failed
        raise OpsError(f"harmony could not parse the completion ({len(tokens)} tokens, stop {stop!r}): {e}",
                       fix="raise --max-tokens so the model can finish its message, or check the model speaks "
                           "harmony.") from e
    return SampleResult(prompt_tokens=len(ids), completion_tokens=tokens, stop_reason=str(stop),
                        messages=[m.to_dict() for m in parsed])


def describe(message: dict[str, Any]) -> str:
    """One parsed message as a line: [channel to=recipient] text."""
    head = message.get("channel") or str(message.get("role") or "")  # harmony's Message.to_dict()
    if message.get("recipient"):
        head += f" to={message['recipient']}"
    if message.get("content_type"):
        head += f" {message['content_type']}"
    text = "".join(c.get("text", "") for c in message.get("content") or [] if isinstance(c, dict))
    return f"[{head}] {text}"


def tool_call(message: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(function name, arguments) when the message calls a function tool."""
    recipient = message.get("recipient") or ""
    if not recipient.startswith("functions."):
        return None
    text = "".join(c.get("text", "") for c in message.get("content") or [] if isinstance(c, dict))
    try:
        args = json.loads(text)
    except ValueError:
        args = {"_raw": text}
    return recipient.removeprefix("functions."), args
