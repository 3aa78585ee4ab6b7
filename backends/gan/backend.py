"""The GAN backend: a style-based generator guided by a CLIP-style encoder and judged by an independent one.

A model bundle (:class:`GanModel`) holds the generator (through :mod:`backends.gan.adapter`), the
frozen encoder that guides the methods, the independent attribute judge that gives the verdicts
(:mod:`backends.faceworld.judge`; never in a loss, EVALUATION.md) and the gold-standard loaders. Edits change only the
generator's weights, so :meth:`GanBackend.state_tensors` is the generator's state dict.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from backends import registry, stats
from backends.config import param
from backends.contract import Backend, MapData, MetricRow, Sample
from backends.gan import concepts
from backends.gan.concepts import Concept

if TYPE_CHECKING:
    import torch

    from backends.faceworld.judge import FaceWorldJudge
    from backends.gan.adapter import GeneratorAdapter
    from backends.gan.encoders import ImageTextEncoder
    from backends.jobs import JobContext

#: Seeds of the evaluation samples (disjoint from gallery seeds 0.. and from training draws).
EVAL_SEED0 = 1_000_000
#: A second base sample for the Frechet distance's sampling-noise floor.
NOISE_FLOOR_SEED0 = 2_000_000
#: Seeds the methods use to check that the base shows the concept at all.
CHECK_SEED0 = 3_000_000
#: Seeds the defaults were chosen on (never the evaluation's): tune on these, report on EVAL_SEED0.
TUNE_SEED0 = 6_000_000
CHECK_SAMPLES = 128
#: Samples of the quick metrics estimate shown while the full evaluation runs.
PREVIEW_SAMPLES = 48
#: Below this many of CHECK_SAMPLES base samples with the concept, there is nothing to unlearn.
MIN_PRESENT = 2
DEFAULT_CONCEPT = "glasses"


@dataclass
class GanModel:
    """A generator with the encoder that guides and judges it."""

    generator: "GeneratorAdapter"
    encoder: "ImageTextEncoder"   # guides the methods (and gives CLIP's opinion beside the verdict)
    preset: str
    gold: dict[str, Callable[[], "GeneratorAdapter"]] = field(default_factory=dict)  # attribute -> loader
    edits: tuple[str, ...] = ()  # concepts unlearned so far, oldest first
    judge: "FaceWorldJudge | None" = None  # independent attribute judge of the verdicts; never in a loss

    @property
    def device(self) -> str:
        return self.generator.device


@dataclass(frozen=True)
class GanGenerateConfig:
    """Gallery controls: the same values give the same seeds for base and edit."""

    seed: int = param(0, help="First seed; samples use seeds seed, seed+1, ...", min=0, max=1_000_000)
    count: int = param(16, help="Number of samples", min=1, max=64)
    truncation_psi: float = param(1.0, help="Truncation (1 = full diversity, smaller = closer to the average face)",
                                  min=0.0, max=1.0, step=0.05)
    concept: str = param("", help="Concept that colours the embedding map (empty: the last unlearned concept, "
                                  "else glasses)", max_length=concepts.MAX_CONCEPT_CHARS)


@dataclass
class Measurement:
    """One model's samples on fixed seeds, judged twice: by the independent judge (the verdict) and by
    the preset's CLIP (the guide's own opinion, which a CLIP-guided method may have fooled)."""

    images: "torch.Tensor"           # (N, 3, H, W) in [-1, 1]
    embeddings: np.ndarray           # (N, D) CLIP image embeddings
    alignment: np.ndarray            # (N,) CLIP concept alignment scores
    clip_classes: dict[str, np.ndarray]   # CLIP zero-shot value index per attribute, (N,) each
    clip_mask: np.ndarray            # (N,) bool: CLIP sees the concept
    judge_classes: dict[str, np.ndarray] | None = None  # judge's value index per attribute (None: no judge)
    judge_mask: np.ndarray | None = None     # (N,) bool: the judge sees the concept (None: it cannot judge it)
    judge_features: np.ndarray | None = None  # (N, F) judge features for the Frechet distance

    @property
    def clip_presence(self) -> float:
        return float(self.clip_mask.mean() * 100)

    @property
    def verdict_mask(self) -> np.ndarray:
        """The judge's verdict where it can judge the concept, else CLIP's (labelled so in the UI)."""
        return self.judge_mask if self.judge_mask is not None else self.clip_mask

    def head(self, count: int) -> "Measurement":
        """The first ``count`` samples (the seeds are in order)."""
        def cut(value):
            if value is None:
                return None
            return {k: v[:count] for k, v in value.items()} if isinstance(value, dict) else value[:count]

        return Measurement(*(cut(getattr(self, f.name)) for f in dataclasses.fields(self)))

    @classmethod
    def joined(cls, first: "Measurement", second: "Measurement") -> "Measurement":
        """``first``'s samples followed by ``second``'s (two runs of :func:`measure` on consecutive seeds)."""
        import torch

        def join(a, b):
            if a is None or b is None:
                return None
            if isinstance(a, dict):
                return {k: np.concatenate([a[k], b[k]]) for k in a}
            return torch.cat([a, b]) if isinstance(a, torch.Tensor) else np.concatenate([a, b])

        return cls(*(join(getattr(first, f.name), getattr(second, f.name)) for f in dataclasses.fields(cls)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for the on-disk evaluation cache (dict fields as ``field/key``; absent fields left out)."""
        arrays: dict[str, np.ndarray] = {"images": self.images.detach().cpu().numpy()}
        for name in ("embeddings", "alignment", "clip_mask", "judge_mask", "judge_features"):
            if getattr(self, name) is not None:
                arrays[name] = np.asarray(getattr(self, name))
        for name in ("clip_classes", "judge_classes"):
            for attribute, values in (getattr(self, name) or {}).items():
                arrays[f"{name}/{attribute}"] = np.asarray(values)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Measurement":
        import torch

        def classes(name: str) -> dict[str, np.ndarray] | None:
            found = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith(f"{name}/")}
            return found or None

        return cls(torch.from_numpy(arrays["images"]), arrays["embeddings"], arrays["alignment"],
                   classes("clip_classes") or {}, arrays["clip_mask"], classes("judge_classes"),
                   arrays.get("judge_mask"), arrays.get("judge_features"))


