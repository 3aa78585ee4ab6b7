"""Model bundles: a causal LM, its tokenizer and the hook edits that act on it, with copy-on-write weights.

An :class:`LLMBundle` holds a transformers causal LM with Llama/Qwen-style MLPs (``mlp.gate_proj`` /
``up_proj`` / ``down_proj``). Bundles made by :func:`clone_bundle` share the frozen weights with their
source until a training method calls :func:`own_weights`, so a hook edit of SmolLM2 costs only its
statistics.

Hook edits are gated per thread by :mod:`backends.llm.hooks`: they only act inside ``bundle.active()``,
so the base model never sees an edit's hooks, even while another thread generates with the edited
bundle on the same shared module.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from backends.llm.hooks import HookEdit


@dataclass
class LLMBundle:
    """A causal LM, its tokenizer and the hook edits active when it generates."""

    model: "PreTrainedModel"
    tokenizer: "PreTrainedTokenizerBase"
    preset: str
    system_prompt: str | None = None
    edits: tuple["HookEdit", ...] = ()
    private_weights: bool = False     # True once a training method gave this bundle its own copy of the weights
    forgotten: tuple[str, ...] = ()   # skills unlearned by the requests that made this edit, in order
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> "torch.device":
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def n_layers(self) -> int:
        return len(mlp_modules(self.model))

    @contextmanager
    def active(self, seed: int = 0) -> Iterator[None]:
        """Install this bundle's hook edits for the current thread (removed on exit)."""
        from backends.llm.hooks import activate

        with activate(self.model, self.edits, seed=seed):
            yield


def mlp_modules(model: "PreTrainedModel") -> list[Any]:
    """The ``mlp`` module of every decoder layer, checked for gate/up/down projections."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no model.layers: only Llama/Qwen-style decoders are supported")
    mlps = [layer.mlp for layer in layers]
    for mlp in mlps:
        if not all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj")):
            raise ValueError(f"{type(model).__name__} has no gate_proj/up_proj/down_proj MLP: "
                             "only Llama/Qwen-style MLPs are supported")
    return mlps


def clone_bundle(bundle: LLMBundle) -> LLMBundle:
    """A new bundle sharing the weights (copy-on-write) and carrying a copy of the hook edits."""
    return LLMBundle(bundle.model, bundle.tokenizer, bundle.preset, bundle.system_prompt,
                     edits=tuple(bundle.edits), private_weights=False, forgotten=bundle.forgotten,
                     info={"cloned_from": bundle.preset})


def own_weights(bundle: LLMBundle) -> None:
    """Give ``bundle`` a private copy of its weights (before a training method edits them)."""
    if not bundle.private_weights:
        bundle.model = copy.deepcopy(bundle.model)
        bundle.private_weights = True
