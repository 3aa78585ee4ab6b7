"""Before/after scores of a concept erasure, shared by the backend's ``evaluate`` and the benchmark.

With a judge (FaceWorld's CLIP): concept presence on concept prompts, adherence on neighbouring
and unrelated prompts (share of images showing what the prompt asks), the largest adherence drop
(collateral damage, points) and the Fréchet distance in CLIP space to the base model's images;
and, when a model retrained without the concept exists, the same numbers for it (the gold
standard of unlearning). Without a judge: the concept's guidance strength and pixel change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.contract import MetricRow

if TYPE_CHECKING:
    import numpy as np

    from backends.diffusion.metrics import PromptSpec
    from backends.diffusion.pipeline import DiffusionModel
    from backends.jobs import JobContext


@dataclass
class EditScores:
    """Judged scores of one model against the base (fractions in [0, 1], distances raw)."""

    presence: float
    adherence: dict[str, float]          # group -> mean adherence (presence for the concept group)
    frechet: float | None = None


def eval_images(model: "DiffusionModel", specs: list["PromptSpec"], seeds: int, ctx: "JobContext | None" = None,
                unet: Any = None, text_encoder: Any = None) -> "np.ndarray":
    """Images of every spec with seeds 0..seeds-1, in spec order ``(len(specs) * seeds, H, W, 3)``."""
    prompts = [s.prompt for s in specs for _ in range(seeds)]
    seed_list = [k for _ in specs for k in range(seeds)]
    callback = None if ctx is None else (lambda i, n: ctx.step(i, n))
    return model.generate(prompts, seed_list, callback=callback, unet=unet, text_encoder=text_encoder)


def judge_scores(model: "DiffusionModel", images: "np.ndarray", specs: list["PromptSpec"], seeds: int) -> EditScores:
    """Presence / adherence of ``images`` (``seeds`` per spec, in spec order) under the model's judge."""
    import numpy as np

    by_group: dict[str, list[float]] = {}
    for i, spec in enumerate(specs):
        rate = float(np.mean(model.judge.present(images[i * seeds:(i + 1) * seeds], spec.target)))
        by_group.setdefault(spec.group, []).append(rate)
    adherence = {g: float(np.mean(v)) for g, v in by_group.items()}
    return EditScores(presence=adherence.get("concept", 0.0), adherence=adherence)


def collateral_pts(before: EditScores, after: EditScores) -> float:
    """Largest adherence drop, in points, of the neighbouring and of the unrelated prompt group.

    Per group, not per prompt: a prompt has only a few seeds, so one flipped image would move its
    adherence by 100 / seeds points and the maximum over prompts would mostly measure that noise."""
    groups = [g for g in ("neighbour", "unrelated") if g in before.adherence]
    drops = [100.0 * (before.adherence[g] - after.adherence[g]) for g in groups]
    return max(drops) if drops else 0.0


def score_models(base: "DiffusionModel", others: list["DiffusionModel"], concept: str, per_group: int, seeds: int,
                 ctx: "JobContext | None" = None) -> tuple[list["PromptSpec"], EditScores, list[EditScores]]:
    """Judged scores of the base and of each other model on the evaluation prompts of ``concept``."""
    from backends.diffusion.metrics import eval_prompts, frechet_distance

    specs = eval_prompts(concept, base.faceworld, per_group)
    if ctx is not None:
        ctx.phase("evaluating: base model", total=1)
    base_images = eval_images(base, specs, seeds, ctx)
    base_scores = judge_scores(base, base_images, specs, seeds)
    base_feats = base.judge.embed_images(base_images)
    scores = []
    for k, model in enumerate(others):
        if ctx is not None:
            ctx.phase(f"evaluating: model {k + 1} of {len(others)}", total=1)
        images = eval_images(model, specs, seeds, ctx)
        result = judge_scores(base, images, specs, seeds)
        result.frechet = frechet_distance(base_feats, base.judge.embed_images(images))
        scores.append(result)
    return specs, base_scores, scores