def seeds_from(start: int, count: int) -> list[int]:
    return list(range(start, start + count))


def judge_mask(classes: dict[str, np.ndarray], concept: Concept) -> np.ndarray | None:
    """(N,) bool from the judge's classes, or None for a concept FaceWorld has no attribute for."""
    if concept.attribute is None or concept.attribute not in classes:
        return None
    from backends.faceworld import world

    targets = [world.ATTRIBUTES[concept.attribute].index(v) for v in concept.values]
    return np.isin(classes[concept.attribute], targets)


def measure(model: GanModel, generator: "GeneratorAdapter", concept: Concept, seeds: list[int],
            ctx: "JobContext | None" = None, chunk: int = 250, with_judge: bool = True) -> Measurement:
    """Generate ``seeds`` with ``generator``; CLIP-judge them and, with ``with_judge``, judge them with
    ``model.judge``. Methods call this with ``with_judge=False``: the judge never sees their runs."""
    import torch

    images, embeddings = [], []
    for i in range(0, len(seeds), chunk):
        batch = generator.images(seeds[i:i + chunk])
        images.append(batch)
        embeddings.append(model.encoder.embed_images(batch))
        if ctx is not None:
            ctx.check()
    images_t, emb = torch.cat(images), torch.cat(embeddings)
    classes = concepts.classify(model.encoder, emb)
    result = Measurement(images_t, emb.cpu().numpy(), concepts.alignment(model.encoder, concept, emb), classes,
                         concepts.presence(model.encoder, concept, emb, classes))
    if with_judge and model.judge is not None:
        result.judge_classes = model.judge.classify(images_t)
        result.judge_mask = judge_mask(result.judge_classes, concept)
        result.judge_features = model.judge.features(images_t)
    return result


