"""Helpers shared by the erasure methods: concept checks, training prompts, ESD targets, forget sets.

Methods take their prompts from the ``train`` split of :mod:`backends.diffusion.prompt_sets` and their
images and trajectories from its TRAIN_SEEDS; the base-model check reads the evaluation's images.

Heavy libraries are imported inside functions only.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from backends.diffusion.prompt_sets import (
    TRAIN_SEEDS, ConceptTarget, concept_prompts, eval_prompts, resolve_concept, retain_prompts, train_seeds,
)
from backends.faceworld.concepts import check_text

if TYPE_CHECKING:
    import numpy as np
    import torch

    from backends.diffusion.pipeline import DiffusionModel
    from backends.jobs import JobContext

MIN_BASE_RATE = 0.25  # below this share of concept images, the base model "never draws" the concept
CHECK_SEEDS = 4       # seeds per concept prompt for that check (the evaluation reuses them)


def split_lines(items: tuple[str, ...] | str) -> tuple[str, ...]:
    """Concept lists may be typed one per line or comma-separated."""
    text = "\n".join(items) if not isinstance(items, str) else items
    return tuple(s.strip() for s in re.split(r"[\n,]", text) if s.strip())


def check_lists_disjoint(erase: tuple[str, ...], preserve: tuple[str, ...]) -> None:
    """ValueError when a concept is both erased and preserved (same attribute value or same words)."""
    from backends.diffusion.prompt_sets import same_concept

    clashes = sorted({p for p in preserve for e in erase if same_concept(e, p)})
    if clashes:
        raise ValueError(f"Preserve list overlaps the concepts to erase: {', '.join(clashes)}; "
                         "a concept cannot be erased and preserved at once")


def check_fits(model: "DiffusionModel", prompts: list[str]) -> None:
    """ValueError when a prompt does not fit in the text encoder's token budget."""
    ids = model.tokenizer(list(prompts), truncation=False)["input_ids"]
    for prompt, row in zip(prompts, ids):
        if len(row) > model.max_tokens:
            raise ValueError(f"{prompt!r} is {len(row)} tokens long; this model reads at most {model.max_tokens}")


def training_prompts(model: "DiffusionModel", concept: str) -> list[str]:
    """Prompts that make the model draw ``concept``: the ``train`` split of its prompt sets."""
    text = check_text(concept)
    target = resolve_concept(text) if model.faceworld else ConceptTarget(text)
    prompts = concept_prompts(target, "train", model.faceworld)
    check_fits(model, prompts)
    return prompts


def base_rate(model: "DiffusionModel", concept: str, seeds: int = CHECK_SEEDS, per_group: int = 3,
              ctx: "JobContext | None" = None) -> tuple[float, int] | None:
    """Share of the base model's concept-prompt images FaceWorld's CLIP sees the concept in (None without
    CLIP: methods never ask the judge, whose verdicts must stay independent of them)."""
    from backends.diffusion.evaluation import eval_images

    if model.clip is None:
        return None
    specs = eval_prompts(concept, model.faceworld, per_group)
    images = eval_images(model, specs, seeds, ctx)  # the evaluation's base images (cached on the base)
    n_concept = sum(s.group == "concept" for s in specs) * seeds
    present = model.clip.present(images[:n_concept], specs[0].target)
    return float(present.mean()), n_concept


def check_concept_drawn(model: "DiffusionModel", concept: str, ctx: "JobContext | None" = None,
                        seeds: int = CHECK_SEEDS, per_group: int = 3) -> None:
    """ValueError when the base model does not draw the concept (there is nothing to erase)."""
    if ctx is not None:
        ctx.phase("checking the base model draws the concept")
    result = base_rate(model, concept, seeds, per_group, ctx)
    if result is None:
        return
    rate, n = result
    if rate < MIN_BASE_RATE:
        raise ValueError(f"the base model draws {concept!r} in only {rate:.0%} of {n} images from prompts "
                         f"asking for it, so there is nothing to erase; try a concept it draws "
                         "(glasses, sunglasses, hat, cap, beanie, beard, smiling)")


