"""GPU memory model: does a model fit on TP x GPU memory at a given utilisation, and with how much KV cache.

The spec calls `check_fit` to refuse a combination before anything is rented; `ops plan` builds its fuller
report (KV-cache tokens, maximum concurrency, cost) on the same figures. The KV-cache arithmetic here is
vLLM 0.29's own, restated without importing vLLM (the planner must run where vLLM is not installed):

* vllm/v1/kv_cache_interface.py: page size of one layer's block = 2 (K and V) x block_size x KV heads per
  rank x head_size x dtype bytes; a full-attention layer needs cdiv(max_model_len, block_size) blocks per
  request, a sliding-window layer cdiv(min(window - 1 + max_in_flight_tokens, max_model_len), block_size) + 1.
* vllm/v1/core/kv_cache_utils.py (_get_kv_cache_groups_uniform_page_size): gpt-oss's sliding and full layers
  have the same page size, so vLLM's hybrid KV-cache manager puts each attention type in its own group(s) of
  `group_size` layers; the groups share one pool of blocks whose size is the widest group's bytes per block
  (layers in a group share the block id, each with its own page tensor).
* get_kv_cache_config_from_groups: num_blocks = available_memory // bytes_per_block;
  get_max_concurrency_for_kv_cache_config: num_blocks / (sum over groups of blocks one request needs);
  "GPU KV cache size: N tokens" = int(max_concurrency x max_model_len).

That is vLLM 0.29's arithmetic; older releases differ in three places (ops.vllm_releases says which and
where): the sliding-window reserve counts one token budget instead of every batch in flight, "GPU KV cache
size" was `num_blocks // groups x block_size`, and the defaults (utilisation, token budget) moved. Every
function here takes the release it models (default: ops.vllm_releases.default_version()).

The memory vLLM keeps for itself besides weights and KV cache is modelled in `non_kv_overhead`, calibrated per
release; docs/plan.md explains each term, its sources and how far off it can be.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.catalog import GIB, AcceleratorInfo, ModelInfo
from ops.vllm_releases import VllmRelease, cudagraph_capture_sizes, default_version, release as vllm_release

KV_DTYPE_BYTES = 2  # bf16 KV cache (vLLM's default kv_cache_dtype "auto" follows the model dtype)
GPU_BLOCK_SIZE = 16  # vLLM CacheConfig default on CUDA (FlashAttention / Triton attention kernels)
CPU_BLOCK_SIZE = 128  # vllm/platforms/cpu.py: block_size defaults to 128 on the CPU backend

# Weights come from the catalog's `weights_gib`, which is what vLLM reports as "Model loading took X GiB".


def default_release() -> VllmRelease:
    """The release the plan is for when none is named: the installed vLLM, else the one Ray pins."""
    return vllm_release(default_version()[0])


def default_gpu_memory_utilization(rel: VllmRelease | None = None) -> float:
    return (rel or default_release()).default_gpu_memory_utilization


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class EngineSettings:
    """The vLLM engine arguments that change KV-cache sizing, with vLLM's defaults for the accelerator."""

    block_size: int = GPU_BLOCK_SIZE
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    async_scheduling: bool = True
    kv_dtype_bytes: int = KV_DTYPE_BYTES
    pipeline_parallel_size: int = 1
    in_flight_reserve: bool = True  # the release reserves window + every batch in flight (0.29), else + one
    max_cudagraph_capture_size: int | None = None  # None: gpt-oss's default (1024, capped by the token budget)

    @property
    def cudagraph_capture_sizes(self) -> int:
        """How many batch sizes vLLM captures a CUDA graph for (its estimate of their memory grows with them)."""
        return len(cudagraph_capture_sizes(self.max_cudagraph_capture_size, self.max_num_batched_tokens))

    @property
    def max_concurrent_batches(self) -> int:
        """vllm/config/vllm.py: async scheduling keeps 2 batches in flight; pipeline parallelism one per stage.
        Releases before 0.29 reserve one token budget beyond the window whatever the scheduling."""
        if not self.in_flight_reserve:
            return 1
        if self.async_scheduling and self.pipeline_parallel_size <= 1:
            return 2
        return self.pipeline_parallel_size

    @property
    def max_in_flight_tokens(self) -> int:
        """VllmConfig.max_in_flight_tokens: each batch in flight holds up to max_num_batched_tokens."""
        return self.max_concurrent_batches * self.max_num_batched_tokens


