"""Key Space Detection (Li et al., "Effective Skill Unlearning through Intervention and Abstention",
NAACL 2025; Trustworthy-ML-Lab/effective_skill_unlearning): training-free abstention.

- Key vector of a query: the input of the last layer's ``mlp.down_proj`` (``act(gate) * up``, the
  MLP's "key space"), averaged over the tokens of the user's message in the chat prompt (our
  choice: the paper does not fix the position; the mean is steadier than the last token, and the
  shared system-prompt tokens are left out so that they do not dilute the differences).
- Key space: the keys of the forget skill's probe prompts and, with ``varied_phrasings`` (default), of
  its ``probe_paraphrase`` split: probe-side tasks asked in hand-written everyday wordings ("Hey, could
  you write me add(a, b) in Python?"), so that the region covers requests, not only the templates.
- Region: mu, sigma of those keys (per dimension) and a per-dimension score z = |x - mu| / sigma. The
  paper's shape is the hypercube (``shape="box"``: max_d z <= k); ours by default is the axis-aligned
  ellipsoid (``shape="ellipsoid"``: sqrt(mean_d z^2) <= k, a diagonal Mahalanobis distance). k = the
  smallest value holding every fitted key (bisection; the upper end of the bracket is kept).
- Inference: when a query's score is <= k * h, the model abstains with the fixed refusal
  ``REFUSAL_TEXT`` instead of answering. The weights and logits are untouched.
- Retain guard (ours): h is lowered until at most ``retain_abstain_max`` (5 %) of the retain set's probe
  prompts fall inside, so a skill whose keys overlap another's trades escapes for fewer false refusals.

Why the ellipsoid and h = 1.1 (measured on SmolLM2, h chosen on the probe side only: fit on the probe
prompts plus one half of the probe paraphrases, escape = held-out half outside, false abstention = other
skills' probe, probe_paraphrase and tune prompts inside; the largest h whose false abstention stays
<= 0.05). In 1536 dimensions the box's max over dimensions is set by whichever dimension is noisiest:
once the varied phrasings join the fit, the box that holds them also swallows other skills (python_coding,
h = 2: 67 % of antonym requests abstain), and shrinking it lets paraphrases escape. The ellipsoid averages
over dimensions. Held-out result, python_coding (fit on probe + probe_paraphrase, h = 1.1): 3 % of test
prompts and 8 % of test_paraphrase requests escape; 0 % of the other skills' test and test_paraphrase
prompts abstain (box, probe only, h = 2, the previous default: 7 % and 67 % escape).

What it cannot catch: requests whose wording is far from every fitted one (the region is one ellipsoid
around the mean forget key); skills whose queries look alike in key space. Antonyms (short one-word
questions) overlap short factual questions: without the retain guard, 58 % of python_coding
paraphrases and 51 % of factual_qa test prompts abstain; with it (h falls to 0.83) 3 % of antonym test
prompts but 38 % of antonym paraphrases escape while 11 % of factual_qa test prompts still abstain (box,
h = 1.25: 38 % escape, 9 %); factual_qa and story_writing overlap the same way. It cannot stop a user
who wraps the skill inside another task's wording, and it removes nothing: the weights still hold the
skill (the knowledge probe and relearning show it).
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
DEFAULT_H = 1.1
SHAPES = ("ellipsoid", "box")


@dataclass(frozen=True)
class KeySpaceDetectionConfig(SkillConfig):
    """Key Space Detection. Authors: a hypercube, h 0.06 and 2 in two scripts (their key definitions); ours:
    an ellipsoid around probe prompts and varied phrasings, h 1.1 (see module doc)."""

    h: float = param(DEFAULT_H, min=0.01, max=10.0, step=0.05, label="Region scale h",
                     help="The model abstains when a query's key lies within k·h of the forget keys' mean "
                          "(k: the smallest region holding all fitted forget keys).")
    shape: str = param("ellipsoid", choices=SHAPES, advanced=True,
                       help="ellipsoid: root-mean-square z-score (default, measured better); box: the "
                            "paper's hypercube, the largest z-score over dimensions.")
    retain_abstain_max: float = param(0.05, min=0.0, max=1.0, step=0.01, advanced=True,
                                      label="Retain abstention cap",
                                      help="h is lowered until at most this share of the retain set's prompts "
                                           "fall inside the region (1: no cap).")
    varied_phrasings: bool = param(True, advanced=True,
                                   help="Also fit on the forget skill's hand-written everyday wordings of "
                                        "probe tasks (probe_paraphrase), not only its template prompts.")

    @classmethod
    def smoke(cls) -> "KeySpaceDetectionConfig":
        return cls(forget_skill="factual_qa", retain_skills=("antonyms",), probe_items=6, eval_items=2,
                   eval_max_new_tokens=8)


class KSDEdit(HookEdit):
    """The forget skill's region in key space and the refusal used when a query falls in it."""

    kind = "key_space_detection"

    def __init__(self, mu: "torch.Tensor", sigma: "torch.Tensor", k: float, h: float, refusal_text: str,
                 shape: str = "ellipsoid"):
        import torch

        if shape not in SHAPES:
            raise ValueError(f"unknown region shape {shape!r}; choose one of {', '.join(SHAPES)}")
        self.mu = mu.float()                                 # (I,)
        self.sigma = sigma.float().clamp(min=MIN_SIGMA)      # (I,)
        self.k = float(k)
        self.h = float(h)
        self.shape = shape
        self.refusal_text = refusal_text
        self._k_tensor = torch.tensor([self.k, self.h, float(SHAPES.index(shape))])

    def contains(self, keys: "torch.Tensor", scale: float | None = None) -> "torch.Tensor":
        """(N,) bool: which (N, I) keys score within k·scale of mu (scale = h)."""
        scale = self.h if scale is None else scale
        return key_score(keys, self.mu, self.sigma, self.shape) <= self.k * scale

    def abstains(self, keys: "torch.Tensor") -> "torch.Tensor":
        return self.contains(keys)

    def hooks(self, model: "nn.Module") -> list[tuple["nn.Module", str, Callable[..., Any]]]:
        from backends.llm.bundles import mlp_modules

        return [(mlp_modules(model)[-1].down_proj, "forward_pre", self._detect)]

    def _detect(self, act: Activation, module: Any, args: Any) -> None:
        from backends.llm.chat import masked_mean

        state = current_state()
        if state is None or not state.prefill or state.query_mask is None:
            return None
        keys = masked_mean(args[0].float(), state.query_mask)  # (B, I)
        flags = self.contains(keys).cpu()
        state.abstain = flags if state.abstain is None else state.abstain | flags
        state.refusal_text = self.refusal_text
        return None

    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        return {"mu": self.mu, "sigma": self.sigma, "k_h_shape": self._k_tensor}


