"""Greedy decoding of chat prompts in left-padded batches, with the bundle's hook edits active."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backends.llm.chat import encode_chat, left_pad, positions, span_mask
from backends.llm.hooks import abstained_rows, run_state

if TYPE_CHECKING:
    from backends.llm.bundles import LLMBundle


def generate_greedy(bundle: LLMBundle, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 8,
                    seed: int = 0, should_stop: Any = None) -> list[str]:
    """Greedy answers to chat prompts, in batches with left padding.

    Hook edits are active while this runs (and only for this thread). Rows that Key Space
    Detection flags during the prompt's forward pass return its fixed refusal instead.
    ``should_stop`` (optional callable) is called between batches, e.g. a cancel check.
    """
    import torch

    answers: list[str] = []
    encoded = encode_chat(bundle, prompts, max_new_tokens=max_new_tokens)
    eos = bundle.tokenizer.eos_token_id
    extra_eos = bundle.model.generation_config.eos_token_id
    extra_eos = extra_eos if isinstance(extra_eos, list) else [] if extra_eos is None else [extra_eos]
    stop_ids = {eos, *extra_eos}
    with torch.no_grad(), bundle.active(seed=seed):
        for start in range(0, len(prompts), batch_size):
            if should_stop is not None:
                should_stop()
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            qmask = span_mask(encoded.query_spans[start:start + batch_size], [len(r) for r in rows], width)
            batch = len(rows)
            generated: list[list[int]] = [[] for _ in range(batch)]
            with run_state(query_mask=qmask.to(ids.device)) as state:
                out = bundle.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True)
                state.prefill = False
                flagged = abstained_rows(state, batch)
                done = torch.tensor(flagged, dtype=torch.bool)  # abstaining rows need no decoding
                cache = out.cache
                pos = positions(mask)[:, -1]
                for _ in range(max_new_tokens):
                    next_ids = out.logits[:, -1, :].argmax(-1)  # (B,)
                    for i in range(batch):
                        if not done[i]:
                            token = int(next_ids[i])
                            if token in stop_ids:
                                done[i] = True
                            else:
                                generated[i].append(token)
                    if bool(done.all()):
                        break
                    mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=mask.device)], dim=1)
                    pos = pos + 1
                    out = bundle.model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos[:, None],
                                       cache=cache, use_cache=True)
                    cache = out.cache
            for i in range(batch):
                if flagged[i]:
                    answers.append(state.refusal_text)
                else:
                    answers.append(bundle.tokenizer.decode(generated[i], skip_special_tokens=True).strip())
    return answers
