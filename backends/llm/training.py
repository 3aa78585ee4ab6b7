"""Fine-tuning shared by the training methods (GA, GradDiff, NPO, FLAT) and the relearning attack: seeded
mini-batches of (prompt, answer) pairs, answers filled in for pasted prompts, the mean answer NLL, and Adam
on a private copy of the weights (copy-on-write: the base is never touched).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable

from backends.llm.skill_config import SkillSets, resolve_skill_sets

if TYPE_CHECKING:
    import torch

    from backends.contract import MethodCall
    from backends.llm.bundles import LLMBundle


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
