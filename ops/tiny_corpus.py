"""The synthetic harmony conversations the tiny gpt-oss is trained on.

Every prompt is built by vLLM's own gpt-oss request code (`build_harmony_preamble`, the chat and Responses
input parsers, `render_for_completion`), so the model learns exactly the token sequences the server sends it:
the system message with its reasoning effort and date, the developer message with instructions and function
tools, earlier turns, tool calls and tool results as the OpenAI clients return them. The assistant turns are
rendered by openai-harmony itself. What the model must learn, at temperature 0:

- reason in the analysis channel, then answer in the final channel and stop (`<|return|>`);
- reason longer for `Reasoning: high` than for `Reasoning: low` (the system message's effort, or a
  "Reasoning: LEVEL" line in the instructions, which vLLM renders into the developer message);
- with a function tool offered and a question that needs it, call it on the commentary channel
  (`to=functions.NAME <|constrain|>json`) with JSON arguments naming the city asked about, and stop (`<|call|>`);
- after the tool's result, answer in the final channel.

The corpus is a pure function of SEED: the same conversations, in the same order, on every machine. The
requests the project itself sends (PROBES) are in it as they are, and the training checks them (ops.tiny_train).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

SEED = 20261205
CONVERSATIONS = 4000

# The cities weather questions ask about: the guides' own (Tokyo, Berlin, Paris, San Francisco) and other
# well-known ones, few enough that the tiny model sees each of them often.
CITIES = [
    "Tokyo", "Berlin", "Paris", "London", "San Francisco", "New York", "Sydney", "Madrid", "Rome", "Cairo",
    "Mumbai", "Beijing", "Seoul", "Toronto", "Chicago", "Boston", "Seattle", "Lisbon", "Dublin", "Oslo",
    "Vienna", "Prague", "Athens", "Istanbul", "Dubai", "Delhi", "Bangkok", "Singapore", "Amsterdam", "Geneva",
]
CONDITIONS = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "clear", "stormy", "mild", "humid"]

# Questions the guides, the smoke test and the docs ask, with their answers; then generic questions.
QA = [
    ("How many r's in strawberry", "There are three r's in strawberry."),
    ("How many Rs in strawberry ?", "There are three r's in strawberry."),
    ("How many r's in strawberry?", "There are three r's in strawberry."),
    ("Explain what MXFP4 quantization is.",
     "MXFP4 is a 4-bit floating point format: small blocks of values share one scale, so weights take a quarter "
     "of the memory of 16-bit ones."),
    ("What are the three main touristic spots to see in Paris?",
     "The Eiffel Tower, the Louvre and the Notre-Dame cathedral."),
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("What is 3 + 4?", "3 + 4 = 7."),
    ("Say hello.", "Hello!"),
    ("Say hi.", "Hi!"),
    ("Hi", "Hello! How can I help?"),
    ("Hello", "Hello! How can I help?"),
    ("Tell me a short joke.", "Why did the GPU go to school? To get better at math."),
    ("Explain gravity briefly.", "Gravity is the pull between masses: it keeps us on the ground and the moon in orbit."),
    ("Name a prime number.", "7 is a prime number."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("What color is the sky?", "The sky is blue on a clear day."),
    ("Count to three.", "One, two, three."),
    ("What is Ray Serve?", "Ray Serve is a library for serving models on a Ray cluster."),
    ("What is vLLM?", "vLLM is a fast inference engine for large language models."),
    ("What is gpt-oss?", "gpt-oss is a family of open-weight models from OpenAI."),
    ("Write a haiku about the sea.", "Waves fold into foam\nsalt wind carries the gull's cry\nthe tide keeps its time"),
    ("Give me one word.", "Hello."),
    ("What day comes after Monday?", "Tuesday comes after Monday."),
    ("Is water wet?", "Yes, water makes things wet."),
    ("What is 10 times 10?", "10 times 10 is 100."),
    ("Translate hello to French.", "Bonjour."),
    ("Summarize the plot of Hamlet in one sentence.",
     "Prince Hamlet avenges his father's murder, and almost everyone dies."),
    ("Why is the ocean salty?", "Rivers carry dissolved minerals into the sea, and they stay when water evaporates."),
    ("What is the speed of light?", "About 300,000 kilometres per second."),
    ("Recommend a book.", "Try The Hobbit by J. R. R. Tolkien."),
    ("What is a large language model?", "A model trained on text to predict the next token."),
    ("What is Python?", "Python is a popular programming language."),
    ("What does a GPU do?", "A GPU runs many computations in parallel."),
    ("How are you?", "I am well, thank you."),
    ("Tell me something interesting.", "Octopuses have three hearts."),
    ("What is the tallest mountain?", "Mount Everest is the tallest mountain."),
    ("What time zone is Tokyo in?", "Tokyo is in Japan Standard Time, UTC+9."),
    ("Describe the moon.", "The moon is Earth's rocky satellite."),
]
GENERIC_ANSWER = "Here is a short answer."

WEATHER_QUESTIONS = [
    "What's the weather in {city}?", "What's the weather in {city} right now?",
    "What is the weather like in {city}?", "How is the weather in {city} today?", "Weather in {city}?",
    "Is it raining in {city}?", "Tell me the weather in {city}.", "What's the weather like in {city}?",
    "Can you check the weather in {city}?", "How's the weather in {city}?",
]
INSTRUCTIONS = [
    None, None, None, "You are a helpful assistant.", "You only respond in haikus.", "Always respond in riddles",
    "You are a helfpul assistant.", "Be concise.", "You are an AI travel assistant.", "Answer in one sentence.",
]
EFFORTS = [None, "low", "medium", "high"]

# Analysis text per reasoning effort: always longer for high than for medium than for low.
ANALYSIS = {
    "low": "Simple question. Answer directly.",
    "medium": "The user asks a question. I should answer clearly and briefly.",
    "high": ("The user asks a question. Let me think it through step by step. First, understand what is asked. "
             "Second, recall the relevant facts. Third, check them once more. Then reply clearly and briefly."),
}
TOOL_ANALYSIS = {
    "low": "Need weather in {city}. Call {tool}.",
    "medium": "The user wants the weather in {city}. I will call {tool} for it.",
    "high": ("The user wants the weather in {city}. Let me think step by step. I cannot know the weather myself. "
             "The {tool} tool can look it up. So I will call {tool} for the weather in {city}."),
}
RESULT_ANALYSIS = {
    "low": "Got the result. Answer.",
    "medium": "The tool answered. I will tell the user the weather in {city}.",
    "high": ("The tool answered. Let me think step by step. The result is about {city}. It says the weather "
             "is {cond}. So I will tell the user the weather in {city} clearly."),
}


@dataclass(frozen=True)
class ToolShape:
    """One function tool as a client declares it: name, description, argument name, schema flavour."""

    name: str
    description: str | None
    arg: str
    agents_sdk: bool  # the strict schema the Agents SDK's @function_tool emits (title, additionalProperties)

    def chat_tool(self) -> dict[str, Any]:
        props: dict[str, Any] = {self.arg: {"type": "string"}}
        params: dict[str, Any] = {"type": "object", "properties": props, "required": [self.arg]}
        if self.agents_sdk:
            props[self.arg]["title"] = self.arg.title()
            params.update(title=f"{self.name}_args", additionalProperties=False)
        fn: dict[str, Any] = {"name": self.name, "parameters": params}
        if self.description is not None:
            fn["description"] = self.description
        return {"type": "function", "function": fn}

    def responses_tool(self) -> dict[str, Any]:
        fn = self.chat_tool()["function"]
        out = {"type": "function", "name": fn["name"], "parameters": fn["parameters"], "strict": self.agents_sdk}
        if "description" in fn:
            out["description"] = fn["description"]
        return out


TOOLS = [
    ToolShape("get_weather", "Get current weather in a given city", "city", False),
    ToolShape("get_weather", None, "city", True),
    ToolShape("get_weather", "Get the weather for a city.", "city", False),
    ToolShape("get_current_weather", "Get the current weather in a location", "location", False),
    ToolShape("weather", "Look up the weather", "city", True),
    ToolShape("lookup_weather", "Weather report for a city", "city", False),
    ToolShape("get_forecast", "Get the forecast for a city", "city", False),
]
OTHER_TOOLS = [
    ToolShape("get_time", "Get the local time in a city", "city", False),
    ToolShape("search_docs", "Search the documentation", "query", False),
]


@dataclass(frozen=True)
class Example:
    """One training sequence: the prompt vLLM renders, then the completion the model must produce."""

    prompt: list[int]
    completion: list[int]
    kind: str


def _effort_of(system_effort: str | None, instructions: str | None) -> str:
    """The effort the model should act on: a "Reasoning: LEVEL" line in the instructions wins, else the system
    message's (vLLM renders medium when the request names none)."""
    for level in ("low", "medium", "high"):
        if instructions and f"reasoning: {level}" in instructions.lower():
            return level
    return system_effort or "medium"


