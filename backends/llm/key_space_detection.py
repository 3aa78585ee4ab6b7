"""Key Space Detection (Li et al., "Effective Skill Unlearning through Intervention and Abstention",
NAACL 2025; Trustworthy-ML-Lab/effective_skill_unlearning): training-free abstention.

- Key vector of a query: the input of the last layer's ``mlp.down_proj`` (``act(gate) * up``, the
  MLP's "key space"), averaged over the tokens of the user's message in the chat prompt (our
  choice: the paper does not fix the position; the mean is steadier than the last token, and the
  shared system-prompt tokens are left out so that they do not dilute the differences).
- Hypercube: mu, sigma of the forget probe keys (per dimension); k = the smallest value such that
  every probe key lies in mu +- k * sigma in every dimension, found by bisection (the upper end of
  the final bracket is kept, so the box provably holds every probe vector).
- Inference: when a query's key lies in mu +- k * h * sigma in every dimension, the model abstains
  with the fixed refusal ``REFUSAL_TEXT`` instead of answering. The weights and logits are untouched.

On ``h``: the authors use 0.06 in one script and 2 in another, each with its own key definition.
With ours, k already is the envelope of the probe keys, so h scales that envelope: h < 1 shrinks the
box inside the probe cloud (held-out forget queries escape), h > 1 widens it. Default h = 2, chosen
from the probe halves only (fit on one half of a skill's probe prompts, test on the other half and
on the other skills' probe prompts, SmolLM2): held-out forget queries have max-z / k ratios whose
80-90th percentiles lie between 1.5 and 2.5, while the closest query of another skill lies at a
ratio of 3.5-4.1 for python_coding and antonyms. Skills whose queries look alike in key space
(factual_qa vs story_writing: "What is...?" vs "Write a short story about...", nearest ratio 1.5)
cannot be separated by any h; the embedding map shows it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from backends.config import param
from backends.llm.skill_config import SkillConfig, resolve_skill_sets
from backends.llm.hooks import Activation, HookEdit, current_state
from backends.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from backends.contract import MethodCall

MIN_SIGMA = 1e-6
DEFAULT_H = 2.0


@dataclass(frozen=True)
class KeySpaceDetectionConfig(SkillConfig):
    """Key Space Detection. Authors' h: 0.06 and 2 in two scripts (their key definitions); ours: 2, see module doc."""

    h: float = param(DEFAULT_H, min=0.01, max=10.0, step=0.05, label="Box scale h",
                     help="The model abstains when a query's key lies within mu ± k·h·sigma in every "
                          "dimension (k: the smallest box holding all forget probe keys).")

    @classmethod
    def smoke(cls) -> "KeySpaceDetectionConfig":
        return cls(forget_skill="factual_qa", retain_skills=("antonyms",), probe_items=6, eval_items=2,
                   eval_max_new_tokens=8)


class KSDEdit(HookEdit):
    """The forget skill's hypercube in key space and the refusal used when a query falls in it."""

    kind = "key_space_detection"

    def __init__(self, mu: "torch.Tensor", sigma: "torch.Tensor", k: float, h: float, refusal_text: str):
        import torch

        self.mu = mu.float()                                 # (I,)
        self.sigma = sigma.float().clamp(min=MIN_SIGMA)      # (I,)
        self.k = float(k)
        self.h = float(h)
        self.refusal_text = refusal_text
        self._k_tensor = torch.tensor([self.k, self.h])

    def contains(self, keys: "torch.Tensor", scale: float | None = None) -> "torch.Tensor":
        """(N,) bool: which (N, I) keys lie within mu ± k·scale·sigma in every dimension (scale = h)."""
        scale = self.h if scale is None else scale
        return z_max(keys, self.mu, self.sigma) <= self.k * scale

    def abstains(self, keys: "torch.Tensor") -> "torch.Tensor":
        return self.contains(keys)

    def hooks(self, model: "nn.Module") -> list[tuple["nn.Module", str, Callable[..., Any]]]:
        from backends.llm.models import mlp_modules

        return [(mlp_modules(model)[-1].down_proj, "forward_pre", self._detect)]

    def _detect(self, act: Activation, module: Any, args: Any) -> None:
        from backends.llm.models import masked_mean

        state = current_state()
        if state is None or not state.prefill or state.query_mask is None:
            return None
        keys = masked_mean(args[0].float(), state.query_mask)  # (B, I)
        flags = self.contains(keys).cpu()
        state.abstain = flags if state.abstain is None else state.abstain | flags
        state.refusal_text = self.refusal_text
        return None

    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        return {"mu": self.mu, "sigma": self.sigma, "k_and_h": self._k_tensor}


def z_max(keys: "torch.Tensor", mu: "torch.Tensor", sigma: "torch.Tensor") -> "torch.Tensor":
    """Largest per-dimension z-score |x - mu| / sigma of each key: (N,)."""
    return ((keys.float() - mu.to(keys.device)) / sigma.to(keys.device)).abs().amax(-1)


def smallest_k(keys: "torch.Tensor", mu: "torch.Tensor", sigma: "torch.Tensor", iters: int = 60) -> float:
    """Bisection for the smallest k with every key inside mu ± k·sigma; returns the bracket's upper end."""
    def inside(k: float) -> bool:
        return bool((z_max(keys, mu, sigma) <= k).all())

    low, high = 0.0, 1.0
    while not inside(high):
        low, high = high, high * 2
    for _ in range(iters):
        middle = (low + high) / 2
        if inside(middle):
            high = middle
        else:
            low = middle
    return high


def fit_hypercube(keys: "torch.Tensor", h: float, refusal_text: str) -> KSDEdit:
    """mu, sigma and k of (N, I) forget probe keys."""
    mu = keys.mean(0)
    sigma = keys.std(0, unbiased=False).clamp(min=MIN_SIGMA)
    return KSDEdit(mu, sigma, smallest_k(keys, mu, sigma), h, refusal_text)


@register_method("llm", "key_space_detection", title="Key Space Detection (abstention)",
                 config=KeySpaceDetectionConfig,
                 paper="Li et al., Effective Skill Unlearning through Intervention and Abstention, NAACL 2025")
def run(call: "MethodCall") -> None:
    """Fit a hypercube around the forget skill's queries in the last MLP's key space; queries that fall
    inside get a fixed refusal. Training-free, a removable hook; retain prompts are only checked."""
    from backends.llm.models import last_mlp_keys
    from backends.llm.scoring import REFUSAL_TEXT

    cfg: KeySpaceDetectionConfig = call.config
    sets = resolve_skill_sets(cfg, call.model, need_retain=False)  # retain prompts are only validated
    call.ctx.phase("probing forget keys", total=1)
    keys = last_mlp_keys(call.model, sets.forget_prompts)  # (N, I)
    call.ctx.step(1, 1)
    edit = fit_hypercube(keys, cfg.h, REFUSAL_TEXT)
    call.model.edits = tuple(call.model.edits) + (edit,)
    call.ctx.log(f"KSD: k = {edit.k:.3f} from {len(sets.forget_prompts)} forget prompts, h = {edit.h}")
