"""Benchmark of concept erasure on FaceWorld diffusion: every registered method, plus the gold standard.

Everything is judged by the independent FaceWorld attribute judge on the ``eval`` prompts and seeds of
:mod:`backends.diffusion.prompt_sets` (wordings and seeds no method trains on), 6 prompts x 16 seeds =
96 images a group. For every registered diffusion ``<method>`` on glasses and hat (ESD-u, made for
global concepts, on a background colour instead):
``diffusion.<method>.<concept>.heldout_presence`` (share of held-out concept-prompt images the judge
sees it in) and ``.heldout_presence_ci_high`` (its 95 % Wilson upper bound), ``.heldout_images``,
``.heldout_presence_clip`` (FaceWorld CLIP's opinion of the same images), ``.train_presence`` (on the
prompts the methods train on, for comparison), ``.presence_unasked`` (prompt "a face"),
``.collateral_prompt_max_pts`` (largest adherence drop of any neighbouring or unrelated prompt, 16 images
each), ``.collateral_attr_max_pts`` (largest shift of any other attribute value's rate over those images),
``.frechet_judge`` (judge features), ``.seconds`` (the method's run, checks included) and ``.attack_asr``
(UnlearnDiffAtk at the authors' strength: 40 steps, a success check every 5, success = the judge sees the
concept); ``diffusion.base.<concept>.*`` (before) and ``diffusion.gold.glasses.*`` for the model retrained
without glasses; ``diffusion.protocol.sets_disjoint`` (1 when no prompt of any FaceWorld concept, the
UCE paraphrases included, is in two of the train / tune / eval sets). Few-shot forget images are picked
automatically: base images FaceWorld's CLIP flags with the concept (never the judge). Targets (issue 11):
heldout_presence <= 0.10 (ci_high <= 0.18), collateral_prompt_max_pts <= 5, collateral_attr_max_pts <= 8;
UCE <= 2 s, few-shot <= 30 s, ESD <= 90 s, SalUn / AdvUnlearn <= 240 s.

``python -m bench --only diffusion.`` runs it all (hours on 2 CPU cores). ``python -m bench.diffusion
[method ...] [concept ...] [gold] [--prompts N] [--seeds N] [--attack-targets N]`` runs a part, with
smaller groups for a quick check; ``DIFFUSION_BENCH_PROMPTS`` / ``DIFFUSION_BENCH_SEEDS`` set the same
sizes for ``python -m bench``.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Iterator

CONCEPTS = ("glasses", "hat")
GLOBAL_CONCEPTS = {"esd_u": ("blue background",)}  # methods for global concepts (styles, backgrounds)
EVAL_PROMPTS = int(os.environ.get("DIFFUSION_BENCH_PROMPTS", 6))  # concept / neighbour / unrelated prompts
EVAL_SEEDS = int(os.environ.get("DIFFUSION_BENCH_SEEDS", 16))     # images a prompt: 96 a group by default
FEWSHOT_IMAGES = 4
ATTACK = {"prompts": 6, "seeds": 2, "steps": 40, "check_every": 5}  # 12 targets, the authors' strength


def _ctx():
    from backends.jobs import JobContext

    return JobContext.standalone()


def _key(concept: str) -> str:
    return concept.replace(" ", "_")


def _picked(base, concept: str):
    """Forget samples for few-shot erasure: base images of the concept's prompts that CLIP flags with it."""
    from backends.contract import Sample
    from backends.diffusion.common import concept_images

    images, prompts = concept_images(base, concept, FEWSHOT_IMAGES, offset=50_000)
    return [Sample(key=f"auto {i}", seed=i, prompt=p, image=im) for i, (im, p) in enumerate(zip(images, prompts))]


