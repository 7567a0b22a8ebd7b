"""`ops plan`: Capacity and cost planner: KV-cache tokens, maximum concurrency, instance and price per hour."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ops.cli.options import Accelerator, Json, MaxLen, Model, Preset, SpecFile, TP

_P = "Plan"


def register(app: typer.Typer) -> None:
    @app.command("plan", rich_help_panel="Operate")
    def _cmd(
        preset: Preset = None,
        file: SpecFile = None,
        model: Model = None,
        accelerator: Accelerator = None,
        tp: TP = None,
        max_model_len: MaxLen = None,
        num_gpus: Annotated[Optional[int], typer.Option("--num-gpus", help="GPUs per replica (= tp x pp).", rich_help_panel=_P)] = None,
        pp: Annotated[Optional[int], typer.Option("--pp", help="Pipeline-parallel size.", rich_help_panel=_P)] = None,
        gpu_memory_utilization: Annotated[Optional[float], typer.Option("--gpu-memory-utilization", help="vLLM's fraction of GPU memory (default: the release's, 0.92 from vLLM 0.24, 0.9 before).", rich_help_panel=_P)] = None,
        max_num_batched_tokens: Annotated[Optional[int], typer.Option("--max-num-batched-tokens", help="vLLM's token budget per step (default: vLLM's for the GPU).", rich_help_panel=_P)] = None,
        max_num_seqs: Annotated[Optional[int], typer.Option("--max-num-seqs", help="vLLM's running-request cap (default: vLLM's).", rich_help_panel=_P)] = None,
        max_cudagraph_capture_size: Annotated[Optional[int], typer.Option("--max-cudagraph-capture-size", help="Largest batch vLLM captures a CUDA graph for (default: 1024 for gpt-oss); fewer graphs leave more KV cache.", rich_help_panel=_P)] = None,
        kv_cache_dtype: Annotated[str, typer.Option("--kv-cache-dtype", help="auto (bf16) or fp8, as vLLM's --kv-cache-dtype.", rich_help_panel=_P)] = "auto",
        overhead_gib: Annotated[Optional[float], typer.Option("--overhead-gib", help="Override the modelled non-KV memory per GPU (activation peak, CUDA graphs, NCCL, non-torch).", rich_help_panel=_P)] = None,
        kv_cache_memory_gib: Annotated[Optional[float], typer.Option("--kv-cache-memory-gib", help="KV-cache memory per GPU, as vLLM's --kv-cache-memory-bytes (CPU: VLLM_CPU_KVCACHE_SPACE, default 1).", rich_help_panel=_P)] = None,
        concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Full-context requests to hold at once (sizes the replica count).", rich_help_panel=_P)] = None,
        budget_usd_per_hour: Annotated[Optional[float], typer.Option("--budget-usd-per-hour", help="Flag plans above this on-demand price.", rich_help_panel=_P)] = None,
        output_tokens_per_s: Annotated[Optional[float], typer.Option("--output-tokens-per-s", help="Measured output tokens/s per replica (ops bench) for $ per million output tokens.", rich_help_panel=_P)] = None,
        vllm_version: Annotated[Optional[str], typer.Option("--vllm-version", help="The vLLM release to model (its defaults and KV arithmetic differ): default the installed vLLM, else the one Ray's llm extra pins.", rich_help_panel=_P)] = None,
        json_out: Json = False,
    ) -> None:
        """Capacity and cost planner: KV-cache tokens, maximum concurrency, instance and price per hour.

        Computes what vLLM will log at start-up ("GPU KV cache size: N tokens, Maximum concurrency for L
        tokens per request: Cx") the way vLLM computes it, and the cheapest catalog instance for the target.
        """
        from ops.console import emit_json, err
        from ops.errors import OpsError
        from ops.plan import PlanError, PlanInput, plan

        fields = _spec_fields(preset, file, model, accelerator, tp, max_model_len, pp, gpu_memory_utilization)
        try:
            result = plan(PlanInput(
                model=fields["model"], accelerator=fields["accelerator"],
                tensor_parallel_size=fields["tensor_parallel_size"],
                pipeline_parallel_size=fields["pipeline_parallel_size"], gpus_per_replica=num_gpus,
                max_model_len=fields["max_model_len"], gpu_memory_utilization=fields["gpu_memory_utilization"],
                max_num_batched_tokens=max_num_batched_tokens or fields["max_num_batched_tokens"],
                max_num_seqs=max_num_seqs or fields["max_num_seqs"],
                max_cudagraph_capture_size=max_cudagraph_capture_size or fields["max_cudagraph_capture_size"],
                kv_cache_dtype=kv_cache_dtype, overhead_gib=overhead_gib,
                kv_cache_memory_gib=kv_cache_memory_gib, concurrency=concurrency,
                budget_usd_per_hour=budget_usd_per_hour, output_tokens_per_s=output_tokens_per_s,
                vllm_version=vllm_version))
        except PlanError as e:
            raise OpsError(str(e), fix=e.fix, code=2) from None
        if json_out:
            emit_json(result)
        else:
            err.print(_table(result))
            for w in result.get("warnings", []):
                err.print(f"[yellow]warning:[/] {w}", markup=True)
            if not result["fits"]:
                err.print(f"[bold red]does not fit:[/] {result['reason']}\n[bold]fix:[/] {result['fix']}")
        if not result["fits"]:
            raise typer.Exit(1)


def _spec_fields(preset: str | None, file: Path | None, model: str | None, accelerator: str | None,
                 tp: int | None, max_model_len: int | None, pp: int | None, util: float | None) -> dict:
    """Start from a preset or spec file when given (validated like every other command), else from the model's
    preset in the catalog; flags win. The spec's own fit check is skipped here: reporting the fit is the
    point of the plan."""
    from ops import catalog

    base: dict = {}
    if preset is not None or file is not None:
        from ops.errors import OpsError
        from ops.spec import load_spec_file

        data = load_spec_file(file) if file is not None else {}
        name = preset or data.get("preset") or catalog.DEFAULT_PRESET
        key = catalog.PRESET_ALIASES.get(name, name)
        if key not in catalog.PRESETS:
            raise OpsError(f"unknown preset {name!r}.", fix=f"use one of {', '.join(catalog.PRESETS)}.", code=2)
        base = {**catalog.PRESETS[key], **{k: v for k, v in data.items() if k != "preset"}}
    else:
        key = catalog.MODEL_ALIASES.get(model, model) if model else catalog.DEFAULT_PRESET
        base = dict(catalog.PRESETS.get(key, {"model": key}))
    fields = {
        "model": model or base.get("model", catalog.PRESETS[catalog.DEFAULT_PRESET]["model"]),
        "accelerator": accelerator or base.get("accelerator", "L4"),
        "tensor_parallel_size": tp or base.get("tensor_parallel_size", 1),
        "pipeline_parallel_size": pp or base.get("pipeline_parallel_size", 1),
        "max_model_len": max_model_len or base.get("max_model_len", 32768),
        "gpu_memory_utilization": util if util is not None else base.get("gpu_memory_utilization"),
        # the spec's engine arguments that size the KV cache (flags win over them)
        "max_num_batched_tokens": (base.get("engine_args") or {}).get("max_num_batched_tokens"),
        "max_num_seqs": (base.get("engine_args") or {}).get("max_num_seqs"),
        "max_cudagraph_capture_size": (base.get("engine_args") or {}).get("max_cudagraph_capture_size"),
    }
    return fields


def _table(r: dict):
    from rich.table import Table

    t = Table(title=f"ops plan: {r['model']} on {r['accelerator']} x {r['gpus_per_replica']} "
                    f"(tp {r['tensor_parallel_size']}, pp {r['pipeline_parallel_size']})", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    o = r["non_kv_overhead"]
    rows = [
        ("context (max_model_len)", f"{r['max_model_len']:,} tokens"),
        ("gpu_memory_utilization", f"{r['gpu_memory_utilization']:g} of {r['gpu_memory_gib']:g} GiB = "
                                   f"{r['requested_memory_gib']:.2f} GiB per GPU"),
        ("weights per GPU", f"{r['weights_gib_per_gpu']:.2f} GiB"),
        ("non-KV overhead per GPU", f"{r['non_kv_overhead_gib']:.2f} GiB  ("
         + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in o.items()) + ")"),
        ("KV cache per GPU", f"{r['available_kv_cache_gib']:.2f} GiB  (vLLM: Available KV cache memory)"),
        ("KV bytes per token", f"{r['kv_bytes_per_token']:,} B per GPU (all layers, full attention)"),
        ("KV blocks", f"{r['num_gpu_blocks']:,} x {r['kv_bytes_per_block']:,} B; {r['kv_blocks_per_request']:,} "
                      f"per full request (block size {r['block_size']})"),
        ("KV cache tokens", f"{r['kv_cache_tokens']:,}"),
        ("max concurrency", f"{r['max_concurrency']:.2f}x requests of {r['max_model_len']:,} tokens"),
        ("fits", "[green]yes[/]" if r["fits"] else f"[red]no[/]: {r['reason']}"),
    ]
    if r.get("instance_type"):
        rows += [("instance", f"{r['instances']} x {r['instance_type']} ({r['replicas']} replica(s))"),
                 ("on-demand price", f"${r['usd_per_hour']:.2f}/hour ({r['price_as_of']})")]
        if r.get("within_budget") is not None:
            rows.append(("within budget", "[green]yes[/]" if r["within_budget"] else "[red]no[/]"))
        if r.get("usd_per_million_output_tokens") is not None:
            rows.append(("cost per 1M output tokens", f"${r['usd_per_million_output_tokens']:.3f}"))
    elif r.get("cost_note"):
        rows.append(("instance", r["cost_note"]))
    for k, v in rows:
        t.add_row(k, v)
    return t
