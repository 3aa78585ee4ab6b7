"""Probes of an unlearned GAN: does the concept come back under other words, or under a latent search?

- Synonym / paraphrase probe (the Text-to-Unlearn paper's "prompt boundary" check): CLIP alignment
  of base and edited samples with each wording, and a presence rate per wording whose threshold is
  calibrated on the base (the base-rate quantile of the base's alignment scores, so that the base's
  presence under every wording equals its zero-shot presence).
- Latent search (the GAN analogue of an adversarial prompt): from several starts, optimise w (or W+)
  with Adam to maximise the concept's CLIP alignment in the generator, with an L2 pull to the start
  (our choice, keeps the search on plausible latents); success = the independent judge sees the
  concept in the final image (CLIP only for concepts the judge has no attribute for). Run on the base and the edit with the same starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from backends.config import param
from backends.contract import AttackCall, AttackResult, Chart, MetricRow, Sample
from backends.gan import concepts
from backends.gan.backend import judge_mask, measure, rate_row, seeds_from
from backends.registry import register_attack

if TYPE_CHECKING:
    from backends.gan.adapter import GeneratorAdapter
    from backends.gan.backend import GanModel
    from backends.jobs import JobContext

PROBE_SEED0 = 4_000_000
SEARCH_SEED0 = 5_000_000
MAX_WORDINGS = 12


@dataclass(frozen=True)
class SynonymProbeConfig:
    """Settings of the synonym / paraphrase probe."""

    concept: str = param("glasses", help="The unlearned concept", max_length=concepts.MAX_CONCEPT_CHARS)
    wordings: tuple[str, ...] = param((), help="Wordings to try, one per line (empty: built-in synonyms and "
                                               "paraphrases of the concept)",
                                      max_items=MAX_WORDINGS, max_length=concepts.MAX_CONCEPT_CHARS)
    samples: int = param(100, help="Samples per model", min=10, max=2000)


@dataclass(frozen=True)
class LatentSearchConfig:
    """Settings of the latent search attack."""

    concept: str = param("glasses", help="The unlearned concept", max_length=concepts.MAX_CONCEPT_CHARS)
    space: str = param("w", choices=("w", "w+"), help="Search one w for all layers, or one per layer (W+)")
    starts: int = param(8, help="Independent searches (random starting latents)", min=1, max=64)
    steps: int = param(40, help="Adam steps per search", min=1, max=1000)
    lr: float = param(0.05, help="Adam learning rate on the latent", min=1e-4, max=1.0)
    pull: float = param(0.1, help="Weight of the L2 pull towards the starting latent", min=0.0, max=100.0)

    @classmethod
    def smoke(cls) -> "LatentSearchConfig":
        return cls(starts=2, steps=2)


def default_wordings(concept: concepts.Concept) -> list[str]:
    """The typed prompt, FaceWorld's canonical wording and held-out synonyms of the matched value(s)."""
    from backends.faceworld import world

    wordings = list(concept.prompts)
    for value in concept.values:
        wordings += world.attribute_prompts(concept.attribute, value)[:1]
        wordings += world.synonym_prompts(concept.attribute, value)[::3]
    if concept.attribute is None:
        wordings += [f"a photo of {concept.text}", f"a picture showing {concept.text}"]
    return list(dict.fromkeys(wordings))[:MAX_WORDINGS]


@register_attack("gan", "synonym_probe", title="Synonyms and paraphrases", config=SynonymProbeConfig,
                 paper="Prompting Forgetting: Unlearning in GANs via Textual Guidance (2025), prompt-boundary probe")
