"""GAN benchmark: every registered GAN method (Text-to-Unlearn, Adapt-then-Unlearn) on the FaceWorld preset, judged
by the independent FaceWorld attribute judge (never by the CLIP the methods optimise through), beside the gold
standard.

Every method runs with method seeds SEEDS at 1 and 2 torch threads (a result that flips with the thread count
is a bug, not noise; ``BENCH_THREADS=N`` runs at N threads only, evaluation included). Each run is judged on
SAMPLES evaluation seeds (1,000,000..), disjoint from the gallery
(0..), the methods' own latent draws (torch.Generator(seed)) and the methods' base check (3,000,000..).
For <method> in the registry (:func:`methods`) and <concept> in glasses, smiling:
  gan.<m>.<c>.judge_presence_ratio      judge presence after / before, mean of the seeds at 2 threads (<= 0.10)
  gan.<m>.<c>.judge_presence_ratio_t1   the same at 1 thread
  gan.<m>.<c>.judge_presence_ratio_max  worst of seeds x thread counts (<= 0.15)
  gan.<m>.<c>.judge_collateral_max_pts  worst change of another attribute value's rate, by the judge (<= 5)
  gan.<m>.<c>.clip_presence_ratio       CLIP's ratio (the guide's own opinion), mean at 2 threads
  gan.<m>.<c>.redistribution_err_pts    worst gap of the concept attribute's other values to the reference
                                        (gold model, or the base renormalised without the concept) (<= 10)
  gan.<m>.<c>.latent_attack_success     share of latent searches the judge sees the concept in (mean)
  gan.<m>.<c>.seconds                   median wall time at 2 threads (TtU <= 60, AtU <= 180)
  gan.<m>.<c>.n_samples / n_runs        what the figures rest on
and gan.gold.glasses.* for the GAN retrained without glasses.
For a method that takes picked samples (Adapt-then-Unlearn) the benchmark stands in for a user by picking, among
the first PICK_POOL gallery seeds, up to MAX_PICKS samples that show the concept (the gallery's labels: the
judge's, as a user sees the picture).

``python -m bench --only gan.`` runs everything; ``python -m bench.gan [method ...] [concept ...]
[--seeds 0,1,2] [--threads 1,2]`` runs a part (``gold`` scores the gold standard only). ``--split tune`` scores
on TUNE_SAMPLES tune seeds (6,000,000..) instead, without the attack: what defaults are chosen on;
``--set field=value`` overrides a method setting for such sweeps.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator

import numpy as np

SAMPLES = 2000
CONCEPTS = ("glasses", "smiling")
SEEDS = (0, 1, 2)
#: Torch thread counts every method runs at; BENCH_THREADS=N measures at N only.
THREADS = (int(os.environ["BENCH_THREADS"]),) if os.environ.get("BENCH_THREADS") else (1, 2)
PICK_POOL = 64
MAX_PICKS = 12
TUNE_SAMPLES = 500


def _context():
    from backends.jobs import JobContext

    return JobContext.standalone()


def methods() -> tuple[str, ...]:
    """The registered GAN methods, in tab order."""
    from backends import registry

    registry.load_all(("backends.gan",))
    return tuple(registry.methods("gan"))


def takes_picks(config_cls: type) -> bool:
    """Whether a method config has a field for the gallery samples the user ticked."""
    from backends.config import field_specs

    return any(spec.widget == "picked" for spec in field_specs(config_cls))


def auto_picks(backend, base, concept_text: str) -> list:
    """Gallery samples (seeds 0..PICK_POOL-1) labelled with the concept: a user's ticks."""
    from backends.gan import concepts
    from backends.gan.backend import GanGenerateConfig

    concept = concepts.resolve(base.encoder, concept_text)
    gallery = backend.generate(base, GanGenerateConfig(seed=0, count=PICK_POOL))
    return [s for s in gallery if s.labels.get(concept.attribute) in concept.values][:MAX_PICKS]


