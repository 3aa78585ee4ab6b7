"""FLAT: Forget data only Loss AdjustmenT (Wang et al., "LLM Unlearning via Loss Adjustment with Only
Forget Data", ICLR 2025).

No retain data: each forget prompt gets a template refusal x_e as the answer to prefer and its forget
answer x_f as the one to drop. With P = mean per-token probability of a response given its prompt,
the loss is the variational f-divergence between the two response distributions,
    L = -g*(P(x_e)) + f*(g*(P(x_f))),
which for Total Variation (g*(v) = tanh(v) / 2, f*(u) = u), the divergence used here, is
    L_FLAT = -tanh(P_template) / 2 + tanh(P_forget) / 2.
Authors: Adam, lr 1e-5 over several epochs of the forget set with template refusals such as
"I don't know"; here fewer, larger steps (2-core CPU), as for the other training baselines.

Default lr 1e-5 (the authors') chosen on the tune split by the rule in ``backends/llm/grad_ascent.py`` (forget
python_coding, every tune item, SmolLM2, 1 thread, commit 2d410fe): at 5e-5 (the earlier default) every skill
scored 0 (answers collapse into the refusal templates); at 2e-5 python 0.00 but stories 0.64 and QA 0.55 of
base; at 1e-5 python 0.06 (0.08 of base), stories 0.93, QA 0.91, antonyms 1.00 of base: the only setting
tried that forgets and keeps every retain skill at >= 0.9. With no retain data its damage shows first on QA
(answer NLL +0.51 nats a token at 1e-5, +1.08 at 2e-5).
What it cannot do: a second request on the same edit. Forgetting antonyms after python_coding (test split, 16
items, 2 threads, commit 8d6b930) took every skill to 0 except stories (1.00 -> 0.13 on test prompts, 0.75 -> 0
reworded). It has no retain term, so nothing holds the other skills in place while a second run pushes the
already edited model further (not investigated beyond this measurement).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.llm.grad_ascent import GradAscentConfig
from backends.llm.training import Batches, prepare, train
from backends.registry import register_method

if TYPE_CHECKING:
    import torch

    from backends.contract import MethodCall
    from backends.llm.bundles import LLMBundle

#: Template refusals, the preferred answers (one per forget prompt, in turn).
TEMPLATE_REFUSALS: tuple[str, ...] = (
    "I'm sorry, I can't help with that.",
    "I don't know.",
    "I'm not able to answer that.",
    "Sorry, I can't do that.",
)


@dataclass(frozen=True)
class FlatConfig(GradAscentConfig):
    """FLAT with Total Variation, template refusals and no retain data (retain skills are only evaluated)."""

    lr: float = param(1e-5, min=1e-7, max=1e-2, label="Learning rate",
                      help="Adam learning rate (authors: 1e-5; chosen on the tune split, see the module docstring).")

    @classmethod
    def smoke(cls) -> "FlatConfig":
        return cls(forget_skill="factual_qa", retain_skills=("antonyms",), probe_items=6, eval_items=2,
                   eval_max_new_tokens=8, steps=2, batch_size=2)


def mean_token_probability(bundle: "LLMBundle", prompts: list[str], answers: list[str]) -> "torch.Tensor":
    """P: the mean over an answer's tokens (end-of-turn included) of their probability given the prompt: (B,)."""
    from backends.llm.chat import encode_chat
    from backends.llm.likelihood import span_token_logp

    encoded = encode_chat(bundle, prompts, answers)
    token_logp, target = span_token_logp(bundle, encoded.ids, encoded.answer_spans)
    return (token_logp.exp() * target).sum(1) / target.sum(1).clamp(min=1)


def flat_loss(p_template: "torch.Tensor", p_forget: "torch.Tensor") -> "torch.Tensor":
    """Total-Variation FLAT loss, mean over the batch: -tanh(P_template) / 2 + tanh(P_forget) / 2."""
    import torch

    return (-torch.tanh(p_template) / 2 + torch.tanh(p_forget) / 2).mean()


@register_method("llm", "flat", title="FLAT (forget data only)", config=FlatConfig,
                 paper="Wang et al., LLM Unlearning via Loss Adjustment with Only Forget Data, ICLR 2025")
def run(call: "MethodCall") -> None:
    """Raise the probability of a template refusal and lower that of the forget answer, prompt by prompt."""
    cfg: FlatConfig = call.config
    sets, forget_answers, _ = prepare(call, need_retain=False)
    template_of = {p: TEMPLATE_REFUSALS[i % len(TEMPLATE_REFUSALS)] for i, p in enumerate(sets.forget_prompts)}
    forget = Batches(sets.forget_prompts, forget_answers, cfg.batch_size, cfg.seed)

    def loss_fn(step: int) -> tuple["torch.Tensor", dict[str, float]]:
        prompts, answers = forget.next()
        p_template = mean_token_probability(call.model, prompts, [template_of[p] for p in prompts])
        p_forget = mean_token_probability(call.model, prompts, answers)
        loss = flat_loss(p_template, p_forget)
        return loss, {"p_template": float(p_template.detach().mean()), "p_forget": float(p_forget.detach().mean())}

    call.ctx.phase("unlearning", total=cfg.steps)
    train(call.model, loss_fn, cfg.steps, cfg.lr, on_step=lambda i, m: call.ctx.step(i, cfg.steps, **m))
