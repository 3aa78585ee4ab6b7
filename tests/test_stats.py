"""Rates with intervals (backends.stats)."""
from __future__ import annotations

import numpy as np
import pytest

from backends import stats


def test_wilson_interval_matches_a_textbook_value_and_contains_the_rate():
    low, high = stats.wilson_interval(10, 100)      # Brown, Cai & DasGupta (2001): [0.0552, 0.1744]
    assert low == pytest.approx(0.0552, abs=5e-4) and high == pytest.approx(0.1744, abs=5e-4)
    for k, n in ((0, 20), (20, 20), (3, 7), (1, 2000)):
        low, high = stats.wilson_interval(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0


def test_interval_narrows_with_more_samples_and_is_exact_at_the_ends():
    assert np.diff(stats.wilson_interval(40, 100)) > np.diff(stats.wilson_interval(400, 1000))
    assert stats.wilson_interval(0, 30)[0] == 0.0 and stats.wilson_interval(30, 30)[1] == 1.0
    assert stats.wilson_interval(0, 0) == (0.0, 1.0), "no samples: nothing is known"


def test_percent_with_interval_and_bad_counts():
    rate, (low, high), n = stats.percent_with_interval(np.array([True, False, False, False]))
    assert (rate, n) == (25.0, 4) and low < 25.0 < high
    with pytest.raises(ValueError):
        stats.wilson_interval(5, 3)