def scored_seeds(split: str) -> list[int]:
    """The seeds a run is scored on: evaluation seeds (reported) or tune seeds (defaults are chosen on these)."""
    from backends.gan.backend import EVAL_SEED0, TUNE_SEED0, seeds_from

    if split not in ("eval", "tune"):
        raise ValueError(f"split must be 'eval' or 'tune', not {split!r}")
    return seeds_from(EVAL_SEED0, SAMPLES) if split == "eval" else seeds_from(TUNE_SEED0, TUNE_SAMPLES)


def judge_scores(base, before, generator, concept, seeds: list[int], attack: bool = True) -> dict[str, float]:
    """Judge and CLIP ratios, collateral, redistribution error and latent attack success of ``generator``
    on ``seeds``."""
    from backends.config import build_config
    from backends.gan import attacks
    from backends.gan.backend import (
        judge_collateral, measure, redistribution, redistribution_error, worst_collateral_pts,
    )

    after = measure(base, generator, concept, seeds)
    collateral = judge_collateral(before, after, skip=concept.attribute)
    masks, reference, _ = redistribution(before, after, concept, gold_of(base, concept, seeds))
    scores = {
        "judge_presence_ratio": float(after.judge_mask.mean() / max(before.judge_mask.mean(), 1e-9)),
        "judge_presence_after": float(after.judge_mask.mean() * 100),
        "clip_presence_ratio": after.clip_presence / max(before.clip_presence, 1e-9),
        "judge_collateral_max_pts": worst_collateral_pts(collateral),
        "redistribution_err_pts": redistribution_error(masks, reference),
    }
    if attack:
        search_config = build_config(attacks.LatentSearchConfig, {"concept": concept.text})
        scores["latent_attack_success"] = attacks.search(base, generator, concept, search_config, _context(),
                                                         "edited").success / 100
    return scores


def gold_of(base, concept, seeds: list[int]):
    """The gold model's measurement on ``seeds`` (the backend's per-server cache), or None."""
    from backends.gan.backend import BASE_MEASUREMENTS, gold_measurement

    return BASE_MEASUREMENTS.get(base, "gold", concept, seeds, _context(),
                                 lambda: gold_measurement(base, concept, seeds, _context()))


def run(chosen: tuple[str, ...] | None = None, concept_texts: tuple[str, ...] = CONCEPTS,
        gold_standard: bool = True, seeds: tuple[int, ...] = SEEDS,
        threads: tuple[int, ...] = THREADS, split: str = "eval",
        overrides: dict | None = None) -> Iterator[dict]:
    import torch

    from backends import registry
    from backends.config import build_config
    from backends.contract import MethodCall
    from backends.gan import concepts
    from backends.gan.backend import measure

    registry.load_all(("backends.gan",))
    backend = registry.backend("gan")
    base = registry.preset("gan", "faceworld").load("cpu")
    scored = scored_seeds(split)
    for concept_text in concept_texts:
        torch.set_num_threads(max(threads))
        concept = concepts.resolve(base.encoder, concept_text)
        before = measure(base, base.generator, concept, scored)
        yield {"name": f"gan.base.{concept_text}.judge_presence", "value": round(float(before.judge_mask.mean()) * 100,
                                                                                   2), "unit": "%"}
        yield {"name": f"gan.base.{concept_text}.clip_presence", "value": round(before.clip_presence, 2), "unit": "%"}
        for method in methods() if chosen is None else chosen:
            spec = registry.method("gan", method)
            picked = auto_picks(backend, base, concept_text) if takes_picks(spec.config) else []
            runs: list[dict] = []
            for thread_count in threads:
                for seed in seeds:
                    torch.set_num_threads(thread_count)
                    config = build_config(spec.config, {**(overrides or {}), "concept": concept_text, "seed": seed})
                    model = backend.clone(base)
                    start = time.perf_counter()
                    spec.run(MethodCall(backend, base, model, config, _context(), picked))
                    seconds = time.perf_counter() - start
                    torch.set_num_threads(max(threads))
                    scores = judge_scores(base, before, model.generator, concept, scored, attack=split == "eval")
                    runs.append({"threads": thread_count, "seed": seed, "seconds": seconds, **scores})
                    print(f"# {method} {concept_text} seed {seed} threads {thread_count}: "
                          + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()) + f", {seconds:.1f} s", flush=True)
            yield from summarise(f"gan.{method}.{concept_text}", runs, max(threads), len(scored))
        if gold_standard and gold_of(base, concept, scored) is not None:
            prefix = f"gan.gold.{concept_text}"
            scores = judge_scores(base, before, base.gold[concept.attribute](), concept, scored,
                                  attack=split == "eval")
            for key, value in scores.items():
                yield {"name": f"{prefix}.{key}", "value": round(value, 4), "unit": _unit(key)}