def default_engine_settings(acc: AcceleratorInfo, *, tp: int = 1, pp: int = 1, max_model_len: int | None = None,
                            max_num_batched_tokens: int | None = None, max_num_seqs: int | None = None,
                            block_size: int | None = None, rel: VllmRelease | None = None,
                            max_cudagraph_capture_size: int | None = None) -> EngineSettings:
    """The release's defaults for the OpenAI API server (vllm/engine/arg_utils.py, get_batch_defaults; see
    VllmRelease.batch_defaults); the CPU backend 2048 x world size tokens with 128 x world size sequences.
    From 0.14 an unset token budget is also capped at max_num_seqs x max_model_len; max_num_seqs never exceeds
    the token budget."""
    rel = rel or default_release()
    world = tp * pp
    if acc.key == "CPU":
        mnbt, seqs, bs = 2048 * world, 128 * world, CPU_BLOCK_SIZE
    else:
        bs = GPU_BLOCK_SIZE
        mnbt, seqs = rel.batch_defaults(acc)
    if max_num_seqs is not None:
        seqs = max_num_seqs
    if max_num_batched_tokens is None and max_model_len is not None and rel.cap_batched_tokens_by_seqs:
        mnbt = min(mnbt, seqs * max_model_len)
    budget = max_num_batched_tokens or mnbt
    return EngineSettings(block_size=block_size or bs, max_num_batched_tokens=budget,
                          max_num_seqs=min(seqs, budget), pipeline_parallel_size=pp,
                          in_flight_reserve=rel.async_in_flight, max_cudagraph_capture_size=max_cudagraph_capture_size)


# ------------------------------------------------------------------------------------------ KV cache


