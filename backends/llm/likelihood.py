"""Likelihoods of chat answers: token log-probabilities and NLLs of spans of left-padded token rows, with the
bundle's hook edits active (gradients flow when the caller enables them)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from backends.llm.chat import chat_pieces, encode_chat, left_pad, positions, span_mask, token_ids

if TYPE_CHECKING:
    import torch

    from backends.llm.bundles import LLMBundle


def span_token_logp(bundle: LLMBundle, rows: list[list[int]],
                    spans: list[tuple[int, int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Log-probability of the next tokens from the first span's start on, and the 0/1 mask of those inside each
    row's span: (B, K-1) each, K <= T. Logits are computed only where a span token is predicted (rows are
    left-padded, so spans sit near the right edge): a short answer after a long prompt skips most of the
    (T, vocabulary) output layer and its softmax."""
    import torch

    with bundle.active():
        ids, mask, width = left_pad(bundle, rows)
        target_mask = span_mask(spans, [len(r) for r in rows], width).to(ids.device)
        first = min(width - len(row) + start for row, (start, _) in zip(rows, spans))  # first scored position
        keep = min(width, width - first + 1)  # logits at positions width-keep .. width-1
        logits = bundle.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False,
                              logits_to_keep=keep).logits  # (B, K, V)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, K-1, V)
    predicted = ids[:, width - keep + 1:]  # (B, K-1): the token at t+1 is predicted at t
    token_logp = logp.gather(-1, predicted[:, :, None]).squeeze(-1)  # (B, K-1)
    return token_logp, target_mask[:, width - keep + 1:].float()


def span_nll(bundle: LLMBundle, rows: list[list[int]], spans: list[tuple[int, int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Summed token NLL of the [start, end) span of each token row, and its token count: (B,), (B,).

    One forward pass over the batch.
    """
    token_logp, target = span_token_logp(bundle, rows, spans)
    return -(token_logp * target).sum(1), target.sum(1)


def answer_nll(bundle: LLMBundle, prompts: list[str], answers: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Summed token NLL of each whole answer (and its end-of-turn token) given its chat prompt, and its
    token count: (B,), (B,)."""
    encoded = encode_chat(bundle, prompts, answers)
    return span_nll(bundle, encoded.ids, encoded.answer_spans)


def continuation_nll(bundle: LLMBundle, prompts: list[str], prefixes: list[str], continuations: list[str],
                     batch_size: int = 8) -> "torch.Tensor":
    """Mean token NLL of each continuation given its chat prompt and the answer's prefix (the prefix's
    tokens are context, not scored; no end-of-turn token), without gradients: (N,)."""
    import torch

    before, after = chat_pieces(bundle)
    pre, post = token_ids(bundle, before), token_ids(bundle, after)
    rows, spans = [], []
    for prompt, prefix, continuation in zip(prompts, prefixes, continuations):
        context = pre + token_ids(bundle, prompt) + post + token_ids(bundle, prefix)
        scored = token_ids(bundle, continuation)
        rows.append(context + scored)
        spans.append((len(context), len(context) + len(scored)))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # batches of similar length: less padding
    values = torch.empty(len(rows))
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = order[start:start + batch_size]
            total, count = span_nll(bundle, [rows[i] for i in batch], [spans[i] for i in batch])
            values[batch] = (total / count.clamp(min=1)).float().cpu()
    return values