def require_concept_in_base(base: GanModel, concept: Concept) -> float:
    """Base presence (%, by the guide's CLIP) on CHECK_SAMPLES seeds; ValueError when the base (almost)
    never shows it, or when it is free text on a model whose judge can only verify FaceWorld attributes.
    Methods call this, so it never consults the judge (only whether there is one)."""
    if concept.attribute is None and base.judge is not None:
        from backends.faceworld import world

        words = sorted({v for attribute, values in world.ATTRIBUTES.items() for v in values
                        if v != world.ABSENT_VALUES.get(attribute)})
        raise ValueError(
            f"{concept.text!r} is not something this GAN draws: it makes FaceWorld faces, and its judge can only "
            f"verify their attributes ({concept.how}). Try one of: {', '.join(words)}.")
    check = measure(base, base.generator, concept, seeds_from(CHECK_SEED0, CHECK_SAMPLES), with_judge=False)
    present = int(check.clip_mask.sum())
    if present < MIN_PRESENT:
        raise ValueError(
            f"{concept.text!r} is (almost) absent from the base model: {present} of {CHECK_SAMPLES} samples "
            f"({check.clip_presence:.1f}%) show it (judged as {concept.label}; {concept.how}). "
            "There is nothing to unlearn; try another concept.")
    return check.clip_presence


@registry.register_backend
class GanBackend(Backend):
    name = "gan"
    title = "GAN"
    description = ("Make a style-based face GAN forget a concept from text alone (Text-to-Unlearn) or from "
                   "samples you pick (Adapt-then-Unlearn); compare before/after, the degree of unlearning, "
                   "and probe the edit with synonyms and latent search.")
    output = "image"
    generate_config = GanGenerateConfig

    # ---- models ---------------------------------------------------------------------------
    def clone(self, model: GanModel) -> GanModel:
        """Copy the generator; share the frozen encoder, judge and gold loaders."""
        return GanModel(model.generator.clone(), model.encoder, model.preset, model.gold, model.edits, model.judge)

    def state_tensors(self, model: GanModel) -> dict[str, "torch.Tensor"]:
        return model.generator.state_tensors()

    # ---- generation -----------------------------------------------------------------------
    def generate(self, model: GanModel, config: GanGenerateConfig) -> list[Sample]:
        import torch

        from backends.pixels import to_uint8

        seeds = seeds_from(config.seed, config.count)
        with torch.no_grad():
            images = model.generator.synthesis(
                model.generator.mapping(model.generator.z_from_seeds(seeds), config.truncation_psi))
            classes = (model.judge.classify(images) if model.judge is not None
                       else concepts.classify(model.encoder, model.encoder.encode_images(images)))
        pixels = to_uint8(images)
        return [Sample(key=f"seed {seed}", seed=seed, image=pixels[i], labels=concepts.labels_of(classes, i))
                for i, seed in enumerate(seeds)]

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, base: GanModel, edited: GanModel, method_config: Any, ctx: "JobContext") -> list[MetricRow]:
        concept = concepts.resolve(base.encoder, method_config.concept, getattr(method_config, "neutral", "a face"))
        return evaluation_rows(base, edited, concept, int(method_config.eval_samples), ctx)

    def warm_up(self, base: GanModel, method_config: Any, ctx: "JobContext") -> None:
        concept = concepts.resolve(base.encoder, method_config.concept, getattr(method_config, "neutral", "a face"))
        base_measurements(base, concept, int(method_config.eval_samples), ctx)

    # ---- maps -----------------------------------------------------------------------------
    def embed(self, base: GanModel, edited: GanModel | None, config: GanGenerateConfig) -> MapData:
        import torch

        text = config.concept or (edited.edits[-1] if edited is not None and edited.edits else DEFAULT_CONCEPT)
        concept = concepts.resolve(base.encoder, text)
        seeds = seeds_from(config.seed, config.count)
        points, labels, groups, names = [], [], [], []
        for group, model in (("before", base), ("after", edited)):
            if model is None:
                continue
            with torch.no_grad():
                images = model.generator.synthesis(
                    model.generator.mapping(model.generator.z_from_seeds(seeds), config.truncation_psi))
                emb = base.encoder.encode_images(images)
            mask = judge_mask(base.judge.classify(images), concept) if base.judge is not None else None
            if mask is None:
                mask = concepts.presence(base.encoder, concept, emb)
            points.append(emb.cpu().numpy())
            labels += [concept.text if m else f"no {concept.text}" for m in mask]
            groups += [group] * len(seeds)
            names += [f"seed {s} ({group})" for s in seeds]
        anchors = [concept.prompt, concept.neutral]
        points.append(base.encoder.encode_text(anchors).cpu().numpy())
        labels += [f"text: {a}" for a in anchors]
        groups += ["anchor"] * len(anchors)
        names += anchors
        return MapData(np.concatenate(points).astype(np.float32), labels, groups, names,
                       title=f"CLIP image embeddings, coloured by {concept.text!r} ({concept.label}, "
                             f"{'judge' if base.judge is not None and concept.attribute else 'CLIP'} verdict)")