def kv_heads_per_rank(m: ModelInfo, tp: int) -> int:
    """KV heads are split across TP ranks, and replicated once TP exceeds their number."""
    return max(1, m.num_key_value_heads // tp)


def kv_bytes_per_token_per_layer(m: ModelInfo, tp: int, dtype_bytes: int = KV_DTYPE_BYTES) -> int:
    """K and V for one token in one attention layer on one GPU."""
    return 2 * kv_heads_per_rank(m, tp) * m.head_dim * dtype_bytes


def page_size_bytes(m: ModelInfo, tp: int, settings: EngineSettings) -> int:
    """AttentionSpec.page_size_bytes: one block of one layer."""
    return settings.block_size * kv_bytes_per_token_per_layer(m, tp, settings.kv_dtype_bytes)


@dataclass(frozen=True)
class KVGroup:
    """One KV-cache group: `layers` layer names of one attention type sharing a block table."""

    kind: str  # "full_attention" or "sliding_attention"
    layers: tuple[int, ...]


def kv_cache_groups(m: ModelInfo) -> list[KVGroup]:
    """The groups vLLM forms for the whole model (get_kv_cache_groups for uniform page sizes)."""
    buckets: dict[str, list[int]] = {}
    for i, kind in enumerate(m.layer_types):
        buckets.setdefault(kind, []).append(i)
    if len(buckets) == 1:  # uniform spec: one group with every layer
        kind, layers = next(iter(buckets.items()))
        return [KVGroup(kind, tuple(layers))]
    sizes = [len(v) for v in buckets.values()]
    group_size = min(sizes)
    if max(sizes) < group_size * 1.5:
        group_size = max(sizes)
    groups = []
    for kind, layers in buckets.items():
        n = cdiv(len(layers), group_size)
        groups.extend(KVGroup(kind, tuple(layers[i::n])) for i in range(n))
    return groups


def pp_stage_layers(m: ModelInfo, pp: int) -> list[set[int]]:
    """Layers each pipeline stage holds (vllm/distributed/utils.py get_pp_indices: even split, the
    remainder going to the stages before the last)."""
    n = m.num_hidden_layers
    per = n // pp
    sizes = [per] * pp
    for i in range(n % pp):
        sizes[-2 - i if pp > 1 else 0] += 1
    out, start = [], 0
    for s in sizes:
        out.append(set(range(start, start + s)))
        start += s
    return out


def blocks_per_request(m: ModelInfo, max_model_len: int, settings: EngineSettings) -> int:
    """Blocks one request of max_model_len takes from the shared pool: the sum over groups."""
    total = 0
    for g in kv_cache_groups(m):
        if g.kind == "sliding_attention":
            tokens = min(m.sliding_window - 1 + settings.max_in_flight_tokens, max_model_len)
            total += cdiv(tokens, settings.block_size) + 1
        else:
            total += cdiv(max_model_len, settings.block_size)
    return total


def bytes_per_block(m: ModelInfo, tp: int, settings: EngineSettings, stage: set[int] | None = None) -> int:
    """_get_kv_cache_bytes_per_block: the widest group's sum of page sizes (on this pipeline stage)."""
    page = page_size_bytes(m, tp, settings)
    return max(sum(1 for layer in g.layers if stage is None or layer in stage) for g in kv_cache_groups(m)) * page


@dataclass(frozen=True)
class KVCapacity:
    num_blocks: int
    bytes_per_block: int
    blocks_per_request: int
    max_concurrency: float
    kv_cache_tokens: int
    fits_one_request: bool


def kv_capacity(m: ModelInfo, *, tp: int, pp: int = 1, max_model_len: int, available_bytes: int,
                settings: EngineSettings, rel: VllmRelease | None = None) -> KVCapacity:
    """What vLLM logs as "GPU KV cache size: N tokens, Maximum concurrency for L tokens per request: Cx",
    given the KV-cache memory each GPU has (vLLM's "Available KV cache memory"). From 0.24 the token count is
    int(concurrency x max_model_len); before, num_blocks // number of groups x block_size."""
    rel = rel or default_release()
    stages = pp_stage_layers(m, pp) if pp > 1 else [None]
    bpbs = [bytes_per_block(m, tp, settings, s) for s in stages]
    num_blocks = min(max(available_bytes, 0) // b for b in bpbs)
    per_req = blocks_per_request(m, max_model_len, settings)
    concurrency = num_blocks / per_req
    # vLLM's start-up check reserves the null block and needs one full request to fit.
    fits = all(available_bytes - b >= b * per_req for b in bpbs)
    tokens = (int(concurrency * max_model_len) if rel.tokens_from_concurrency
              else num_blocks // len(kv_cache_groups(m)) * settings.block_size)
    return KVCapacity(num_blocks, max(bpbs), per_req, concurrency, tokens, fits)


def kv_bytes_for_sequence(m: ModelInfo, tp: int, pp: int, tokens: int,
                          settings: EngineSettings | None = None) -> int:
    """KV bytes one sequence of `tokens` takes on one GPU, in whole pool blocks as vLLM allocates them."""
    s = settings or EngineSettings()
    return blocks_per_request(m, tokens, s) * bytes_per_block(m, tp, s) // pp


# ------------------------------------------------------------------------------------- memory budget


def loaded_weights_gib(m: ModelInfo, rel: VllmRelease | None = None) -> float:
    """Weights as vLLM holds them after loading (whole model, all GPUs together), in the release's layout."""
    rel = rel or default_release()
    return rel.weights_gib.get(m.key, m.weights_gib)


@dataclass(frozen=True)
class Overhead:
    """vLLM's non-KV memory per GPU besides the weights (GiB), term by term."""

    activation_peak: float
    sampler_peak: float
    cuda_graphs: float
    non_torch: float
    nccl: float

    @property
    def total(self) -> float:
        return self.activation_peak + self.sampler_peak + self.cuda_graphs + self.non_torch + self.nccl


def non_kv_overhead(m: ModelInfo, *, tp: int, settings: EngineSettings, rel: VllmRelease | None = None) -> Overhead:
    """The release's calibrated non-KV terms (ops.vllm_releases): the profiling run's activation peak grows
    with the token budget, the dummy sampler's with max_num_seqs x vocab logits, CUDA graphs count only where
    the release takes their estimate out of the budget (0.24 on; it grows with the number of capture sizes),
    NCCL buffers only with tensor parallelism."""
    rel = rel or default_release()
    rows = min(settings.max_num_seqs, settings.max_num_batched_tokens)
    activation = rel.per_2k_tokens_gib * settings.max_num_batched_tokens / 2048
    sampler = rel.sampler_bytes_per_logit * rows * m.vocab_size / GIB
    graphs = rel.cuda_graphs(m.key, settings.cudagraph_capture_sizes)
    return Overhead(activation, sampler, graphs, rel.base_gib, rel.nccl_gib if tp > 1 else 0.0)


@dataclass(frozen=True)
class MemoryBudget:
    total_gib: float
    requested_gib: float  # total x gpu_memory_utilization
    weights_gib: float  # per GPU
    overhead: Overhead | None
    overhead_gib: float
    available_kv_gib: float  # vLLM's "Available KV cache memory"


def memory_budget(m: ModelInfo, acc: AcceleratorInfo, *, tp: int, pp: int = 1, util: float | None = None,
                  settings: EngineSettings, overhead_gib: float | None = None,
                  kv_cache_memory_gib: float | None = None, rel: VllmRelease | None = None) -> MemoryBudget:
    """vllm/v1/worker/gpu_worker.py determine_available_memory: requested = total x utilisation (total as
    torch's mem_get_info reports it, a little under nvidia-smi's); available = requested - (weights + activation
    peak + non-torch) - CUDA-graph estimate. `kv_cache_memory_gib` plays vLLM's --kv-cache-memory-bytes (and
    VLLM_CPU_KVCACHE_SPACE on CPU)."""
    rel = rel or default_release()
    util = util if util is not None else rel.default_gpu_memory_utilization
    weights = loaded_weights_gib(m, rel) / (tp * pp)
    over = None if overhead_gib is not None else non_kv_overhead(m, tp=tp, settings=settings, rel=rel)
    over_gib = overhead_gib if overhead_gib is not None else over.total
    total = acc.cuda_total_gib
    requested = total * util
    available = kv_cache_memory_gib if kv_cache_memory_gib is not None else requested - weights - over_gib
    return MemoryBudget(total, requested, weights, over, over_gib, available)


# ------------------------------------------------------------------------------------------ fit check


@dataclass(frozen=True)
class Fit:
    fits: bool
    reason: str
    fix: str
    weights_gib_per_gpu: float
    budget_gib_per_gpu: float
    kv_gib_per_gpu: float
    max_concurrency: float = 0.0
    kv_cache_tokens: int = 0


def check_fit(m: ModelInfo, acc: AcceleratorInfo, *, tp: int, pp: int = 1, max_model_len: int,
              util: float | None = None, rel: VllmRelease | None = None,
              max_num_batched_tokens: int | None = None, max_num_seqs: int | None = None,
              max_cudagraph_capture_size: int | None = None) -> Fit:
    """Refuse what vLLM would refuse at start-up: weights plus overhead above the budget, or a KV cache that
    cannot hold one request of max_model_len."""
    gpus = tp * pp
    rel = rel or default_release()
    util = util if util is not None else rel.default_gpu_memory_utilization
    settings = default_engine_settings(acc, tp=tp, pp=pp, max_model_len=max_model_len, rel=rel,
                                       max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                                       max_cudagraph_capture_size=max_cudagraph_capture_size)
    b = memory_budget(m, acc, tp=tp, pp=pp, util=util, settings=settings, rel=rel)
    if b.available_kv_gib <= 0:
        per_gpu_room = b.requested_gib - b.overhead_gib
        need = loaded_weights_gib(m, rel) / per_gpu_room if per_gpu_room > 0 else float("inf")
        more = next((n for n in (1, 2, 4, 8) if n >= need and m.num_attention_heads % n == 0), None)
        fix = (f"use tensor_parallel_size {more} or a GPU with more memory" if more and more > tp
               else "use a GPU with more memory, or raise gpu_memory_utilization")
        return Fit(False,
                   f"{m.key} needs {b.weights_gib:.1f} GiB of weights per GPU plus ~{b.overhead_gib:.1f} GiB of "
                   f"runtime overhead, but {acc.key} x {gpus} at utilisation {util:g} leaves {b.requested_gib:.1f} "
                   f"GiB per GPU.", fix + ".", b.weights_gib, b.requested_gib, 0.0)
    cap = kv_capacity(m, tp=tp, pp=pp, max_model_len=max_model_len, available_bytes=int(b.available_kv_gib * GIB),
                      settings=settings, rel=rel)
    if not cap.fits_one_request:
        kv_one = cap.bytes_per_block * (cap.blocks_per_request + 1) / GIB
        max_len = _max_len_that_fits(m, tp, pp, int(b.available_kv_gib * GIB), settings, max_model_len, rel)
        return Fit(False,
                   f"the KV cache cannot hold one {max_model_len:,}-token request: it needs {kv_one:.2f} GiB per GPU, "
                   f"{b.available_kv_gib:.2f} GiB is left after weights and overhead on {acc.key} x {gpus}.",
                   f"lower max_model_len to about {max_len}, raise tensor_parallel_size, or use a larger GPU.",
                   b.weights_gib, b.requested_gib, b.available_kv_gib)
    return Fit(True, "fits", "", b.weights_gib, b.requested_gib, b.available_kv_gib, cap.max_concurrency,
               cap.kv_cache_tokens)


def _max_len_that_fits(m: ModelInfo, tp: int, pp: int, available: int, settings: EngineSettings, hi: int,
                       rel: VllmRelease | None = None) -> int:
    """Binary search like vLLM's estimate_max_model_len."""
    lo, best = 1, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if kv_capacity(m, tp=tp, pp=pp, max_model_len=mid, available_bytes=available,
                       settings=settings, rel=rel).fits_one_request:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
