"""Spec -> the keyword arguments of Ray Serve LLM's `LLMConfig`, as plain JSON-able data.

This is the one place the serving configuration is derived from the spec. The application module turns
it into an `LLMConfig`; `ops render serve-config` writes it into the production Serve config file; the
Anyscale service config carries the same Serve application. Importing this module imports neither Ray nor
vLLM, so the CLI can render configs on a laptop without the serving stack.
"""

from __future__ import annotations

from typing import Any

from ops.spec import DeploymentSpec

# Where the baked-in encodings live in the serving image (see app/Dockerfile).
IMAGE_ENCODINGS_DIR = "/opt/tiktoken_encodings"


def llm_config_kwargs(spec: DeploymentSpec, *, model_source: str | None = None,
                      encodings_dir: str | None = IMAGE_ENCODINGS_DIR,
                      extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """LLMConfig(**kwargs) for the spec.

    model_source overrides the spec's (a local directory the target prepared, e.g. the generated tiny model).
    encodings_dir becomes TIKTOKEN_ENCODINGS_BASE for every replica and engine process, so harmony never
    reaches for the network (the seed's `HarmonyError: error downloading or loading vocab file`).
    """
    source = model_source or spec.resolved_model_source
    if source is None:
        raise ValueError(f"model {spec.model!r} has no hub id: pass model_source (a local directory)")

    engine_kwargs: dict[str, Any] = {
        "max_model_len": spec.max_model_len,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "pipeline_parallel_size": spec.pipeline_parallel_size,
        # Tool calls in Chat Completions: without these vLLM leaves the model's harmony tool call in the
        # completion unparsed and the client gets no `tool_calls` (gpt-oss's recipe: `vllm serve
        # openai/gpt-oss-20b --tool-call-parser openai --enable-auto-tool-choice`). Ray Serve LLM passes them to
        # vLLM's OpenAI frontend.
        "enable_auto_tool_choice": True,
        "tool_call_parser": "openai",
    }
    if spec.gpu_memory_utilization is not None and spec.accelerator != "CPU":
        engine_kwargs["gpu_memory_utilization"] = spec.gpu_memory_utilization
    if spec.attention_backend:
        # GPUs without FlashAttention 3 sinks (everything but Hopper): vLLM >= 0.11 takes the backend as an
        # engine argument (`--attention-backend`); vLLM 0.10.x read VLLM_ATTENTION_BACKEND=TRITON_ATTN_VLLM_V1.
        engine_kwargs["attention_backend"] = spec.attention_backend
    engine_kwargs.update(spec.engine_args)  # checked against the serving release by the spec

    env: dict[str, str] = {}
    if encodings_dir:
        env["TIKTOKEN_ENCODINGS_BASE"] = encodings_dir
    if spec.use_modelscope and model_source is None:
        env["VLLM_USE_MODELSCOPE"] = "true"
    if spec.accelerator == "CPU":
        # vLLM's CPU backend sizes its KV cache from this (GiB); 1 GiB is plenty for the tiny model.
        env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    env.update(extra_env or {})

    autoscaling: dict[str, Any] = {"min_replicas": spec.replicas.min, "max_replicas": spec.replicas.max}
    if spec.replicas.target_ongoing_requests:
        autoscaling["target_ongoing_requests"] = spec.replicas.target_ongoing_requests

    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": spec.model_id, "model_source": source},
        "deployment_config": {"autoscaling_config": autoscaling},
        "engine_kwargs": engine_kwargs,
        "runtime_env": {"env_vars": env},
        "log_engine_metrics": spec.log_engine_metrics,
    }
    if spec.stream_batching_interval_ms is not None:
        kwargs["experimental_configs"] = {"stream_batching_interval_ms": spec.stream_batching_interval_ms}
    if spec.accelerator == "CPU":
        kwargs["accelerator_config"] = {"kind": "cpu"}
    else:
        kwargs["accelerator_type"] = spec.accelerator_info.ray_type
    return kwargs


def app_args(spec: DeploymentSpec, *, model_source: str | None = None,
             encodings_dir: str | None = IMAGE_ENCODINGS_DIR, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The `args` of the Serve application `app.serve_gpt_oss:build_app`: Ray's own `llm_configs` list (as
    `build_openai_app` takes it) plus what Ray Serve LLM's ingress lacks: the endpoint's auth settings, the
    request limits, and the defaults a request that names none gets (the spec's reasoning effort)."""
    return {
        "llm_configs": [llm_config_kwargs(spec, model_source=model_source, encodings_dir=encodings_dir,
                                          extra_env=extra_env)],
        "auth": {
            "enabled": spec.auth.enabled,
            "api_key_env": spec.auth.api_key_env,
            "api_key_file": spec.auth.api_key_file,
        },
        "limits": {
            "max_request_bytes": spec.limits.max_request_bytes,
            "max_n": spec.limits.max_n,
            "max_tokens": spec.limits.max_tokens or spec.max_model_len,
        },
        "defaults": {"reasoning_effort": spec.reasoning_effort.value},
    }


def engine_cli_args(engine_kwargs: dict[str, Any]) -> list[str]:
    """The same engine arguments as `vllm serve` flags, for running bare vLLM exactly as the Serve app does
    (bench/gpu): `max_model_len=32768` -> `--max-model-len 32768`, True -> a bare flag, False ->
    `--no-FLAG`, dicts (compilation_config) as JSON."""
    import json

    args: list[str] = []
    for key, value in engine_kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, (dict, list)):
            args += [flag, json.dumps(value, separators=(",", ":"))]
        elif value is not None:
            args += [flag, str(value)]
    return args
