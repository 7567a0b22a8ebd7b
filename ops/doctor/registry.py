"""Every check id `ops doctor` reports, with the runbook that explains it.

Environment checks and log signatures share these ids, so a failure seen in a log and the environment check
that would have caught it before deploying point to the same runbook. Runbook paths are relative to the
repository root; a test asserts each file exists.
"""

from __future__ import annotations

from dataclasses import dataclass

RUNBOOK_DIR = "docs/runbooks"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    runbook: str


def _c(id: str, title: str, file: str) -> Check:
    return Check(id, title, f"{RUNBOOK_DIR}/{file}")


CHECKS: dict[str, Check] = {c.id: c for c in [
    _c("encodings", "harmony vocab files present and verified", "harmony-vocab-download.md"),
    _c("encodings-env", "TIKTOKEN_ENCODINGS_BASE set for serving processes", "harmony-vocab-download.md"),
    _c("serving-versions", "vLLM >= 0.10.1 and a transformers that knows gpt_oss", "gpt-oss-unknown-architecture.md"),
    _c("attention-backend", "attention backend matches the GPU architecture", "fa3-sinks-non-hopper.md"),
    _c("kv-cache", "max_model_len fits the KV cache", "kv-cache-max-model-len.md"),
    _c("gpu-memory", "weights fit the GPUs", "cuda-out-of-memory.md"),
    _c("disk-space", "free disk for the weights", "disk-space.md"),
    _c("weights-download", "weights reachable (hub auth, rate limits, mirror)", "weights-download.md"),
    _c("aws-vcpu-quota", "EC2 vCPU quota for G/P instances", "aws-vcpu-limit-exceeded.md"),
    _c("aws-capacity", "EC2 capacity for the instance type", "aws-insufficient-capacity.md"),
    _c("api-key", "endpoint API key configured", "endpoint-401-unauthorized.md"),
    _c("model-id", "clients ask for the served model id", "endpoint-404-model-not-found.md"),
    _c("backpressure", "endpoint not shedding load", "endpoint-503-backpressure.md"),
    _c("serve-app", "Serve application healthy", "serve-deploy-failed.md"),
    _c("replica-health", "LLM replicas answer Serve's health checks under load", "serve-replica-health-check.md"),
    _c("ray-ports", "Ray ports not reachable from outside", "ray-ports-exposed.md"),
    _c("ray-auth", "Ray refuses requests without its token", "ray-ports-exposed.md"),
    _c("ray-vllm", "the installed vLLM is the one Ray's llm extra pins", "ray-vllm-version-mismatch.md"),
    _c("vllm-deps", "vLLM's own torch and transformers pins hold, one vLLM build", "vllm-build-mismatch.md"),
    _c("torchvision", "torchvision built for the installed torch, or absent", "torchvision-mismatch.md"),
    _c("triton", "one Triton distribution", "triton-duplicate.md"),
    _c("triton-kernels", "triton_kernels matches vLLM's MXFP4 MoE code", "triton-kernels-mismatch.md"),
    _c("gpu-arch", "the GPU runs MXFP4 (Ampere or newer, bfloat16)", "mxfp4-unsupported-gpu.md"),
    _c("attention-sinks", "attention sinks in the dtype the backend takes", "sinks-float32-blackwell.md"),
    _c("attention-backend-env", "no VLLM_ATTENTION_BACKEND on a vLLM that ignores it",
       "vllm-attention-backend-env.md"),
    _c("harmony-parse", "the model's output parses as harmony", "harmony-parse-errors.md"),
    _c("tool-calls", "tool calls reach tool_calls", "gpt-oss-tool-calls-in-content.md"),
    _c("engine-orphans", "no vLLM engine outlived its Ray", "orphaned-engines.md"),
    _c("gpu-processes", "no process holds GPU memory outside a running deployment", "orphaned-engines.md"),
    _c("logs", "logs found and readable", "README.md"),
]}


def runbook(check_id: str) -> str | None:
    c = CHECKS.get(check_id)
    return c.runbook if c else None
