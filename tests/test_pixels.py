"""The one pixel conversion (backends.pixels) every backend uses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backends.pixels import from_uint8, to_uint8


def test_uint8_round_trip_is_exact_and_out_of_range_values_clamp():
    images = np.random.default_rng(0).integers(0, 256, size=(3, 5, 7, 3), dtype=np.uint8)
    x = from_uint8(images)
    assert x.shape == (3, 3, 5, 7) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_uint8(x), images)
    assert to_uint8(torch.full((1, 3, 1, 1), 5.0)).tolist() == [[[[255, 255, 255]]]]


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 4, 3), dtype=np.float32), np.zeros((4, 4, 3), dtype=np.uint8),
                                 np.zeros((1, 4, 4, 4), dtype=np.uint8)])
def test_anything_but_uint8_nhwc3_is_refused(bad):
    with pytest.raises(ValueError, match="uint8 images of shape"):
        from_uint8(bad)
