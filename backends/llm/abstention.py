"""Abstention, decided from the keys of Key Space Detection (Li et al., "Effective Skill Unlearning through
Intervention and Abstention", NAACL 2025): the last layer's MLP keys of a prompt, and which prompts the
bundle's hook edits answer with a refusal (:meth:`backends.llm.hooks.HookEdit.abstains`). Evaluation and
attacks ask :func:`abstain_mask`, never a specific method.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from backends.llm.bundles import mlp_modules
from backends.llm.chat import encode_chat, left_pad, masked_mean, positions, span_mask
from backends.llm.hooks import HookEdit, capture

if TYPE_CHECKING:
    import torch

    from backends.llm.bundles import LLMBundle


def last_mlp_keys(bundle: LLMBundle, prompts: list[str], batch_size: int = 16) -> "torch.Tensor":
    """Key vectors of Key Space Detection: the input of the last layer's ``mlp.down_proj``
    (``act(gate) * up``), averaged over the user message's tokens of the chat prompt: (N, I).

    Computed with the bundle's hook edits active (Neuron Adjust changes keys; KSD does not).
    """
    import torch

    down = mlp_modules(bundle.model)[-1].down_proj
    encoded = encode_chat(bundle, prompts)
    keys = []
    with torch.no_grad(), bundle.active():
        for start in range(0, len(prompts), batch_size):
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            qmask = span_mask(encoded.query_spans[start:start + batch_size], [len(r) for r in rows], width)
            with capture(down, "input") as got:
                bundle.model.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False)
            keys.append(masked_mean(got.tensors[0], qmask.to(ids.device)))
    return torch.cat(keys).float()


def abstain_mask(bundle: LLMBundle, prompts: list[str]) -> "torch.Tensor":
    """(N,) bool: which prompts any of the bundle's hook edits answers with its refusal, decided from the
    keys alone (the same decision as during generation, no decoding needed)."""
    import torch

    flags = torch.zeros(len(prompts), dtype=torch.bool)
    if not prompts or not any(type(e).abstains is not HookEdit.abstains for e in bundle.edits):
        return flags
    keys = last_mlp_keys(bundle, prompts).cpu()
    for edit in bundle.edits:
        refused = edit.abstains(keys)
        if refused is not None:
            flags |= refused.cpu()
    return flags
