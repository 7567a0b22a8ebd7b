"""A tiny gpt-oss checkpoint, generated locally: the real `GptOssForCausalLM` architecture at toy sizes.

It lets the real serving path (Ray Serve LLM -> vLLM's CPU build -> harmony -> OpenAI HTTP) run on a
machine without a GPU or network. Weights are random (seeded), so answers are gibberish, but every layer
of the stack is the one that serves gpt-oss-20b. The tokenizer is the real o200k_harmony encoding, built
from the verified o200k_base vocab with tiktoken's own o200k_harmony definition.

The checkpoint is built once into a cache directory (atomically) and reused; `ensure()` is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ops import catalog

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# Bump when the generated checkpoint changes, so cached copies are rebuilt.
RECIPE_VERSION = "2"
SEED = 1234


def cache_root() -> Path:
    """Where gpt-oss-ops keeps generated artefacts: $GPT_OSS_OPS_HOME, else ~/.cache/gpt-oss-ops."""
    return Path(os.environ.get("GPT_OSS_OPS_HOME") or Path.home() / ".cache" / "gpt-oss-ops")


def default_dir() -> Path:
    return cache_root() / f"tiny-gpt-oss-v{RECIPE_VERSION}"


def is_complete(path: Path) -> bool:
    marker = path / ".gpt-oss-ops-tiny.json"
    try:
        return json.loads(marker.read_text()).get("recipe") == RECIPE_VERSION
    except (OSError, ValueError):
        return False


def ensure(encodings_dir: str | Path, dest: str | Path | None = None) -> Path:
    """Return a directory holding the tiny checkpoint + tokenizer, building it first when missing.

    encodings_dir must hold a verified o200k_base.tiktoken (see `ops encodings fetch`); nothing is
    downloaded here.
    """
    dest = Path(dest) if dest else default_dir()
    if is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        build(tmp, Path(encodings_dir))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def harmony_encoding(encodings_dir: Path):
    """tiktoken's own o200k_harmony encoding, with o200k_base read from the local verified copy."""
    import tiktoken
    from tiktoken_ext import openai_public

    src = Path(encodings_dir) / "o200k_base.tiktoken"
    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        from ops.errors import OpsError

        raise OpsError(f"{src} has sha256 {digest}, not the one tiktoken pins ({O200K_SHA256}).",
                       fix="fetch it again: ops encodings fetch --dest DIR")
    # tiktoken looks its vocab up in a cache keyed by sha1(url) before going to the network; seed that cache
    # with the verified local copy so its o200k_harmony definition loads offline.
    with tempfile.TemporaryDirectory(prefix="tiktoken-cache-") as cache:
        (Path(cache) / hashlib.sha1(O200K_URL.encode()).hexdigest()).write_bytes(data)
        old = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
        try:
            spec = openai_public.o200k_harmony()
        finally:
            if old is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = old
    # One name per id, in id order: transformers' converter numbers special tokens sequentially after the
    # ranks, so the ids only come out right (199998..201087, no gaps) when they are listed that way. Where
    # tiktoken names an id twice (<|endofprompt|> and <|reserved_200018|>), the descriptive name wins.
    by_id: dict[int, str] = {}
    for name, token_id in spec["special_tokens"].items():
        if token_id not in by_id or by_id[token_id].startswith("<|reserved_"):
            by_id[token_id] = name
    special = {by_id[i]: i for i in sorted(by_id)}
    return tiktoken.Encoding(spec["name"], pat_str=spec["pat_str"], mergeable_ranks=spec["mergeable_ranks"],
                             special_tokens=special)


def tiny_config():
    """GptOssConfig at the catalog's tiny sizes; everything else (YaRN rope, sliding window) as the real model."""
    from transformers import GptOssConfig

    m = catalog.MODELS["tiny"]
    return GptOssConfig(
        num_hidden_layers=m.num_hidden_layers,
        num_local_experts=m.num_local_experts,
        num_experts_per_tok=m.num_experts_per_tok,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_key_value_heads,
        head_dim=m.head_dim,
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        vocab_size=m.vocab_size,
        sliding_window=m.sliding_window,
        max_position_embeddings=m.max_position_embeddings,
        layer_types=list(m.layer_types),
        eos_token_id=200002,
        pad_token_id=199999,
        bos_token_id=199998,
    )


def build(out: Path, encodings_dir: Path) -> None:
    """Write config.json, bf16 safetensors, generation_config.json and the tokenizer into `out`."""
    import torch
    from transformers import GenerationConfig, GptOssForCausalLM, PreTrainedTokenizerFast
    from transformers.integrations.tiktoken import convert_tiktoken_to_fast

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI shows its own stage display
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    config = tiny_config()
    model = GptOssForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    # The real checkpoints stop on <|return|>, <|endoftext|> and <|call|>.
    GenerationConfig(bos_token_id=199998, eos_token_id=[200002, 199999, 200012], pad_token_id=199999,
                     do_sample=True, temperature=1.0).save_pretrained(out)

    tok_dir = out / ".tok"
    convert_tiktoken_to_fast(harmony_encoding(encodings_dir), str(tok_dir))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_dir / "tokenizer.json"), bos_token="<|startoftext|>",
                                  eos_token="<|return|>", pad_token="<|endoftext|>",
                                  model_max_length=config.max_position_embeddings)
    tok.save_pretrained(out)
    shutil.rmtree(tok_dir, ignore_errors=True)
    (out / ".gpt-oss-ops-tiny.json").write_text(json.dumps({"recipe": RECIPE_VERSION, "seed": SEED}))


if __name__ == "__main__":  # python -m ops.tiny_model ENCODINGS_DIR [DEST]
    import sys

    print(ensure(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