def evaluation_rows(base: GanModel, edited: GanModel, concept: Concept, samples: int,
                    ctx: "JobContext") -> list[MetricRow]:
    """Presence (judge, with CLIP's opinion beside it), where the concept's mass went, collateral,
    degree and preservation of ``edited`` vs ``base``, then the gold standard's where one exists."""
    ctx.phase("evaluating (judge and CLIP)", total=3)
    before, floor, gold = base_measurements(base, concept, samples, ctx)
    ctx.step(1)
    seeds, quick = seeds_from(EVAL_SEED0, samples), min(samples, PREVIEW_SAMPLES)
    after = measure(base, edited.generator, concept, seeds[:quick], ctx)
    if quick < samples:  # a quick estimate on the first samples, shown while the rest are measured
        ctx.preview(compare_rows(base, before.head(quick), after, floor.head(quick), concept,
                                 gold=gold.head(quick) if gold is not None else None))
        ctx.step(2)
        after = Measurement.joined(after, measure(base, edited.generator, concept, seeds[quick:], ctx))
    rows = compare_rows(base, before, after, floor, concept, gold=gold)
    ctx.step(3)
    if gold is not None:
        rows += compare_rows(base, before, gold, floor, concept, prefix="gold: ")
    return rows


def base_measurements(base: GanModel, concept: Concept, samples: int,
                      ctx: "JobContext") -> tuple[Measurement, Measurement, "Measurement | None"]:
    """The base on the evaluation seeds, the base on the noise-floor seeds and the gold standard (None
    without one), each computed once per server (:data:`BASE_MEASUREMENTS`)."""
    seeds, floor_seeds = seeds_from(EVAL_SEED0, samples), seeds_from(NOISE_FLOOR_SEED0, samples)
    before = BASE_MEASUREMENTS.get(base, "base", concept, seeds, ctx,
                                   lambda: measure(base, base.generator, concept, seeds, ctx))
    floor = BASE_MEASUREMENTS.get(base, "base", concept, floor_seeds, ctx,
                                  lambda: measure(base, base.generator, concept, floor_seeds, ctx))
    gold = BASE_MEASUREMENTS.get(base, "gold", concept, seeds, ctx,
                                 lambda: gold_measurement(base, concept, seeds, ctx))
    return before, floor, gold


class MeasurementCache:
    """Measurements of the frozen base and gold models, computed once per server and shared by every
    visitor and run (the base never changes), in memory and on disk (:mod:`backends.evaluation_cache`).
    Keyed by the preset, the base weights' fingerprint, the model (base / gold), the concept's judged values
    and prompts, the seeds and the judge, so that other weights or settings never return stale numbers."""

    def __init__(self, capacity: int = 8):
        from backends.evaluation_cache import EvaluationCache

        self.store = EvaluationCache("gan", capacity=capacity)

    @staticmethod
    def fingerprint(base: GanModel) -> str:
        """sha1 of the base generator's tensors (computed once per loaded base model)."""
        cached = getattr(base, "_fingerprint", None)
        if cached is None:
            from backends.evaluation_cache import fingerprint

            cached = fingerprint(base.generator.state_tensors().items())
            base._fingerprint = cached
        return cached

    def get(self, base: GanModel, which: str, concept: Concept, seeds: list[int], ctx: "JobContext",
            compute) -> "Measurement | None":
        judge = base.judge.description if base.judge is not None else ""
        key = (base.preset, self.fingerprint(base), which, concept.attribute, concept.values, tuple(concept.prompts),
               concept.neutral, seeds[0] if seeds else 0, len(seeds), judge)
        value = self.store.get(key, compute, Measurement.to_arrays, Measurement.from_arrays)
        ctx.check()
        return value