def z_max(keys: "torch.Tensor", mu: "torch.Tensor", sigma: "torch.Tensor") -> "torch.Tensor":
    """Largest per-dimension z-score |x - mu| / sigma of each key: (N,)."""
    return ((keys.float() - mu.to(keys.device)) / sigma.to(keys.device)).abs().amax(-1)


def key_score(keys: "torch.Tensor", mu: "torch.Tensor", sigma: "torch.Tensor", shape: str) -> "torch.Tensor":
    """Each (N, I) key's distance from mu in units of sigma: max z (box) or root-mean-square z (ellipsoid): (N,)."""
    if shape == "box":
        return z_max(keys, mu, sigma)
    return ((keys.float() - mu.to(keys.device)) / sigma.to(keys.device)).pow(2).mean(-1).sqrt()


def smallest_k(keys: "torch.Tensor", mu: "torch.Tensor", sigma: "torch.Tensor", iters: int = 60,
               shape: str = "box") -> float:
    """Bisection for the smallest k with every key's score <= k; returns the bracket's upper end."""
    scores = key_score(keys, mu, sigma, shape)

    def inside(k: float) -> bool:
        return bool((scores <= k).all())

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


def fit_region(keys: "torch.Tensor", h: float, refusal_text: str, shape: str = "box") -> KSDEdit:
    """mu, sigma and k of (N, I) forget keys, for a region of the given shape (the paper's: box)."""
    mu = keys.mean(0)
    sigma = keys.std(0, unbiased=False).clamp(min=MIN_SIGMA)
    return KSDEdit(mu, sigma, smallest_k(keys, mu, sigma, shape=shape), h, refusal_text, shape)


@register_method("llm", "key_space_detection", title="Key Space Detection (abstention)",
                 config=KeySpaceDetectionConfig,
                 paper="Li et al., Effective Skill Unlearning through Intervention and Abstention, NAACL 2025")
def run(call: "MethodCall") -> None:
    """Fit a region around the forget skill's queries in the last MLP's key space; queries that fall
    inside get a fixed refusal. Training-free, a removable hook; retain prompts only cap h."""
    from backends.llm.abstention import last_mlp_keys
    from backends.llm.scoring import REFUSAL_TEXT
    from backends.llm.skill_config import CUSTOM
    from backends.llm.skills import load_skill_set

    cfg: KeySpaceDetectionConfig = call.config
    sets = resolve_skill_sets(cfg, call.model, need_retain=False)  # retain prompts only cap h
    prompts = list(sets.forget_prompts)
    if cfg.varied_phrasings and cfg.forget_skill != CUSTOM:
        prompts += [item.prompt for item in load_skill_set(cfg.forget_skill, "probe_paraphrase")]
    call.ctx.phase("probing forget keys", total=1)
    keys = last_mlp_keys(call.model, prompts)  # (N, I)
    call.ctx.step(1, 1)
    edit = fit_region(keys, cfg.h, REFUSAL_TEXT, cfg.shape)
    if sets.retain_prompts and cfg.retain_abstain_max < 1:
        edit.h = capped_h(edit, last_mlp_keys(call.model, sets.retain_prompts), cfg.retain_abstain_max)
    call.model.edits = tuple(call.model.edits) + (edit,)
    call.ctx.log(f"KSD: k = {edit.k:.3f} ({edit.shape}) from {len(prompts)} forget prompts, h = {edit.h:.3f} "
                 f"(asked {cfg.h})")


def capped_h(edit: KSDEdit, retain_keys: "torch.Tensor", share: float) -> float:
    """The edit's h, lowered so that at most ``share`` of the (N, I) retain keys fall inside the region."""
    scores = key_score(retain_keys, edit.mu, edit.sigma, edit.shape).sort().values / edit.k  # (N,)
    allowed = int(share * len(scores))  # retain keys allowed inside
    if allowed >= len(scores):
        return edit.h
    return min(edit.h, float(scores[allowed]) * (1 - 1e-6))
