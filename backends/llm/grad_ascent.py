"""Gradient ascent and GradDiff: the training baselines of LLM unlearning.

- GA: minimise -NLL(forget answers) (e.g. Jang et al., "Knowledge Unlearning for Mitigating
  Privacy Risks in Language Models", ACL 2023).
- GradDiff: -NLL(forget) + retain_weight * NLL(retain) (Liu et al., "Continual Learning and Private
  Unlearning", 2022; the TOFU baseline, Maini et al. 2024).

NLL = mean token negative log-likelihood of the answer given its chat prompt. Forget answers are
the skill's reference answers; pasted prompts use the current model's own greedy answer (what it
would say is what it should unlearn). Adam on all weights of a private copy of the model; the
authors' lr is 1e-5 over several epochs; on a 2-core CPU we take fewer, larger steps (documented
defaults below), with gradient clipping at 1.0.

Defaults not yet chosen on the tune split: one trial (method + every tune item of four skills) took about
20 min on the shared 2-core machine and the session's time went to NPO, whose lr 5e-5 -> 1e-5 change kept
every retain skill (see ``backends/llm/npo.py``); GA and GradDiff at lr 5e-5 is unmeasured on tune. To choose:
``python scripts/tune_llm.py grad_ascent --trial lr=1e-5 --trial lr=2e-5``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from backends.config import param
from backends.llm.skill_config import SkillConfig, SkillSets, resolve_skill_sets
from backends.registry import register_method

if TYPE_CHECKING:
    import torch

    from backends.contract import MethodCall
    from backends.llm.bundles import LLMBundle


@dataclass(frozen=True)
class GradAscentConfig(SkillConfig):
    """Gradient ascent on the forget answers. Authors: lr 1e-5, a few epochs; here fewer, larger steps."""

    steps: int = param(10, min=1, max=500, help="Optimiser steps.")
    lr: float = param(5e-5, min=1e-7, max=1e-2, label="Learning rate", help="Adam learning rate.")
    batch_size: int = param(4, min=1, max=32, help="Forget (and retain) examples per step.")
    seed: int = param(0, min=0, max=2**31 - 1, advanced=True, help="Seed of the example order.")

    @classmethod
    def smoke(cls) -> "GradAscentConfig":
        return cls(forget_skill="factual_qa", retain_skills=("antonyms",), probe_items=6, eval_items=2,
                   eval_max_new_tokens=8, steps=2, batch_size=2)


@dataclass(frozen=True)
class GradDiffConfig(GradAscentConfig):
    """GradDiff: gradient ascent on forget plus gradient descent on retain answers."""

    retain_weight: float = param(1.0, min=0.0, max=100.0, help="Weight of the retain NLL term.")


def fill_answers(bundle: "LLMBundle", prompts: list[str], answers: list[str | None],
                 max_new_tokens: int) -> list[str]:
    """Reference answers, with the model's own greedy answer where none is given (pasted prompts)."""
    from backends.llm.decoding import generate_greedy

    missing = [i for i, a in enumerate(answers) if a is None]
    filled = list(answers)
    if missing:
        own = generate_greedy(bundle, [prompts[i] for i in missing], max_new_tokens=max_new_tokens)
        for i, answer in zip(missing, own):
            filled[i] = answer
    return [a or "" for a in filled]


class Batches:
    """Endless seeded shuffled mini-batches over (prompt, answer) pairs."""

    def __init__(self, prompts: list[str], answers: list[str], batch_size: int, seed: int):
        self.pairs = list(zip(prompts, answers))
        self.batch_size = min(batch_size, len(self.pairs))
        self.rng = random.Random(seed)
        self.order: list[int] = []

    def next(self) -> tuple[list[str], list[str]]:
        picked = []
        while len(picked) < self.batch_size:
            if not self.order:
                self.order = list(range(len(self.pairs)))
                self.rng.shuffle(self.order)
            picked.append(self.pairs[self.order.pop()])
        return [p for p, _ in picked], [a for _, a in picked]


def train(bundle: "LLMBundle", loss_fn: Callable[[int], tuple["torch.Tensor", dict[str, float]]], steps: int,
          lr: float, on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
    """Adam on all weights of ``bundle`` (made private first): ``loss_fn(step) -> (loss, metrics)``."""
    import torch

    from backends.llm.bundles import own_weights

    own_weights(bundle)
    params = list(bundle.model.parameters())
    bundle.model.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=lr)
    try:
        for step in range(steps):
            optimiser.zero_grad(set_to_none=True)
            loss, metrics = loss_fn(step)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            if on_step is not None:
                on_step(step + 1, {"loss": float(loss.detach()), **metrics})
    finally:
        bundle.model.requires_grad_(False)
        bundle.model.zero_grad(set_to_none=True)


def mean_nll(bundle: "LLMBundle", prompts: list[str], answers: list[str]) -> "torch.Tensor":
    """Mean over the batch of each answer's mean token NLL (a scalar with grad)."""
    from backends.llm.likelihood import answer_nll

    total, count = answer_nll(bundle, prompts, answers)
    return (total / count.clamp(min=1)).mean()


def prepare(call: "MethodCall", need_retain: bool) -> tuple[SkillSets, list[str], list[str]]:
    """Resolved sets and filled forget / retain answers."""
    cfg = call.config
    sets = resolve_skill_sets(cfg, call.model, min_forget=1, need_retain=need_retain)
    call.ctx.phase("preparing answers", total=1)
    forget_answers = fill_answers(call.model, sets.forget_prompts, sets.forget_answers, cfg.eval_max_new_tokens)
    retain_answers = fill_answers(call.model, sets.retain_prompts, sets.retain_answers, cfg.eval_max_new_tokens) \
        if need_retain else []
    return sets, forget_answers, retain_answers


def _run(call: "MethodCall", retain_weight: float) -> None:
    cfg = call.config
    sets, forget_answers, retain_answers = prepare(call, need_retain=retain_weight > 0)
    forget = Batches(sets.forget_prompts, forget_answers, cfg.batch_size, cfg.seed)
    retain = Batches(sets.retain_prompts, retain_answers, cfg.batch_size, cfg.seed + 1) if retain_weight > 0 else None

    def loss_fn(step: int) -> tuple["torch.Tensor", dict[str, float]]:
        forget_nll = mean_nll(call.model, *forget.next())
        loss = -forget_nll
        metrics = {"forget_nll": float(forget_nll.detach())}
        if retain is not None:
            retain_nll = mean_nll(call.model, *retain.next())
            loss = loss + retain_weight * retain_nll
            metrics["retain_nll"] = float(retain_nll.detach())
        return loss, metrics

    call.ctx.phase("unlearning", total=cfg.steps)
    train(call.model, loss_fn, cfg.steps, cfg.lr, on_step=lambda i, m: call.ctx.step(i, cfg.steps, **m))


@register_method("llm", "grad_ascent", title="Gradient ascent (baseline)", config=GradAscentConfig,
                 paper="Jang et al., Knowledge Unlearning for Mitigating Privacy Risks in Language Models, ACL 2023")
def run_grad_ascent(call: "MethodCall") -> None:
    """Fine-tune to make the forget skill's answers unlikely (maximise their NLL)."""
    _run(call, retain_weight=0.0)


@register_method("llm", "grad_diff", title="GradDiff (baseline)", config=GradDiffConfig,
                 paper="Liu et al., Continual Learning and Private Unlearning, CoLLAs 2022 (TOFU baseline)")
def run_grad_diff(call: "MethodCall") -> None:
    """Gradient ascent on the forget answers plus gradient descent on the retain answers."""
    _run(call, retain_weight=call.config.retain_weight)
