"""Removable forward hooks shared by the training-free methods (Neuron Adjust, Key Space Detection).

A :class:`HookEdit` describes hooks on named submodules. :func:`activate` installs them for the
duration of a ``with`` block and gates each one by a per-activation token held in a
:class:`contextvars.ContextVar`: a hook acts only in the thread (context) that activated it. The
base model and an edit may therefore share one ``nn.Module``: generating with the base, even
concurrently in another thread, never sees the edit, and leaving the block removes every hook,
so the shared module is bit-for-bit the base again.

:func:`run_state` carries per-forward information to the hooks (which tokens are the user's
query, whether this is the prompt's forward pass) and collects their abstention flags.
"""
from __future__ import annotations

import abc
import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import torch
    from torch import nn

_ACTIVE: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("llm_active_hooks", default=frozenset())
_STATE: contextvars.ContextVar["RunState | None"] = contextvars.ContextVar("llm_run_state", default=None)


@dataclass
class RunState:
    """Per-forward context for hooks: the query-token mask and the rows flagged for abstention."""

    query_mask: "torch.Tensor | None" = None   # (B, T) bool: the user message's tokens (left-padded rows)
    prefill: bool = True                       # True during the prompt's forward pass
    abstain: "torch.Tensor | None" = None      # (B,) bool, OR of every detector's flags
    refusal_text: str = ""


@contextmanager
def run_state(query_mask: "torch.Tensor | None" = None) -> Iterator[RunState]:
    """Make a :class:`RunState` visible to active hooks in this context."""
    state = RunState(query_mask=query_mask)
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def current_state() -> RunState | None:
    return _STATE.get()


def abstained_rows(state: RunState, batch: int) -> list[bool]:
    """Which rows of the batch a detector flagged (all False when none is active)."""
    if state.abstain is None:
        return [False] * batch
    return [bool(v) for v in state.abstain.tolist()]


class Activation:
    """One installation of a hook edit: its gate token, its seed, and the token positions and ids of the
    forward pass in progress (for edits that key their randomness by token, see :func:`token_uniforms`)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.positions: "torch.Tensor | None" = None  # (B, T) each token's position in its own sequence
        self.token_ids: "torch.Tensor | None" = None  # (B, T)

    def record_tokens(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        """A ``forward_pre_kwargs`` hook for the decoder: keep this forward's positions and token ids."""
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        positions = kwargs.get("position_ids")
        if positions is None:  # every caller here passes them; plain arange otherwise
            width = ids.shape[1] if ids is not None else kwargs["inputs_embeds"].shape[1]
            positions = torch.arange(width).expand(len(ids) if ids is not None else len(kwargs["inputs_embeds"]), -1)
        self.positions = positions.long().cpu()
        self.token_ids = ids.long().cpu() if ids is not None else torch.zeros_like(self.positions)

    @property
    def is_on(self) -> bool:
        return id(self) in _ACTIVE.get()


class HookEdit(abc.ABC):
    """An edit made of forward hooks plus the statistics that define it."""

    kind: str = "hook"
    seed: int = 0   # added to the generation seed: the activation's seed

    @abc.abstractmethod
    def hooks(self, model: "nn.Module") -> list[tuple["nn.Module", str, Callable[..., Any]]]:
        """(module, kind, fn) triples: kind "forward" (fn(activation, module, args, output)), "forward_pre"
        (fn(activation, module, args)) or "forward_pre_kwargs" (fn(activation, module, args, kwargs), read only)."""

    @abc.abstractmethod
    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        """The tensors that define this edit (exported alongside weight diffs)."""

    def abstains(self, keys: "torch.Tensor") -> "torch.Tensor | None":
        """(N,) bool: which requests (by their last-layer MLP keys (N, I)) this edit answers with a refusal;
        None for edits that never abstain. Evaluation and attacks ask this, not a specific method."""
        return None


@contextmanager
def activate(model: "nn.Module", edits: tuple[HookEdit, ...], seed: int = 0) -> Iterator[None]:
    """Install ``edits``' hooks on ``model`` for this context only; always removed on exit."""
    if not edits:
        yield
        return
    handles = []
    activations = []
    try:
        for index, edit in enumerate(edits):
            act = Activation(seed + edit.seed + 1000 * index)
            activations.append(act)
            for module, kind, fn in edit.hooks(model):
                handles.append(_install(module, kind, fn, act))
        token = _ACTIVE.set(_ACTIVE.get() | {id(a) for a in activations})
        try:
            yield
        finally:
            _ACTIVE.reset(token)
    finally:
        for handle in handles:
            handle.remove()


def _install(module: "nn.Module", kind: str, fn: Callable[..., Any], act: Activation) -> Any:
    if kind == "forward":
        def forward_hook(mod: Any, args: Any, output: Any) -> Any:
            return fn(act, mod, args, output) if act.is_on else None
        return module.register_forward_hook(forward_hook)
    if kind == "forward_pre":
        def pre_hook(mod: Any, args: Any) -> Any:
            return fn(act, mod, args) if act.is_on else None
        return module.register_forward_pre_hook(pre_hook)
    if kind == "forward_pre_kwargs":  # reads the call's keyword arguments; never changes them
        def pre_hook_kwargs(mod: Any, args: Any, kwargs: dict[str, Any]) -> None:
            if act.is_on:
                fn(act, mod, args, kwargs)
        return module.register_forward_pre_hook(pre_hook_kwargs, with_kwargs=True)
    raise ValueError(f"unknown hook kind {kind!r}")


_MASK31 = (1 << 31) - 1


def _mix31(h: "torch.Tensor") -> "torch.Tensor":
    """An integer hash on 31-bit values (int64 tensors; every product stays below 2**62)."""
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _MASK31
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _MASK31
    return h ^ (h >> 16)


def token_uniforms(seed: int, layer: int, neurons: "torch.Tensor", positions: "torch.Tensor",
                   token_ids: "torch.Tensor") -> "torch.Tensor":
    """Uniforms in [0, 1) keyed by (seed, layer, neuron, token position, token id): (B, T, K) for neurons
    (K,) and positions / token ids (B, T). A row's draws depend on its own tokens only, never on which
    other prompts share its batch, how the batch is padded, or how many forward passes came before."""
    import torch

    h = _mix31(torch.tensor((seed * 1_000_003 + layer) & _MASK31, dtype=torch.long))
    h = _mix31((h + positions.long() * 2_654_435) & _MASK31)  # (B, T)
    h = _mix31((h + token_ids.long() * 40_503) & _MASK31)  # (B, T)
    h = _mix31((h[..., None] + neurons.long().cpu() * 97_787) & _MASK31)  # (B, T, K)
    return h.double().div_(1 << 31).float()


@dataclass
class Captured:
    """Tensors recorded by :func:`capture`, one per forward call."""

    tensors: list["torch.Tensor"] = field(default_factory=list)


@contextmanager
def capture(module: "nn.Module", what: str = "output") -> Iterator[Captured]:
    """Record a module's input (first positional argument) or output on each forward call made in this
    context (this thread): other sessions' forward passes through the same shared module are not recorded."""
    captured = Captured()
    mine = id(captured)

    def hook(mod: Any, args: Any, output: Any) -> None:
        if mine in _ACTIVE.get():
            value = args[0] if what == "input" else output
            captured.tensors.append(value.detach())

    handle = module.register_forward_hook(hook)
    token = _ACTIVE.set(_ACTIVE.get() | {mine})
    try:
        yield captured
    finally:
        _ACTIVE.reset(token)
        handle.remove()