def synonym_probe(call: AttackCall) -> AttackResult:
    """Score base and edited samples against other wordings of the concept."""
    cfg: SynonymProbeConfig = call.config
    base, edited = call.base, call.edited
    concept = concepts.resolve(base.encoder, cfg.concept)
    wordings = list(cfg.wordings) or default_wordings(concept)
    for wording in wordings:
        concepts.check_text(wording, "Wording")
    seeds = seeds_from(PROBE_SEED0, cfg.samples)
    call.ctx.phase("sampling", total=2)
    before = measure(base, base.generator, concept, seeds, call.ctx)
    call.ctx.step(1)
    after = measure(base, edited.generator, concept, seeds, call.ctx) if call.has_edit else before
    call.ctx.step(2)
    table, base_rates, edit_rates = [], [], []
    texts = base.encoder.encode_text(wordings).cpu().numpy()  # (W, D)
    for wording, text in zip(wordings, texts):
        score_b, score_a = before.embeddings @ text, after.embeddings @ text
        threshold = np.quantile(score_b, 1 - before.clip_presence / 100) if before.clip_presence > 0 else np.inf
        rate_b, rate_a = float((score_b >= threshold).mean() * 100), float((score_a >= threshold).mean() * 100)
        base_rates.append(rate_b)
        edit_rates.append(rate_a)
        table.append({"wording": wording, "alignment base": round(float(score_b.mean()), 4),
                      "alignment edited": round(float(score_a.mean()), 4),
                      "presence base %": round(rate_b, 1), "presence edited %": round(rate_a, 1)})
    summary = [
        rate_row("concept presence (judge)" if before.judge_mask is not None else "concept presence (CLIP)",
                 before.verdict_mask, after.verdict_mask,
                 help=f"Judged as {concept.label} by the {'independent judge' if before.judge_mask is not None else 'CLIP'}."),
        MetricRow("worst wording: presence", max(base_rates), max(edit_rates), unit="%", better="lower",
                  help="Highest presence over the wordings (threshold calibrated on the base)."),
        MetricRow("mean alignment over wordings", float(np.mean([r["alignment base"] for r in table])),
                  float(np.mean([r["alignment edited"] for r in table])), better="lower"),
    ]
    chart = Chart("bar", wordings, {"base": base_rates, "edited": edit_rates},
                  title=f"Presence of {concept.text!r} under other wordings", x_title="wording",
                  y_title="presence (%)")
    worst = wordings[int(np.argmax(edit_rates))]
    who = "edited" if call.has_edit else "base"
    judge = "the independent judge" if before.judge_mask is not None else "CLIP (no judge knows this concept)"
    explanation = (f"On {len(seeds)} fresh samples, {judge} sees {concept.text!r} in {summary[0].after:.0f} % of the "
                   f"{who} model's images (base {summary[0].before:.0f} %). Each bar asks the guide's CLIP with "
                   f"another wording, on the same images: the worst, {worst!r}, still finds {max(edit_rates):.0f} %. "
                   "Text-to-Unlearn optimises through that CLIP, so trust the judge's row over the bars.")
    return AttackResult(summary, table, chart, explanation=explanation)


@register_attack("gan", "latent_search", title="Latent search", config=LatentSearchConfig,
                 paper="GAN analogue of adversarial prompts (UnlearnDiffAtk); latent optimisation as in "
                       "GAN inversion (Abdal et al., Image2StyleGAN 2019)")