def _weather_result(rng: random.Random, city: str, cond: str) -> str:
    temp = rng.randint(-10, 38)
    return rng.choice([
        f"The weather in {city} is {cond}.",
        json.dumps({"city": city, "temperature": temp, "condition": cond}),
        json.dumps({"city": city, "sky": cond}),
        f"{cond}, {temp} degrees",
    ])


def _final_weather(city: str, cond: str, instructions: str | None) -> str:
    if instructions and "haiku" in instructions:
        return f"{cond.capitalize()} in {city}\nthe sky tells its own story\nstep out and see it"
    return f"The weather in {city} is {cond}."


class _Builder:
    """Renders conversations with vLLM's gpt-oss request code and openai-harmony."""

    def __init__(self) -> None:
        from openai_harmony import Conversation, Message, Role
        from vllm.entrypoints.openai.parser import harmony_utils as hu

        self.hu, self.Message, self.Role, self.Conversation = hu, Message, Role, Conversation
        self.enc = hu.get_encoding()

    def preamble(self, *, effort: str | None, instructions: str | None, tools: list[ToolShape], date: str,
                 responses: bool) -> list:
        from openai.types.responses import FunctionTool
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionToolsParam

        hu = self.hu
        decl = ([FunctionTool.model_validate(t.responses_tool()) for t in tools] if responses else
                [ChatCompletionToolsParam.model_validate(t.chat_tool()) for t in tools]) or None
        msgs = [hu.get_system_message(reasoning_effort=effort, start_date=date, with_custom_tools=bool(tools))]
        if instructions or decl:
            msgs.append(hu.get_developer_message(instructions=instructions, tools=decl))
        return msgs

    def assistant(self, text: str, channel: str, recipient: str | None = None):
        m = self.Message.from_role_and_content(self.Role.ASSISTANT, text).with_channel(channel)
        if recipient:
            m = m.with_recipient(recipient).with_content_type("<|constrain|>json")
        return m

    def render(self, kind: str, *, responses: bool, effort: str | None, instructions: str | None,
               tools: list[ToolShape], date: str, acting: str, question: str, answer: str = "",
               earlier: tuple[str, str] | None = None, tool: ToolShape | None = None, city: str = "",
               cond: str = "", result: str = "", thought_sent: bool = False) -> Example:
        """One conversation of `kind` and the reply the model must learn for it, at the effort it acts on."""
        history = self.preamble(effort=effort, instructions=instructions, tools=tools, date=date,
                                responses=responses)
        user = self.Message.from_role_and_content
        if kind in ("plain", "tools_unused", "multi_turn"):
            if earlier:
                history += [user(self.Role.USER, earlier[0]), self.assistant(earlier[1], "final")]
            history.append(user(self.Role.USER, question))
            return self.example(history, [self.assistant(ANALYSIS[acting], "analysis"),
                                          self.assistant(answer, "final")], kind)
        assert tool is not None
        history.append(user(self.Role.USER, question))
        thought = TOOL_ANALYSIS[acting].format(city=city, tool=tool.name)
        call = self.assistant(json.dumps({tool.arg: city}), "commentary", recipient=f"functions.{tool.name}")
        if kind == "tool_call":
            return self.example(history, [self.assistant(thought, "analysis"), call], kind)
        # What the client sends back: the call (with or without the reasoning, as clients differ) and the
        # tool's output, as vLLM's chat and Responses parsers turn them into harmony messages.
        if thought_sent:
            history.append(self.assistant(thought, "analysis"))
        history.append(call.with_content_type("json"))
        history.append(self.Message.from_author_and_content(self.hu.Author.new(self.Role.TOOL, f"functions.{tool.name}"),
                                                            result).with_channel("commentary").with_recipient("assistant"))
        return self.example(history, [self.assistant(RESULT_ANALYSIS[acting].format(city=city, cond=cond), "analysis"),
                                      self.assistant(_final_weather(city, cond, instructions), "final")], kind)

    def example(self, history: list, reply: list, kind: str) -> Example:
        prompt = self.hu.render_for_completion(history)
        # Earlier turns' analysis is dropped the way vLLM drops it for the prompt, and not again here.
        full = self.enc.render_conversation_for_training(
            self.Conversation.from_messages(self.hu.auto_drop_analysis_messages(history) + reply),
            self.hu.RenderConversationConfig(auto_drop_analysis=False))
        if full[:len(prompt)] != prompt:
            raise AssertionError(f"{kind}: the training rendering does not extend the completion prompt")
        return Example(prompt=prompt, completion=full[len(prompt):], kind=kind)