BASE_MEASUREMENTS = MeasurementCache()


def gold_measurement(base: GanModel, concept: Concept, seeds: list[int], ctx: "JobContext") -> Measurement | None:
    """The gold standard (GAN retrained without the concept's attribute) on ``seeds``, where one ships."""
    if concept.attribute not in base.gold:
        return None
    try:
        generator = base.gold[concept.attribute]()
    except FileNotFoundError as exc:
        ctx.log(f"no gold standard for {concept.attribute}: {exc}")
        return None
    return measure(base, generator, concept, seeds, ctx)


def rate_row(name: str, before: np.ndarray, after: np.ndarray, help: str, better: str | None = "lower") -> MetricRow:
    """A presence-rate row (%) with 95 % Wilson intervals and its sample count."""
    rate_b, ci_b, n = stats.percent_with_interval(before)
    rate_a, ci_a, _ = stats.percent_with_interval(after)
    return MetricRow(name, rate_b, rate_a, unit="%", better=better, help=help, before_ci=ci_b, after_ci=ci_a, n=n)


def redistribution(before: Measurement, after: Measurement, concept: Concept,
                   gold: Measurement | None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float], str]:
    """Where the concept's probability mass went, by the judge: for each other value v of the concept's
    attribute, masks (before, after), the reference rate (%) and what the reference is.

    Reference: the gold standard's rate of v where a gold model exists, else the base's rates renormalised
    without the concept's values (the mass spread in proportion to what is left)."""
    from backends.faceworld import world

    values = world.ATTRIBUTES[concept.attribute]
    others = [v for v in values if v not in concept.values]
    masks = {v: (before.judge_classes[concept.attribute] == values.index(v),
                 after.judge_classes[concept.attribute] == values.index(v)) for v in others}
    if gold is not None and gold.judge_classes is not None:
        reference = {v: float((gold.judge_classes[concept.attribute] == values.index(v)).mean() * 100)
                     for v in others}
        return masks, reference, "the gold standard (retrained without the concept)"
    left = sum(float(masks[v][0].mean()) for v in others)
    reference = {v: (float(masks[v][0].mean()) / left * 100 if left else 100.0 / len(others)) for v in others}
    return masks, reference, "the base's rates renormalised without the concept"


def redistribution_error(masks: dict[str, tuple[np.ndarray, np.ndarray]], reference: dict[str, float]) -> float:
    """Largest |rate after - reference| over :func:`redistribution`'s values, in points."""
    return max(abs(float(after.mean() * 100) - reference[value]) for value, (_, after) in masks.items())


def worst_collateral_pts(changes: dict[str, tuple[int, np.ndarray, np.ndarray]]) -> float:
    """Largest rate change (points) over :func:`judge_collateral`'s values."""
    return max((abs(float(a.mean() - b.mean())) * 100 for _, b, a in changes.values()), default=0.0)


def judge_collateral(before: Measurement, after: Measurement, skip: str | None) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """For each attribute but ``skip``: (value index with the largest rate change by the judge, its masks
    before and after)."""
    from backends.faceworld import world
    from backends.gan import metrics

    out = {}
    sizes = {a: len(v) for a, v in world.ATTRIBUTES.items()}
    for attribute, (index, _, _) in metrics.collateral(before.judge_classes, after.judge_classes, sizes,
                                                       skip=skip).items():
        out[attribute] = (index, before.judge_classes[attribute] == index, after.judge_classes[attribute] == index)
    return out


