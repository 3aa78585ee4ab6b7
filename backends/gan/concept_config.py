"""What every GAN method is configured with (:class:`GanConceptConfig`): the concept, resolved by
:func:`backends.gan.concepts.resolve`, and the evaluation's size, which :meth:`GanBackend.evaluate` and
``warm_up`` read. Method configs subclass it; their own fields follow and the form lists ``eval_samples`` last.
"""
from __future__ import annotations

from dataclasses import dataclass

from backends.config import param
from backends.gan.concepts import MAX_CONCEPT_CHARS


@dataclass(frozen=True)
class GanConceptConfig:
    """The concept to forget and how many samples measure the before/after."""

    concept: str = param("glasses", help="What to forget, in your words (e.g. glasses, a smile, spectacles)",
                         max_length=MAX_CONCEPT_CHARS)
    eval_samples: int = param(200, help="Samples used to measure presence, degree and preservation",
                              min=20, max=5000, evaluation=True)

    @classmethod
    def smoke(cls) -> "GanConceptConfig":
        """A cheap configuration for contract tests on the tiny preset."""
        return cls(eval_samples=40)
