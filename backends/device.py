"""Run-time device choice: CUDA on a GPU Space, CPU elsewhere. Never decided at import time."""
from __future__ import annotations

import os


def pick_device(device: str | None = None) -> str:
    """``device`` when given; else ``UNLEARNING_LAB_DEVICE`` if set, else "cuda" when available, else "cpu"."""
    if device:
        return device
    forced = os.environ.get("UNLEARNING_LAB_DEVICE")
    if forced:
        if forced not in ("cpu", "cuda") and not forced.startswith("cuda:"):
            raise ValueError(f"UNLEARNING_LAB_DEVICE must be cpu, cuda or cuda:N, not {forced!r}")
        return forced
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
