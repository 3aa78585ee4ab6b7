"""Process-level model store: frozen bases shared by all sessions, bounded per-session edits.

Base models are loaded once per (backend, preset) and never mutated. Each session's edited
model lives in an LRU keyed by (session, backend, preset); when the total size passes the cap
the least recently used edits of *other* sessions are dropped. Models never live in gr.State.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from backends import registry
from backends.device import pick_device

EditKey = tuple[str, str, str]  # (session, backend, preset)


@dataclass
class Edit:
    """A session's edited model and the chain of runs that produced it."""

    model: Any
    nbytes: int
    runs: list[dict[str, Any]] = field(default_factory=list)  # run cards, oldest first
    touched: float = field(default_factory=time.time)


class ModelStore:
    """Thread-safe home of every model the app holds."""

    def __init__(self, max_edit_bytes: int = 4 * 2**30, device: str | None = None):
        self.max_edit_bytes = max_edit_bytes
        self._device = device
        self._lock = threading.RLock()
        self._bases: dict[tuple[str, str], Any] = {}
        # One load at a time, whatever the preset: model libraries (transformers, diffusers, open_clip) import
        # lazily, and two threads importing them at once fail ("cannot import name 'PreTrainedModel'").
        self._loading = threading.Lock()
        self._edits: OrderedDict[EditKey, Edit] = OrderedDict()
        self.evicted: set[EditKey] = set()

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device()
        return self._device

    # bases -------------------------------------------------------------------------------
    def is_loaded(self, backend: str, preset: str) -> bool:
        with self._lock:
            return (backend, preset) in self._bases

    def base(self, backend: str, preset: str, on_status: Callable[[str], None] | None = None) -> Any:
        """The shared frozen base model, loaded on first use (once, even under concurrency)."""
        spec = registry.preset(backend, preset)  # ValueError for anything not allow-listed
        key = (backend, preset)
        with self._lock:
            if key in self._bases:
                return self._bases[key]
        with self._loading:
            with self._lock:
                if key in self._bases:
                    return self._bases[key]
            if on_status:
                on_status(f"loading {spec.title}...")
            start = time.time()
            model = spec.load(self.device)
            with self._lock:
                self._bases[key] = model
            if on_status:
                on_status(f"{spec.title} loaded in {time.time() - start:.1f} s")
            return model

    # edits -------------------------------------------------------------------------------
    def edit(self, session: str, backend: str, preset: str) -> Edit | None:
        with self._lock:
            key = (session, backend, preset)
            edit = self._edits.get(key)
            if edit is not None:
                self._edits.move_to_end(key)
                edit.touched = time.time()
            return edit

    def current(self, session: str, backend: str, preset: str) -> Any:
        """The session's edited model if it has one, else the shared base."""
        edit = self.edit(session, backend, preset)
        return edit.model if edit is not None else self.base(backend, preset)

    def commit(self, session: str, backend: str, preset: str, model: Any, run_card: dict[str, Any]) -> Edit:
        """Make ``model`` the session's edit, appending ``run_card`` to its chain of runs."""
        nbytes = registry.backend(backend).nbytes(model)
        key = (session, backend, preset)
        with self._lock:
            previous = self._edits.pop(key, None)
            runs = (previous.runs if previous else []) + [run_card]
            edit = Edit(model, nbytes, runs)
            self._edits[key] = edit
            self.evicted.discard(key)
            self._evict(keep=key)
            return edit

    def _evict(self, keep: EditKey) -> None:
        while self.total_edit_bytes() > self.max_edit_bytes:
            victim = next((k for k in self._edits if k != keep), None)
            if victim is None:
                return
            del self._edits[victim]
            self.evicted.add(victim)

    def was_evicted(self, session: str, backend: str, preset: str) -> bool:
        with self._lock:
            return (session, backend, preset) in self.evicted

    def total_edit_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._edits.values())

    def reset(self, session: str, backend: str, preset: str) -> bool:
        """Undo every edit of this session to this model; True if there was one."""
        with self._lock:
            return self._edits.pop((session, backend, preset), None) is not None

    def drop_session(self, session: str) -> None:
        """Free everything a session holds (called when the visitor leaves)."""
        with self._lock:
            for key in [k for k in self._edits if k[0] == session]:
                del self._edits[key]
            self.evicted = {k for k in self.evicted if k[0] != session}

    def sessions(self) -> set[str]:
        with self._lock:
            return {k[0] for k in self._edits}
