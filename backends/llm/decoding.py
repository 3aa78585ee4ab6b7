"""Greedy decoding of chat prompts through ``model.generate``, in left-padded batches, with the bundle's hook
edits active.

``generate(do_sample=False)`` replaced a hand-written loop over the KV cache (commit d48595b) after a
measurement on the embedded SmolLM2, one thread: each skill's first 16 test prompts in one batch at the
evaluation's caps, for the base and a Neuron Adjust edit, gave token-identical answers (128 of 128; also
4 prompts a skill with a Key Space Detection edit) in 118 CPU seconds against the loop's 122. A stopping
criterion fits the hooks into generate(): after the prompt's forward pass it ends the run state's prefill
(detectors such as Key Space Detection judge the prompt only), finishes the rows a detector flagged, and
runs the cancel check after every token.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from backends.llm.chat import encode_chat, left_pad, span_mask
from backends.llm.hooks import RunState, abstained_rows, run_state

if TYPE_CHECKING:
    import torch

    from backends.llm.bundles import LLMBundle


def stop_token_ids(bundle: LLMBundle) -> list[int]:
    """End-of-turn ids: the tokenizer's and the model's (Qwen2.5 lists two)."""
    eos = bundle.model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [] if eos is None else [eos]
    return sorted({bundle.tokenizer.eos_token_id, *eos})


def generate_greedy(bundle: LLMBundle, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 8,
                    seed: int = 0, should_stop: Callable[[], None] | None = None) -> list[str]:
    """Greedy answers to chat prompts, in batches with left padding.

    Hook edits are active while this runs (and only for this thread). Rows that Key Space Detection
    flags during the prompt's forward pass return its fixed refusal instead. ``should_stop`` (optional,
    e.g. a cancel check that raises) is called before each batch and after each generated token.
    """
    import torch
    from transformers import GenerationConfig

    stop_ids = stop_token_ids(bundle)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                              pad_token_id=bundle.tokenizer.pad_token_id)
    encoded = encode_chat(bundle, prompts, max_new_tokens=max_new_tokens)
    answers: list[str] = []
    with torch.no_grad(), bundle.active(seed=seed):
        for start in range(0, len(prompts), batch_size):
            if should_stop is not None:
                should_stop()
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            qmask = span_mask(encoded.query_spans[start:start + batch_size], [len(r) for r in rows], width)
            with run_state(query_mask=qmask.to(ids.device)) as state:
                out = bundle.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                            stopping_criteria=[_after_each_token(state, should_stop)])  # (B, T + new)
            flagged = abstained_rows(state, len(rows))
            for row, refused in zip(out[:, width:].tolist(), flagged):
                if refused:
                    answers.append(state.refusal_text)
                    continue
                end = next((k for k, token in enumerate(row) if token in stop_ids), len(row))
                answers.append(bundle.tokenizer.decode(row[:end], skip_special_tokens=True).strip())
    return answers


def _after_each_token(state: RunState, should_stop: Callable[[], None] | None) -> Any:
    """A stopping criterion called after each token: ends the prefill, checks for cancel, and finishes the
    rows a detector flagged (they get the refusal, so decoding them is wasted)."""
    import torch
    from transformers import StoppingCriteria

    class AfterEachToken(StoppingCriteria):
        def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor", **kwargs: Any) -> "torch.Tensor":
            state.prefill = False
            if should_stop is not None:
                should_stop()
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # (B,)
            if state.abstain is not None:
                done |= state.abstain.to(input_ids.device)
            return done

    return AfterEachToken()
