"""FaceWorld GAN benchmark: attribute frequencies of GAN samples vs training data, judged by FaceWorld CLIP.

Metrics:
- faceworld.gan.attr_freq_max_err_pts: largest |freq_GAN - freq_data| over every attribute value, in
  percentage points, for 2,000 samples of the base GAN (seeds 0..1999, psi 1.0) vs 2,000 held-out renders of
  the training distribution, both judged by CLIP zero-shot (so CLIP's own errors affect both sides alike);
  faceworld.gan.attr_freq_err_pts.<attr>: the same per attribute.
- faceworld.gan.sample64_s: seconds to generate 64 samples (uint8) with the base GAN.
- faceworld.gan_gold.*: the same error for the no-glasses gold model vs renders without glasses, and the
  share of its samples CLIP judges to wear glasses or sunglasses (glasses_freq), next to the same share on
  the glasses-free renders (data_glasses_freq: CLIP's false-positive floor).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from backends.faceworld.clip import FaceWorldClip

PREFIX = "faceworld.gan"
NUM_SAMPLES = 2000
DATA_SEED = 20_261_130       # held out: the training pools use seed 1
GOLD_EXCLUDE = {"glasses": ("glasses", "sunglasses")}


def render_data(n: int, seed: int, exclude: dict | None = None, image_size: int = 32) -> np.ndarray:
    """Training-distribution renders as the trainer sees them: 64 px, area-averaged to image_size. (n, s, s, 3)"""
    from backends.faceworld import world

    return world.render_small(world.sample_faces(n, seed, exclude=exclude), image_size)


def judged_frequencies(clip: FaceWorldClip, images: np.ndarray, batch: int = 500) -> dict[str, np.ndarray]:
    """attr -> (V,) share of images CLIP zero-shot assigns to each value of ATTRIBUTES[attr]."""
    import torch

    from backends.faceworld import world

    feats = torch.cat([clip.encode_images(images[i:i + batch]) for i in range(0, len(images), batch)])  # (N, D)
    freqs = {}
    for attr, values in world.ATTRIBUTES.items():
        predicted = (feats @ clip.class_embeddings(attr).T).argmax(-1).cpu().numpy()  # (N,)
        freqs[attr] = np.bincount(predicted, minlength=len(values)) / len(images)
    return freqs


def frequency_errors(model: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> dict[str, float]:
    """attr -> largest absolute frequency gap over its values, in percentage points."""
    return {attr: float(np.abs(model[attr] - data[attr]).max() * 100) for attr in data}


def _freq_metrics(prefix: str, clip: FaceWorldClip, samples: np.ndarray, data: np.ndarray) -> Iterator[dict]:
    from backends.faceworld import world

    model_freqs, data_freqs = judged_frequencies(clip, samples), judged_frequencies(clip, data)
    errors = frequency_errors(model_freqs, data_freqs)
    yield {"name": f"{prefix}.attr_freq_max_err_pts", "value": round(max(errors.values()), 2), "unit": "pts"}
    for attr, error in errors.items():
        yield {"name": f"{prefix}.attr_freq_err_pts.{attr}", "value": round(error, 2), "unit": "pts"}
    none_index = world.ATTRIBUTES["glasses"].index("none")
    yield {"name": f"{prefix}.glasses_freq", "value": round(1 - float(model_freqs["glasses"][none_index]), 4),
           "unit": "share"}
    yield {"name": f"{prefix}.data_glasses_freq", "value": round(1 - float(data_freqs["glasses"][none_index]), 4),
           "unit": "share"}


def run() -> Iterator[dict]:
    from backends.faceworld.clip import load_clip
    from backends.faceworld.gan import load_gan

    clip = load_clip("cpu")
    seeds = list(range(NUM_SAMPLES))

    gan = load_gan("base", device="cpu")
    gan.generate(seeds[:8])  # warm-up
    start = time.perf_counter()
    gan.generate(seeds[:64])
    yield {"name": "faceworld.gan.sample64_s", "value": round(time.perf_counter() - start, 4), "unit": "s"}
    yield from _freq_metrics("faceworld.gan", clip, gan.generate(seeds),
                             render_data(NUM_SAMPLES, DATA_SEED, image_size=gan.image_size))

    gold = load_gan("no_glasses", device="cpu")
    yield from _freq_metrics("faceworld.gan_gold", clip, gold.generate(seeds),
                             render_data(NUM_SAMPLES, DATA_SEED, GOLD_EXCLUDE, image_size=gold.image_size))