def _judged_rows(before: EditScores, after: EditScores, prefix: str = "") -> list[MetricRow]:
    return [
        MetricRow(f"{prefix}Concept presence (concept prompts)", 100 * before.presence, 100 * after.presence, "%",
                  "lower", "Share of concept-prompt images the FaceWorld CLIP judge sees the concept in."),
        MetricRow(f"{prefix}Adherence: neighbouring prompts", 100 * before.adherence.get("neighbour", 0.0),
                  100 * after.adherence.get("neighbour", 0.0), "%", "higher",
                  "Share of neighbouring-prompt images showing what the prompt asks (collateral damage)."),
        MetricRow(f"{prefix}Adherence: unrelated prompts", 100 * before.adherence.get("unrelated", 0.0),
                  100 * after.adherence.get("unrelated", 0.0), "%", "higher",
                  "Share of unrelated-prompt images showing what the prompt asks."),
        MetricRow(f"{prefix}Concept presence unasked (prompt 'a face')", 100 * before.adherence.get("neutral", 0.0),
                  100 * after.adherence.get("neutral", 0.0), "%", "lower",
                  "How often the concept appears when nobody asks for it: the floor text-based erasure can reach."),
        MetricRow(f"{prefix}Collateral: largest adherence drop", 0.0, collateral_pts(before, after), "pts",
                  "lower", "Largest adherence drop of the neighbouring or the unrelated prompt group."),
        MetricRow(f"{prefix}Fréchet distance to base (CLIP space)", 0.0, after.frechet, "", "lower",
                  "Fréchet distance between CLIP image embeddings of the base's and this model's images "
                  "(same prompts and seeds; few images, so compare runs of the same size)."),
    ]


def _judge_free_rows(base: "DiffusionModel", edited: "DiffusionModel", specs: list["PromptSpec"], seeds: int,
                     ctx: "JobContext | None") -> list[MetricRow]:
    """Scores needing no image classifier: guidance strength of the concept, pixel change per group."""
    import numpy as np

    from backends.diffusion.metrics import guidance_strength

    rows = []
    for group, better in (("concept", "lower"), ("neighbour", "higher")):
        prompts = [s.prompt for s in specs if s.group == group]
        if not prompts:
            continue
        before = float(guidance_strength(base, prompts).mean())
        after = float(guidance_strength(edited, prompts).mean())
        rows.append(MetricRow(f"Guidance strength: {group} prompts", before, after, "", better,
                              "||eps(x, prompt) - eps(x, '')|| on fixed noise: how strongly the text steers."))
    if ctx is not None:
        ctx.phase("evaluating: generating before/after", total=1)
    before_images = eval_images(base, specs, seeds, ctx).astype(np.float32)
    after_images = eval_images(edited, specs, seeds, ctx).astype(np.float32)
    for group in ("concept", "neighbour", "unrelated"):
        index = [i * seeds + k for i, s in enumerate(specs) if s.group == group for k in range(seeds)]
        if index:
            change = float(np.abs(before_images[index] - after_images[index]).mean())
            rows.append(MetricRow(f"Pixel change: {group} prompts", 0.0, change, "/255",
                                  "higher" if group == "concept" else "lower",
                                  "Mean absolute pixel difference to the base image with the same prompt and seed."))
    return rows


def evaluate_edit(base: "DiffusionModel", edited: "DiffusionModel", concept: str, per_group: int, seeds: int,
                  ctx: "JobContext | None" = None) -> list[MetricRow]:
    """Metric rows of an edit, plus the gold-standard model's rows when one exists for ``concept``."""
    from backends.diffusion.metrics import eval_prompts, same_concept

    if base.judge is None:
        return _judge_free_rows(base, edited, eval_prompts(concept, base.faceworld, per_group), seeds, ctx)
    golds = []
    for name, load in base.gold.items():
        if same_concept(concept, name):
            try:
                golds.append((name, load()))
            except FileNotFoundError as exc:
                if ctx is not None:
                    ctx.log(f"gold standard for {name!r} unavailable: {exc}")
    specs, before, afters = score_models(base, [edited] + [g for _, g in golds], concept, per_group, seeds, ctx)
    rows = _judged_rows(before, afters[0])
    for (name, _), scores in zip(golds, afters[1:]):
        rows += _judged_rows(before, scores, prefix=f"Gold (retrained without {name}): ")
    return rows
