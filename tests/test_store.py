import threading

import pytest

from backends import registry
from backends.store import ModelStore


class Counting:
    """Wraps the toy preset's loader to count loads."""

    def __init__(self, monkeypatch):
        self.calls = 0
        spec = registry.preset("toy", "toy")
        original = spec.load

        def load(device):
            self.calls += 1
            return original(device)

        monkeypatch.setitem(registry._presets["toy"], "toy", spec.__class__(
            spec.backend, spec.name, spec.title, load, spec.offline, spec.description))


def test_base_loads_once_under_concurrency(monkeypatch):
    counter = Counting(monkeypatch)
    store = ModelStore(device="cpu")
    got = []
    threads = [threading.Thread(target=lambda: got.append(store.base("toy", "toy"))) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert counter.calls == 1 and all(g is got[0] for g in got)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown toy preset 'some/repo'"):
        ModelStore(device="cpu").base("toy", "some/repo")


def test_sessions_are_isolated_and_reset_restores_base():
    store = ModelStore(device="cpu")
    base = store.base("toy", "toy")
    edited = registry.backend("toy").clone(base)
    store.commit("alice", "toy", "toy", edited, {"method": "dim"})
    assert store.current("alice", "toy", "toy") is edited
    assert store.current("bob", "toy", "toy") is base
    assert store.reset("alice", "toy", "toy")
    assert store.current("alice", "toy", "toy") is base
    assert not store.reset("alice", "toy", "toy")


def test_commits_chain_run_cards():
    store = ModelStore(device="cpu")
    be = registry.backend("toy")
    base = store.base("toy", "toy")
    store.commit("s", "toy", "toy", be.clone(base), {"concept": "red"})
    edit = store.commit("s", "toy", "toy", be.clone(base), {"concept": "green"})
    assert [r["concept"] for r in edit.runs] == ["red", "green"]


def test_lru_cap_evicts_least_recent_other_sessions():
    be = registry.backend("toy")
    one = be.nbytes(be.clone(ModelStore(device="cpu").base("toy", "toy")))
    store = ModelStore(max_edit_bytes=2 * one, device="cpu")
    base = store.base("toy", "toy")
    for session in ("a", "b"):
        store.commit(session, "toy", "toy", be.clone(base), {})
    store.edit("a", "toy", "toy")  # touch a: b is now least recent
    store.commit("c", "toy", "toy", be.clone(base), {})
    assert store.sessions() == {"a", "c"}
    assert store.was_evicted("b", "toy", "toy")
    assert store.total_edit_bytes() <= 2 * one
    store.drop_session("a")
    assert store.sessions() == {"c"}


def test_preload_loads_each_backends_default_offline_preset_in_the_background(lab):
    thread = lab.preload(["toy"])
    thread.join(60)
    assert not thread.is_alive()
    from backends import registry

    assert registry.default_preset("toy") == "toy"
    assert lab.store.is_loaded("toy", "toy")


def test_warm_up_caches_the_base_evaluation_of_every_methods_defaults(lab):
    from backends import registry
    from backends.config import build_config
    from backends.gan.backend import BASE_MEASUREMENTS
    from backends.jobs import JobContext

    registry.load_all(("backends.gan",))
    BASE_MEASUREMENTS.store.clear_memory()
    assert lab.warm_up("gan", "tiny") == len(registry.methods("gan"))  # no lesson uses the tiny preset
    base, be = lab.store.base("gan", "tiny"), registry.backend("gan")
    misses = BASE_MEASUREMENTS.store.misses
    for spec in registry.methods("gan").values():
        be.evaluate(base, be.clone(base), build_config(spec.config, {}), JobContext.standalone())
    assert BASE_MEASUREMENTS.store.misses == misses, "the first run's base and gold measurements were cached"


def test_warm_up_runs_for_every_backend_on_its_test_preset(lab):
    from backends import registry
    from backends.llm.backend import BASE_RESULTS

    registry.load_all()
    for backend in ("diffusion", "llm"):
        assert lab.warm_up(backend, "tiny") == len(registry.methods(backend)), backend
    assert BASE_RESULTS.misses > 0, "the LLM base results were computed"
    misses = BASE_RESULTS.misses
    lab.warm_up("llm", "tiny")
    assert BASE_RESULTS.misses == misses, "and served from the cache the second time"
