"""Evaluations of frozen base (and gold) models, computed once per server and shared by every visitor and run.

A base model never changes, so its evaluation on fixed seeds or items is the same for everyone: the first run
pays for it, the next runs (and the next server start, through the disk copy) read it. Keys hold everything
the numbers depend on: the preset, a fingerprint of the model's weights, the settings and the seeds, so other
weights or settings can never return stale numbers.

Two layers, both bounded: memory (least recently used entries beyond ``capacity`` go) and disk, under
``$UNLEARNING_LAB_CACHE/evaluations`` (default ``~/.cache/unlearning-lab``; oldest files beyond
``$UNLEARNING_LAB_EVAL_CACHE_MB``, default 256, go; ``0`` turns the disk copy off). On disk a value is an
``.npz`` of arrays read with ``allow_pickle=False`` (never pickle): each user of the cache gives ``encode``
(value -> {name: array}) and ``decode`` (the reverse).
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_DISK_MB = 256
#: Stored in place of ``None`` (a model that cannot be measured, e.g. no gold standard for a concept).
_NONE_MARK = "__none__"


def cache_root() -> Path:
    """Where the lab keeps files between runs: ``$UNLEARNING_LAB_CACHE`` or ``~/.cache/unlearning-lab``."""
    root = os.environ.get("UNLEARNING_LAB_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "unlearning-lab"


def fingerprint(tensors: Iterable[tuple[str, Any]]) -> str:
    """sha1 of named tensors (torch or numpy): a weights fingerprint for cache keys."""
    digest = hashlib.sha1()
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        array = tensor.detach().cpu().contiguous().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class EvaluationCache:
    """Memory + disk cache of base-model evaluations (see the module docstring). Thread-safe; concurrent
    misses of one key may compute twice (both give the same numbers), never block each other's sessions."""

    def __init__(self, name: str, capacity: int = 16, directory: Path | None = None,
                 disk_mb: float | None = None):
        self.name = name
        self.capacity = capacity
        self._directory = directory
        self._disk_mb = disk_mb
        self._items: "OrderedDict[str, Any]" = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.disk_hits = self.misses = 0

    @property
    def directory(self) -> Path | None:
        """The disk folder, or None when the disk copy is off (read at use, so tests and servers can set it)."""
        if self.disk_mb <= 0:
            return None
        return (self._directory or cache_root() / "evaluations") / self.name

    @property
    def disk_mb(self) -> float:
        if self._disk_mb is not None:
            return self._disk_mb
        raw = os.environ.get("UNLEARNING_LAB_EVAL_CACHE_MB", str(DEFAULT_DISK_MB))
        try:
            return float(raw)
        except ValueError:
            log.warning("UNLEARNING_LAB_EVAL_CACHE_MB=%r is not a number; using %s", raw, DEFAULT_DISK_MB)
            return DEFAULT_DISK_MB

    @staticmethod
    def key_of(parts: tuple) -> str:
        """A stable file-safe key: sha1 of the parts' repr (parts are str, numbers and tuples of them)."""
        return hashlib.sha1(repr(parts).encode()).hexdigest()

    def get(self, parts: tuple, compute: Callable[[], Any],
            encode: Callable[[Any], dict[str, np.ndarray]] | None = None,
            decode: Callable[[dict[str, np.ndarray]], Any] | None = None) -> Any:
        """The cached value of ``parts``, else ``compute()`` (stored in memory, and on disk when the caller
        gives ``encode`` and ``decode``)."""
        return self.get_many([parts], lambda missing: [compute()], encode, decode)[0]

    def get_many(self, parts: list[tuple], compute: Callable[[list[int]], list[Any]],
                 encode: Callable[[Any], dict[str, np.ndarray]] | None = None,
                 decode: Callable[[dict[str, np.ndarray]], Any] | None = None) -> list[Any]:
        """The cached values of several keys; those not cached come from one ``compute(indices)`` call, which
        returns the values of ``parts[i]`` for those indices, in order (models evaluate faster in one batch)."""
        keys = [self.key_of(p) for p in parts]
        values: dict[int, Any] = {}
        on_disk = encode is not None and decode is not None
        for i, key in enumerate(keys):
            with self._lock:
                if key in self._items:
                    self.hits += 1
                    self._items.move_to_end(key)
                    values[i] = self._items[key]
                    continue
            found, value = self._read(key, decode) if on_disk else (False, None)
            if found:
                self.disk_hits += 1
                values[i] = value
        missing = [i for i in range(len(keys)) if i not in values]
        computed = compute(missing) if missing else []
        if len(computed) != len(missing):
            raise RuntimeError(f"evaluation cache {self.name}: {len(computed)} values for {len(missing)} keys")
        for i, value in zip(missing, computed):
            values[i] = value
            self.misses += 1
            if on_disk:
                self._write(keys[i], value, encode)
        with self._lock:
            for i, key in enumerate(keys):
                self._items[key] = values[i]
                self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return [values[i] for i in range(len(keys))]

    def clear_memory(self) -> None:
        with self._lock:
            self._items.clear()

    # ---- disk ------------------------------------------------------------------------------
    def _read(self, key: str, decode) -> tuple[bool, Any]:
        """(found, value) from the disk copy."""
        directory = self.directory
        path = directory / f"{key}.npz" if directory else None
        if path is None or not path.is_file():
            return False, None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            return True, None if _NONE_MARK in arrays else decode(arrays)
        except Exception as exc:  # noqa: BLE001 - a damaged or outdated file is recomputed, never fatal
            log.warning("evaluation cache: dropping unreadable %s (%s)", path.name, exc)
            path.unlink(missing_ok=True)
            return False, None

    def _write(self, key: str, value: Any, encode) -> None:
        directory = self.directory
        if directory is None:
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            arrays = {_NONE_MARK: np.zeros(0)} if value is None else encode(value)
            partial = directory / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp.npz"
            np.savez(partial, **arrays)
            partial.replace(directory / f"{key}.npz")  # atomic: readers never see half a file
            self._trim(directory)
        except OSError as exc:
            log.warning("evaluation cache: cannot write to %s (%s); keeping it in memory only", directory, exc)

    def _trim(self, directory: Path) -> None:
        """Delete the oldest files until the folder is within ``disk_mb``."""
        files = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        budget = self.disk_mb * 2**20
        for path in files:
            if total <= budget:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
