"""Small statistics shared by every backend's metrics: rates with intervals.

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
