"""Greedy decoding of chat prompts in left-padded batches that shrink as rows finish, with the bundle's hook
edits active.

A row leaves its batch (its KV cache rows are dropped) as soon as it ends: at an end-of-turn token, at its own
token cap, or when the caller's ``settled`` test says the rest of the answer cannot matter (evaluation: the
score can no longer change, :func:`backends.llm.scoring.answer_settled`). On 2 CPU cores a decoding step of the
embedded SmolLM2 costs about 90 ms of reading weights plus 3-5 ms per row in flight, so the steps a batch
runs and the rows still in it both count. Measured on the embedded model, 2 threads: Neuron Adjust's
python_coding evaluation (32 prompts, cap 160, one batch) took 43.9 s with ``model.generate`` (every row
computed until the longest ends) and 35.8 s with this loop, token-identical; its whole evaluation (4 skills x 2
splits x 16 prompts, decoded together with settled rows ending) went from 121 to 83 s, the base's 128 scores
unchanged (its answers are prefixes of the whole ones).
What else was measured on that evaluation (a 2-core EPYC with AVX-512, 2 threads), and why it is not here: a
128-row batch took 78.5 s against 75.3 s for 64 rows; KV buffers grown in place instead of the cache's
per-step concatenation, 83.6 s (the attention then reads strided views); bf16 weights, 1.75x faster but 60 of
the base's 128 answers changed; the base's answers as speculative drafts, only 15 of 128 edited answers equal
them. Its floor: about 18,000 tokens of 269 MFLOP each at the best fp32 matrix speed measured (126 GFLOP/s), 38 s.
Key Space Detection judges the prompt during its forward pass (the run state's prefill); the rows it flags
get its refusal and never decode.
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence

from backends.llm.chat import encode_chat, left_pad, positions, span_mask
from backends.llm.hooks import abstained_rows, run_state

if TYPE_CHECKING:
    from backends.llm.bundles import LLMBundle

#: settled(prompt index, answer text so far) -> True when decoding that row further cannot matter.
Settled = Callable[[int, str], bool]


def stop_token_ids(bundle: LLMBundle) -> list[int]:
    """End-of-turn ids: the tokenizer's and the model's (Qwen2.5 lists two)."""
    eos = bundle.model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [] if eos is None else [eos]
    return sorted({bundle.tokenizer.eos_token_id, *eos})


def generate_greedy(bundle: LLMBundle, prompts: list[str], max_new_tokens: int | Sequence[int] = 64,
                    batch_size: int = 8, seed: int = 0, should_stop: Callable[[], None] | None = None,
                    settled: Settled | None = None, progress: Callable[[int], None] | None = None,
                    on_batch: Callable[[list[int], list[str]], None] | None = None) -> list[str]:
    """Greedy (argmax) answers to chat prompts, whatever sampling defaults the checkpoint has.

    ``max_new_tokens``: one cap for all, or one per prompt; prompts are batched by cap, longest first, so
    short answers do not wait in a batch of long ones. Hook edits are active while this runs (and only for
    this thread). ``should_stop`` (e.g. a cancel check that raises) is called before each batch and after
    each generated token; ``progress`` hears the number of answers finished so far, as rows finish;
    ``on_batch`` gets each batch's prompt indices and answers as soon as the batch is done.
    """
    caps = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(caps) != len(prompts):
        raise ValueError(f"{len(caps)} token caps for {len(prompts)} prompts")
    encoded = encode_chat(bundle, prompts, max_new_tokens=max(caps, default=0))
    order = sorted(range(len(prompts)), key=lambda i: -caps[i])
    answers = [""] * len(prompts)
    finished = [0]

    def count(rows: int) -> None:
        finished[0] += rows
        if progress is not None and rows:
            progress(finished[0])

    for start in range(0, len(order), batch_size):
        if should_stop is not None:
            should_stop()
        batch = order[start:start + batch_size]
        decoded = _decode_batch(bundle, batch, [encoded.ids[i] for i in batch],
                                [encoded.query_spans[i] for i in batch], [caps[i] for i in batch], seed,
                                should_stop, settled, count)
        for i, answer in zip(batch, decoded):
            answers[i] = answer
        if on_batch is not None:
            on_batch(batch, decoded)
    return answers


def _decode_batch(bundle: LLMBundle, indices: list[int], rows: list[list[int]], query_spans: list[tuple[int, int]],
                  caps: list[int], seed: int, should_stop: Callable[[], None] | None,
                  settled: Settled | None, finished: Callable[[int], None]) -> list[str]:
    """Answers of one batch: a prompt forward pass, then one token per step for the rows still going
    (``finished`` hears how many rows end at each step)."""
    import torch
    from transformers import DynamicCache

    stop_ids = set(stop_token_ids(bundle))
    tokenizer = bundle.tokenizer
    ids, mask, width = left_pad(bundle, rows)  # (B, T) each
    query_mask = span_mask(query_spans, [len(r) for r in rows], width).to(ids.device)  # (B, T)
    new: list[list[int]] = [[] for _ in rows]
    cache = DynamicCache()  # grows per layer (the presets' models use full attention in every layer)
    with_cache = {_cache_argument(type(bundle.model)): cache}
    with torch.no_grad(), bundle.active(seed=seed), run_state(query_mask=query_mask) as state:
        position = positions(mask)  # (B, T)
        logits = bundle.model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True,
                              logits_to_keep=1, **with_cache).logits  # (B, 1, V)
        state.prefill = False
        refused = abstained_rows(state, len(rows))
        alive = [b for b in range(len(rows)) if not refused[b] and caps[b] > 0]  # batch rows still decoding
        finished(len(rows) - len(alive))
        live = torch.tensor(alive, dtype=torch.long, device=ids.device)  # their rows in the cache
        logits, mask, last = logits[live], mask[live], position[live, -1]  # (b, 1, V), (b, T), (b,)
        if len(alive) < len(rows):
            cache.batch_select_indices(live)
        while alive:
            tokens = logits[:, -1].argmax(-1)  # (b,)
            keep = []
            for j, (b, token) in enumerate(zip(alive, tokens.tolist())):
                if token in stop_ids:
                    continue
                new[b].append(token)
                if len(new[b]) < caps[b] and not (settled and settled(indices[b], tokenizer.decode(new[b]))):
                    keep.append(j)
            finished(len(alive) - len(keep))
            if should_stop is not None:
                should_stop()
            if not keep:
                break
            if len(keep) < len(alive):
                kept = torch.tensor(keep, dtype=torch.long, device=ids.device)
                cache.batch_select_indices(kept)
                tokens, mask, last = tokens[kept], mask[kept], last[kept]
                alive = [alive[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)  # (b, T + 1)
            last = last + 1
            logits = bundle.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=last[:, None],
                                  use_cache=True, **with_cache).logits  # (b, 1, V)
    return [state.refusal_text if refused[b] else tokenizer.decode(new[b], skip_special_tokens=True).strip()
            for b in range(len(rows))]


@lru_cache(maxsize=None)
def _cache_argument(model_class: type) -> str:
    """The forward argument that takes the KV cache: ``cache`` in recent transformers, ``past_key_values``
    before (deprecated since 5.x)."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"
