"""A gpt-oss checkpoint's Hugging Face files without its weights: config.json from the catalog, plus the
generation and tokenizer settings the published repositories carry.

What for: vLLM starts a model with random weights of the real shapes (`--load-format dummy`) from these files
alone, so the GPU bench (bench/gpu) measures memory, start-up and throughput of gpt-oss-20b / gpt-oss-120b
without downloading 13-65 GB. config.json keeps the MXFP4 `quantization_config`, so vLLM lays the experts out
for its MXFP4 MoE kernels exactly as it does for the real checkpoint.

The architecture sizes come from the catalog (ops.catalog.ModelInfo); what both checkpoints share and the
catalog does not size (rope scaling, attention bias, SwiGLU clamp, token ids) is stated once below, from the
published config.json files (huggingface.co/openai/gpt-oss-20b and -120b, `config.json`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ops.catalog import ModelInfo

# Shared by both published configs (openai/gpt-oss-20b and openai/gpt-oss-120b config.json, 2025-08-05).
_COMMON: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "eos_token_id": 200002,  # <|return|>
    "hidden_act": "silu",
    "initial_context_length": 4096,
    "initializer_range": 0.02,
    "model_type": "gpt_oss",
    "output_router_logits": False,
    "pad_token_id": 199999,  # <|endoftext|>
    "quantization_config": {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4",
    },
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": False},
    "rope_theta": 150000,
    "router_aux_loss_coef": 0.9,
    "swiglu_limit": 7.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}

# The published generation_config.json: stop on <|return|>, <|endoftext|> and <|call|>.
GENERATION_CONFIG: dict[str, Any] = {"bos_token_id": 199998, "do_sample": True,
                                     "eos_token_id": [200002, 199999, 200012], "pad_token_id": 199999,
                                     "temperature": 1.0}


def hf_config(m: ModelInfo) -> dict[str, Any]:
    """config.json of the checkpoint `m` describes (the published one for gpt-oss-20b / gpt-oss-120b)."""
    cfg = dict(_COMMON)
    cfg.update({
        "experts_per_token": m.num_experts_per_tok,
        "head_dim": m.head_dim,
        "hidden_size": m.hidden_size,
        "intermediate_size": m.intermediate_size,
        "layer_types": list(m.layer_types),
        "max_position_embeddings": m.max_position_embeddings,
        "num_attention_heads": m.num_attention_heads,
        "num_experts_per_tok": m.num_experts_per_tok,
        "num_hidden_layers": m.num_hidden_layers,
        "num_key_value_heads": m.num_key_value_heads,
        "num_local_experts": m.num_local_experts,
        "sliding_window": m.sliding_window,
        "vocab_size": m.vocab_size,
    })
    return dict(sorted(cfg.items()))


def tokenizer_config(m: ModelInfo) -> dict[str, Any]:
    return {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>",
            "model_max_length": m.max_position_embeddings, "tokenizer_class": "PreTrainedTokenizerFast"}


def write_dummy_checkpoint(m: ModelInfo, dest: str | Path, tokenizer_json: str | Path) -> Path:
    """A directory vLLM serves with `--load-format dummy`: config.json, generation_config.json, the tokenizer.

    tokenizer_json is the o200k_harmony tokenizer.json (the tiny model's build writes it: ops.tiny_model)."""
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config(m), indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(m), indent=2) + "\n")
    shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    return out
