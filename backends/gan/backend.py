"""The GAN backend: a style-based generator judged and guided by a CLIP-style encoder.

A model bundle (:class:`GanModel`) holds the generator (through :mod:`backends.gan.adapter`), the
frozen encoder (shared by every clone) and the gold-standard loaders. Edits change only the
generator's weights, so :meth:`GanBackend.state_tensors` is the generator's state dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from backends import registry
from backends.config import param
from backends.contract import Backend, MapData, MetricRow, Sample
from backends.gan import concepts
from backends.gan.concepts import Concept

if TYPE_CHECKING:
    import torch

    from backends.gan.adapter import GeneratorAdapter
    from backends.gan.encoders import ImageTextEncoder
    from backends.jobs import JobContext

#: Seeds of the evaluation samples (disjoint from gallery seeds 0.. and from training draws).
EVAL_SEED0 = 1_000_000
#: A second base sample for the Frechet distance's sampling-noise floor.
NOISE_FLOOR_SEED0 = 2_000_000
#: Seeds the methods use to check that the base shows the concept at all.
CHECK_SEED0 = 3_000_000
CHECK_SAMPLES = 128
#: Below this many of CHECK_SAMPLES base samples with the concept, there is nothing to unlearn.
MIN_PRESENT = 2
DEFAULT_CONCEPT = "glasses"


@dataclass
class GanModel:
    """A generator with the encoder that guides and judges it."""

    generator: "GeneratorAdapter"
    encoder: "ImageTextEncoder"
    preset: str
    gold: dict[str, Callable[[], "GeneratorAdapter"]] = field(default_factory=dict)  # attribute -> loader
    edits: tuple[str, ...] = ()  # concepts unlearned so far, oldest first

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
    """Raw numbers of one model against the base on the same seeds."""

    presence: float                  # % of samples with the concept
    mask: np.ndarray                 # (N,) bool: sample shows the concept
    alignment: np.ndarray            # (N,) concept alignment scores
    classes: dict[str, np.ndarray]   # zero-shot value index per attribute
    embeddings: np.ndarray           # (N, D) CLIP image embeddings
    images: "torch.Tensor"           # (N, 3, H, W)


def seeds_from(start: int, count: int) -> list[int]:
    return list(range(start, start + count))


def measure(model: GanModel, generator: "GeneratorAdapter", concept: Concept, seeds: list[int],
            ctx: "JobContext | None" = None, chunk: int = 250) -> Measurement:
    """Generate ``seeds`` with ``generator`` and judge them with ``model``'s encoder."""
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
    mask = concepts.presence(model.encoder, concept, emb, classes)
    return Measurement(float(mask.mean() * 100), mask, concepts.alignment(model.encoder, concept, emb), classes,
                       emb.cpu().numpy(), images_t)


def require_concept_in_base(base: GanModel, concept: Concept) -> float:
    """Base presence (%) on CHECK_SAMPLES seeds; ValueError when the base (almost) never shows it."""
    check = measure(base, base.generator, concept, seeds_from(CHECK_SEED0, CHECK_SAMPLES))
    present = int(round(check.presence * CHECK_SAMPLES / 100))
    if present < MIN_PRESENT:
        raise ValueError(
            f"{concept.text!r} is (almost) absent from the base model: {present} of {CHECK_SAMPLES} samples "
            f"({check.presence:.1f}%) show it (judged as {concept.label}; {concept.how}). "
            "There is nothing to unlearn; try another concept.")
    return check.presence


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
        """Copy the generator; share the frozen encoder and the gold loaders."""
        return GanModel(model.generator.clone(), model.encoder, model.preset, model.gold, model.edits)

    def state_tensors(self, model: GanModel) -> dict[str, "torch.Tensor"]:
        return model.generator.state_tensors()

    # ---- generation -----------------------------------------------------------------------
    def generate(self, model: GanModel, config: GanGenerateConfig) -> list[Sample]:
        import torch

        from backends.gan.adapter import to_uint8

        seeds = seeds_from(config.seed, config.count)
        with torch.no_grad():
            images = model.generator.synthesis(
                model.generator.mapping(model.generator.z_from_seeds(seeds), config.truncation_psi))
            classes = concepts.classify(model.encoder, model.encoder.encode_images(images))
        pixels = to_uint8(images)
        return [Sample(key=f"seed {seed}", seed=seed, image=pixels[i], labels=concepts.labels_of(classes, i))
                for i, seed in enumerate(seeds)]

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, base: GanModel, edited: GanModel, method_config: Any, ctx: "JobContext") -> list[MetricRow]:
        concept = concepts.resolve(base.encoder, method_config.concept, getattr(method_config, "neutral", "a face"))
        return evaluation_rows(base, edited, concept, int(method_config.eval_samples), ctx)

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
                       title=f"CLIP image embeddings, coloured by {concept.text!r} ({concept.label})")


