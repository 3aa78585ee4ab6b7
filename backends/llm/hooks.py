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
    """One installation of a hook edit: its gate token and its seeded random generator."""

    def __init__(self, seed: int):
        import torch

        self.generator = torch.Generator().manual_seed(seed)

    @property
    def is_on(self) -> bool:
        return id(self) in _ACTIVE.get()


class HookEdit(abc.ABC):
    """An edit made of forward hooks plus the statistics that define it."""

    kind: str = "hook"
    seed: int = 0   # added to the generation seed of the activation's random generator

    @abc.abstractmethod
    def hooks(self, model: "nn.Module") -> list[tuple["nn.Module", str, Callable[..., Any]]]:
        """(module, "forward" | "forward_pre", fn(activation, module, args[, output])) triples."""

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
    raise ValueError(f"unknown hook kind {kind!r}")


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
