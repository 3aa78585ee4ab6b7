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
