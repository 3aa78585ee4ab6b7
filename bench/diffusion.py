"""Benchmark of concept erasure on FaceWorld diffusion: every method on glasses and hat, plus the gold standard.

Everything is measured on the ``eval`` prompts and seeds of :mod:`backends.diffusion.prompt_sets` (wordings
and seeds no method trains on), 6 prompts x 16 seeds = 96 images a group. For ``<method>`` in uce, esd_x,
esd_u, fewshot_te, salun, advunlearn and ``<concept>`` in glasses, hat:
``diffusion.<method>.<concept>.heldout_presence`` (share of held-out concept-prompt images still showing
it) and ``.heldout_presence_ci_high`` (its 95 % Wilson upper bound), ``.train_presence`` (the same on the
prompts the methods train on, for comparison), ``.collateral_prompt_max_pts`` (largest adherence drop of
any neighbouring or unrelated prompt, 16 images each) and ``.collateral_max_pts`` (of either group),
``.seconds`` (the method's run, checks included), ``.attack_asr`` (UnlearnDiffAtk) and
``.synonym_presence`` (FaceWorld's held-out synonyms); ``diffusion.base.<concept>.*`` (before) and
``diffusion.gold.glasses.*`` for the model retrained without glasses; ``diffusion.protocol.sets_disjoint``
(1 when no prompt of any FaceWorld concept is in two of the train / tune / eval sets). Few-shot forget
images are picked automatically: base images FaceWorld's CLIP flags with the concept. Targets (issue 11):
heldout_presence <= 0.10 (ci_high <= 0.18), collateral_prompt_max_pts <= 5; UCE <= 2 s, few-shot <= 30 s,
ESD <= 90 s, SalUn / AdvUnlearn <= 240 s.

``python -m bench --only diffusion`` (or ``python -m bench.diffusion [method ...] [concept ...]``, which skips the
gold standard unless ``gold`` is named too; ``python -m bench.diffusion gold glasses`` scores it alone).
"""
from __future__ import annotations

import sys
import time
from typing import Iterator

METHODS = ("uce", "esd_x", "esd_u", "fewshot_te", "salun", "advunlearn")
CONCEPTS = ("glasses", "hat")
EVAL_PROMPTS, EVAL_SEEDS = 6, 16         # 6 concept / neighbour / unrelated prompts x 16 seeds: 96 images a group
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

    images, prompts = concept_images(base, concept, FEWSHOT_IMAGES, offset=50_000)
    return [Sample(key=f"auto {i}", seed=i, prompt=p, image=im) for i, (im, p) in enumerate(zip(images, prompts))]


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


def sets_disjoint() -> bool:
    """No prompt of any FaceWorld concept (its own, neighbouring or unrelated) is in two splits."""
    from backends.diffusion.metrics import FACEWORLD_WORDS, resolve_concept
    from backends.diffusion.prompt_sets import (
        COLLATERAL_GROUPS, SPLITS, collateral_prompts, concept_prompts, normalise_prompt,
    )

    for concept in FACEWORLD_WORDS:
        target = resolve_concept(concept)
        sets = [{normalise_prompt(p) for p in concept_prompts(target, split)
                 + [q for g in COLLATERAL_GROUPS for q, _ in collateral_prompts(target, g, split)]} for split in SPLITS]
        if any(sets[i] & sets[j] for i in range(len(sets)) for j in range(i + 1, len(sets))):
            return False
    return True


def _presence_rows(prefix: str, heldout, train) -> Iterator[dict]:
    from backends.stats import percent_with_interval

    _, (_, high), n = percent_with_interval(heldout.judged["concept"])
    yield {"name": f"{prefix}.heldout_presence", "value": round(heldout.presence, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.heldout_presence_ci_high", "value": round(high / 100, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.heldout_images", "value": n, "unit": "images"}
    yield {"name": f"{prefix}.train_presence", "value": round(train.presence, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.presence_unasked", "value": round(heldout.adherence["neutral"], 4), "unit": "fraction"}


def _rows(prefix: str, before, after, train_after, seconds: float | None, asr: float,
          synonyms: float) -> Iterator[dict]:
    from backends.diffusion.evaluation import collateral_prompt_pts, collateral_pts

    yield from _presence_rows(prefix, after, train_after)
    yield {"name": f"{prefix}.collateral_prompt_max_pts", "value": round(collateral_prompt_pts(before, after), 2),
           "unit": "pts"}
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
    yield {"name": "diffusion.protocol.sets_disjoint", "value": int(sets_disjoint()), "unit": "bool"}

    def scores(models: list, concept: str) -> tuple:
        """(base, others) on the held-out prompts, and (base, others) on the training prompts."""
        _, before, after = score_models(base, models, concept, EVAL_PROMPTS, EVAL_SEEDS)
        _, train_before, train_after = score_models(base, models, concept, EVAL_PROMPTS, EVAL_SEEDS, split="train")
        return before, after, train_before, train_after

    for concept in concepts:
        before, _, train_before, _ = scores([], concept)
        yield from _presence_rows(f"diffusion.base.{concept}", before, train_before)
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
            before, (after,), _, (train_after,) = scores([edited], concept)
            asr, synonyms = _attack_scores(base, edited, concept)
            yield from _rows(f"diffusion.{method}.{concept}", before, after, train_after, seconds, asr, synonyms)
        for name, load in base.gold.items():
            if gold_standard and name == concept:
                try:
                    gold = load()
                except FileNotFoundError as exc:
                    print(f"diffusion.gold.{concept}: skipped ({exc})", file=sys.stderr)
                    continue
                before, (after,), _, (train_after,) = scores([gold], concept)
                asr, synonyms = _attack_scores(base, gold, concept)
                yield from _rows(f"diffusion.gold.{concept}", before, after, train_after, None, asr, synonyms)


if __name__ == "__main__":
    import json

    args = sys.argv[1:]
    named = tuple(a for a in args if a in METHODS)
    chosen = named or (() if "gold" in args else METHODS)
    concepts = tuple(a for a in args if a in CONCEPTS) or CONCEPTS
    for row in run(chosen, concepts, gold_standard="gold" in args or not named):
        print(json.dumps(row), flush=True)
