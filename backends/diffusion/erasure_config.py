"""What every diffusion method is configured with (:class:`ErasureConfig`: the concept and the evaluation's
size) and what every diffusion attack is (:class:`ConceptConfig`: the concept). Method and attack configs
subclass these; their own fields follow and the form lists the evaluation fields last.
"""
from __future__ import annotations

from dataclasses import dataclass

from backends.config import param
from backends.diffusion.common import CHECK_SEEDS
from backends.faceworld.concepts import MAX_CONCEPT_CHARS, check_text


@dataclass(frozen=True)
class ConceptConfig:
    """A concept, in words, checked on construction (ValueError on empty or over-long text)."""

    concept: str = param("glasses", max_length=MAX_CONCEPT_CHARS,
                         help="The concept to erase, in words (e.g. glasses, hat, beard, sunglasses).")

    def __post_init__(self) -> None:
        check_text(self.concept)


@dataclass(frozen=True)
class ErasureConfig(ConceptConfig):
    """The concept plus the evaluation's size, which :meth:`DiffusionBackend.evaluate` and ``warm_up`` read."""

    eval_prompts: int = param(3, min=1, max=12, advanced=True, evaluation=True,
                              help="Evaluation: prompts per group (concept, neighbouring, unrelated), worded apart "
                                   "from every prompt a method trains on. More = slower, narrower intervals.")
    eval_seeds: int = param(CHECK_SEEDS, min=1, max=32, advanced=True, evaluation=True,
                            help="Evaluation: images per prompt (same seeds before and after). More = slower, "
                                 "steadier.")

    @classmethod
    def smoke(cls) -> "ErasureConfig":
        """A cheap configuration for the tiny preset (contract tests, cancel-anywhere, bench.reliability)."""
        return cls(eval_prompts=1, eval_seeds=1)
