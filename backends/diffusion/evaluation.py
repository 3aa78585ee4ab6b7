"""Before/after scores of a concept erasure, shared by the backend's ``evaluate`` and the benchmark.

Every score is measured on the ``eval`` prompts of :mod:`backends.diffusion.prompt_sets` (wordings no
method trains on) with its evaluation seeds. With a judge (FaceWorld's CLIP): concept presence on
concept prompts, adherence on neighbouring and unrelated prompts (share of images showing what the
prompt asks), each with its 95 % Wilson interval and image count, the largest adherence drop
(collateral damage, points) and the Fréchet distance in CLIP space to the base model's images; and,
when a model retrained without the concept exists, the same numbers for it (the gold standard of
unlearning). Without a judge: how much of the base's concept guidance the edit keeps (a signed
projection) and pixel change on the other prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    judged: dict[str, "np.ndarray"] = field(default_factory=dict)  # group -> (images,) bool verdicts
    prompt_adherence: dict[str, float] = field(default_factory=dict)  # collateral prompt -> adherence


def eval_images(model: "DiffusionModel", specs: list["PromptSpec"], seeds: int, ctx: "JobContext | None" = None,
                unet: Any = None, text_encoder: Any = None, split: str = "eval") -> "np.ndarray":
    """Images of every spec with the split's first ``seeds`` measuring seeds, in spec order
    ``(len(specs) * seeds, H, W, 3)``."""
    from backends.diffusion.prompt_sets import measure_seeds

    seed_row = measure_seeds(seeds, split)
    prompts = [s.prompt for s in specs for _ in seed_row]
    seed_list = [k for _ in specs for k in seed_row]
    callback = None if ctx is None else (lambda i, n: ctx.step(i, n))
    return model.generate(prompts, seed_list, callback=callback, unet=unet, text_encoder=text_encoder)


def judge_scores(judge: Any, images: "np.ndarray", specs: list["PromptSpec"], seeds: int) -> EditScores:
    """Presence / adherence of ``images`` (``seeds`` per spec, in spec order) under ``judge`` (any object
    with ``present(images, target) -> (N,) bool``)."""
    import numpy as np

    verdicts: dict[str, list["np.ndarray"]] = {}
    prompt_adherence = {}
    for i, spec in enumerate(specs):
        present = np.asarray(judge.present(images[i * seeds:(i + 1) * seeds], spec.target), dtype=bool)
        verdicts.setdefault(spec.group, []).append(present)
        if spec.group in ("neighbour", "unrelated"):
            prompt_adherence[spec.prompt] = float(present.mean())
    judged = {g: np.concatenate(v) for g, v in verdicts.items()}
    adherence = {g: float(v.mean()) for g, v in judged.items()}
    return EditScores(presence=adherence.get("concept", 0.0), adherence=adherence, judged=judged,
                      prompt_adherence=prompt_adherence)


def collateral_pts(before: EditScores, after: EditScores) -> float:
    """Largest adherence drop, in points, of the neighbouring and of the unrelated prompt group.

    Per group, not per prompt: a prompt has only a few seeds in the tab, so one flipped image would move
    its adherence by 100 / seeds points and the maximum over prompts would mostly measure that noise."""
    groups = [g for g in ("neighbour", "unrelated") if g in before.adherence]
    drops = [100.0 * (before.adherence[g] - after.adherence[g]) for g in groups]
    return max(drops) if drops else 0.0


def collateral_prompt_pts(before: EditScores, after: EditScores) -> float:
    """Largest adherence drop, in points, of any single neighbouring or unrelated prompt (the benchmark's
    measure, on enough seeds a prompt for one image not to decide it)."""
    drops = [100.0 * (rate - after.prompt_adherence[p]) for p, rate in before.prompt_adherence.items()]
    return max(drops) if drops else 0.0


def score_models(base: "DiffusionModel", others: list["DiffusionModel"], concept: str, per_group: int, seeds: int,
                 ctx: "JobContext | None" = None,
                 split: str = "eval") -> tuple[list["PromptSpec"], EditScores, list[EditScores]]:
    """Judged scores of the base and of each other model on the ``split`` prompts of ``concept`` (the
    table and the benchmark: ``eval``; choosing defaults: ``tune``)."""
    from backends.diffusion.metrics import eval_prompts, frechet_distance

    specs = eval_prompts(concept, base.faceworld, per_group, split)
    if ctx is not None:
        ctx.phase("evaluating: base model", total=1)
    base_images = eval_images(base, specs, seeds, ctx, split=split)
    base_scores = judge_scores(base.judge, base_images, specs, seeds)
    base_feats = base.judge.embed_images(base_images)
    scores = []
    for k, model in enumerate(others):
        if ctx is not None:
            ctx.phase(f"evaluating: model {k + 1} of {len(others)}", total=1)
        images = eval_images(model, specs, seeds, ctx, split=split)
        result = judge_scores(base.judge, images, specs, seeds)
        result.frechet = frechet_distance(base_feats, base.judge.embed_images(images))
        scores.append(result)
    return specs, base_scores, scores


def _rate_row(name: str, before: EditScores, after: EditScores, group: str, better: str, help: str) -> MetricRow:
    """A judged rate of ``group`` in percent, with its 95 % intervals and image count."""
    import numpy as np

    from backends.stats import percent_with_interval

    empty = np.zeros(0, dtype=bool)
    b, b_ci, n = percent_with_interval(before.judged.get(group, empty))
    a, a_ci, _ = percent_with_interval(after.judged.get(group, empty))
    return MetricRow(name, b, a, "%", better, help, before_ci=b_ci, after_ci=a_ci, n=n)


def _judged_rows(before: EditScores, after: EditScores, judge_name: str, prefix: str = "") -> list[MetricRow]:
    wordings = "prompts worded apart from every prompt a method trains on, on seeds no method used"
    return [
        _rate_row(f"{prefix}Concept presence (held-out concept prompts)", before, after, "concept", "lower",
                  f"Share of concept-prompt images the {judge_name} sees the concept in ({wordings}; "
                  "[95 % interval], wide with the tab's few images)."),
        _rate_row(f"{prefix}Adherence: neighbouring prompts", before, after, "neighbour", "higher",
                  "Share of neighbouring-prompt images showing what the prompt asks (collateral damage)."),
        _rate_row(f"{prefix}Adherence: unrelated prompts", before, after, "unrelated", "higher",
                  "Share of unrelated-prompt images showing what the prompt asks."),
        _rate_row(f"{prefix}Concept presence unasked (prompt 'a face')", before, after, "neutral", "lower",
                  "How often the concept appears when nobody asks for it: the floor text-based erasure can reach."),
        MetricRow(f"{prefix}Collateral: largest adherence drop", 0.0, collateral_pts(before, after), "pts",
                  "lower", "Largest adherence drop of the neighbouring or the unrelated prompt group."),
        MetricRow(f"{prefix}Fréchet distance to base (CLIP space)", 0.0, after.frechet, "", "lower",
                  "Fréchet distance between CLIP image embeddings of the base's and this model's images "
                  "(same prompts and seeds; few images, so compare runs of the same size)."),
    ]


def _judge_free_rows(base: "DiffusionModel", edited: "DiffusionModel", specs: list["PromptSpec"], seeds: int,
                     ctx: "JobContext | None") -> list[MetricRow]:
    """Scores needing no image classifier: the share of the base's guidance the edit keeps per group, and
    pixel change on the prompts that should not change."""
    import numpy as np

    from backends.diffusion.metrics import guidance_projection
    from backends.diffusion.prompt_sets import measure_seeds

    if ctx is not None:
        ctx.phase("evaluating: guidance before/after", total=1)
    rows = []
    for group, better in (("concept", "lower"), ("neighbour", "higher"), ("unrelated", "higher")):
        prompts = [s.prompt for s in specs if s.group == group]
        if prompts:
            kept = guidance_projection(base, edited, prompts, measure_seeds(seeds))  # (P,)
            rows.append(MetricRow(f"Guidance kept: {group} prompts", 1.0, float(kept.mean()), "", better,
                                  "Projection of the edit's guidance eps(x, prompt) - eps(x, '') onto the base's, "
                                  "along the base's sampling: 1 = kept, 0 = the prompt no longer steers, "
                                  "below 0 = steers away (ESD's target).", n=len(prompts) * seeds))
    if ctx is not None:
        ctx.phase("evaluating: generating before/after", total=1)
    others = [s for s in specs if s.group in ("neighbour", "unrelated")]
    before_images = eval_images(base, others, seeds, ctx).astype(np.float32)
    after_images = eval_images(edited, others, seeds, ctx).astype(np.float32)
    for group in ("neighbour", "unrelated"):
        index = [i * seeds + k for i, s in enumerate(others) if s.group == group for k in range(seeds)]
        if index:
            change = float(np.abs(before_images[index] - after_images[index]).mean())
            rows.append(MetricRow(f"Pixel change: {group} prompts", 0.0, change, "/255", "lower",
                                  "Mean absolute pixel difference to the base image with the same prompt and seed.",
                                  n=len(index)))
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
    rows = _judged_rows(before, afters[0], base.judge.name)
    for (name, _), scores in zip(golds, afters[1:]):
        rows += _judged_rows(before, scores, base.judge.name, prefix=f"Gold (retrained without {name}): ")
    return rows
