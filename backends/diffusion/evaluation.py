"""Before/after scores of a concept erasure, shared by the backend's ``evaluate`` and the benchmark.

Every score is measured on the ``eval`` prompts of :mod:`backends.diffusion.prompt_sets` (wordings no
method trains on) with its evaluation seeds. With a judge (FaceWorld's attribute judge, which no method
calls): concept presence on concept prompts, with FaceWorld CLIP's opinion on the same images beside it,
adherence on neighbouring and unrelated prompts (share of images showing what the prompt asks), and
collateral damage per prompt (the largest adherence drop of any single neighbouring or unrelated prompt)
and per attribute (the largest shift of any other attribute value's rate over those prompts' images),
each rate with its 95 % Wilson interval and image count, the Fréchet distance in the judge's feature
space to the base model's images and a one-sentence verdict; and, when a model retrained without the
concept exists, the same numbers for it (the gold standard of unlearning). Without a judge: how much
of the base's concept guidance the edit keeps (a signed projection) and pixel change on the other prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backends.contract import MetricRow

if TYPE_CHECKING:
    import numpy as np

    from backends.diffusion.prompt_sets import ConceptTarget, PromptSpec
    from backends.diffusion.pipeline import DiffusionModel
    from backends.jobs import JobContext

COLLATERAL = ("neighbour", "unrelated")
ERASED_MAX_PCT = 10.0        # issue 11's bar: held-out presence at most 10 %, or 12 % of the base's
ERASED_RELATIVE = 0.12
COLLATERAL_MAX_PTS = 5.0


@dataclass
class EditScores:
    """Judged scores of one model against the base (fractions in [0, 1], distances raw)."""

    presence: float
    adherence: dict[str, float]          # group -> mean adherence (presence for the concept group)
    frechet: float | None = None
    judged: dict[str, "np.ndarray"] = field(default_factory=dict)  # group -> (images,) bool verdicts
    prompt_judged: dict[str, "np.ndarray"] = field(default_factory=dict)  # collateral prompt -> (seeds,) bool
    classes: dict[str, "np.ndarray"] = field(default_factory=dict)  # attribute -> (collateral images,) value index
    clip_presence: "np.ndarray | None" = None  # concept images, FaceWorld CLIP's opinion


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


def judge_scores(base: "DiffusionModel", images: "np.ndarray", specs: list["PromptSpec"], seeds: int) -> EditScores:
    """Verdicts on ``images`` (``seeds`` per spec, in spec order): the base's judge where it knows the
    target, else CLIP (:func:`backends.diffusion.judging.verdict_judge`); CLIP's opinion of the concept
    images beside them."""
    import numpy as np

    from backends.diffusion.judging import verdict_judge

    classes = base.judge.classify(images) if base.judge is not None else {}
    verdicts: dict[str, list["np.ndarray"]] = {}
    prompt_judged = {}
    for i, spec in enumerate(specs):
        rows = slice(i * seeds, (i + 1) * seeds)
        if classes and spec.target.attr is not None:
            present = shows({a: c[rows] for a, c in classes.items()}, spec.target)
        else:
            present = np.asarray(verdict_judge(base, spec.target).present(images[rows], spec.target), dtype=bool)
        verdicts.setdefault(spec.group, []).append(present)
        if spec.group in COLLATERAL:
            prompt_judged[spec.prompt] = present
    judged = {g: np.concatenate(v) for g, v in verdicts.items()}
    adherence = {g: float(v.mean()) for g, v in judged.items()}
    collateral = np.array([s.group in COLLATERAL for s in specs for _ in range(seeds)], dtype=bool)
    concept = [i for i, s in enumerate(specs) if s.group == "concept"]
    clip_presence = None
    if base.clip is not None and base.judge is not None and concept and specs[concept[0]].target.attr is not None:
        index = [i * seeds + k for i in concept for k in range(seeds)]
        clip_presence = np.asarray(base.clip.present(images[index], specs[concept[0]].target), dtype=bool)
    return EditScores(presence=adherence.get("concept", 0.0), adherence=adherence, judged=judged,
                      prompt_judged=prompt_judged, classes={a: c[collateral] for a, c in classes.items()},
                      clip_presence=clip_presence)


def shows(classes: dict[str, "np.ndarray"], target: "ConceptTarget") -> "np.ndarray":
    """(N,) bool: judged value indices ``classes`` ({attribute: (N,)}) show one of the target's values."""
    import numpy as np

    from backends.faceworld.world import ATTRIBUTES

    return np.isin(np.array(ATTRIBUTES[target.attr])[classes[target.attr]], target.values)


def worst_prompt(before: EditScores, after: EditScores) -> tuple[str, float]:
    """The neighbouring or unrelated prompt whose adherence dropped most, and the drop in points."""
    drops = {p: 100.0 * float(mask.mean() - after.prompt_judged[p].mean()) for p, mask in before.prompt_judged.items()}
    if not drops:
        return "", 0.0
    prompt = max(drops, key=drops.get)
    return prompt, drops[prompt]


