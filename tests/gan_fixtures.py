"""Module-scoped fixtures of the GAN tests: the tiny seeded preset."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def base():
    """The GAN backend's tiny seeded model (frozen base: tests edit clones of it)."""
    from backends.gan import presets

    return presets.tiny_model("cpu")