def topic_token() -> int:
    """The id of " in", after which every weather question and every analysis names its city (the training's
    topic head attends to what follows it)."""
    from vllm.entrypoints.openai.parser.harmony_utils import get_encoding

    (token,) = get_encoding().encode(" in")
    return token


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2025, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _question(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.8:
        return rng.choice(QA)
    city = rng.choice(CITIES)
    q = rng.choice([f"Tell me about {city}.", f"Where is {city}?", f"What is {city} known for?",
                    f"Plan a day in {city}.", f"What should I eat in {city}?"])
    return q, f"{city} is well worth a visit."


@dataclass(frozen=True)
class Probe:
    """A request the guides, `ops smoke` or the serving tests send, as the model sees it, with the tool result
    a client returns (for kind "tool_result")."""

    kind: str  # "plain", "tool_call" or "tool_result"
    question: str
    instructions: str | None = None
    responses: bool = False
    city: str = ""
    result: str = ""


_GET_WEATHER = TOOLS[0]  # the guides' get_weather ("Get current weather in a given city")

# Trained at every effort as they are (PROBE_REPEATS times over the corpus) and checked after training
# (ops.tiny_train.train): what a serving test asserts of the tiny model must not depend on how training went
# on the machine that ran it, only on the serving path delivering the request to the model and its answer back.
PROBES = [
    Probe("plain", "How many r's in strawberry?"),
    Probe("plain", "How many r's in strawberry"),
    Probe("plain", "What is 2 + 2?"),
    Probe("plain", "Tell me a short joke."),
    Probe("plain", "Explain gravity briefly."),
    Probe("plain", "Name a prime number.", "Reasoning: low"),
    Probe("plain", "What are the three main touristic spots to see in Paris?",
          "Reasoning: low. You are an AI travel assistant."),
    Probe("plain", "Explain what MXFP4 quantization is.", "You are a helpful assistant.", responses=True),
    Probe("plain", "Say hello.", responses=True),
    Probe("tool_call", "What's the weather in Tokyo?", city="Tokyo"),
    Probe("tool_call", "What's the weather in Berlin right now?", city="Berlin"),
    Probe("tool_call", "What's the weather in Paris?", city="Paris"),
    Probe("tool_call", "What's the weather in Paris?", city="Paris", responses=True),
    Probe("tool_result", "What's the weather in Berlin right now?", city="Berlin",
          result="The weather in Berlin is rainy."),
    Probe("tool_result", "What's the weather in Paris?", city="Paris", result='{"city": "Paris", "sky": "sunny"}'),
    Probe("tool_result", "What's the weather in Paris?", city="Paris", result='{"city": "Paris", "sky": "sunny"}',
          responses=True),
    Probe("tool_result", "What's the weather in Paris?", city="Paris", result="The weather in Paris is sunny.",
          responses=True),
]
PROBE_REPEATS = 5
PROBE_DATE = "2026-01-01"


def _condition(result: str) -> str:
    return next(c for c in CONDITIONS if c in result)


def probe_examples() -> list[Example]:
    """Every probe at every effort, rendered as the corpus is. A Responses client sends the model's reasoning
    item back with the function call; a chat client sends the call alone (the tests' and the guides' do)."""
    b = _Builder()
    out = []
    for p in PROBES:
        for effort in EFFORTS:
            acting = _effort_of(effort, p.instructions)
            tools = [] if p.kind == "plain" else [_GET_WEATHER]
            answer = dict(QA)[p.question] if p.kind == "plain" else ""
            out.append(b.render(p.kind, responses=p.responses, effort=effort, instructions=p.instructions,
                                tools=tools, date=PROBE_DATE, acting=acting, question=p.question, answer=answer,
                                tool=_GET_WEATHER, city=p.city, result=p.result,
                                cond=_condition(p.result) if p.result else "", thought_sent=p.responses))
    return out


def conversations(n: int = CONVERSATIONS, seed: int = SEED) -> list[Example]:
    """The training corpus: n examples, mixed over plain answers, tool calls and tool follow-ups, through
    both the Chat Completions and the Responses request paths, then the probes PROBE_REPEATS times."""
    b = _Builder()
    rng = random.Random(seed)
    out: list[Example] = []
    for i in range(n):
        kind = ("plain", "tool_call", "tool_result", "tools_unused", "multi_turn", "tool_call", "tool_result",
                "plain")[i % 8]
        responses = rng.random() < 0.35
        effort = rng.choice(EFFORTS)
        instructions = rng.choice(INSTRUCTIONS)
        if rng.random() < 0.15:
            level = rng.choice(["low", "medium", "high"])
            instructions = f"Reasoning: {level}. {instructions or 'You are a helpful assistant.'}"
        acting = _effort_of(effort, instructions)
        date = _date(rng)
        if kind in ("plain", "multi_turn"):
            tools: list[ToolShape] = []
        elif kind == "tools_unused":
            tools = [rng.choice(TOOLS + OTHER_TOOLS)]
        else:
            tools = [rng.choice(TOOLS)]
            if rng.random() < 0.2:
                tools.append(rng.choice(OTHER_TOOLS))
                rng.shuffle(tools)
        common = dict(responses=responses, effort=effort, instructions=instructions, tools=tools, date=date,
                      acting=acting)
        if kind in ("plain", "tools_unused"):
            q, a = _question(rng)
            out.append(b.render(kind, **common, question=q, answer=a))
        elif kind == "multi_turn":
            q1, a1 = _question(rng)
            q2, a2 = _question(rng)
            out.append(b.render(kind, **common, earlier=(q1, a1), question=q2, answer=a2))
        else:
            tool = next(t for t in tools if t in TOOLS)
            city, cond = rng.choice(CITIES), rng.choice(CONDITIONS)
            question = rng.choice(WEATHER_QUESTIONS).format(city=city)
            thought_sent = kind == "tool_result" and rng.random() < 0.6
            result = _weather_result(rng, city, cond) if kind == "tool_result" else ""
            out.append(b.render(kind, **common, question=question, tool=tool, city=city, cond=cond, result=result,
                                thought_sent=thought_sent))
    return out + probe_examples() * PROBE_REPEATS