def collateral_prompt_pts(before: EditScores, after: EditScores) -> float:
    """Largest adherence drop, in points, of any single neighbouring or unrelated prompt (judge)."""
    return worst_prompt(before, after)[1]


def worst_attribute(before: EditScores, after: EditScores, skip: str | None) -> tuple[str, int, float]:
    """(attribute, value index, |shift| in points) of the attribute value other than ``skip``'s whose judged
    rate over the neighbouring and unrelated images moved most (("", 0, 0) without a judge)."""
    from backends.faceworld.world import ATTRIBUTES

    worst = ("", 0, 0.0)
    for attribute, values in before.classes.items():
        if attribute == skip or not len(values):
            continue
        for index in range(len(ATTRIBUTES[attribute])):
            shift = 100.0 * abs(float((after.classes[attribute] == index).mean() - (values == index).mean()))
            if shift > worst[2]:
                worst = (attribute, index, shift)
    return worst


def collateral_attr_pts(before: EditScores, after: EditScores, skip: str | None) -> float:
    """Largest shift, in points, of any other attribute value's rate over the collateral images (judge)."""
    return worst_attribute(before, after, skip)[2]


def score_models(base: "DiffusionModel", others: list["DiffusionModel"], concept: str, per_group: int, seeds: int,
                 ctx: "JobContext | None" = None, split: str = "eval",
                 groups: tuple[str, ...] | None = None) -> tuple[list["PromptSpec"], EditScores, list[EditScores]]:
    """Judged scores of the base and of each other model on the ``split`` prompts of ``concept`` (the
    table and the benchmark: ``eval``; choosing defaults: ``tune``), of every group or of ``groups``."""
    from backends.diffusion.prompt_sets import eval_prompts
    from backends.stats import frechet_distance

    specs = [s for s in eval_prompts(concept, base.faceworld, per_group, split) if groups is None or s.group in groups]
    if ctx is not None:
        ctx.phase("evaluating: base model", total=1)
    base_images = eval_images(base, specs, seeds, ctx, split=split)
    base_scores = judge_scores(base, base_images, specs, seeds)
    base_feats = base.judge.features(base_images)
    scores = []
    for k, model in enumerate(others):
        if ctx is not None:
            ctx.phase(f"evaluating: model {k + 1} of {len(others)}", total=1)
        images = eval_images(model, specs, seeds, ctx, split=split)
        result = judge_scores(base, images, specs, seeds)
        result.frechet = frechet_distance(base_feats, base.judge.features(images))
        scores.append(result)
    return specs, base_scores, scores


def _rate_row(name: str, before: "np.ndarray | None", after: "np.ndarray | None", better: str | None,
              help: str) -> MetricRow:
    """A judged rate in percent of two boolean masks, with its 95 % intervals and image count."""
    import numpy as np

    from backends.stats import percent_with_interval

    empty = np.zeros(0, dtype=bool)
    b, b_ci, n = percent_with_interval(before if before is not None else empty)
    a, a_ci, _ = percent_with_interval(after if after is not None else empty)
    return MetricRow(name, b, a, "%", better, help, before_ci=b_ci, after_ci=a_ci, n=n)


def verdict_sentence(before: EditScores, after: EditScores, skip: str | None) -> str:
    """One plain sentence: is the concept gone from wordings no method saw, and at what collateral cost."""
    from backends.faceworld.world import ATTRIBUTES

    b, a, n = 100 * before.presence, 100 * after.presence, len(after.judged.get("concept", ()))
    if a <= ERASED_MAX_PCT or (b > 0 and a <= ERASED_RELATIVE * b):
        head = f"erased: the judge sees the concept in {a:.0f}% of {n} images from wordings no method saw (base {b:.0f}%)"
    elif a < b / 2:
        head = f"partly erased: the judge still sees the concept in {a:.0f}% of {n} held-out images (base {b:.0f}%)"
    else:
        head = f"not erased: the judge still sees the concept in {a:.0f}% of {n} held-out images (base {b:.0f}%)"
    prompt, drop = worst_prompt(before, after)
    attribute, index, shift = worst_attribute(before, after, skip)
    if max(drop, shift) <= COLLATERAL_MAX_PTS:
        tail = f"other prompts kept within {COLLATERAL_MAX_PTS:.0f} points"
    elif drop >= shift:
        tail = f"but {prompt!r} lost {drop:.0f} points of adherence"
    else:
        tail = f"but {attribute}={ATTRIBUTES[attribute][index]} moved {shift:.0f} points on other prompts"
    return f"{head}; {tail}."


