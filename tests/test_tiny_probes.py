"""The tiny model's probes: the requests the guides, `ops smoke` and the serving tests send must come out of the
built checkpoint as the corpus's rules say (reasoning per effort, the tool call, the answer from the tool's
result), whatever the training's floating point did on the machine that built it."""

from __future__ import annotations

import os

import pytest

from ops import catalog, tiny_corpus, tiny_model, tiny_train


@pytest.fixture(scope="module")
def probes(encodings_dir):
    os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))  # harmony reads its vocab from there
    return tiny_corpus.probe_examples()


def test_the_probes_cover_every_effort_and_the_effort_in_the_instructions(probes):
    enc = tiny_corpus._Builder().enc
    texts = [enc.decode(e.completion) for e in probes]
    for level in ("low", "medium", "high"):
        assert any(tiny_corpus.ANALYSIS[level] in t for t in texts)
    # The system message says high, the instructions say low: the model must reason as low does.
    travel = [e for e in probes if "Reasoning: low. You are an AI travel assistant." in enc.decode(e.prompt)
              and "Reasoning: high" in enc.decode(e.prompt)]
    assert travel and all(tiny_corpus.ANALYSIS["low"] in enc.decode(e.completion) for e in travel)
    assert sum(e.kind == "tool_result" for e in probes) and sum(e.kind == "tool_call" for e in probes)


def test_the_built_checkpoint_answers_every_probe_as_served(tiny_model_dir, probes):
    """The exported bf16 checkpoint, full vocabulary, teacher-forced: every probe token is the greedy pick by a
    clear margin (the build checked the compact float32 model; this is what vLLM loads)."""
    import torch
    from transformers import GptOssForCausalLM

    model = GptOssForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.bfloat16).eval()
    rows = [(e.prompt + e.completion, len(e.prompt)) for e in probes]
    worst = [min(m) for m in tiny_train.margins(model, rows, tiny_train.VOCAB_SIZE)]
    assert min(worst) > tiny_train.PROBE_MARGIN / 2, sorted(worst)[:5]


def test_a_model_that_has_not_learned_the_probes_is_refused_with_what_it_got_wrong(probes, encodings_dir):
    with pytest.raises(tiny_train.ProbesNotLearned) as e:
        tiny_train.train(probes, catalog.MODELS["tiny"], steps=2, probes=probes[:4], extra_rounds=1, extra_steps=1)
    assert e.value.rounds == 1 and e.value.weak and all(w.margin < tiny_train.PROBE_MARGIN for w in e.value.weak)
    err = tiny_model._probes_error(e.value, probes[:4], encodings_dir)
    assert "PROBES" in err.message and "after 1 extra rounds" in err.message and "it should say" in err.message
    assert "EXTRA_ROUNDS" in err.fix and "PROBE_REPEATS" in err.fix