def _unit(key: str) -> str:
    return "pts" if key.endswith("_pts") else "%" if key.endswith("_after") else "ratio" \
        if "ratio" in key else "share"


def summarise(prefix: str, runs: list[dict], main_threads: int, samples: int) -> Iterator[dict]:
    """Mean at the main thread count, worst over all runs, per-thread means, median seconds."""
    main = [r for r in runs if r["threads"] == main_threads] or runs
    yield {"name": f"{prefix}.judge_presence_ratio",
           "value": round(float(np.mean([r["judge_presence_ratio"] for r in main])), 4), "unit": "ratio"}
    for thread_count in sorted({r["threads"] for r in runs}):
        per = [r["judge_presence_ratio"] for r in runs if r["threads"] == thread_count]
        yield {"name": f"{prefix}.judge_presence_ratio_t{thread_count}", "value": round(float(np.mean(per)), 4),
               "unit": "ratio"}
    yield {"name": f"{prefix}.judge_presence_ratio_max",
           "value": round(max(r["judge_presence_ratio"] for r in runs), 4), "unit": "ratio"}
    yield {"name": f"{prefix}.judge_collateral_max_pts",
           "value": round(max(r["judge_collateral_max_pts"] for r in runs), 2), "unit": "pts"}
    yield {"name": f"{prefix}.clip_presence_ratio",
           "value": round(float(np.mean([r["clip_presence_ratio"] for r in main])), 4), "unit": "ratio"}
    yield {"name": f"{prefix}.redistribution_err_pts",
           "value": round(max(r["redistribution_err_pts"] for r in runs), 2), "unit": "pts"}
    if all("latent_attack_success" in r for r in runs):
        yield {"name": f"{prefix}.latent_attack_success",
               "value": round(float(np.mean([r["latent_attack_success"] for r in runs])), 4), "unit": "share"}
    yield {"name": f"{prefix}.seconds", "value": round(statistics.median(r["seconds"] for r in main), 1),
           "unit": "s"}
    yield {"name": f"{prefix}.n_samples", "value": samples, "unit": "samples"}
    yield {"name": f"{prefix}.n_runs", "value": len(runs), "unit": "runs"}


def parse_setting(item: str) -> tuple[str, object]:
    """``"steps=160"`` -> ("steps", 160); JSON values (numbers, true / false), else the text itself."""
    import json

    name, _, text = item.partition("=")
    try:
        return name, json.loads(text)
    except ValueError:
        return name, text


def main(argv: list[str] | None = None) -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="methods, concepts and/or 'gold'")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--threads", default=",".join(map(str, THREADS)))
    parser.add_argument("--split", default="eval", choices=("eval", "tune"))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a method setting (tune sweeps; the reported benchmark uses the defaults)")
    args = parser.parse_args(argv)
    named = tuple(a for a in args.names if a in methods())
    chosen = named or (() if "gold" in args.names else None)
    for row in run(chosen, tuple(a for a in args.names if a in CONCEPTS) or CONCEPTS,
                   gold_standard="gold" in args.names or not named,
                   seeds=tuple(int(s) for s in args.seeds.split(",")),
                   threads=tuple(int(t) for t in args.threads.split(",")), split=args.split,
                   overrides=dict(map(parse_setting, args.set))):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
