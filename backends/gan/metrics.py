"""Measures of forgetting and of what was kept.

- degree of unlearning: Wasserstein-1 distance between the concept's CLIP alignment scores before and
  after (the Text-to-Unlearn paper's assessment; ``scipy.stats.wasserstein_distance``);
- presence and collateral damage: rates by the independent FaceWorld judge (:mod:`backends.faceworld.judge`),
  with CLIP zero-shot rates beside them (see :mod:`backends.gan.concepts`);
- perceptual distance: LPIPS has no weights offline, so we use its *unweighted* variant (Zhang et al.,
  CVPR 2018, "lin" layers replaced by a plain mean): channel-normalised activations of the first
  vision blocks of the preset's CLIP image tower, squared differences averaged over positions and
  blocks. Zhang et al. report the unweighted variant already tracks human judgements well;
- Frechet distance (:func:`backends.stats.frechet_distance`) between the judge's features (FID with
  features other than Inception's, as in Kynkaanniemi et al., ICLR 2023).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch


def wasserstein1(before: np.ndarray, after: np.ndarray) -> float:
    """Wasserstein-1 distance between two 1-D score samples (the degree of unlearning)."""
    from scipy.stats import wasserstein_distance

    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if before.size == 0 or after.size == 0:
        raise ValueError("Wasserstein-1 needs at least one score on each side")
    return float(wasserstein_distance(before, after))


def normalise_channels(features: "torch.Tensor") -> "torch.Tensor":
    """Unit-normalise each position's channel vector: (N, C, H, W) along C, (N, L, C) tokens along C."""
    dim = 1 if features.ndim == 4 else -1
    return features / (features.square().sum(dim=dim, keepdim=True).sqrt() + 1e-10)


def feature_distance(features_a: list["torch.Tensor"], features_b: list["torch.Tensor"],
                     pixels_a: "torch.Tensor", pixels_b: "torch.Tensor") -> "torch.Tensor":
    """Per-sample unweighted-LPIPS distance from matching activations; pixels when there are none. (N,)"""
    if not features_a:
        return (pixels_a - pixels_b).square().mean(dim=(1, 2, 3))
    total = 0.0
    for fa, fb in zip(features_a, features_b):
        diff = (normalise_channels(fa) - normalise_channels(fb)).square()
        if fa.ndim == 4:          # (N, C, H, W): sum over channels, mean over positions
            total = total + diff.sum(dim=1).mean(dim=(1, 2))
        else:                     # (N, L, C) tokens
            total = total + diff.sum(dim=-1).mean(dim=1)
    return total / len(features_a)


def perceptual_distance(feature_maps: Callable[["torch.Tensor"], list["torch.Tensor"]], images_a: "torch.Tensor",
                        images_b: "torch.Tensor", batch_size: int = 128) -> np.ndarray:
    """Unweighted-LPIPS proxy between aligned image pairs, on the activations ``feature_maps(images)``
    returns (no grad). The GAN tab passes the judge's conv features, which no method optimises; the CLIP
    blocks (:meth:`ImageTextEncoder.encode_images_with_features`) are what Text-to-Unlearn's perceptual
    loss minimises. (N,) numpy"""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images_a), batch_size):
            a, b = images_a[i:i + batch_size], images_b[i:i + batch_size]
            out.append(feature_distance(feature_maps(a), feature_maps(b), a, b).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def value_rates(classes: np.ndarray, num_values: int) -> np.ndarray:
    """Percent of samples per class index. (num_values,)"""
    counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=num_values)[:num_values]
    return counts / max(len(classes), 1) * 100.0


def collateral(classes_before: dict[str, np.ndarray], classes_after: dict[str, np.ndarray],
               num_values: dict[str, int], skip: str | None) -> dict[str, tuple[int, float, float]]:
    """For each attribute but ``skip``: (value index with the largest change, rate before %, rate after %)."""
    out = {}
    for attribute, before in classes_before.items():
        if attribute == skip:
            continue
        rb = value_rates(before, num_values[attribute])
        ra = value_rates(classes_after[attribute], num_values[attribute])
        worst = int(np.abs(ra - rb).argmax())
        out[attribute] = (worst, float(rb[worst]), float(ra[worst]))
    return out
