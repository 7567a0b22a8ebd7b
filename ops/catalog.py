"""The catalogs: models, accelerators, AWS instance types and the documented presets.

They are data, kept in this one module, with the source of each figure beside it. The spec validates
against them, infra/ picks instance types from them, and the planner sizes memory with them; nothing else
re-states these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024**3


# --------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelInfo:
    """Architecture facts of one gpt-oss checkpoint, as its config.json states them.

    The architecture fields mirror transformers' `GptOssConfig` names so tests can compare them field by
    field with the real config class (whose defaults are the published gpt-oss-120b config.json).
    """

    key: str
    hf_id: str | None
    modelscope_id: str | None
    total_params_b: float
    active_params_b: float
    num_hidden_layers: int
    num_local_experts: int
    num_experts_per_tok: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    sliding_window: int
    max_position_embeddings: int
    # Layer pattern: gpt-oss alternates sliding-window (128) and full attention, starting with sliding.
    layer_types: tuple[str, ...]
    # GPU memory the weights take once vLLM has loaded them (MoE experts in MXFP4, the rest bf16), all GPUs
    # together: what vLLM logs as "Model loading took X GiB".
    weights_gib: float
    # Size of the checkpoint's files on disk (the safetensors in the hub repo): what a node must download.
    checkpoint_gib: float
    needs_gpu: bool
    min_vram_gb: float | None
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def full_attention_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "full_attention")

    @property
    def sliding_attention_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == "sliding_attention")


def _alternating(n: int) -> tuple[str, ...]:
    return tuple("sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n))


_GPT_OSS_SOURCES = (
    "https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json",
    "https://huggingface.co/openai/gpt-oss-120b/blob/main/config.json",
    "OpenAI, 'gpt-oss-120b & gpt-oss-20b Model Card' (2025-08-05), table 1 (params) and section 2",
    "transformers GptOssConfig defaults (= the gpt-oss-120b config.json)",
)

MODELS: dict[str, ModelInfo] = {
    "gpt-oss-20b": ModelInfo(
        key="gpt-oss-20b",
        hf_id="openai/gpt-oss-20b",
        modelscope_id="openai-mirror/gpt-oss-20b",
        total_params_b=20.9,  # model card: 20.91B total
        active_params_b=3.6,  # model card: 3.61B active per token
        num_hidden_layers=24,
        num_local_experts=32,
        num_experts_per_tok=4,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=64,
        hidden_size=2880,
        intermediate_size=2880,
        vocab_size=201088,
        sliding_window=128,
        max_position_embeddings=131072,
        layer_types=_alternating(24),
        # vLLM 0.19 logs "Model loading took 13.72 GiB" on one GPU (0.11: 13.47, 0.24: 13.58; ops.vllm_releases); the
        # repo's safetensors are 13.76 GB (12.8 GiB).
        weights_gib=13.72,
        checkpoint_gib=12.8,
        needs_gpu=True,
        min_vram_gb=16,
        sources=_GPT_OSS_SOURCES,
    ),
    "gpt-oss-120b": ModelInfo(
        key="gpt-oss-120b",
        hf_id="openai/gpt-oss-120b",
        modelscope_id="openai-mirror/gpt-oss-120b",
        total_params_b=116.8,  # model card: 116.83B total
        active_params_b=5.1,  # model card: 5.13B active per token
        num_hidden_layers=36,
        num_local_experts=128,
        num_experts_per_tok=4,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=64,
        hidden_size=2880,
        intermediate_size=2880,
        vocab_size=201088,
        sliding_window=128,
        max_position_embeddings=131072,
        layer_types=_alternating(36),
        # vLLM logs "Model loading took 64.38 GiB" on one H100 (vllm-project/vllm#33155, vLLM 0.14.1); the repo's
        # safetensors are 65.3 GB (60.8 GiB). Fits one 80 GB GPU (model card).
        weights_gib=64.38,
        checkpoint_gib=60.8,
        needs_gpu=True,
        min_vram_gb=60,
        sources=_GPT_OSS_SOURCES,
    ),
    # A locally trained stand-in: the real GptOssForCausalLM architecture at tiny sizes, trained by
    # ops.tiny_model on synthetic harmony conversations, so the real serving path (vLLM's CPU build, harmony,
    # Ray Serve LLM) runs on a CPU and answers like gpt-oss (analysis, final, tool calls). head_dim stays 64
    # because vLLM's CPU attention rejects smaller ones; almost all parameters are the 201,088-token embedding
    # and output layer.
    "tiny": ModelInfo(
        key="tiny",
        hf_id=None,
        modelscope_id=None,
        total_params_b=0.053,
        active_params_b=0.053,
        num_hidden_layers=4,
        num_local_experts=4,
        num_experts_per_tok=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=64,
        hidden_size=128,
        intermediate_size=64,
        vocab_size=201088,
        sliding_window=128,
        max_position_embeddings=131072,
        layer_types=_alternating(4),
        weights_gib=0.10,
        checkpoint_gib=0.13,
        needs_gpu=False,
        min_vram_gb=None,
        sources=("trained by ops.tiny_model (real architecture, synthetic harmony conversations)",),
    ),
}

MODEL_ALIASES = {"20b": "gpt-oss-20b", "120b": "gpt-oss-120b", "openai/gpt-oss-20b": "gpt-oss-20b",
                 "openai/gpt-oss-120b": "gpt-oss-120b"}


def model(key: str) -> ModelInfo:
    return MODELS[MODEL_ALIASES.get(key, key)]


# ------------------------------------------------------------------------------------- accelerators
@dataclass(frozen=True)
class AcceleratorInfo:
    """One GPU kind. `ray_type` is the accelerator_type string Ray uses (ray.util.accelerators)."""

    key: str
    ray_type: str | None
    memory_gib: float  # as the driver reports it (nvidia-smi total), in GiB
    architecture: str
    compute_capability: str | None
    # FlashAttention 3 with attention sinks (what gpt-oss needs by default in vLLM) runs on Hopper only;
    # elsewhere vLLM must use its Triton attention backend.
    fa3_sinks: bool
    source: str
    # Total memory as torch.cuda.mem_get_info (and so vLLM's budget) reports it: a little under nvidia-smi's.
    cuda_total: float | None = None
    cuda_total_source: str = ""

    @property
    def cuda_total_gib(self) -> float:
        return self.cuda_total if self.cuda_total is not None else self.memory_gib


_TORCH_TOTAL = "PyTorch's out-of-memory message on this GPU ('GPU 0 has a total capacity of X GiB')"

ACCELERATORS: dict[str, AcceleratorInfo] = {
    "L4": AcceleratorInfo("L4", "L4", 22.49, "Ada Lovelace", "8.9", False,
                          "NVIDIA L4 datasheet (24 GB GDDR6); nvidia-smi reports 23034 MiB", 22.03, _TORCH_TOTAL),
    "A10G": AcceleratorInfo("A10G", "A10G", 22.49, "Ampere", "8.6", False,
                            "AWS G5 docs (24 GB per A10G); nvidia-smi reports 23028 MiB", 22.06, _TORCH_TOTAL),
    "L40S": AcceleratorInfo("L40S", "L40S", 44.99, "Ada Lovelace", "8.9", False,
                            "NVIDIA L40S datasheet (48 GB GDDR6); nvidia-smi reports 46068 MiB", 44.39, _TORCH_TOTAL),
    "A100-40G": AcceleratorInfo("A100-40G", "A100-40G", 39.39, "Ampere", "8.0", False,
                                "NVIDIA A100 datasheet (40 GB HBM2); nvidia-smi reports 40960 MiB, 40337 usable", 39.39,
                                _TORCH_TOTAL),
    "A100-80G": AcceleratorInfo("A100-80G", "A100-80G", 79.15, "Ampere", "8.0", False,
                                "NVIDIA A100 datasheet (80 GB HBM2e); nvidia-smi reports 81920 MiB, 81050 usable", 79.15,
                                _TORCH_TOTAL),
    "H100": AcceleratorInfo("H100", "H100", 79.65, "Hopper", "9.0", True,
                            "NVIDIA H100 SXM datasheet (80 GB HBM3); nvidia-smi reports 81559 MiB", 79.18,
                            "torch on an H100 80GB HBM3: 79.18 GiB total (llm-d/llm-d-benchmark, "
                            "config_explorer/empirical-vllm-memory-results.md)"),
    "H200": AcceleratorInfo("H200", "H200", 140.4, "Hopper", "9.0", True,
                            "NVIDIA H200 datasheet (141 GB HBM3e); nvidia-smi reports 143771 MiB", 139.80,
                            "torch.cuda.mem_get_info on an H200 (driver 580), bench/results/gpu"),
    # The CPU "accelerator": vLLM's CPU build; KV cache size comes from VLLM_CPU_KVCACHE_SPACE.
    "CPU": AcceleratorInfo("CPU", None, 0.0, "x86_64 CPU", None, False, "vLLM CPU backend"),
}

ACCELERATOR_ALIASES = {"A100": "A100-80G", "A100-80GB": "A100-80G", "A100-40GB": "A100-40G",
                       "H100-80G": "H100", "cpu": "CPU"}


def accelerator(key: str) -> AcceleratorInfo:
    return ACCELERATORS[ACCELERATOR_ALIASES.get(key, key)]


# -------------------------------------------------------------------------------------- instances
@dataclass(frozen=True)
class InstanceType:
    name: str
    accelerator: str
    gpus: int
    vcpus: int
    memory_gib: int
    usd_per_hour: float  # on-demand, Linux, PRICE_REGION
    # Local NVMe instance store, in GB (AWS's instance-type pages); the Deep Learning AMI mounts it (a RAID 0 of
    # every disk) at /opt/dlami/nvme, where the nodes keep the weights. 0: none, the weights go on the root volume.
    instance_store_gb: int = 0

    @property
    def replica_slots(self) -> int:
        """Replicas of one GPU each it holds (a CPU instance holds one CPU replica)."""
        return self.gpus or 1


PRICE_REGION = "us-east-1"
PRICE_SOURCE = ("AWS EC2 On-Demand pricing (Linux, us-east-1), https://aws.amazon.com/ec2/pricing/on-demand/; "
                "P4/P5 figures after AWS's June 2025 price reduction")
PRICE_AS_OF = "2025-09-01"
INSTANCE_STORE_SOURCE = ("AWS EC2 accelerated-computing instance-type pages, 'Instance storage' column, as of "
                         "2025-09-01")

INSTANCE_TYPES: dict[str, InstanceType] = {
    i.name: i
    for i in [
        # g5: NVIDIA A10G
        InstanceType("g5.xlarge", "A10G", 1, 4, 16, 1.006, 250),
        InstanceType("g5.2xlarge", "A10G", 1, 8, 32, 1.212, 450),
        InstanceType("g5.4xlarge", "A10G", 1, 16, 64, 1.624, 600),
        InstanceType("g5.12xlarge", "A10G", 4, 48, 192, 5.672, 3800),
        InstanceType("g5.48xlarge", "A10G", 8, 192, 768, 16.288, 7600),
        # g6: NVIDIA L4
        InstanceType("g6.xlarge", "L4", 1, 4, 16, 0.8048, 250),
        InstanceType("g6.2xlarge", "L4", 1, 8, 32, 0.9776, 450),
        InstanceType("g6.4xlarge", "L4", 1, 16, 64, 1.3232, 600),
        InstanceType("g6.12xlarge", "L4", 4, 48, 192, 4.6016, 3760),
        InstanceType("g6.48xlarge", "L4", 8, 192, 768, 13.3504, 7520),
        # g6e: NVIDIA L40S
        InstanceType("g6e.xlarge", "L40S", 1, 4, 32, 1.861, 250),
        InstanceType("g6e.2xlarge", "L40S", 1, 8, 64, 2.242, 450),
        InstanceType("g6e.12xlarge", "L40S", 4, 48, 384, 10.493, 3800),
        InstanceType("g6e.24xlarge", "L40S", 4, 96, 768, 15.066, 3800),
        InstanceType("g6e.48xlarge", "L40S", 8, 192, 1536, 30.131, 7600),
        # p4d / p4de: NVIDIA A100 40 GB / 80 GB
        InstanceType("p4d.24xlarge", "A100-40G", 8, 96, 1152, 21.958, 8000),
        InstanceType("p4de.24xlarge", "A100-80G", 8, 96, 1152, 27.447, 8000),
        # p5 / p5en: NVIDIA H100 / H200
        # p5.4xlarge (one H100, 16 vCPUs, 256 GiB, one 3.84 TB NVMe disk) is priced at one eighth of p5.48xlarge.
        InstanceType("p5.4xlarge", "H100", 1, 16, 256, 6.88, 3840),
        InstanceType("p5.48xlarge", "H100", 8, 192, 2048, 55.04, 30400),
        InstanceType("p5en.48xlarge", "H200", 8, 192, 2048, 63.296, 30400),
        # m7i: CPU only, for a cluster that serves the tiny model on CPUs (a rehearsal of the whole path on AWS
        # for cents an hour, no GPU quota needed).
        InstanceType("m7i.xlarge", "CPU", 0, 4, 16, 0.2016),
        InstanceType("m7i.2xlarge", "CPU", 0, 8, 32, 0.4032),
    ]
}

# Instance for the Ray head when it carries no GPU work (CPU-only, small).
HEAD_INSTANCE_TYPE = "m6i.large"
HEAD_USD_PER_HOUR = 0.096


def instances_for(accelerator_key: str, min_gpus: int = 1) -> list[InstanceType]:
    """Catalog instances carrying at least `min_gpus` of the given GPU kind, cheapest first."""
    acc = ACCELERATOR_ALIASES.get(accelerator_key, accelerator_key)
    found = [i for i in INSTANCE_TYPES.values() if i.accelerator == acc and (i.gpus >= min_gpus or acc == "CPU")]
    return sorted(found, key=lambda i: (i.usd_per_hour, i.name))


# ---------------------------------------------------------------------------------------- presets
# The documented configurations (Ray's "Deploy gpt-oss" guide) plus the embedded local default. Values are
# spec fields; the spec resolver applies them as the first layer.
#
# The GPU presets send streamed tokens 20 at a time (vLLM's `stream_interval`; the first and last chunk go at once).
# Measured through our Serve app on one H100 (gpt-oss-20b, 256 streams, bench/results/gpu/2026-12-07_H100): one
# message per token gave 8,876 total tok/s, 54.6 ms per output token and replica health-check misses; 20 tokens per
# message 30,795 tok/s and 14.1 ms, with the same throughput and first-token time at 1 to 64 streams
# (docs/plan.md, "Our Serve application against bare vLLM"). `engine_args: {stream_interval: 1}` restores
# token-by-token streaming.
GPU_STREAM_INTERVAL = 20
PRESETS: dict[str, dict] = {
    "gpt-oss-20b": {
        "model": "gpt-oss-20b",
        "accelerator": "L4",
        "tensor_parallel_size": 1,
        "max_model_len": 32768,
        "replicas": {"min": 1, "max": 2},
        "engine_args": {"stream_interval": GPU_STREAM_INTERVAL},
        "target": "cluster",
    },
    "gpt-oss-120b": {
        "model": "gpt-oss-120b",
        "accelerator": "L40S",  # the guide: L40S, or A100-40G
        "tensor_parallel_size": 2,
        "max_model_len": 32768,
        "replicas": {"min": 1, "max": 2},
        "engine_args": {"stream_interval": GPU_STREAM_INTERVAL},
        "target": "cluster",
    },
    # gpt-oss-120b on one Hopper GPU (the model card's single 80 GB GPU): p5.4xlarge is the cheapest instance that
    # carries it; `ops plan --preset gpt-oss-120b-h100` shows its KV cache: 3.13 full 32k requests at once, as
    # vLLM 0.24 logged on one H100 (bench/results/gpu); 131,072 tokens do not fit one H100.
    "gpt-oss-120b-h100": {
        "model": "gpt-oss-120b",
        "accelerator": "H100",
        "tensor_parallel_size": 1,
        "max_model_len": 32768,
        "replicas": {"min": 1, "max": 2},
        "engine_args": {"stream_interval": GPU_STREAM_INTERVAL},
        "target": "cluster",
    },
    "tiny": {
        "model": "tiny",
        "accelerator": "CPU",
        "tensor_parallel_size": 1,
        "max_model_len": 2048,
        "gpu_memory_utilization": None,
        "replicas": {"min": 1, "max": 1},
        "target": "local",
    },
}
PRESET_ALIASES = {"20b": "gpt-oss-20b", "120b": "gpt-oss-120b", "120b-h100": "gpt-oss-120b-h100", "local": "tiny"}
DEFAULT_PRESET = "tiny"
