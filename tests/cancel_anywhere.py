"""Cancel anywhere (issue 13, item 3): the one helper the contract tests and ``bench.reliability`` share.

For a registered method on a preset, it makes a first edit, then cancels new runs of the same request at
seeded random progress reports (``JobContext.step`` calls, the method's and its evaluation's), pressing
Cancel the way the UI does (``Lab.cancel``). After each trial it hashes the base weights (they must be
bit-identical) and the session's edit (cancelled inside the method: the previous edit, bit-identical;
cancelled during the evaluation: the new edit is kept, and becomes the "previous edit" of the next trial).
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from backends import registry
from backends.config import config_to_dict, field_specs
from backends.jobs import JobContext

SESSION = "cancel-anywhere"
JOB_TIMEOUT = 300


def smoke_values(config_cls: type) -> dict:
    """The values of a config's cheap ``smoke()`` (or its defaults), as the UI would send them."""
    smoke = getattr(config_cls, "smoke", None)
    return config_to_dict(smoke() if smoke else config_cls())


def picks_for(config_cls: type) -> dict:
    """Gallery samples 0 and 1 for every ``picked`` field (generate a gallery first)."""
    return {s.name: [0, 1] for s in field_specs(config_cls) if s.widget == "picked"}


def state_hash(backend: Any, model: Any) -> str:
    """SHA-256 of every state tensor (names, dtypes, shapes and bytes): equal hashes = bit-identical."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(backend.state_tensors(model).items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class CancelTrial:
    """One cancel: where, what the job said, and whether the models came through bit-identical."""

    stop_at: int                 # cancelled at this progress report (1-based) of the run
    reports: int                 # progress reports of a full run of the same request
    status: str                  # the job's final status
    edit_ready: bool             # the cancel came after the edit was committed (during the evaluation)
    base_identical: bool         # base weights hash unchanged
    previous_edit_intact: bool   # cancelled inside the method: the session's edit hash unchanged

    @property
    def ok(self) -> bool:
        return self.base_identical and self.previous_edit_intact and (
            self.status == "cancelled" or (self.status == "done" and self.edit_ready))


@contextmanager
def on_every_step(call: Callable[[], None]) -> Iterator[None]:
    """Call ``call()`` at every progress report (JobContext.step) of any job while the context is open."""
    original_step = JobContext.step

    def hooked(self, *args, **kwargs):
        call()
        return original_step(self, *args, **kwargs)

    JobContext.step = hooked
    try:
        yield
    finally:
        JobContext.step = original_step


def _finished(job) -> Any:
    state = job.wait(JOB_TIMEOUT)
    if not state.is_finished:
        raise TimeoutError(f"{job.title} did not finish within {JOB_TIMEOUT} s")
    return state


def cancel_at_random_steps(lab: Any, backend: str, preset: str, method: str, trials: int = 10,
                           seed: int = 0) -> list[CancelTrial]:
    """``trials`` seeded random-step cancels of ``method`` (smoke settings) after a first edit exists."""
    be = registry.backend(backend)
    config_cls = registry.method(backend, method).config
    values = smoke_values(config_cls) | picks_for(config_cls)
    lab.generate(SESSION, backend, preset, smoke_values(be.generate_config))

    reports: list[int] = []
    with on_every_step(lambda: reports.append(1)):
        first = _finished(lab.start_unlearning(SESSION, backend, preset, method, values))
    if first.status != "done":
        raise RuntimeError(f"{backend}/{method}: the first (uncancelled) run {first.status}: {first.error}")

    base = lab.store.base(backend, preset)
    base_hash = state_hash(be, base)
    edit_hash = state_hash(be, lab.store.edit(SESSION, backend, preset).model)
    rng, results = random.Random(seed), []
    for _ in range(trials):
        stop_at, seen = rng.randint(1, max(1, len(reports))), []

        def count_then_cancel(_stop_at=stop_at, _seen=seen) -> None:
            _seen.append(1)
            if len(_seen) == _stop_at:
                lab.cancel(SESSION)  # what the Cancel button does

        with on_every_step(count_then_cancel):
            state = _finished(lab.start_unlearning(SESSION, backend, preset, method, values))
        current = state_hash(be, lab.store.edit(SESSION, backend, preset).model)
        results.append(CancelTrial(
            stop_at=stop_at, reports=len(reports), status=state.status, edit_ready=state.edit_ready,
            base_identical=state_hash(be, base) == base_hash,
            previous_edit_intact=state.edit_ready or current == edit_hash))
        edit_hash = current  # cancelled during the evaluation: the new edit is the one to keep intact
    return results
