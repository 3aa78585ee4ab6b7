"""GAN benchmark: Text-to-Unlearn and Adapt-then-Unlearn on the FaceWorld preset, beside the gold standard.

For <method> in text_to_unlearn, adapt_then_unlearn and <concept> in glasses, smiling:
  gan.<method>.<concept>.presence_ratio     presence after / before on 2,000 samples (target <= 0.10)
  gan.<method>.<concept>.collateral_max_pts largest presence change of another attribute value (<= 5)
  gan.<method>.<concept>.degree             Wasserstein-1 between alignment-score distributions
  gan.<method>.<concept>.seconds            wall time of the method (TtU <= 60 s, AtU <= 180 s; 2 cores)
  gan.<method>.<concept>.latent_attack_success  share of latent searches that bring the concept back
and gan.gold.<concept>.* for the GAN retrained without the concept, where it exists (glasses).
Adapt-then-Unlearn stands in for a user by picking, among the first PICK_POOL gallery seeds, up to
MAX_PICKS samples that CLIP judges to show the concept.

``python -m bench --only gan.`` runs everything; ``python -m bench.gan [method ...] [concept ...]`` runs a part
(``python -m bench.gan gold`` scores the gold standard only).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

SAMPLES = 2000
CONCEPTS = ("glasses", "smiling")
METHODS = ("text_to_unlearn", "adapt_then_unlearn")
PICK_POOL = 64
MAX_PICKS = 12


def _context():
    from backends.jobs import JobContext

    return JobContext.standalone()


def auto_picks(backend, base, concept_text: str) -> list:
    """Gallery samples (seeds 0..PICK_POOL-1) that CLIP judges to show the concept: a user's ticks."""
    from backends.gan import concepts
    from backends.gan.backend import GanGenerateConfig

    concept = concepts.resolve(base.encoder, concept_text)
    gallery = backend.generate(base, GanGenerateConfig(seed=0, count=PICK_POOL))
    return [s for s in gallery if s.labels.get(concept.attribute) in concept.values][:MAX_PICKS]


def scores(prefix: str, base, before, generator, concept) -> Iterator[dict]:
    """presence_ratio, collateral_max_pts, degree and latent_attack_success of ``generator``."""
    from backends.config import build_config
    from backends.faceworld import world
    from backends.gan import attacks, metrics
    from backends.gan.backend import measure, seeds_from

    after = measure(base, generator, concept, seeds_from(1_000_000, SAMPLES))
    sizes = {a: len(v) for a, v in world.ATTRIBUTES.items()}
    changes = metrics.collateral(before.classes, after.classes, sizes, skip=concept.attribute)
    search_config = build_config(attacks.LatentSearchConfig, {"concept": concept.text})
    search = attacks.search(base, generator, concept, search_config, _context(), "edited")
    yield {"name": f"{prefix}.presence_ratio", "value": round(after.presence / max(before.presence, 1e-9), 4),
           "unit": "ratio"}
    yield {"name": f"{prefix}.presence_before", "value": round(before.presence, 2), "unit": "%"}
    yield {"name": f"{prefix}.presence_after", "value": round(after.presence, 2), "unit": "%"}
    yield {"name": f"{prefix}.collateral_max_pts",
           "value": round(max(abs(a - b) for _, b, a in changes.values()), 2), "unit": "pts"}
    yield {"name": f"{prefix}.degree", "value": round(metrics.wasserstein1(before.alignment, after.alignment), 5),
           "unit": "W1"}
    yield {"name": f"{prefix}.fd_clip", "value": round(metrics.frechet_distance(before.embeddings,
                                                                                after.embeddings), 5), "unit": "FD"}
    yield {"name": f"{prefix}.latent_attack_success", "value": round(search.success / 100, 4), "unit": "share"}


def run(methods: tuple[str, ...] = METHODS, concept_texts: tuple[str, ...] = CONCEPTS,
        gold_standard: bool = True) -> Iterator[dict]:
    import torch

    from backends import registry
    from backends.config import build_config
    from backends.contract import MethodCall
    from backends.gan import concepts
    from backends.gan.backend import measure, seeds_from

    registry.load_all(("backends.gan",))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))  # the targets are for 2 cores
    backend = registry.backend("gan")
    base = registry.preset("gan", "faceworld").load("cpu")
    for concept_text in concept_texts:
        concept = concepts.resolve(base.encoder, concept_text)
        before = measure(base, base.generator, concept, seeds_from(1_000_000, SAMPLES))
        for method in methods:
            spec = registry.method("gan", method)
            config = build_config(spec.config, {"concept": concept_text})
            picked = auto_picks(backend, base, concept_text) if method == "adapt_then_unlearn" else []
            model = backend.clone(base)
            start = time.perf_counter()
            spec.run(MethodCall(backend, base, model, config, _context(), picked))
            seconds = time.perf_counter() - start
            prefix = f"gan.{method}.{concept_text}"
            yield {"name": f"{prefix}.seconds", "value": round(seconds, 1), "unit": "s"}
            yield from scores(prefix, base, before, model.generator, concept)
        if gold_standard and concept.attribute in base.gold:
            try:
                gold = base.gold[concept.attribute]()
            except FileNotFoundError:
                continue
            yield from scores(f"gan.gold.{concept_text}", base, before, gold, concept)


if __name__ == "__main__":
    import json
    import sys

    args = sys.argv[1:]
    named = tuple(a for a in args if a in METHODS)
    chosen = named or (() if "gold" in args else METHODS)
    gold = "gold" in args or not named
    for row in run(chosen, tuple(a for a in args if a in CONCEPTS) or CONCEPTS, gold_standard=gold):
        print(json.dumps(row), flush=True)
