"""Chat prompts as token rows: the chat template around a user message, left padding, position ids and
masks of token spans (the user's message, the answer) in left-padded batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from backends.llm.bundles import LLMBundle

_SPLIT = "\u0000CONTENT\u0000"


def chat_pieces(bundle: LLMBundle, with_generation_prompt: bool = True) -> tuple[str, str]:
    """The chat template around one user message, as (text before, text after) the message."""
    messages = [{"role": "user", "content": _SPLIT}]
    if bundle.system_prompt:
        messages.insert(0, {"role": "system", "content": bundle.system_prompt})
    text = bundle.tokenizer.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=with_generation_prompt)
    before, after = text.split(_SPLIT)
    return before, after


def token_ids(bundle: LLMBundle, text: str) -> list[int]:
    """Token ids of plain text, no special tokens added."""
    return list(bundle.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass
class Encoded:
    """Token ids of chat prompts (and optional answers), one list per prompt, with spans."""

    ids: list[list[int]]
    query_spans: list[tuple[int, int]]     # [start, end) of the user message's tokens
    answer_spans: list[tuple[int, int]]    # [start, end) of the answer's tokens (empty without answers)


def encode_chat(bundle: LLMBundle, prompts: list[str], answers: list[str] | None = None,
                max_new_tokens: int = 0) -> Encoded:
    """Chat-formatted token ids; ValueError when a prompt plus its answer would not fit the context."""
    before, after = chat_pieces(bundle)
    pre, post = token_ids(bundle, before), token_ids(bundle, after)
    end_ids = token_ids(bundle, bundle.tokenizer.eos_token or "")
    out = Encoded([], [], [])
    for i, prompt in enumerate(prompts):
        query = token_ids(bundle, prompt)
        ids = pre + query + post
        q_span = (len(pre), len(pre) + len(query))
        a_span = (len(ids), len(ids))
        if answers is not None:
            answer = token_ids(bundle, answers[i]) + end_ids
            a_span = (len(ids), len(ids) + len(answer))
            ids = ids + answer
        if len(ids) + max_new_tokens > bundle.context_length:
            raise ValueError(f"prompt {i + 1} ({prompt[:40]!r}...) takes {len(ids)} tokens"
                             f"{f' + {max_new_tokens} new' if max_new_tokens else ''}, over the model's "
                             f"context length of {bundle.context_length}: shorten it")
        out.ids.append(ids)
        out.query_spans.append(q_span)
        out.answer_spans.append(a_span)
    return out


def left_pad(bundle: LLMBundle, rows: list[list[int]]) -> tuple["torch.Tensor", "torch.Tensor", int]:
    """Left-padded (B, T) ids and attention mask; returns the pad offsets' max length T."""
    import torch

    width = max(len(r) for r in rows)
    pad = bundle.tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(bundle.device), mask.to(bundle.device), width


def positions(mask: "torch.Tensor") -> "torch.Tensor":
    """Position ids that ignore left padding: (B, T)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


def span_mask(spans: list[tuple[int, int]], lengths: list[int], width: int) -> "torch.Tensor":
    """(B, T) bool mask of [start, end) spans of left-padded rows."""
    import torch

    mask = torch.zeros((len(spans), width), dtype=torch.bool)
    for i, ((start, end), n) in enumerate(zip(spans, lengths)):
        offset = width - n
        mask[i, offset + start:offset + end] = True
    return mask




def masked_mean(values: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    """Mean of (B, T, D) values over the positions where the (B, T) mask is True: (B, D)."""
    weights = mask.to(values.dtype)[..., None]  # (B, T, 1)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1)
