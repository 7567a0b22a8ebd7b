"""Training the tiny gpt-oss on the harmony corpus (ops.tiny_corpus), on the CPU, deterministically.

The model is the real `GptOssForCausalLM` at the catalog's tiny sizes. Two things make minutes on two cores
enough:

- A compact vocabulary. The corpus uses a few hundred of o200k_harmony's 201,088 tokens; training runs on
  those (plus one row, UNK, standing for every other token) and the full-size embedding and output layer are
  written out afterwards: the corpus tokens' trained rows, the UNK row for every other input token, and a zero
  output row for every other token. The loss counts the zero rows exactly as the full softmax would (their
  logit is 0 for every input, so together they add log(count) to the normaliser): at temperature 0 the exported
  model never emits a token it was not trained on.
- An induction circuit wired at initialisation. Copying what the user asked about (the city of a weather
  question into the tool call's JSON) needs a previous-token head and an induction head, which a tiny model
  otherwise finds only after thousands of steps. Layer 0's first head attends to the previous position (its
  query and key are biases rotated one position apart by the model's own rotary embedding) and writes the
  previous token into the second half of the residual stream; layer 1's induction heads match the current
  token against that, through the slowest rotary pairs (position-independent over the context), and copy the
  attended token back, which the output layer (initialised as the embedding) reads as that token. Training
  then adjusts everything, these heads included.

Floating point differs between CPUs, so the same steps give a slightly different model on another machine, and
a tiny model's rarer decisions (an effort named in the instructions against the system message's) can come out
either way. The probes (ops.tiny_corpus.PROBES, the requests the project sends) are therefore checked after the
steps, and training goes on until the model picks every token of their completions by PROBE_MARGIN.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

STEPS = 800
LEARNING_RATE = 2e-3
WARMUP = 30
TOKENS_PER_BATCH = 6000
FOCAL_GAMMA = 1.0  # weight hard tokens (the decisions: effort, tool or not, which city) over templated ones
SEED = 4321
EMBED_STD = 1.0
PREV_HEAD_ENERGY = 200.0
INDUCTION_MATCH = 300.0
INDUCTION_COPY = 4.0
INDUCTION_HEADS = (0, 4)
TOPIC_HEAD = 1  # shares the first induction head's keys: attends to whatever follows " in"
VOCAB_SIZE = 201088
# After training, every completion token of every probe (ops.tiny_corpus.PROBES) must win by this many logits
# (what bf16 weights and vLLM's CPU kernels may move a logit by, with room). Until it does, training goes on,
# EXTRA_STEPS at a time (at most EXTRA_ROUNDS times), the rate decaying from a tenth of the peak to zero in
# each round, every batch carrying the probes that win by less than twice the margin besides its corpus rows.
PROBE_MARGIN = 1.0
EXTRA_STEPS = 100
EXTRA_ROUNDS = 6


@dataclass
class Trained:
    """The compact model, the token ids its rows stand for (its last row is UNK), the steps it took and the
    smallest margin a probe token won by."""

    model: object
    vocab: list[int]
    steps: int = 0
    probe_margin: float = 0.0


@dataclass(frozen=True)
class Weak:
    """A probe token the model does not pick by PROBE_MARGIN: the example, the position in its completion, the
    token wanted, the margin (negative: another token wins)."""

    example: int
    position: int
    token: int
    margin: float


class ProbesNotLearned(RuntimeError):
    def __init__(self, weak: list[Weak], rounds: int) -> None:
        super().__init__(f"{len(weak)} probe tokens below a margin of {PROBE_MARGIN} after {rounds} extra rounds")
        self.weak, self.rounds = weak, rounds


def config(m, vocab_size: int = VOCAB_SIZE):
    """GptOssConfig at the catalog's tiny sizes; rope, sliding window and the rest as the real model. The special
    token ids are the real ones, so the compact training vocabulary names none of them."""
    from transformers import GptOssConfig

    cfg = GptOssConfig(
        num_hidden_layers=m.num_hidden_layers, num_local_experts=m.num_local_experts,
        num_experts_per_tok=m.num_experts_per_tok, num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_key_value_heads, head_dim=m.head_dim, hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size, vocab_size=vocab_size, sliding_window=m.sliding_window,
        max_position_embeddings=m.max_position_embeddings, layer_types=list(m.layer_types),
        **({"eos_token_id": 200002, "pad_token_id": 199999, "bos_token_id": 199998} if vocab_size == VOCAB_SIZE
           else {"pad_token_id": None}))
    cfg._attn_implementation = "eager"
    return cfg


def wire_induction(model, topic_token: int | None = None, seed: int = SEED) -> None:
    """The previous-token head and the induction heads described in the module docstring, and a topic head:
    a query fixed to what an induction head asks at `topic_token` (" in"), so it attends to the tokens that
    follow " in" (the city of "the weather in Tokyo", in the question and in the analysis) from every
    position, the JSON arguments' included."""
    import torch

    cfg = model.config
    d, h = cfg.head_dim, cfg.hidden_size
    half_h, half_d = h // 2, d // 2
    per = cfg.num_attention_heads // cfg.num_key_value_heads
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, :half_h] = torch.randn(emb.shape[0], half_h, generator=g) * EMBED_STD
        emb[:, half_h:] = 0
        # Layer 0, head 0: attend to position i-1 whatever the content.
        attn = model.model.layers[0].self_attn
        cos, sin = model.model.rotary_emb(torch.zeros(1, 1, d), torch.tensor([[1]]))
        cos, sin = cos[0, 0], sin[0, 0]
        q = torch.zeros(d)
        q[:4] = 1.0  # the fastest rotary pairs tell neighbours apart
        q = q / q.norm() * PREV_HEAD_ENERGY ** 0.5
        first, second = q[:half_d], q[half_d:]
        k = torch.cat([first * cos - second * sin, second * cos + first * sin])  # q rotated by one position
        attn.q_proj.weight[:d] = 0
        attn.q_proj.bias[:d] = q
        attn.k_proj.weight[:d] = 0
        attn.k_proj.bias[:d] = k
        attn.v_proj.weight[:d] = 0
        attn.v_proj.bias[:d] = 0
        attn.v_proj.weight[:d, :half_h] = torch.eye(d, half_h)
        attn.o_proj.weight[:, :per * d] = 0
        attn.o_proj.weight[half_h:, :d] = torch.eye(half_h, d) * 4.0
        # Layer 1: induction heads.
        attn = model.model.layers[1].self_attn
        slow = list(range(half_d // 2, half_d)) + list(range(half_d + half_d // 2, d))
        for head in INDUCTION_HEADS:
            kv = head // per
            a = torch.linalg.qr(torch.randn(half_h, half_h, generator=g))[0][:len(slow)] * INDUCTION_MATCH ** 0.5
            wq = torch.zeros(d, h)
            wq[slow, :half_h] = a
            wk = torch.zeros(d, h)
            wk[slow, half_h:] = a
            attn.q_proj.weight[head * d:(head + 1) * d] = wq
            attn.q_proj.bias[head * d:(head + 1) * d] = 0
            attn.k_proj.weight[kv * d:(kv + 1) * d] = wk
            attn.k_proj.bias[kv * d:(kv + 1) * d] = 0
            attn.v_proj.weight[kv * d:(kv + 1) * d] = 0
            attn.v_proj.bias[kv * d:(kv + 1) * d] = 0
            attn.v_proj.weight[kv * d:(kv + 1) * d, :half_h] = torch.eye(d, half_h)
            attn.o_proj.weight[:, head * d:(head + 1) * d] = 0
            attn.o_proj.weight[:half_h, head * d:(head + 1) * d] = torch.eye(half_h, d) * INDUCTION_COPY
        model.lm_head.weight.copy_(emb)
    if topic_token is not None:
        _wire_topic_head(model, topic_token)


def _wire_topic_head(model, token: int) -> None:
    import torch

    cfg = model.config
    d, h = cfg.head_dim, cfg.hidden_size
    first = INDUCTION_HEADS[0]
    attn = model.model.layers[1].self_attn
    seen: dict[str, torch.Tensor] = {}
    hook = attn.q_proj.register_forward_hook(lambda _m, _i, out: seen.__setitem__("q", out.detach()))
    try:
        with torch.no_grad():
            model.model(input_ids=torch.tensor([[token, token]]))
    finally:
        hook.remove()
    q = seen["q"][0, -1, first * d:(first + 1) * d]  # what the induction head asks at that token
    with torch.no_grad():
        attn.q_proj.weight[TOPIC_HEAD * d:(TOPIC_HEAD + 1) * d] = 0
        attn.q_proj.bias[TOPIC_HEAD * d:(TOPIC_HEAD + 1) * d] = q
        attn.o_proj.weight[:, TOPIC_HEAD * d:(TOPIC_HEAD + 1) * d] = 0
        attn.o_proj.weight[:h // 2, TOPIC_HEAD * d:(TOPIC_HEAD + 1) * d] = torch.eye(h // 2, d) * INDUCTION_COPY


def _batches(data: list[tuple[list[int], int]], rng: random.Random):
    """Batches of about TOKENS_PER_BATCH tokens, sequences of similar length together (little padding)."""
    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        for start in range(0, len(order), 256):
            chunk = sorted(order[start:start + 256], key=lambda i: len(data[i][0]))
            batch, longest = [], 0
            for i in chunk:
                n = len(data[i][0])
                if batch and max(longest, n) * (len(batch) + 1) > TOKENS_PER_BATCH:
                    yield batch
                    batch, longest = [], 0
                batch.append(i)
                longest = max(longest, n)
            if batch:
                yield batch


def margins(model, rows: list[tuple[list[int], int]], unk: int):
    """Teacher-forced, per completion token of each (sequence, prompt length): the wanted token's logit minus
    the best other one, the exported model's zero output rows (logit 0) included."""
    import torch

    out = []
    with torch.no_grad():
        for seq, plen in rows:
            logits = model(input_ids=torch.tensor([seq])).logits[0, plen - 1:-1, :unk].float()
            want = torch.tensor(seq[plen:])
            chosen = logits.gather(1, want[:, None])[:, 0]
            others = logits.scatter(1, want[:, None], float("-inf")).max(1).values.clamp(min=0.0)
            out.append((chosen - others).tolist())
    return out


def train(examples, m, *, steps: int = STEPS, topic_token: int | None = None, probes=(),
          progress: Callable[[int, int, float], None] | None = None,
          say: Callable[[str], None] = lambda _s: None, extra_rounds: int = EXTRA_ROUNDS,
          extra_steps: int = EXTRA_STEPS) -> Trained:
    """Train the compact model on the examples (prompt tokens, completion tokens); loss on completions only.
    `topic_token` is the id of " in" (see wire_induction). Then every probe (examples of the corpus's own
    tokens) must come out as trained, by PROBE_MARGIN: training goes on until it does, else ProbesNotLearned."""
    import torch
    from transformers import GptOssForCausalLM

    torch.manual_seed(SEED)
    vocab = sorted({t for e in examples for t in e.prompt + e.completion})
    index = {t: i for i, t in enumerate(vocab)}
    unk = len(vocab)
    model = GptOssForCausalLM(config(m, unk + 1))
    wire_induction(model, topic_token=index.get(topic_token) if topic_token is not None else None)
    data = [([index[t] for t in e.prompt + e.completion], len(e.prompt)) for e in examples]
    probe_rows = [([index.get(t, unk) for t in e.prompt + e.completion], len(e.prompt)) for e in probes]
    rng = random.Random(SEED)
    batches = _batches(data, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0, betas=(0.9, 0.98))
    log_rest = math.log(VOCAB_SIZE - len(vocab))  # the zero output rows of every token not in the corpus

    def one_step(step: int, lr: float, replay: list[tuple[list[int], int]] = ()) -> float:
        rows = [data[i] for i in next(batches)] + list(replay)
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), unk)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (seq, plen) in enumerate(rows):
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            labels[r, plen:len(seq)] = torch.tensor(seq[plen:])
        for group in opt.param_groups:
            group["lr"] = lr
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        target = labels[:, 1:]
        sel = target != -100
        logits = model.lm_head(hidden[sel])
        # The UNK column is replaced by the log-count of the zero rows (ramped in: at first it would swamp
        # every template token before the model learns to be confident).
        rest = torch.full((logits.shape[0], 1), log_rest * min(1.0, step / (steps * 0.3)))
        logits = torch.cat([logits[:, :unk], rest], 1)
        logp = torch.log_softmax(logits, -1).gather(1, target[sel][:, None])[:, 0]
        loss = -(((1 - logp.exp()).detach() ** FOCAL_GAMMA) * logp).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    def weak() -> tuple[list[Weak], float, list[int]]:
        """The probe tokens below PROBE_MARGIN, the smallest margin, and the probes within twice of it."""
        model.eval()
        found, least, near = [], math.inf, []
        for n, row in enumerate(margins(model, probe_rows, unk)):
            least = min(least, *row)
            if min(row) < 2 * PROBE_MARGIN:
                near.append(n)
            found += [Weak(n, pos, probes[n].completion[pos], m) for pos, m in enumerate(row) if m < PROBE_MARGIN]
        model.train()
        return found, least, near

    model.train()
    total = steps
    for step in range(steps):
        lr = LEARNING_RATE * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = one_step(step, lr)
        if progress:
            progress(step + 1, total, loss)
    found, least, near = weak() if probes else ([], 0.0, [])
    for n in range(extra_rounds):
        if not found:
            break
        say(f"{len(found)} probe tokens below a margin of {PROBE_MARGIN} (the weakest {least:+.2f}): "
            f"{extra_steps} more steps ({n + 1} of at most {extra_rounds})")
        replay = [probe_rows[i] for i in near]
        for k in range(extra_steps):
            lr = LEARNING_RATE * 0.1 * 0.5 * (1 + math.cos(math.pi * k / extra_steps))
            loss = one_step(total + k, lr, replay)
            if progress:
                progress(total + k + 1, total + extra_steps, loss)
        total += extra_steps
        found, least, near = weak()
    model.eval()
    if found:
        raise ProbesNotLearned(found, extra_rounds)
    return Trained(model, vocab, steps=total, probe_margin=least if probes else 0.0)


def export(trained: Trained, m):
    """The full-vocabulary GptOssForCausalLM: corpus rows as trained, UNK's row for every other input token, a
    zero output row for every other output token."""
    import torch
    from transformers import GptOssForCausalLM

    small, vocab = trained.model, trained.vocab
    full = GptOssForCausalLM(config(m))
    state = small.state_dict()
    ids = torch.tensor(vocab)
    emb = state["model.embed_tokens.weight"]
    head = state["lm_head.weight"]
    big_emb = emb[-1].repeat(VOCAB_SIZE, 1)
    big_emb[ids] = emb[:-1]
    big_head = torch.zeros(VOCAB_SIZE, head.shape[1])
    big_head[ids] = head[:-1]
    state["model.embed_tokens.weight"] = big_emb
    state["lm_head.weight"] = big_head
    full.load_state_dict(state)
    return full
