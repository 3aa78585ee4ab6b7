"""Contract tests run against every registered backend, on its tiny (or first offline) preset.

Every config (generation, method, attack) is used through its cheap ``smoke()`` classmethod
where it has one, else with its defaults.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from backends import registry
from backends.config import build_config, field_specs
from tests.cancel_anywhere import cancel_at_random_steps, picks_for, smoke_values
from tests.conftest import test_preset

BACKENDS = [b.name for b in registry.backends()]
METHODS = [(b, m) for b in BACKENDS for m in registry.methods(b)]
ATTACKS = [(b, a) for b in BACKENDS for a in registry.attacks(b)]
JOB_TIMEOUT = 120


def state_copy(backend, model) -> dict:
    return {k: v.detach().clone() for k, v in backend.state_tensors(model).items()}


def assert_same_state(before: dict, backend, model) -> None:
    import torch

    after = backend.state_tensors(model)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k].detach())]
    assert not changed, f"the base model changed: {changed[:5]}"


def assert_changed(base_state: dict, backend, edited) -> None:
    """A method that does nothing must fail the contract: some tensor of the edit differs from the base."""
    import torch

    after = backend.state_tensors(edited)
    assert after.keys() != base_state.keys() or any(
        not torch.equal(base_state[k], after[k].detach()) for k in base_state), "the edit changed nothing"


def generate_gallery(lab, backend, preset, session="s"):
    values = smoke_values(registry.backend(backend).generate_config)
    return lab.generate(session, backend, preset, values)


def finished(job):
    state = job.wait(JOB_TIMEOUT)
    assert state.is_finished, f"job did not finish within {JOB_TIMEOUT} s"
    return state


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_declares_a_complete_registry_entry(backend):
    be = registry.backend(backend)
    assert be.title and be.output in ("image", "text")
    assert registry.presets(backend), "a backend needs at least one preset"
    assert registry.methods(backend), "a backend needs at least one method"
    field_specs(be.generate_config)  # every field declared with param(...)
    for spec in [*registry.methods(backend).values(), *registry.attacks(backend).values()]:
        field_specs(spec.config)
        build_config(spec.config, {})


@pytest.mark.parametrize("backend", BACKENDS)
def test_generation_is_deterministic_and_well_formed(lab, backend):
    preset = test_preset(backend)
    be = registry.backend(backend)
    first, after = generate_gallery(lab, backend, preset)
    second, _ = generate_gallery(lab, backend, preset)
    assert after is None, "no edit yet, so there is no 'after'"
    assert first and [s.key for s in first] == [s.key for s in second]
    assert len({s.key for s in first}) == len(first), "sample keys must be unique"
    for a, b in zip(first, second):
        if be.output == "image":
            assert a.image.dtype == np.uint8 and a.image.ndim == 3 and a.image.shape[2] == 3
            assert np.array_equal(a.image, b.image), f"{a.key} differs between two identical requests"
        else:
            assert isinstance(a.text, str) and a.text == b.text


@pytest.mark.parametrize("backend, method", METHODS)
def test_method_edits_a_copy_and_never_the_base(lab, backend, method):
    preset = test_preset(backend)
    be = registry.backend(backend)
    spec = registry.method(backend, method)
    generate_gallery(lab, backend, preset)
    base = lab.store.base(backend, preset)
    before = state_copy(be, base)
    values = smoke_values(spec.config) | picks_for(spec.config)
    state = finished(lab.start_unlearning("s", backend, preset, method, values))
    assert state.status == "done", state.error
    assert state.edit_ready, "the edit is announced before its evaluation"
    assert state.result.metrics, "a run must report metrics"
    assert_same_state(before, be, base)
    assert lab.has_edit("s", backend, preset) and not lab.has_edit("other", backend, preset)
    assert_changed(before, be, lab.store.edit("s", backend, preset).model)
    before_samples, after_samples = generate_gallery(lab, backend, preset)
    assert after_samples is not None and [s.key for s in after_samples] == [s.key for s in before_samples]
    assert lab.runs("s", backend, preset)[-1]["method"] == method


@pytest.mark.parametrize("backend, method", METHODS)
def test_cancel_and_failure_leave_every_model_as_it_was(lab, backend, method, monkeypatch):
    preset = test_preset(backend)
    be = registry.backend(backend)
    spec = registry.method(backend, method)
    generate_gallery(lab, backend, preset)
    base = lab.store.base(backend, preset)
    before = state_copy(be, base)
    values = smoke_values(spec.config) | picks_for(spec.config)

    # Cancel: the stop flag is already set when the method reaches its first step.
    original_submit = lab.jobs.submit

    def submit_cancelled(session, title, fn):
        gate = threading.Event()

        def gated(ctx):
            gate.wait(5)
            return fn(ctx)

        job = original_submit(session, title, gated)
        job.stop.set()
        gate.set()
        return job

    monkeypatch.setattr(lab.jobs, "submit", submit_cancelled)
    assert finished(lab.start_unlearning("s", backend, preset, method, values)).status == "cancelled"
    monkeypatch.setattr(lab.jobs, "submit", original_submit)
    assert not lab.has_edit("s", backend, preset)
    assert_same_state(before, be, base)

    # Failure during evaluation (edit first, evidence after): the finished edit is kept, without metrics,
    # and the base is untouched.
    monkeypatch.setattr(type(be), "evaluate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    state = finished(lab.start_unlearning("s", backend, preset, method, values))
    assert state.status == "failed" and "boom" in state.error and state.edit_ready
    assert lab.has_edit("s", backend, preset)
    assert lab.runs("s", backend, preset)[-1]["metrics"] is None
    assert_same_state(before, be, base)


@pytest.mark.parametrize("backend, attack", ATTACKS)
def test_attacks_run_on_base_and_edit(lab, backend, attack):
    preset = test_preset(backend)
    spec = registry.attack(backend, attack)
    generate_gallery(lab, backend, preset)
    values = smoke_values(spec.config) | picks_for(spec.config)
    state = finished(lab.start_attack("s", backend, preset, attack, values))
    assert state.status == "done", state.error
    assert state.result.summary, "an attack must summarise base vs edited"


@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_map_and_export(lab, backend):
    preset = test_preset(backend)
    be = registry.backend(backend)
    gen = smoke_values(be.generate_config)
    session = "visitor-secret-123"
    data, coords, how = lab.embedding_map(session, backend, preset, gen)
    assert set(data.groups) <= {"before", "anchor"}, "no edit yet: only base points"
    assert coords.shape == (len(data.labels), 2) and np.isfinite(coords).all()
    with pytest.raises(ValueError, match="nothing to export"):
        lab.export(session, backend, preset)

    method, spec = next(iter(registry.methods(backend).items()))
    generate_gallery(lab, backend, preset, session)
    values = smoke_values(spec.config) | picks_for(spec.config)
    assert finished(lab.start_unlearning(session, backend, preset, method, values)).status == "done"
    for view, _ in be.map_views:
        data, coords, _ = lab.embedding_map(session, backend, preset, gen, view)
        assert "after" in data.groups, f"map view {view} shows no edited points"
        assert coords.shape == (len(data.labels), 2) and len(data.names) == len(data.labels)
    with pytest.raises(ValueError, match="unknown map view"):
        lab.embedding_map(session, backend, preset, gen, "nope")

    from safetensors.torch import load_file

    weights, card = lab.export(session, backend, preset)
    tensors = load_file(weights)
    card_data = json.loads(Path(card).read_text())
    assert card_data["runs"][-1]["method"] == method and "versions" in card_data
    assert set(tensors) == set(card_data["changed_tensors"])
    assert session not in weights and session not in Path(card).read_text(), "session ids must stay private"


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_restores_base_outputs_exactly(lab, backend):
    preset = test_preset(backend)
    method, spec = next(iter(registry.methods(backend).items()))
    base_samples, _ = generate_gallery(lab, backend, preset)
    values = smoke_values(spec.config) | picks_for(spec.config)
    assert finished(lab.start_unlearning("s", backend, preset, method, values)).status == "done"
    assert lab.reset("s", backend, preset)
    again, after = generate_gallery(lab, backend, preset)
    assert after is None
    for a, b in zip(base_samples, again):
        if a.image is not None:
            assert np.array_equal(a.image, b.image)
        else:
            assert a.text == b.text


CHAT_BACKENDS = [b for b in BACKENDS if hasattr(registry.backend(b), "chat")]


@pytest.mark.parametrize("backend", CHAT_BACKENDS)
def test_chat_answers_with_base_and_then_with_the_edit(lab, backend):
    preset = test_preset(backend)
    base_answer, edited_answer = lab.chat("s", backend, preset, "Say hello.")
    assert isinstance(base_answer, str) and edited_answer is None
    with pytest.raises(ValueError, match="type a message"):
        lab.chat("s", backend, preset, "   ")
    method, spec = next(iter(registry.methods(backend).items()))
    generate_gallery(lab, backend, preset)
    values = smoke_values(spec.config) | picks_for(spec.config)
    assert finished(lab.start_unlearning("s", backend, preset, method, values)).status == "done"
    again, edited_answer = lab.chat("s", backend, preset, "Say hello.")
    assert again == base_answer, "the base model's answer must not change after an edit"
    assert isinstance(edited_answer, str)


#: Seeded random-step cancels per method (the benchmark runs the same helper, also 10 per method).
CANCEL_TRIALS = 10


@pytest.mark.parametrize("backend, method", METHODS)
def test_cancel_at_a_random_step_keeps_the_base_and_the_previous_edit(lab, backend, method):
    trials = cancel_at_random_steps(lab, backend, test_preset(backend), method, trials=CANCEL_TRIALS)
    assert len(trials) == CANCEL_TRIALS
    assert all(t.base_identical for t in trials), "a cancel changed the base weights"
    assert all(t.previous_edit_intact for t in trials), "a cancel inside the method changed the previous edit"
    assert all(t.ok for t in trials), [t for t in trials if not t.ok]
    assert any(t.status == "cancelled" for t in trials), "no trial was cancelled"