def evaluation_rows(base: GanModel, edited: GanModel, concept: Concept, samples: int,
                    ctx: "JobContext") -> list[MetricRow]:
    """Presence, degree, collateral and preservation of ``edited`` vs ``base`` (+ the gold standard's)."""
    import torch

    from backends.faceworld import world
    from backends.gan import metrics

    seeds = seeds_from(EVAL_SEED0, samples)
    ctx.phase("evaluating: base samples", total=4)
    before = measure(base, base.generator, concept, seeds, ctx)
    ctx.step(1)
    after = measure(base, edited.generator, concept, seeds, ctx)
    ctx.step(2)
    floor = measure(base, base.generator, concept, seeds_from(NOISE_FLOOR_SEED0, samples), ctx)
    ctx.step(3)
    rows = compare_rows(before, after, floor, concept, prefix="")
    keep = torch.from_numpy(~before.mask).to(before.images.device)
    distance = (float(metrics.perceptual_distance(base.encoder, before.images[keep], after.images[keep]).mean())
                if keep.any() else None)
    rows.append(MetricRow("perceptual distance (samples without the concept)", 0.0, distance, better="lower",
                          help="Unweighted-LPIPS proxy on early CLIP vision blocks, same seeds, "
                               f"{int(keep.sum())} base samples without {concept.text!r} (none: not measured)."))
    ctx.step(4)
    if concept.attribute in base.gold:
        try:
            gold_generator = base.gold[concept.attribute]()
        except FileNotFoundError as exc:
            ctx.log(f"no gold standard for {concept.attribute}: {exc}")
        else:
            gold = measure(base, gold_generator, concept, seeds, ctx)
            rows += compare_rows(before, gold, floor, concept, prefix="gold: ",
                                 note=f"GAN retrained from scratch without {concept.attribute} "
                                      f"({', '.join(v for v in world.ATTRIBUTES[concept.attribute] if v != 'none')})")
    return rows


def compare_rows(before: Measurement, after: Measurement, floor: Measurement, concept: Concept,
                 prefix: str, note: str = "") -> list[MetricRow]:
    """Metric rows of one model (``after``) against the base (``before``)."""
    from backends.faceworld import world
    from backends.gan import metrics

    extra = f" {note}." if note else ""
    rows = [
        MetricRow(f"{prefix}concept presence", before.presence, after.presence, unit="%", better="lower",
                  help=f"Share of samples CLIP judges as {concept.label} ({concept.how}).{extra}"),
        MetricRow(f"{prefix}concept alignment", float(before.alignment.mean()), float(after.alignment.mean()),
                  better="lower", help=f"Mean CLIP cosine with {' / '.join(concept.prompts)!r}."),
        MetricRow(f"{prefix}degree of unlearning (W1)", 0.0, metrics.wasserstein1(before.alignment, after.alignment),
                  better="higher",
                  help="Wasserstein-1 distance between the alignment-score distributions before and after."),
    ]
    sizes = {a: len(v) for a, v in world.ATTRIBUTES.items()}
    changes = metrics.collateral(before.classes, after.classes, sizes, skip=concept.attribute)
    worst = max((abs(a - b) for _, b, a in changes.values()), default=0.0)
    rows.append(MetricRow(f"{prefix}collateral damage (max)", 0.0, worst, unit="pts", better="lower",
                          help="Largest change of any other attribute value's presence, in percentage points."))
    if not prefix:
        for attribute, (index, rate_before, rate_after) in changes.items():
            value = world.ATTRIBUTES[attribute][index]
            rows.append(MetricRow(f"collateral: {attribute}={value}", rate_before, rate_after, unit="%",
                                  help=f"The value of {attribute} whose presence changed most."))
    rows.append(MetricRow(f"{prefix}Frechet CLIP distance to base",
                          metrics.frechet_distance(before.embeddings, floor.embeddings),
                          metrics.frechet_distance(before.embeddings, after.embeddings), better="lower",
                          help="Frechet distance between CLIP image embeddings; 'before' is the sampling-noise "
                               "floor (two base samples with different seeds)."))
    return rows
