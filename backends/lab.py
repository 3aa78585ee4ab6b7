"""The app's single entry point to compute: sessions, jobs, generation, maps, export.

Panels call a :class:`Lab`; a Lab owns the :class:`ModelStore` and :class:`JobManager`.
Every public method takes the visitor's session id, so one visitor's edit never serves another.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from backends import registry
from backends.config import build_config, config_to_dict
from backends.contract import AttackCall, MapData, MethodCall, RunResult, Sample
from backends.evaluation_cache import EvaluationCache
from backends.jobs import Job, JobContext, JobManager
from backends.store import ModelStore

GalleryKey = tuple[str, str, str]  # (session, backend, preset)
#: Base galleries kept per server (the base model's samples for one generate setting are everyone's).
BASE_GALLERIES = 32


log = logging.getLogger(__name__)


class Lab:
    """Facade over the store and the job manager (thread-safe)."""

    def __init__(self, store: ModelStore | None = None, jobs: JobManager | None = None):
        self.store = store or ModelStore(max_edit_bytes=int(float(os.environ.get("UNLEARNING_LAB_MAX_EDIT_GB", "4")) * 2**30))
        self.jobs = jobs or JobManager(int(os.environ.get("UNLEARNING_LAB_CONCURRENCY", "1")))
        self._lock = threading.Lock()
        self._galleries: dict[GalleryKey, list[Sample]] = {}
        self._base_galleries = EvaluationCache("galleries", capacity=BASE_GALLERIES)  # memory only

    # models ------------------------------------------------------------------------------
    def load(self, backend: str, preset: str) -> str:
        """Load a preset's base model (once per process) and say how long it took."""
        start = time.time()
        was_loaded = self.store.is_loaded(backend, preset)
        self.store.base(backend, preset)
        title = registry.preset(backend, preset).title
        return f"{title} ready" if was_loaded else f"{title} loaded in {time.time() - start:.1f} s"

    def preload(self, backends: list[str]) -> threading.Thread:
        """In a background thread, one backend after another: load the default preset
        (:func:`registry.default_preset`), so the first Generate does not wait for a load, then warm the
        base-evaluation cache (:meth:`Backend.warm_up`) for every method's defaults and every lesson's
        settings, so the first metrics do not wait for the base either. Failures are logged, never raised
        (the page is up)."""
        def work() -> None:
            for backend in backends:
                preset = registry.default_preset(backend)
                if preset is None:
                    continue
                try:
                    log.info("preloaded %s", self.load(backend, preset))
                    self.warm_up(backend, preset)
                except Exception:  # noqa: BLE001 - a preset that cannot load says so when a visitor asks
                    log.exception("preloading %s/%s failed", backend, preset)

        thread = threading.Thread(target=work, name="preload", daemon=True)
        thread.start()
        return thread

    def warm_up(self, backend: str, preset: str) -> int:
        """Cache the base gallery of the default and the lessons' generate settings, and the base evaluations
        every method's defaults and every lesson of ``preset`` will ask for; returns how many method
        configurations were warmed."""
        from backends import lessons

        be, base = registry.backend(backend), self.store.base(backend, preset)
        steps = [step for lesson in lessons.LESSONS.values() if (lesson.backend, lesson.preset) == (backend, preset)
                 for step in lesson.steps]
        for values in [{}] + [step.values for step in steps if step.action == "generate"]:
            self._base_samples(backend, preset, build_config(be.generate_config, values))
        configs = [build_config(spec.config, {}) for spec in registry.methods(backend).values()]
        configs += [build_config(registry.method(backend, step.name).config, step.values)
                    for step in steps if step.action == "unlearn"]
        for config in configs:
            be.warm_up(base, config, JobContext.standalone())
        return len(configs)

    def has_edit(self, session: str, backend: str, preset: str) -> bool:
        return self.store.edit(session, backend, preset) is not None

    def runs(self, session: str, backend: str, preset: str) -> list[dict[str, Any]]:
        edit = self.store.edit(session, backend, preset)
        return list(edit.runs) if edit else []

    # generation --------------------------------------------------------------------------
    def generate(self, session: str, backend: str, preset: str,
                 values: dict[str, Any]) -> tuple[list[Sample], list[Sample] | None]:
        """Samples of the base and, if the session has an edit, of the edit: same config, same seeds.

        The base samples become the session's gallery, from which forget samples are picked.
        """
        be = registry.backend(backend)
        config = build_config(be.generate_config, values)
        before = self._base_samples(backend, preset, config)
        edit = self.store.edit(session, backend, preset)
        after = be.generate(edit.model, config) if edit else None
        with self._lock:
            self._galleries[(session, backend, preset)] = before
        return before, after

    def _base_samples(self, backend: str, preset: str, config: Any) -> list[Sample]:
        """The base model's samples for ``config``: the same for every visitor, so generated once per
        server (the BASE_GALLERIES most recent settings are kept)."""
        return self._base_galleries.get(
            (backend, preset, sorted(config_to_dict(config).items())),
            lambda: registry.backend(backend).generate(self.store.base(backend, preset), config))

    def chat(self, session: str, backend: str, preset: str, message: str) -> tuple[str, str | None]:
        """One message answered by the base and, if there is one, by the session's edit."""
        be = registry.backend(backend)
        if not hasattr(be, "chat"):
            raise ValueError(f"the {be.title} tab has no chat")
        if not isinstance(message, str) or not message.strip():
            raise ValueError("type a message first")
        base = self.store.base(backend, preset)
        edit = self.store.edit(session, backend, preset)
        return be.chat(base, message.strip()), (be.chat(edit.model, message.strip()) if edit else None)

    def gallery(self, session: str, backend: str, preset: str) -> list[Sample]:
        with self._lock:
            return list(self._galleries.get((session, backend, preset), []))

    def _picked(self, session: str, backend: str, preset: str, config: Any) -> list[Sample]:
        """Resolve every ``picked`` field (gallery indices) of a config into samples."""
        from backends.config import field_specs

        gallery = self.gallery(session, backend, preset)
        picked: list[Sample] = []
        for spec in field_specs(type(config)):
            if spec.widget != "picked":
                continue
            for index in getattr(config, spec.name):
                if not 0 <= index < len(gallery):
                    raise ValueError(f"{spec.label}: sample {index} is not in the current gallery; "
                                     "generate samples and tick them again")
                picked.append(gallery[index])
        return picked

    # jobs --------------------------------------------------------------------------------
    def start_unlearning(self, session: str, backend: str, preset: str, method: str,
                         values: dict[str, Any]) -> Job:
        """Validate, then run a method on a clone of the session's current model in a worker.

        Edit first, evidence after: the clone becomes the session's edit as soon as the method finishes
        (the job's state says ``edit_ready``, so the UI shows edited samples at once); the evaluation
        follows and fills the run card's metrics. A method that fails or is cancelled leaves the base and
        the previous edit exactly as they were; cancelling (or a failure) during the evaluation keeps the
        new edit, without metrics.
        """
        be = registry.backend(backend)
        spec = registry.method(backend, method)
        config = build_config(spec.config, values)
        picked = self._picked(session, backend, preset, config)

        def work(ctx: JobContext) -> RunResult:
            started = time.time()
            ctx.phase("loading model")
            base = self.store.base(backend, preset)
            current = self.store.current(session, backend, preset)
            model = be.clone(current)
            ctx.phase(f"unlearning with {spec.title}")
            spec.run(MethodCall(be, base, model, config, ctx, picked))
            seconds = time.time() - started
            card = {
                "backend": backend, "preset": preset, "method": method, "method_title": spec.title,
                "concept": be.concept_of(config), "config": config_to_dict(config),
                "picked_seeds": [s.seed for s in picked], "seconds": round(seconds, 2),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "metrics": None,
            }
            ctx.check()  # the last moment a cancel discards the edit
            self.store.commit(session, backend, preset, model, card)
            ctx.mark_edit_ready()
            ctx.log(f"edit ready in {seconds:.1f} s; evaluating (cancel keeps the edit)")
            ctx.yield_to_edits()  # other visitors' edits go before this evaluation
            ctx.phase("evaluating")
            metrics = be.evaluate(base, model, config, ctx)
            card["metrics"] = [{"name": m.name, "before": m.before, "after": m.after, "unit": m.unit}
                               for m in metrics]
            ctx.log(f"evaluated in {time.time() - started - seconds:.1f} s")
            return RunResult(metrics=metrics, history=ctx.history,
                             summary=f"{spec.title} on {card['concept'] or 'the forget set'}: {seconds:.1f} s")

        return self.jobs.submit(session, f"{spec.title}", work)

    def start_attack(self, session: str, backend: str, preset: str, attack: str,
                     values: dict[str, Any]) -> Job:
        """Run an attack on the base and the session's edit (or the base alone) in a worker."""
        be = registry.backend(backend)
        spec = registry.attack(backend, attack)
        config = build_config(spec.config, values)
        picked = self._picked(session, backend, preset, config)

        def work(ctx: JobContext):
            ctx.phase("loading model")
            base = self.store.base(backend, preset)
            edit = self.store.edit(session, backend, preset)
            ctx.phase(f"attacking with {spec.title}")
            edited = edit.model if edit else base
            return spec.run(AttackCall(be, base, edited, edit is not None, config, ctx, picked))

        return self.jobs.submit(session, spec.title, work)

    def cancel(self, session: str) -> bool:
        return self.jobs.cancel(session)

    # maps, reset, export, leave ----------------------------------------------------------
    def embedding_map(self, session: str, backend: str, preset: str, values: dict[str, Any],
                      view: str = "embed") -> tuple[MapData, Any, str]:
        """Raw embeddings of base and edit for the same inputs, plus their 2-D projection.

        ``view`` is one of the backend's :attr:`~backends.contract.Backend.map_views`.
        """
        from backends.projection import project_2d

        be = registry.backend(backend)
        views = dict(be.map_views)
        if view not in views:
            raise ValueError(f"unknown map view {view!r}; valid: {', '.join(views)}")
        config = build_config(be.generate_config, values)
        base = self.store.base(backend, preset)
        edit = self.store.edit(session, backend, preset)
        data = getattr(be, view)(base, edit.model if edit else None, config)
        coords, how = project_2d(data.points)
        return data, coords, how

    def reset(self, session: str, backend: str, preset: str) -> bool:
        """Undo to base: drop the session's edit of this model."""
        return self.store.reset(session, backend, preset)

    def export(self, session: str, backend: str, preset: str) -> tuple[str, str]:
        """Write the edit's changed tensors (safetensors) and its run card (JSON); return the paths."""
        from backends.export import export_edit

        edit = self.store.edit(session, backend, preset)
        if edit is None:
            raise ValueError("nothing to export yet: run an unlearning method first")
        be = registry.backend(backend)
        return export_edit(be, self.store.base(backend, preset), edit, session)

    def leave(self, session: str) -> None:
        """Free a visitor's edits, gallery and job."""
        self.jobs.forget(session)
        self.store.drop_session(session)
        with self._lock:
            for key in [k for k in self._galleries if k[0] == session]:
                del self._galleries[key]
