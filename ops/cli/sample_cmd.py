"""`ops sample`: direct sampling with harmony and vLLM's offline engine, no server (the vLLM gpt-oss guide)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from ops.cli.options import Json


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Models")
    def sample(
        prompt: Annotated[str, typer.Argument(help="The user's message.")],
        model: Annotated[Optional[str], typer.Option(
            "--model", "-m", help="A checkpoint directory or hub id (default: the tiny gpt-oss, trained on first "
                                  "use).")] = None,
        instructions: Annotated[Optional[str], typer.Option("--instructions", help="The developer message.")] = None,
        tools: Annotated[Optional[list[str]], typer.Option(
            "--tool", help="A function tool: NAME(PARAM, ...) with an optional ': DESCRIPTION'; repeatable.")] = None,
        reasoning_effort: Annotated[Optional[str], typer.Option(
            "--reasoning-effort", help="low, medium or high (harmony's default: medium).")] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Completion budget.")] = 256,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 0.0,
        max_model_len: Annotated[int, typer.Option("--max-model-len", min=256, help="vLLM's context length.")] = 2048,
        json_: Json = False,
    ) -> None:
        """Render the conversation with harmony, generate with vLLM's `LLM.generate` (stopping on harmony's stop
        tokens), parse the completion back into harmony messages and print them.

        Examples:\n
          ops sample "How many r's in strawberry?"\n
          ops sample "What's the weather in Tokyo?" --tool 'get_weather(city): Get current weather in a given city'\n
          ops sample "Explain MXFP4." --model /models/gpt-oss-20b --reasoning-effort high --json
        """
        from ops import sample as sampling
        from ops.console import emit_json, err
        from ops.errors import OpsError

        if reasoning_effort not in (None, "low", "medium", "high"):
            raise OpsError(f"--reasoning-effort {reasoning_effort!r} is not a harmony effort.",
                           fix="use low, medium or high.", code=2)
        parsed_tools = [sampling.FunctionTool.parse(t) for t in tools or []]
        encodings = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
        if not encodings:
            raise OpsError("TIKTOKEN_ENCODINGS_BASE is not set: harmony needs the encodings offline.",
                           fix="ops encodings fetch --dest DIR && export TIKTOKEN_ENCODINGS_BASE=DIR",
                           runbook="docs/runbooks/harmony-vocab-download.md", code=2)
        if model is None:
            from ops import tiny_model

            with err.status("[bold]the tiny gpt-oss[/]") as st:
                model = str(tiny_model.ensure(encodings, progress=lambda s: st.update(f"[bold]the tiny gpt-oss[/] {s}")))
        with err.status(f"[bold]vLLM engine for {model}[/]"):
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            # vLLM logs to stdout by default; stdout carries only the result (`--json` is parsed by scripts).
            os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
            llm = sampling.engine(model, max_model_len=max_model_len)
        result = sampling.sample(llm, prompt, instructions=instructions, tools=parsed_tools,
                                 reasoning_effort=reasoning_effort, max_tokens=max_tokens, temperature=temperature)
        if json_:
            emit_json(result.to_dict())
            return
        for m in result.messages:
            typer.echo(sampling.describe(m))
        err.print(f"[dim]{result.prompt_tokens} prompt tokens, {len(result.completion_tokens)} completion tokens, "
                  f"stopped on {result.stop_reason}[/]")
