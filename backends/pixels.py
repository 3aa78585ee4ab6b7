"""Pixel conversions between the models' float images and the uint8 images the app shows, one pair
for every backend: float ``(N, 3, H, W)`` in [-1, 1] <-> uint8 ``(N, H, W, 3)``."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


def to_uint8(images: "torch.Tensor") -> "np.ndarray":
    """Float ``(N, 3, H, W)`` in [-1, 1] (clamped) -> uint8 ``(N, H, W, 3)``, rounded."""
    import torch

    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu")
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def from_uint8(images: "np.ndarray", device: "str | torch.device | None" = None) -> "torch.Tensor":
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in [-1, 1]; ValueError on another shape or dtype."""
    import numpy as np
    import torch

    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {array.dtype} {array.shape}")
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    return x.to(device) if device else x
