"""Workshop flow benchmark: each guided lesson driven through ``backends.lab.Lab`` as the Lessons tab does.

For every lesson (backends/lessons.py), on a fresh Lab (cold: the model loads in the first step):
  flow.<backend>.first_generate_s            step 1, model load included (no background preloading yet)
  flow.<backend>.<method>.edit_visible_s     click Unlearn -> the edit exists and the tab shows it
  flow.<backend>.<method>.metrics_final_s    click Unlearn -> metrics final
  flow.lesson.<name>.seconds                 the three steps end to end (target <= 120 on 2 cores)
``python -m bench --only flow.`` runs all; ``python -m bench.flow gan`` one lesson.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator

POLL_S = 0.05


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


def run(names: tuple[str, ...] | None = None) -> Iterator[dict]:
    from backends import lessons, registry
    from backends.jobs import JobManager
    from backends.lab import Lab
    from backends.store import ModelStore

    registry.load_all()
    for name, lesson in lessons.LESSONS.items():
        if names and name not in names:
            continue
        lab = Lab(ModelStore(device="cpu"), JobManager(concurrency=1))
        generate, unlearn, attack = lesson.steps
        started = time.perf_counter()
        lab.generate("bench", lesson.backend, lesson.preset, generate.values)
        yield {"name": f"flow.{lesson.backend}.first_generate_s", "value": round(time.perf_counter() - started, 2),
               "unit": "s"}
        clicked, visible = time.perf_counter(), []
        job = lab.start_unlearning("bench", lesson.backend, lesson.preset, unlearn.name, unlearn.values)
        _wait(job, lambda: visible.append(time.perf_counter()))
        final = time.perf_counter()
        prefix = f"flow.{lesson.backend}.{unlearn.name}"
        yield {"name": f"{prefix}.edit_visible_s", "value": round(visible[0] - clicked, 2), "unit": "s"}
        yield {"name": f"{prefix}.metrics_final_s", "value": round(final - clicked, 2), "unit": "s"}
        _wait(lab.start_attack("bench", lesson.backend, lesson.preset, attack.name, attack.values))
        yield {"name": f"flow.lesson.{name}.seconds", "value": round(time.perf_counter() - started, 1), "unit": "s"}


if __name__ == "__main__":
    import json

    for row in run(tuple(sys.argv[1:]) or None):
        print(json.dumps(row), flush=True)
