"""FaceWorld attribute judge benchmark: is the judge right, and does it transfer to generator output?

Metrics:
- faceworld.judge.acc_min: lowest per-attribute accuracy on 4,000 fresh renders (seed JUDGE_BENCH_SEED, apart
  from the judge's training and held-out seeds), target >= 0.98; faceworld.judge.acc.<attr> per attribute.
- faceworld.judge.gan_freq_max_err_pts: largest |judged frequency on 2,000 base-GAN samples - the world's
  frequency| over every attribute value, in points (target <= 3). The world's frequencies are the renderer's
  ground-truth label frequencies of 20,000 sampled faces (no classifier involved).
- faceworld.judge.gan_code_agreement.<attr>: share of those base-GAN samples whose judged value is the value its
  latent code asks for (the mapping network decodes each attribute from z, backends/faceworld/latent_code.py):
  where the GAN draws something other than its code says, whatever the judge's frequencies; _min over attributes.
- faceworld.judge.gan_code_freq_max_err_pts: the same comparison as gan_freq_max_err_pts for the values the codes
  of those 2,000 seeds ask for: what a generator drawing every code faithfully would score (sampling noise of z).
- faceworld.judge.gold_glasses_pct: share of 2,000 samples of the gold "no glasses" GAN the judge sees with
  glasses or sunglasses, in % (target <= 1).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

PREFIX = "faceworld.judge"
JUDGE_BENCH_SEED = 20_261_201
WORLD_SEED = 20_261_202
NUM_RENDERS = 4000
NUM_SAMPLES = 2000


def world_frequencies(n: int = 20_000, seed: int = WORLD_SEED) -> dict[str, np.ndarray]:
    """attr -> (V,) ground-truth value frequencies of ``n`` sampled faces."""
    from backends.faceworld import world

    faces = world.sample_faces(n, seed)
    return {a: np.array([sum(f.attrs[a] == v for f in faces) for v in values]) / n
            for a, values in world.ATTRIBUTES.items()}


def value_frequencies(classes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """attr -> (V,) share of samples with each value index (a judge's classes, or the values latent codes ask for)."""
    from backends.faceworld import world
    from backends.gan.metrics import value_rates

    return {a: value_rates(c, len(world.ATTRIBUTES[a])) / 100 for a, c in classes.items()}


def code_values(gan, seeds: list[int]) -> dict[str, np.ndarray]:
    """attr -> (N,) value index the base GAN's latent code asks for at each seed (its training pool's layout:
    the seed and pool size in the asset's metadata; 3,000 faces give the same slices)."""
    import json

    from backends.faceworld import world
    from backends.faceworld.latent_code import LatentCode

    trained = json.loads(gan.metadata["train_config"])
    if trained["exclude"]:
        raise ValueError(f"code_values reads the base GAN's layout; this one excludes {trained['exclude']!r}")
    code = LatentCode(world.sample_faces(3000, trained["data_seed"]), gan.generator.config.z_dim)
    if tuple(code.groups()) != gan.generator.config.code_groups:
        raise ValueError("the GAN's code groups are not LatentCode's for its training pool")
    return code.attribute_values(gan.z_from_seeds(seeds).cpu().numpy(), gan.generator.mapping.code_bias.cpu().numpy())


def run() -> Iterator[dict]:
    from backends.faceworld import world
    from backends.faceworld.gan import load_gan
    from backends.faceworld.judge import load_judge

    judge = load_judge("cpu")
    faces = world.sample_faces(NUM_RENDERS, JUDGE_BENCH_SEED)
    classes = judge.classify(world.render_small(faces))
    accuracies = {a: float(np.mean([values[i] == f.attrs[a] for i, f in zip(classes[a], faces)]))
                  for a, values in world.ATTRIBUTES.items()}
    yield {"name": f"{PREFIX}.acc_min", "value": round(min(accuracies.values()), 4), "unit": "accuracy"}
    for attribute, accuracy in accuracies.items():
        yield {"name": f"{PREFIX}.acc.{attribute}", "value": round(accuracy, 4), "unit": "accuracy"}

    truth = world_frequencies()
    seeds = list(range(NUM_SAMPLES))
    gan = load_gan("base", device="cpu")
    judged = judge.classify(gan.generate(seeds))
    base = value_frequencies(judged)
    errors = {a: float(np.abs(base[a] - truth[a]).max() * 100) for a in truth}
    yield {"name": f"{PREFIX}.gan_freq_max_err_pts", "value": round(max(errors.values()), 2), "unit": "pts"}
    for attribute, error in errors.items():
        yield {"name": f"{PREFIX}.gan_freq_err_pts.{attribute}", "value": round(error, 2), "unit": "pts"}

    coded = code_values(gan, seeds)
    asked = value_frequencies(coded)
    floor = max(float(np.abs(asked[a] - truth[a]).max() * 100) for a in truth)
    yield {"name": f"{PREFIX}.gan_code_freq_max_err_pts", "value": round(floor, 2), "unit": "pts"}
    agreement = {a: float(np.mean(judged[a] == coded[a])) for a in coded}
    yield {"name": f"{PREFIX}.gan_code_agreement_min", "value": round(min(agreement.values()), 4), "unit": "share"}
    for attribute, share in agreement.items():
        yield {"name": f"{PREFIX}.gan_code_agreement.{attribute}", "value": round(share, 4), "unit": "share"}

    gold = value_frequencies(judge.classify(load_gan("no_glasses", device="cpu").generate(seeds)))
    none = world.ATTRIBUTES["glasses"].index("none")
    yield {"name": f"{PREFIX}.gold_glasses_pct", "value": round((1 - float(gold["glasses"][none])) * 100, 2),
           "unit": "%"}
