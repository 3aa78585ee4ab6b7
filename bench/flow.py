"""Workshop flow benchmark: each guided lesson driven through ``backends.lab.Lab`` as the Lessons tab does.

For every lesson (backends/lessons.py), on a fresh Lab started as the app starts (``Lab.preload``: the default
model loads and the base-evaluation cache warms in the background; the start-up time is reported apart):
  flow.<backend>.startup_s                   background start-up: load + warm-up (the page is up meanwhile)
  flow.<backend>.first_generate_s            step 1 after start-up (target <= 10)
  flow.<backend>.<method>.edit_visible_s     click Unlearn -> the edit exists and the tab shows it
  flow.<backend>.<method>.metrics_final_s    click Unlearn -> metrics final (warm base cache)
  flow.lesson.<name>.seconds                 the three steps end to end (target <= 120 on 2 cores)
and for the other methods the issue times with their defaults (FLOW_METHODS: ESD-x, Neuron Adjust), the same
edit_visible_s / metrics_final_s on a started Lab; and, on the GAN lesson's settings:
  flow.base_cache.hit_speedup                base evaluation computed (cold) / read back by a new server from
                                             the disk cache (warm) (target >= 5)
  flow.concurrent8.uce.edit_visible_p95_s    8 visitors click the diffusion lesson's Unlearn at once on one
                                             server: 95th percentile of click -> edit visible (target <= 30)
``python -m bench --only flow.`` runs all; ``python -m bench.flow gan`` one lesson (``methods``, ``cache``,
``concurrent``: the extra measurements).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import numpy as np

POLL_S = 0.05
VISITORS = 8
#: Methods timed with their defaults beside the lessons' (backend, method).
FLOW_METHODS = (("diffusion", "esd_x"), ("llm", "neuron_adjust"))


def _wait(job, on_edit=None) -> object:
    while True:
        state = job.wait(POLL_S)
        if on_edit is not None and state.edit_ready:
            on_edit()
            on_edit = None
        if state.is_finished:
            if state.status != "done":
                raise RuntimeError(f"{job.title}: {state.status}: {state.error}")
            return state


def _lab():
    from backends.jobs import JobManager
    from backends.lab import Lab
    from backends.store import ModelStore

    return Lab(ModelStore(device="cpu"), JobManager(concurrency=1))


def lessons(names: tuple[str, ...] | None) -> Iterator[dict]:
    from backends import lessons as lesson_book

    for name, lesson in lesson_book.LESSONS.items():
        if names and name not in names:
            continue
        lab = _lab()
        started = time.perf_counter()
        lab.preload([lesson.backend]).join()
        yield {"name": f"flow.{lesson.backend}.startup_s", "value": round(time.perf_counter() - started, 2),
               "unit": "s"}
        generate, unlearn, attack = lesson.steps
        started = time.perf_counter()
        lab.generate("bench", lesson.backend, lesson.preset, generate.values)
        yield {"name": f"flow.{lesson.backend}.first_generate_s", "value": round(time.perf_counter() - started, 2),
               "unit": "s"}
        visible, final = timed_unlearning(lab, "bench", lesson.backend, lesson.preset, unlearn.name, unlearn.values)
        prefix = f"flow.{lesson.backend}.{unlearn.name}"
        yield {"name": f"{prefix}.edit_visible_s", "value": round(visible, 2), "unit": "s"}
        yield {"name": f"{prefix}.metrics_final_s", "value": round(final, 2), "unit": "s"}
        _wait(lab.start_attack("bench", lesson.backend, lesson.preset, attack.name, attack.values))
        yield {"name": f"flow.lesson.{name}.seconds", "value": round(time.perf_counter() - started, 1), "unit": "s"}


def timed_unlearning(lab, session: str, backend: str, preset: str, method: str, values: dict) -> tuple[float, float]:
    """(click -> edit visible, click -> metrics final) in seconds."""
    clicked, visible = time.perf_counter(), []
    _wait(lab.start_unlearning(session, backend, preset, method, values), lambda: visible.append(time.perf_counter()))
    return visible[0] - clicked, time.perf_counter() - clicked


def methods() -> Iterator[dict]:
    """FLOW_METHODS with their defaults, each on a Lab after start-up."""
    from backends import registry

    for backend, method in FLOW_METHODS:
        lab, preset = _lab(), registry.default_preset(backend)
        lab.preload([backend]).join()
        lab.generate("bench", backend, preset, {})
        visible, final = timed_unlearning(lab, "bench", backend, preset, method, {})
        yield {"name": f"flow.{backend}.{method}.edit_visible_s", "value": round(visible, 2), "unit": "s"}
        yield {"name": f"flow.{backend}.{method}.metrics_final_s", "value": round(final, 2), "unit": "s"}


def base_cache() -> Iterator[dict]:
    """Cold base evaluation (computed) vs the same evaluation read back from disk by a fresh cache."""
    from backends import lessons as lesson_book
    from backends import registry
    from backends.config import build_config
    from backends.gan import backend as gan
    from backends.jobs import JobContext

    lesson = lesson_book.LESSONS["gan"]
    unlearn = lesson.steps[1]
    config = build_config(registry.method("gan", unlearn.name).config, unlearn.values)
    base = _lab().store.base("gan", lesson.preset)
    saved = {name: os.environ.pop(name, None) for name in ("UNLEARNING_LAB_CACHE", "UNLEARNING_LAB_EVAL_CACHE_MB")}
    timings = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            os.environ["UNLEARNING_LAB_CACHE"] = folder
            for _ in range(2):  # computed, then read by a new server (empty memory, same disk)
                gan.BASE_MEASUREMENTS.store.clear_memory()
                started = time.perf_counter()
                registry.backend("gan").warm_up(base, config, JobContext.standalone())
                timings.append(time.perf_counter() - started)
    finally:
        gan.BASE_MEASUREMENTS.store.clear_memory()
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
    yield {"name": "flow.base_cache.cold_s", "value": round(timings[0], 2), "unit": "s"}
    yield {"name": "flow.base_cache.warm_s", "value": round(timings[1], 3), "unit": "s"}
    yield {"name": "flow.base_cache.hit_speedup", "value": round(timings[0] / max(timings[1], 1e-6), 1), "unit": "x"}


def concurrent(visitors: int = VISITORS) -> Iterator[dict]:
    """``visitors`` sessions click the diffusion lesson's Unlearn (UCE) at the same moment on one server."""
    from backends import lessons as lesson_book

    lesson = lesson_book.LESSONS["diffusion"]
    generate, unlearn, _ = lesson.steps
    lab = _lab()
    lab.preload([lesson.backend]).join()
    sessions = [f"visitor{k}" for k in range(visitors)]
    for session in sessions:
        lab.generate(session, lesson.backend, lesson.preset, generate.values)
    visible: dict[str, float] = {}
    barrier = threading.Barrier(visitors)

    def visit(session: str) -> None:
        barrier.wait()
        clicked = time.perf_counter()
        job = lab.start_unlearning(session, lesson.backend, lesson.preset, unlearn.name, unlearn.values)
        _wait(job, lambda: visible.setdefault(session, time.perf_counter() - clicked))

    threads = [threading.Thread(target=visit, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waits = np.array([visible[s] for s in sessions])
    prefix = f"flow.concurrent{visitors}.{unlearn.name}"
    yield {"name": f"{prefix}.edit_visible_p95_s", "value": round(float(np.percentile(waits, 95)), 2), "unit": "s"}
    yield {"name": f"{prefix}.edit_visible_max_s", "value": round(float(waits.max()), 2), "unit": "s"}


def run(names: tuple[str, ...] | None = None) -> Iterator[dict]:
    from backends import registry

    registry.load_all()
    extras = {"methods", "cache", "concurrent"}
    lesson_names = tuple(n for n in names or () if n not in extras)
    if not names or lesson_names:
        yield from lessons(lesson_names or None)
    if not names or "methods" in names:
        yield from methods()
    if not names or "cache" in names:
        yield from base_cache()
    if not names or "concurrent" in names:
        yield from concurrent()


if __name__ == "__main__":
    import json

    for row in run(tuple(sys.argv[1:]) or None):
        print(json.dumps(row), flush=True)