class NoisyPool:
    """x_t drawn from the FROZEN model's guided sampling trajectories (ESD, AdvUnlearn).

    ESD samples x_t by running the frozen sampler with CFG up to a random step. Here one trajectory
    per prompt is run to the end every ``reuse`` draws and its intermediate x_t are kept, so each
    draw costs no sampling: a random step of the current trajectories (same distribution, fewer
    UNet calls on a CPU).
    """

    def __init__(self, model: "DiffusionModel", sampler_steps: int, guidance: float, reuse: int,
                 generator: "torch.Generator"):
        self.model, self.steps, self.guidance, self.reuse = model, sampler_steps, guidance, max(1, reuse)
        self.generator = generator
        self.draws = 0
        self.prompts: list[str] = []
        self.trajectory: list[tuple[int, "torch.Tensor"]] = []

    def draw(self, prompts: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(x_t (B, C, h, w), t (B,)) for ``prompts`` at one random step of their trajectories."""
        import torch

        if self.draws % self.reuse == 0 or list(prompts) != self.prompts:
            self.prompts, self.draws = list(prompts), 0
            seeds = torch.randint(TRAIN_SEEDS.start, TRAIN_SEEDS.stop, (len(prompts),),
                                  generator=self.generator).tolist()
            self.trajectory = []
            self.model.sample_latents(prompts, seeds, steps=self.steps, guidance=self.guidance,
                                      trajectory=self.trajectory)
        self.draws += 1
        k = int(torch.randint(0, len(self.trajectory), (1,), generator=self.generator))
        t, x_t = self.trajectory[k]
        return x_t, torch.full((x_t.shape[0],), t, device=x_t.device)


def esd_target(model: "DiffusionModel", x_t: "torch.Tensor", t: "torch.Tensor", states_c: "torch.Tensor",
               states_null: "torch.Tensor", eta: float) -> "torch.Tensor":
    """ESD's negatively guided target eps_c - eta * (eps_c - eps_null) from the frozen UNet (Gandikota et al., 2023)."""
    import torch

    with torch.no_grad():
        eps_c = model.predict_noise(x_t, t, states_c)
        eps_null = model.predict_noise(x_t, t, states_null)
    return eps_c - eta * (eps_c - eps_null)


def reworded_prompts(model: "DiffusionModel", prompts: list[str], concept: str, absent: bool = False) -> list[str]:
    """Each prompt with the concept's FaceWorld wording removed ("a face wearing glasses" -> "a face")
    or, with ``absent``, replaced by the wording of the attribute's absent value ("a face without
    glasses", "a clean-shaven face"; removal for attributes without one, such as hair). The model's
    neutral prompt where no wording is found, for free-text concepts and off FaceWorld."""
    target = resolve_concept(concept)
    if not model.faceworld or target.attr is None:
        return [model.neutral_prompt] * len(prompts)
    from backends.faceworld.world import ABSENT_VALUES, PHRASES

    wordings = {w: kind for v in target.values for kind in ("post", "adj") for w in PHRASES[(target.attr, v)][kind]}
    no_value = ABSENT_VALUES.get(target.attr)
    opposite = PHRASES[(target.attr, no_value)] if absent and no_value and no_value not in target.values else None
    reworded = []
    for prompt in prompts:
        found = next((w for w in sorted(wordings, key=len, reverse=True) if f" {w}" in f" {prompt}"), None)
        if found is None:
            reworded.append(model.neutral_prompt)
            continue
        kind, suffix = wordings[found], ""
        swap = opposite[kind][0] if opposite and opposite[kind] else ""
        if opposite and not swap:  # an adjective with no absent adjective: say it after the noun
            suffix = " " + opposite["post"][0]
        text = " ".join(prompt.replace(found, f" {swap} ").split()).strip(" ,") + suffix
        reworded.append(text.strip() or model.neutral_prompt)
    return reworded


def concept_images(model: "DiffusionModel", concept: str, count: int, offset: int = 0,
                   max_tries: int = 4) -> tuple["np.ndarray", list[str]]:
    """``count`` base-model images of the concept's training prompts (kept only when FaceWorld's CLIP sees it,
    if there is one; never the judge), drawn with the training seeds from ``offset`` on."""
    import numpy as np

    prompts = training_prompts(model, concept)
    target = resolve_concept(concept)
    kept_images, kept_prompts = [], []
    for attempt in range(max_tries):
        batch_prompts = [prompts[i % len(prompts)] for i in range(count)]
        seeds = train_seeds(offset + attempt * count, count)
        images = model.generate(batch_prompts, seeds)
        keep = model.clip.present(images, target) if model.clip is not None else np.ones(count, dtype=bool)
        kept_images += [im for im, k in zip(images, keep) if k]
        kept_prompts += [p for p, k in zip(batch_prompts, keep) if k]
        if len(kept_images) >= count:
            break
    if not kept_images:
        raise ValueError(f"the base model drew no image of {concept!r} in {max_tries * count} tries")
    return np.stack(kept_images[:count]), kept_prompts[:count]


def retain_images(model: "DiffusionModel", concept: str, count: int,
                  offset: int = 10_000) -> tuple["np.ndarray", list[str]]:
    """``count`` base-model images of the neighbouring and unrelated training prompts (retain set), drawn
    with the training seeds from ``offset`` on."""
    pool = retain_prompts(concept, model.faceworld)
    prompts = [pool[i % len(pool)] for i in range(count)]
    return model.generate(prompts, train_seeds(offset, count)), prompts


def adam(params: list[Any], lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> Any:
    import torch

    if not params:
        raise ValueError("no parameters to train: the model has no layers of the kind this method edits")
    return torch.optim.Adam(params, lr=lr, betas=betas)
