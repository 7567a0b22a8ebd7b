"""The tiny gpt-oss: the real `GptOssForCausalLM` architecture at toy sizes, trained here to speak harmony.

It lets the real serving path (Ray Serve LLM -> vLLM's CPU build -> harmony -> OpenAI HTTP) run on a machine
without a GPU or network, and answer the way gpt-oss does at temperature 0: it reasons in the analysis
channel (longer for `Reasoning: high` than for `low`), answers in the final channel and stops; offered a
function tool and a question that needs it, it calls the tool on the commentary channel with JSON arguments
naming what was asked, and stops with `<|call|>`; after the tool's result it answers. ops.tiny_corpus holds the
conversations, ops.tiny_train the training. The tokenizer is the real o200k_harmony encoding, built from the
verified o200k_base vocab with tiktoken's own o200k_harmony definition. Nothing is downloaded.

Training takes minutes on two cores, so the checkpoint is built once into a cache keyed by a content hash of
its recipe (the corpus, the training code, the sizes) and copied from there: `ensure()` is idempotent, and a
changed recipe builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ops import catalog

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
MARKER = ".gpt-oss-ops-tiny.json"


def cache_root() -> Path:
    """Where gpt-oss-ops keeps generated artefacts: $GPT_OSS_OPS_HOME, else ~/.cache/gpt-oss-ops."""
    return Path(os.environ.get("GPT_OSS_OPS_HOME") or Path.home() / ".cache" / "gpt-oss-ops")


def model_cache() -> Path:
    """Where trained checkpoints are kept: $GPT_OSS_MODEL_CACHE, else the models/ folder of cache_root()."""
    env = os.environ.get("GPT_OSS_MODEL_CACHE")
    return Path(env) if env else cache_root() / "models"


def recipe() -> str:
    """A content hash of everything the checkpoint is made from."""
    from ops import tiny_corpus, tiny_train

    h = hashlib.sha256()
    for module in (tiny_corpus, tiny_train):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps(catalog.MODELS["tiny"].__dict__, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def default_dir() -> Path:
    return model_cache() / f"tiny-gpt-oss-{recipe()}"


def is_complete(path: Path) -> bool:
    try:
        return json.loads((Path(path) / MARKER).read_text()).get("recipe") == recipe()
    except (OSError, ValueError):
        return False


def ensure(encodings_dir: str | Path, dest: str | Path | None = None,
           progress: Callable[[str], None] | None = None) -> Path:
    """A directory holding the trained checkpoint and tokenizer: the cache's (trained there first when
    missing), or a copy of it at `dest`. encodings_dir must hold a verified o200k_base.tiktoken."""
    cached = default_dir()
    if not is_complete(cached):
        _atomic_build(cached, lambda tmp: build(tmp, Path(encodings_dir), progress))
    if dest is None or Path(dest) == cached:
        return cached
    dest = Path(dest)
    if not is_complete(dest):
        _atomic_build(dest, lambda tmp: shutil.copytree(cached, tmp, dirs_exist_ok=True))
    return dest


def _atomic_build(dest: Path, make: Callable[[Path], object]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        make(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def build(out: Path, encodings_dir: Path, progress: Callable[[str], None] | None = None) -> None:
    """Train, then write config.json, bf16 safetensors, generation_config.json and the tokenizer into `out`."""
    import time

    import torch
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.tiktoken import convert_tiktoken_to_fast
    from transformers.utils import logging as hf_logging

    from ops import tiny_corpus, tiny_train

    hf_logging.disable_progress_bar()  # the CLI shows its own stage display
    say = progress or (lambda _s: None)
    os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:
        say("rendering the harmony corpus")
        examples = tiny_corpus.conversations()
        started = time.monotonic()
        m = catalog.MODELS["tiny"]

        def step(i: int, n: int, loss: float) -> None:
            if i % 10 == 0 or i == n:
                say(f"training step {i}/{n}, loss {loss:.3f}")

        probes = tiny_corpus.probe_examples()
        try:
            trained = tiny_train.train(examples, m, topic_token=tiny_corpus.topic_token(), probes=probes,
                                       progress=step, say=say)
        except tiny_train.ProbesNotLearned as e:
            raise _probes_error(e, probes, encodings_dir) from None
        say(f"every probe token wins by {trained.probe_margin:.2f} logits or more")
        seconds = time.monotonic() - started
        model = tiny_train.export(trained, m).to(torch.bfloat16)
    finally:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # The real checkpoints stop on <|return|>, <|endoftext|> and <|call|>. Unlike them, the tiny model samples
    # greedily unless a request says otherwise (vLLM takes its default temperature from here): a toy model's
    # answers are only worth checking at temperature 0, also for clients that send none (the guides' examples).
    (out / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 199998, "eos_token_id": [200002, 199999, 200012], "pad_token_id": 199999,
        "do_sample": False, "temperature": 0.0}, indent=2) + "\n")
    tok_dir = out / ".tok"
    convert_tiktoken_to_fast(harmony_encoding(encodings_dir), str(tok_dir))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_dir / "tokenizer.json"), bos_token="<|startoftext|>",
                                  eos_token="<|return|>", pad_token="<|endoftext|>",
                                  model_max_length=m.max_position_embeddings)
    tok.save_pretrained(out)
    shutil.rmtree(tok_dir, ignore_errors=True)
    (out / MARKER).write_text(json.dumps({"recipe": recipe(), "examples": len(examples),
                                          "trained_vocab": len(trained.vocab), "steps": trained.steps,
                                          "probe_margin": round(trained.probe_margin, 3),
                                          "train_seconds": round(seconds, 1),
                                          "parameters": sum(p.numel() for p in model.parameters())}))


def _probes_error(e, probes, encodings_dir: Path):
    from ops import tiny_corpus, tiny_train
    from ops.errors import OpsError

    enc = harmony_encoding(encodings_dir)
    lines = []
    for w in sorted(e.weak, key=lambda w: w.margin)[:8]:
        ex = probes[w.example]
        before = enc.decode(ex.completion[max(0, w.position - 12):w.position])
        lines.append(f"  {ex.kind}: after ...{before!r} it should say {enc.decode([w.token])!r} "
                     f"(margin {w.margin:+.2f})")
    return OpsError(
        f"the tiny model did not learn {len(e.weak)} probe tokens (ops.tiny_corpus.PROBES) by a margin of "
        f"{tiny_train.PROBE_MARGIN} logits after {e.rounds} extra rounds of training:\n"
        + "\n".join(lines),
        fix="the serving tests would fail on this model; raise ops.tiny_train.EXTRA_ROUNDS or STEPS, or "
            f"PROBE_REPEATS in ops.tiny_corpus (now {tiny_corpus.PROBE_REPEATS}), and build again")


if __name__ == "__main__":  # python -m ops.tiny_model ENCODINGS_DIR [DEST]
    import sys

    print(ensure(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None, progress=print))
