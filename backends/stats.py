"""Small statistics shared by every backend's metrics: rates with intervals, the Fréchet distance.

A rate measured on n samples is an estimate; the table shows it with a 95 % Wilson score interval
(Wilson 1927; recommended over the normal approximation for small n and rates near 0 or 1 by
Brown, Cai & DasGupta, Statistical Science 2001).
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion, as fractions in [0, 1]."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)   # exact at the ends (no rounding past p)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def percent_with_interval(mask: np.ndarray) -> tuple[float, tuple[float, float], int]:
    """(rate %, (low %, high %), n) of a boolean mask."""
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.size)
    low, high = wilson_interval(int(mask.sum()), n)
    return (float(mask.mean() * 100) if n else 0.0), (low * 100, high * 100), n


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to feature sets
    ``(N, D)`` (Heusel et al., 2017, FID). With few samples the covariances are rank-deficient; the
    estimate is then biased upwards and only comparable between runs of the same size."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Frechet distance needs at least two embeddings on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():  # singular product: a tiny ridge
        eye = np.eye(cov_a.shape[0]) * 1e-6
        root, _ = linalg.sqrtm((cov_a + eye) @ (cov_b + eye), disp=False)
    return max(float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root))), 0.0)