def _judged_rows(base: "DiffusionModel", target: "ConceptTarget", before: EditScores, after: EditScores,
                 prefix: str = "") -> list[MetricRow]:
    from backends.diffusion.judging import verdict_judge
    from backends.faceworld.world import ATTRIBUTES

    wordings = "prompts worded apart from every prompt a method trains on, on seeds no method used"
    by_judge = target.attr is not None
    who = "judge" if by_judge else "FaceWorld CLIP: the judge knows FaceWorld attributes only"
    rows = [_rate_row(f"{prefix}Concept presence, held-out prompts ({who})", before.judged.get("concept"),
                      after.judged.get("concept"), "lower",
                      f"Share of concept-prompt images the {verdict_judge(base, target).name} sees the concept in "
                      f"({wordings}; [95 % interval], wide with the tab's few images). This is the verdict.")]
    if not prefix and after.clip_presence is not None:
        rows.append(_rate_row("Concept presence, same images (FaceWorld CLIP's opinion)", before.clip_presence,
                              after.clip_presence, "lower",
                              "FaceWorld CLIP's zero-shot opinion of the same images, beside the judge's verdict; "
                              "the methods check what the base draws with CLIP, so it is not the judge."))
    if not prefix:
        rows.append(MetricRow(f"verdict: {verdict_sentence(before, after, target.attr)}", None, None,
                              help="From the rows below: presence by the judge on held-out wordings (erased at "
                                   f"<= {ERASED_MAX_PCT:.0f}% or <= {100 * ERASED_RELATIVE:.0f}% of the base's), "
                                   f"collateral by the judge (kept within {COLLATERAL_MAX_PTS:.0f} points)."))
    rows += [
        _rate_row(f"{prefix}Adherence: neighbouring prompts (judge)", before.judged.get("neighbour"),
                  after.judged.get("neighbour"), "higher",
                  "Share of neighbouring-prompt images showing what the prompt asks (collateral damage)."),
        _rate_row(f"{prefix}Adherence: unrelated prompts (judge)", before.judged.get("unrelated"),
                  after.judged.get("unrelated"), "higher",
                  "Share of unrelated-prompt images showing what the prompt asks."),
        _rate_row(f"{prefix}Concept presence unasked (prompt 'a face')", before.judged.get("neutral"),
                  after.judged.get("neutral"), "lower",
                  "How often the concept appears when nobody asks for it: the floor text-based erasure can reach."),
    ]
    prompt, drop = worst_prompt(before, after)
    if prompt:
        rows.append(_rate_row(f"{prefix}Collateral per prompt (judge): {prompt!r}", before.prompt_judged[prompt],
                              after.prompt_judged[prompt], "higher",
                              f"Adherence of the neighbouring or unrelated prompt that dropped most ({drop:.1f} "
                              "points): the largest single-prompt collateral damage."))
    attribute, index, shift = worst_attribute(before, after, target.attr)
    if attribute:
        rows.append(_rate_row(f"{prefix}Collateral per attribute (judge): {attribute}={ATTRIBUTES[attribute][index]}",
                              before.classes[attribute] == index, after.classes[attribute] == index, None,
                              f"The value of another attribute whose rate over the neighbouring and unrelated images "
                              f"moved most ({shift:.1f} points)."))
    rows.append(MetricRow(f"{prefix}Fréchet distance to base (judge features)", 0.0, after.frechet, "", "lower",
                          "Fréchet distance between the judge's features of the base's and this model's images "
                          "(same prompts and seeds; few images, so compare runs of the same size).",
                          n=sum(len(v) for v in after.judged.values())))
    return rows


def _judge_free_rows(base: "DiffusionModel", edited: "DiffusionModel", specs: list["PromptSpec"], seeds: int,
                     ctx: "JobContext | None") -> list[MetricRow]:
    """Scores needing no image classifier: the share of the base's guidance the edit keeps per group, and
    pixel change on the prompts that should not change."""
    import numpy as np

    from backends.diffusion.judging import guidance_projection
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
    from backends.diffusion.judging import verdict_judge
    from backends.diffusion.prompt_sets import eval_prompts, resolve_concept, same_concept

    target = resolve_concept(concept) if base.faceworld else None
    if base.judge is None or target is None or verdict_judge(base, target) is None:
        return _judge_free_rows(base, edited, eval_prompts(concept, base.faceworld, per_group), seeds, ctx)
    golds = []
    for name, load in base.gold.items():
        if same_concept(concept, name):
            try:
                golds.append((name, load()))
            except FileNotFoundError as exc:
                if ctx is not None:
                    ctx.log(f"gold standard for {name!r} unavailable: {exc}")
    _, before, afters = score_models(base, [edited] + [g for _, g in golds], concept, per_group, seeds, ctx)
    rows = _judged_rows(base, target, before, afters[0])
    for (name, _), scores in zip(golds, afters[1:]):
        rows += _judged_rows(base, target, before, scores, prefix=f"Gold (retrained without {name}): ")
    return rows