def latent_search(call: AttackCall) -> AttackResult:
    """Optimise latents to bring the concept back; compare success with the base."""
    cfg: LatentSearchConfig = call.config
    concept = concepts.resolve(call.base.encoder, cfg.concept)
    base_run = search(call.base, call.base.generator, concept, cfg, call.ctx, "base")
    edit_run = search(call.base, call.edited.generator, concept, cfg, call.ctx, "edited") if call.has_edit \
        else base_run
    summary = [
        rate_row("attack success rate", np.array(base_run.shows), np.array(edit_run.shows),
                 help=f"Share of {cfg.starts} searches whose final image shows {concept.label}, by the "
                      f"{base_run.judged_by}. The search itself climbs CLIP's alignment."),
        MetricRow("best alignment found", base_run.best, edit_run.best, better="lower",
                  help=f"Highest CLIP cosine with {' / '.join(concept.prompts)!r} over all searches."),
        MetricRow("presence at the starts (CLIP)", base_run.start_presence, edit_run.start_presence, unit="%",
                  better="lower"),
    ]
    chart = Chart("line", list(range(cfg.steps + 1)), {"base": base_run.curve, "edited": edit_run.curve},
                  title="Mean concept alignment during the search", x_title="step", y_title="CLIP cosine")
    table = [{"start": i, "base alignment": round(b, 4), "edited alignment": round(a, 4),
              "base shows concept": bool(sb), "edited shows concept": bool(sa)}
             for i, (b, a, sb, sa) in enumerate(zip(base_run.final, edit_run.final, base_run.shows,
                                                    edit_run.shows))]
    found = sum(edit_run.shows)
    who = "edited" if call.has_edit else "base"
    explanation = (f"Each image is where one of {cfg.starts} latent searches on the {who} model ended, climbing "
                   f"CLIP's '{concept.text}' score: the {edit_run.judged_by} sees {concept.text} in {found} of "
                   f"{cfg.starts} (the base: {sum(base_run.shows)} of {cfg.starts}).")
    return AttackResult(summary, table, chart, base_run.samples + edit_run.samples if call.has_edit
                        else edit_run.samples, explanation)


@dataclass
class SearchRun:
    success: float            # % of searches that end on the concept (by the judge where it can judge)
    best: float               # best alignment over searches
    start_presence: float     # % of starts already showing it
    curve: list[float]        # mean alignment per step (steps + 1)
    final: list[float]        # final alignment per start
    shows: list[bool]         # final image shows the concept, per start
    samples: list[Sample]
    judged_by: str = "CLIP"   # who decided ``shows``


def search(model: "GanModel", generator: "GeneratorAdapter", concept: concepts.Concept, cfg: LatentSearchConfig,
           ctx: "JobContext", label: str) -> SearchRun:
    """Adam on w / W+ maximising cos(E_I(G(w)), E_T(concept)) - pull * |w - w0|^2 (mean over dims)."""
    import torch

    from backends.pixels import to_uint8

    encoder = model.encoder
    target = encoder.text_direction(concept.prompts)
    seeds = seeds_from(SEARCH_SEED0, cfg.starts)
    with torch.no_grad():
        w0 = generator.mapping(generator.z_from_seeds(seeds))  # (S, w_dim)
    if cfg.space == "w+":
        w0 = w0[:, None].repeat(1, generator.num_ws, 1)  # (S, num_ws, w_dim)
    latent = w0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=cfg.lr)
    ctx.phase(f"latent search on the {label} model", total=cfg.steps)
    curve, start_mask = [], None
    for step in range(cfg.steps + 1):
        embeddings = encoder.encode_images(generator.synthesis(latent))
        score = embeddings @ target  # (S,)
        curve.append(score.mean().item())
        if step == 0:
            start_mask = concepts.presence(encoder, concept, embeddings.detach())
        if step == cfg.steps:
            break
        loss = -score.mean() + cfg.pull * (latent - w0).square().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        ctx.step(step + 1, cfg.steps, alignment=score.mean().item())
    with torch.no_grad():
        images = generator.synthesis(latent)
        embeddings = encoder.encode_images(images)
        final = (embeddings @ target).cpu().numpy()
        classes = concepts.classify(encoder, embeddings)
        shows, judged_by = concepts.presence(encoder, concept, embeddings, classes), "CLIP"
        if model.judge is not None and concept.attribute is not None:
            classes = model.judge.classify(images)
            shows, judged_by = judge_mask(classes, concept), "independent judge"
    pixels = to_uint8(images)
    samples = [Sample(key=f"search {i}", seed=seed, image=pixels[i], labels=concepts.labels_of(classes, i),
                      group=label) for i, seed in enumerate(seeds)]
    return SearchRun(float(shows.mean() * 100), float(final.max()), float(start_mask.mean() * 100), curve,
                     [float(v) for v in final], [bool(v) for v in shows], samples, judged_by)
