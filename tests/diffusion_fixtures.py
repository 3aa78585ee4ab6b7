"""Module-scoped fixtures of the diffusion tests: the tiny seeded preset and the backend."""
from __future__ import annotations

import pytest

from backends import registry


@pytest.fixture(scope="module")
def tiny():
    import backends.diffusion  # noqa: F401

    return registry.preset("diffusion", "tiny").load("cpu")


@pytest.fixture(scope="module")
def backend():
    import backends.diffusion  # noqa: F401

    return registry.backend("diffusion")


def text_steered(tiny, **changes):
    """The tiny model with its cross-attention values amplified x30, so that the prompt steers the denoiser:
    a random tiny model barely listens to its text (eps(x, c) - eps(x, "") ~ 1e-3 of eps), which leaves
    erasure nothing to erase. ``changes`` replace other fields (e.g. max_tokens)."""
    import copy
    import dataclasses

    import torch

    unet = copy.deepcopy(tiny.unet)
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2"):
                module.to_v.weight.mul_(30.0)
    return dataclasses.replace(tiny, unet=unet, _cache={}, **changes)