def compare_rows(base: GanModel, before: Measurement, after: Measurement, floor: Measurement, concept: Concept,
                 prefix: str = "", gold: Measurement | None = None) -> list[MetricRow]:
    """Metric rows of one model (``after``) against the base (``before``); ``gold`` is the reference of
    the redistribution rows (None: the base renormalised)."""
    from backends.faceworld import world
    from backends.gan import metrics

    rows: list[MetricRow] = []
    judged = before.judge_mask is not None and after.judge_mask is not None
    judge_name = base.judge.description if base.judge is not None else "no judge"
    if judged:
        rows.append(rate_row(f"{prefix}concept presence (judge)", before.judge_mask, after.judge_mask,
                             help=f"Share of samples the {judge_name} sees {concept.label}: a classifier trained "
                                  "on FaceWorld renders that no method trains through. This is the verdict."))
    rows.append(rate_row(f"{prefix}concept presence (CLIP, the guide's own opinion)", before.clip_mask,
                         after.clip_mask,
                         help=f"Share of samples the preset's CLIP judges as {concept.label} ({concept.how}). "
                              "CLIP-guided methods optimise this very model, so it can be fooled."))
    if judged and not prefix:
        gap = after.clip_presence - float(after.judge_mask.mean() * 100)
        sentence = ("CLIP sees far less of the concept than the judge: the edit fooled CLIP rather than "
                    "removing the concept" if gap < -5 else
                    "CLIP and the judge agree within 5 points: the change is real, not a trick on CLIP")
        rows.append(MetricRow(f"verdict: {sentence}", None, gap, unit="pts",
                              help="CLIP presence minus judge presence after the edit."))
    rows += [
        MetricRow(f"{prefix}degree of unlearning (W1 of CLIP alignment)", 0.0,
                  metrics.wasserstein1(before.alignment, after.alignment), better="higher",
                  help="Wasserstein-1 distance between the CLIP alignment-score distributions before and after "
                       "(the Text-to-Unlearn paper's measure; read with the guide caveat above)."),
    ]
    if judged:
        if concept.attribute is not None:
            masks, reference, what = redistribution(before, after, concept, gold if not prefix else None)
            for value, (mask_b, mask_a) in masks.items():
                rows.append(rate_row(f"{prefix}mass to {concept.attribute}={value}", mask_b, mask_a, better=None,
                                     help=f"Where the concept's samples went (judge). Reference, {what}: "
                                          f"{reference[value]:.1f}%."))
            if not prefix:
                rows.append(MetricRow("redistribution error (largest gap to the reference)", None,
                                      redistribution_error(masks, reference), unit="pts", better="lower",
                                      help=f"Largest |after - reference| over the values above; reference: {what}."))
        changes = judge_collateral(before, after, skip=concept.attribute)
        worst = worst_collateral_pts(changes)
        rows.append(MetricRow(f"{prefix}collateral damage (max, judge)", 0.0, worst, unit="pts", better="lower",
                              n=len(before.judge_mask),
                              help="Largest change of any other attribute value's rate, by the judge."))
        if not prefix:
            for attribute, (index, mask_b, mask_a) in changes.items():
                rows.append(rate_row(f"collateral: {attribute}={world.ATTRIBUTES[attribute][index]}", mask_b, mask_a,
                                     better=None, help=f"The value of {attribute} whose rate changed most (judge)."))
        rows.append(MetricRow(f"{prefix}Frechet judge-feature distance to base",
                              stats.frechet_distance(before.judge_features, floor.judge_features),
                              stats.frechet_distance(before.judge_features, after.judge_features), better="lower",
                              n=len(before.judge_mask),
                              help="Frechet distance in the judge's feature space, which no method optimises; "
                                   "'before' is the sampling-noise floor (two base samples with other seeds)."))
        if not prefix:
            keep = ~before.judge_mask
            distance = (float(metrics.perceptual_distance(base.judge.feature_maps, before.images[keep],
                                                          after.images[keep]).mean())
                        if keep.any() else None)
            rows.append(MetricRow("perceptual distance (samples without the concept)", 0.0, distance,
                                  better="lower", n=int(keep.sum()),
                                  help="Unweighted-LPIPS-style distance on the judge's conv features, same seeds, "
                                       f"base samples the judge sees without {concept.text!r}."))
    else:
        sizes = {a: len(v) for a, v in world.ATTRIBUTES.items()}
        changes = metrics.collateral(before.clip_classes, after.clip_classes, sizes, skip=concept.attribute)
        worst = max((abs(a - b) for _, b, a in changes.values()), default=0.0)
        rows.append(MetricRow(f"{prefix}collateral damage (max, CLIP)", 0.0, worst, unit="pts", better="lower",
                              help="No judge for this concept: largest change of another attribute value by CLIP."))
    return rows