def _attack_asr(base, model, concept: str, targets: int) -> float:
    """UnlearnDiffAtk's success rate on ``model`` (success = the judge sees the concept)."""
    from backends import registry
    from backends.config import build_config
    from backends.contract import AttackCall

    spec = registry.attack("diffusion", "unlearndiffatk")
    prompts = min(ATTACK["prompts"], targets)
    config = build_config(spec.config, dict(ATTACK, concept=concept, prompts=prompts,
                                            seeds=max(1, min(ATTACK["seeds"], targets // prompts))))
    result = spec.run(AttackCall(registry.backend("diffusion"), base, model, True, config, _ctx()))
    return result.summary[1].after / 100.0


def sets_disjoint() -> bool:
    """No prompt of any FaceWorld concept (its own, its paraphrases, neighbouring or unrelated) is in two splits."""
    from backends.diffusion.prompt_sets import resolve_concept
    from backends.faceworld.concepts import known_words
    from backends.diffusion.prompt_sets import (
        COLLATERAL_GROUPS, SPLITS, collateral_prompts, concept_prompts, normalise_prompt, paraphrase_prompts,
    )

    for concept in known_words():
        target = resolve_concept(concept)
        sets = [{normalise_prompt(p) for p in concept_prompts(target, split)
                 + (paraphrase_prompts(target) if split == "train" else [])
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
    if heldout.clip_presence is not None:
        yield {"name": f"{prefix}.heldout_presence_clip", "value": round(float(heldout.clip_presence.mean()), 4),
               "unit": "fraction"}
    yield {"name": f"{prefix}.train_presence", "value": round(train.presence, 4), "unit": "fraction"}
    yield {"name": f"{prefix}.presence_unasked", "value": round(heldout.adherence["neutral"], 4), "unit": "fraction"}


def _rows(prefix: str, concept: str, before, after, train_after, seconds: float | None, asr: float) -> Iterator[dict]:
    from backends.diffusion.evaluation import collateral_attr_pts, collateral_prompt_pts
    from backends.diffusion.prompt_sets import resolve_concept

    yield from _presence_rows(prefix, after, train_after)
    yield {"name": f"{prefix}.collateral_prompt_max_pts", "value": round(collateral_prompt_pts(before, after), 2),
           "unit": "pts"}
    yield {"name": f"{prefix}.collateral_attr_max_pts",
           "value": round(collateral_attr_pts(before, after, resolve_concept(concept).attr), 2), "unit": "pts"}
    yield {"name": f"{prefix}.frechet_judge", "value": round(after.frechet or 0.0, 4), "unit": ""}
    if seconds is not None:
        yield {"name": f"{prefix}.seconds", "value": round(seconds, 2), "unit": "s"}
    yield {"name": f"{prefix}.attack_asr", "value": round(asr, 4), "unit": "fraction"}


def run_method(be, base, method: str, concept: str, overrides: dict | None = None) -> tuple:
    """(edited copy of ``base``, seconds) after the registered ``method`` on ``concept`` with its defaults,
    or ``overrides`` of them; few-shot forget images are picked automatically (:func:`_picked`)."""
    import dataclasses

    from backends import registry
    from backends.config import build_config
    from backends.contract import MethodCall

    spec = registry.method("diffusion", method)
    values = {"concept": concept, **(overrides or {})}
    picked = []
    if "forget_images" in {f.name for f in dataclasses.fields(spec.config)}:
        picked = _picked(base, concept)
        values["forget_images"] = tuple(range(len(picked)))
    edited = be.clone(base)
    started = time.time()
    spec.run(MethodCall(be, base, edited, build_config(spec.config, values), _ctx(), picked))
    return edited, time.time() - started


def run(methods: tuple[str, ...] | None = None, concepts: tuple[str, ...] | None = None, gold_standard: bool = True,
        prompts: int = EVAL_PROMPTS, seeds: int = EVAL_SEEDS,
        attack_targets: int = ATTACK["prompts"] * ATTACK["seeds"]) -> Iterator[dict]:
    """Every registered method (or ``methods``) on its concepts (or ``concepts``)."""
    import torch

    import backends.diffusion  # noqa: F401
    from backends import registry
    from backends.device import pick_device
    from backends.diffusion.evaluation import score_models

    torch.manual_seed(0)
    # 1 thread by default (a shared 2-core machine: two intra-op threads spin-wait and run slower);
    # BENCH_THREADS=N measures at N, as bench.gan does, so a result that flips with the thread count shows.
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    be = registry.backend("diffusion")
    base = registry.preset("diffusion", "faceworld").load(pick_device())
    yield {"name": "diffusion.protocol.sets_disjoint", "value": int(sets_disjoint()), "unit": "bool"}

    def scores(models: list, concept: str) -> tuple:
        """(base, others) on the held-out prompts, and (base, others) on the training concept prompts."""
        _, before, after = score_models(base, models, concept, prompts, seeds)
        _, train_before, train_after = score_models(base, models, concept, prompts, seeds, split="train",
                                                    groups=("concept",))
        return before, after, train_before, train_after

    chosen = tuple(registry.methods("diffusion")) if methods is None else methods
    plan = [(m, c) for m in chosen for c in GLOBAL_CONCEPTS.get(m, CONCEPTS) if concepts is None or c in concepts]
    for concept in dict.fromkeys([c for _, c in plan] + list(concepts or (() if chosen else CONCEPTS))):
        before, _, train_before, _ = scores([], concept)
        yield from _presence_rows(f"diffusion.base.{_key(concept)}", before, train_before)
        for method in (m for m, c in plan if c == concept):
            edited, seconds = run_method(be, base, method, concept)
            before, (after,), _, (train_after,) = scores([edited], concept)
            asr = _attack_asr(base, edited, concept, attack_targets)
            yield from _rows(f"diffusion.{method}.{_key(concept)}", concept, before, after, train_after, seconds, asr)
        for name, load in base.gold.items():
            if gold_standard and name == concept:
                try:
                    gold = load()
                except FileNotFoundError as exc:
                    print(f"diffusion.gold.{concept}: skipped ({exc})", file=sys.stderr)
                    continue
                before, (after,), _, (train_after,) = scores([gold], concept)
                asr = _attack_asr(base, gold, concept, attack_targets)
                yield from _rows(f"diffusion.gold.{_key(concept)}", concept, before, after, train_after, None, asr)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.diffusion", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="methods, concepts (e.g. glasses, 'blue background') and/or gold")
    parser.add_argument("--prompts", type=int, default=EVAL_PROMPTS, help="eval prompts a group")
    parser.add_argument("--seeds", type=int, default=EVAL_SEEDS, help="images a prompt")
    parser.add_argument("--attack-targets", type=int, default=ATTACK["prompts"] * ATTACK["seeds"],
                        help="UnlearnDiffAtk target images")
    args = parser.parse_args(argv)
    import backends.diffusion  # noqa: F401
    from backends import registry

    known = set(registry.methods("diffusion"))
    named = tuple(n for n in args.names if n in known)
    concepts = tuple(n for n in args.names if n not in known and n != "gold") or None
    for row in run(named or (() if "gold" in args.names else None), concepts,
                   gold_standard="gold" in args.names or not named, prompts=args.prompts, seeds=args.seeds,
                   attack_targets=args.attack_targets):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
