"""What the FaceWorld trainers (train_gan.py, train_clip.py, train_judge.py) share: where their work files go
(checkpoints, data caches, logs), atomic writes, resumable checkpoints and a timestamped run log.

Work files default to ``$UNLEARNING_LAB_CACHE/training/<trainer>`` when that variable is set, else to
``<system temp folder>/unlearning-lab/training/<trainer>``; every trainer takes ``--work-dir`` to put them
elsewhere. Checkpoints hold tensors and plain values only and are read back with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def default_work_dir(trainer: str) -> Path:
    """Default folder of one trainer's work files (see the module docstring); not created here."""
    root = os.environ.get("UNLEARNING_LAB_CACHE")
    base = Path(root).expanduser() if root else Path(tempfile.gettempdir()) / "unlearning-lab"
    return base / "training" / trainer


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same suffix, so numpy keeps the name) to write into; it replaces
    ``path`` only when the block succeeds, so a killed run never leaves half a file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a resumable checkpoint (tensors, numbers, strings) atomically with torch.save."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` read with ``weights_only=True`` (no pickled code), or None if there is none."""
    import torch

    path = Path(path)
    return torch.load(path, weights_only=True, map_location=map_location) if path.is_file() else None


class RunLog:
    """``log(message)``: appends "HH:MM:SS [tag] message" to a log file (created with its folder) and, with
    ``echo``, prints it too."""

    def __init__(self, path: str | os.PathLike | None, tag: str, echo: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.tag = tag
        self.echo = echo
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} [{self.tag}] {message}"
        if self.echo:
            print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(line + "\n")
