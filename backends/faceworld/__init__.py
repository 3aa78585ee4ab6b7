"""FaceWorld: procedural cartoon faces with known attributes (world.py) and the models trained on them.

Submodules: world (renderer, sampler, captions; numpy + PIL), clip (CLIP-style model; torch imported lazily).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _DropPartialInit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized partially" not in record.getMessage()


@contextlib.contextmanager
def expected_load_notices_silenced() -> Iterator[None]:
    """Silence the notices every FaceWorld model load prints by design: MiniLM's unused pooler weights
    (transformers' load report) and open_clip's "initialized partially" (the trained parts load right after)."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    drop = _DropPartialInit()
    logging.getLogger().addFilter(drop)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(drop)
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
