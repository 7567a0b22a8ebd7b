"""`ops bench`: Load generator: TTFT, TPOT, inter-token latency and throughput against an endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

API_KEY_ENVS = ("GPT_OSS_API_KEY", "OPENAI_API_KEY")


def register(app: typer.Typer) -> None:
    @app.command("bench", rich_help_panel="Operate")
    def _cmd(
        endpoint: Annotated[str, typer.Option("--endpoint", help="Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000.")],
        model: Annotated[str, typer.Option("--model", "-m", help="Served model id (what clients send as `model`).")],
        concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Requests in flight; a list like 1,4,16 sweeps the levels in turn.")] = "1",
        requests: Annotated[int, typer.Option("--requests", "-n", help="Requests per concurrency level.", min=1, max=100000)] = 8,
        input_len: Annotated[int, typer.Option("--input-len", help="Prompt length in tokens (approximate; usage reports the exact count).", min=1)] = 128,
        output_len: Annotated[int, typer.Option("--output-len", help="Tokens to generate per request (ignore_eos makes it exact on vLLM).", min=1)] = 64,
        api: Annotated[str, typer.Option("--api", help="completions (as vLLM's benchmark) or chat.")] = "completions",
        stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream tokens (needed for TTFT, TPOT and ITL).")] = True,
        ignore_eos: Annotated[bool, typer.Option("--ignore-eos/--no-ignore-eos", help="Ask vLLM to generate exactly --output-len tokens.")] = True,
        api_key: Annotated[Optional[str], typer.Option("--api-key", help=f"Bearer token; default from ${API_KEY_ENVS[0]} or ${API_KEY_ENVS[1]}.")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Per-request timeout (s).", min=0.1)] = 300.0,
        deadline: Annotated[float, typer.Option("--deadline", help="Whole-run limit per concurrency level (s); unfinished requests count as errors.", min=1)] = 900.0,
        warmup: Annotated[int, typer.Option("--warmup", help="Untimed requests before each level, on the same connections (as vLLM's client does); they also check endpoint, model and key: if one fails, the level's timed requests are not sent.", min=0, max=100)] = 1,
        seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the random prompts (default: a new one each run, so earlier runs do not warm the prefix cache).")] = None,
        json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON to this file ('-' for stdout).")] = None,
        plot_file: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG of latency against concurrency.")] = None,
    ) -> None:
        """Load generator: TTFT, TPOT, inter-token latency and throughput against an endpoint.

        Per concurrency level: --warmup untimed requests (they check endpoint, model and key), then
        --requests streaming requests, --concurrency of them in flight; it stops by itself (per-request
        timeout and a deadline per level). Statistics are defined as in vLLM's `bench serve`.
        """
        from ops.errors import OpsError

        levels = _levels(concurrency)
        if api not in ("completions", "chat"):
            raise OpsError(f"--api {api!r} is not supported.", fix="use --api completions or --api chat.", code=2)
        if not endpoint.startswith(("http://", "https://")):
            raise OpsError(f"--endpoint {endpoint!r} is not an http(s) URL.",
                           fix="give the server's base URL, e.g. http://127.0.0.1:8000.", code=2)
        if plot_file is not None and plot_file.suffix.lower() != ".png":
            raise OpsError(f"--plot {plot_file} is not a .png file.", fix="name the plot file *.png.", code=2)
        key = api_key or next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)

        from ops.bench.client import BenchConfig, run_sync
        from ops.bench.report import plot, table
        from ops.console import emit_json, err

        import random

        base_seed = seed if seed is not None else random.randrange(2**31)
        runs = []
        for n, level in enumerate(levels):
            err.print(f"[bold]bench[/] concurrency {level}: {requests} requests of {input_len} in / {output_len} out")
            runs.append(run_sync(BenchConfig(endpoint=endpoint, model=model, concurrency=level, requests=requests,
                                             input_len=input_len, output_len=output_len, api=api, stream=stream,
                                             api_key=key, ignore_eos=ignore_eos, request_timeout_s=timeout,
                                             deadline_s=deadline, seed=base_seed + n * requests, warmup=warmup)))
            if runs[-1].get("warmup_failed"):
                err.print(f"[yellow]warm-up request failed ({runs[-1]['errors_by_status']}); the {requests} timed "
                          f"requests of this level were not sent[/]", markup=True)
        err.print(table(runs))
        first = next((r["first_error"] for r in runs if r.get("first_error")), None)
        if first:
            err.print(f"[yellow]first error:[/] {first}", markup=True)
        report = {"runs": runs}
        if plot_file is not None:
            report["plot"] = str(plot(runs, plot_file))
            err.print(f"plot written to {plot_file}")
        if json_file is not None:
            if str(json_file) == "-":
                emit_json(report)
            else:
                import json

                json_file.write_text(json.dumps(report, indent=2, default=str) + "\n")
                err.print(f"report written to {json_file}")
        if all(r["completed"] == 0 for r in runs):
            raise OpsError("every request failed.", fix="check --endpoint, --model and the API key; the table above "
                           "counts the errors by status.", code=1)


def _levels(text: str) -> list[int]:
    from ops.errors import OpsError

    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or any(n < 1 or n > 4096 for n in levels):
        raise OpsError(f"--concurrency {text!r} is not a list of positive whole numbers.",
                       fix="use e.g. --concurrency 4 or --concurrency 1,4,16.", code=2)
    return levels
