"""Benchmark of concept erasure on FaceWorld diffusion: every method on glasses and hat, plus the gold standard.

For ``<method>`` in uce, esd_x, esd_u, fewshot_te, salun, advunlearn and ``<concept>`` in glasses, hat:
``diffusion.<method>.<concept>.presence_after`` (share of concept-prompt images still showing it),
``.collateral_max_pts`` (largest adherence drop of the neighbouring or the unrelated prompt group), ``.seconds``
(the method's run, checks included), ``.attack_asr`` (UnlearnDiffAtk) and ``.synonym_presence``
(held-out wordings); ``diffusion.base.<concept>.presence`` (before) and ``diffusion.gold.glasses.*``
for the model retrained without glasses. Few-shot forget images are picked automatically: base
images FaceWorld's CLIP flags with the concept. Targets (issue 5): presence_after <= 0.10,
collateral <= 5 pts; UCE <= 2 s, few-shot <= 30 s, ESD <= 90 s, SalUn / AdvUnlearn <= 240 s.

``python -m bench --only diffusion`` (or ``python -m bench.diffusion [method ...] [concept ...]``, which skips the
gold standard unless ``gold`` is named too; ``python -m bench.diffusion gold glasses`` scores it alone).
"""
from __future__ import annotations

import sys
import time
from typing import Iterator

METHODS = ("uce", "esd_x", "esd_u", "fewshot_te", "salun", "advunlearn")
CONCEPTS = ("glasses", "hat")
EVAL_PROMPTS, EVAL_SEEDS = 3, 8          # 3 concept / neighbour / unrelated prompts x 8 seeds: 24 images a group
FEWSHOT_IMAGES = 4
ATTACK = {"prompts": 2, "seeds": 1, "steps": 10, "timesteps": 2}
SYNONYM_SEEDS = 2


def _ctx():
    from backends.jobs import JobContext

    return JobContext.standalone()


def _picked(base, concept: str):
    """Forget samples for few-shot erasure: base images of the concept's prompts that CLIP flags with it."""
    from backends.contract import Sample
    from backends.diffusion.common import concept_images

    images, prompts = concept_images(base, concept, FEWSHOT_IMAGES, seed=50_000)
    return [Sample(key=f"auto {i}", seed=50_000 + i, prompt=p, image=im) for i, (im, p) in enumerate(zip(images, prompts))]


def _attack_scores(base, model, concept: str) -> tuple[float, float]:
    """(UnlearnDiffAtk success rate, synonym presence) of ``model`` against ``base``."""
    import numpy as np

    from backends import registry
    from backends.config import build_config
    from backends.contract import AttackCall
    from backends.diffusion.attacks import probe_prompts, synonym_presence

    be = registry.backend("diffusion")
    spec = registry.attack("diffusion", "unlearndiffatk")
    config = build_config(spec.config, dict(ATTACK, concept=concept))
    result = spec.run(AttackCall(be, base, model, True, config, _ctx()))
    asr = result.summary[1].after / 100.0
    rows = [r for r in probe_prompts(base, concept, paraphrases=False)]
    synonyms = float(np.mean(synonym_presence(base, model, rows, concept, SYNONYM_SEEDS)))
    return asr, synonyms


def _rows(prefix: str, before, after, seconds: float | None, asr: float, synonyms: float) -> Iterator[dict]:
    from backends.diffusion.evaluation import collateral_pts

    yield {"name": f"{prefix}.presence_after", "value": round(after.presence, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.presence_unasked_after", "value": round(after.adherence["neutral"], 4),
           "unit": "fraction"}
    yield {"name": f"{prefix}.collateral_max_pts", "value": round(collateral_pts(before, after), 2),
           "unit": "pts"}
    yield {"name": f"{prefix}.frechet_clip", "value": round(after.frechet or 0.0, 4), "unit": ""}
    if seconds is not None:
        yield {"name": f"{prefix}.seconds", "value": round(seconds, 2), "unit": "s"}
    yield {"name": f"{prefix}.attack_asr", "value": round(asr, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.synonym_presence", "value": round(synonyms, 4), "unit": "fraction"}


def run(methods: tuple[str, ...] = METHODS, concepts: tuple[str, ...] = CONCEPTS,
        gold_standard: bool = True) -> Iterator[dict]:
    import torch

    import backends.diffusion  # noqa: F401
    from backends import registry
    from backends.config import build_config
    from backends.contract import MethodCall
    from backends.device import pick_device
    from backends.diffusion.evaluation import score_models

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a shared 2-core machine: two intra-op threads spin-wait and run slower
    be = registry.backend("diffusion")
    base = registry.preset("diffusion", "faceworld").load(pick_device())
    for concept in concepts:
        _, before, _ = score_models(base, [], concept, EVAL_PROMPTS, EVAL_SEEDS)
        yield {"name": f"diffusion.base.{concept}.presence", "value": round(before.presence, 4), "unit": "fraction"}
        yield {"name": f"diffusion.base.{concept}.presence_unasked", "value": round(before.adherence["neutral"], 4),
               "unit": "fraction"}
        for method in methods:
            spec = registry.method("diffusion", method)
            config = build_config(spec.config, {"concept": concept, "eval_prompts": EVAL_PROMPTS,
                                                "eval_seeds": EVAL_SEEDS})
            picked = _picked(base, concept) if method == "fewshot_te" else []
            if picked:
                config = build_config(spec.config, {"concept": concept, "forget_images": tuple(range(len(picked))),
                                                    "eval_prompts": EVAL_PROMPTS, "eval_seeds": EVAL_SEEDS})
            edited = be.clone(base)
            started = time.time()
            spec.run(MethodCall(be, base, edited, config, _ctx(), picked))
            seconds = time.time() - started
            _, before, (after,) = score_models(base, [edited], concept, EVAL_PROMPTS, EVAL_SEEDS)
            asr, synonyms = _attack_scores(base, edited, concept)
            yield from _rows(f"diffusion.{method}.{concept}", before, after, seconds, asr, synonyms)
        for name, load in base.gold.items():
            if gold_standard and name == concept:
                try:
                    gold = load()
                except FileNotFoundError as exc:
                    print(f"diffusion.gold.{concept}: skipped ({exc})", file=sys.stderr)
                    continue
                _, before, (after,) = score_models(base, [gold], concept, EVAL_PROMPTS, EVAL_SEEDS)
                asr, synonyms = _attack_scores(base, gold, concept)
                yield from _rows(f"diffusion.gold.{concept}", before, after, None, asr, synonyms)


if __name__ == "__main__":
    import json

    args = sys.argv[1:]
    named = tuple(a for a in args if a in METHODS)
    chosen = named or (() if "gold" in args else METHODS)
    concepts = tuple(a for a in args if a in CONCEPTS) or CONCEPTS
    for row in run(chosen, concepts, gold_standard="gold" in args or not named):
        print(json.dumps(row), flush=True)
