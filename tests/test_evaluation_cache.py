"""The base-evaluation cache: computed once, kept across servers on disk, keyed, bounded, never unsafe."""
from __future__ import annotations

import numpy as np
import pytest

from backends.evaluation_cache import EvaluationCache, fingerprint


def encode(value: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(array) for name, array in value.items()}


def decode(arrays: dict[str, np.ndarray]) -> dict:
    return dict(arrays)


def counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value
    return compute, calls


def test_a_value_is_computed_once_then_served_from_memory(tmp_path):
    cache = EvaluationCache("t", directory=tmp_path, disk_mb=0)
    compute, calls = counting({"x": np.arange(3)})
    first = cache.get(("base", 1), compute, encode, decode)
    second = cache.get(("base", 1), compute, encode, decode)
    assert len(calls) == 1 and second is first
    assert (cache.hits, cache.misses) == (1, 1)
    assert not any(tmp_path.rglob("*.npz")), "disk_mb=0 keeps nothing on disk"


def test_another_server_reads_the_disk_copy_and_other_keys_compute_anew(tmp_path):
    value = {"presence": np.array([0.25, 0.5], dtype=np.float32), "labels": np.array(["a", "b"])}
    EvaluationCache("t", directory=tmp_path, disk_mb=10).get(("base", "w1", 8), lambda: value, encode, decode)
    restarted = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    compute, calls = counting(value)
    again = restarted.get(("base", "w1", 8), compute, encode, decode)
    assert not calls and restarted.disk_hits == 1
    assert again.keys() == value.keys() and all(np.array_equal(again[k], value[k]) for k in value)
    restarted.get(("base", "w2", 8), compute, encode, decode)  # other weights' fingerprint
    restarted.get(("base", "w1", 9), compute, encode, decode)  # other settings
    assert len(calls) == 2


def test_none_is_cached_too(tmp_path):
    EvaluationCache("t", directory=tmp_path, disk_mb=10).get(("gold",), lambda: None, encode, decode)
    restarted = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    compute, calls = counting({"x": np.zeros(1)})
    assert restarted.get(("gold",), compute, encode, decode) is None and not calls


def test_a_damaged_file_is_recomputed_not_fatal(tmp_path):
    cache = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    cache.get(("k",), lambda: {"x": np.ones(2)}, encode, decode)
    (file,) = (tmp_path / "t").glob("*.npz")
    file.write_bytes(b"not an npz")
    restarted = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    compute, calls = counting({"x": np.ones(2)})
    assert np.array_equal(restarted.get(("k",), compute, encode, decode)["x"], np.ones(2)) and calls


def test_memory_and_disk_are_bounded(tmp_path):
    cache = EvaluationCache("t", capacity=2, directory=tmp_path, disk_mb=0.1)  # ~105 kB on disk
    for k in range(6):
        cache.get((k,), lambda: {"x": np.zeros(40_000, dtype=np.uint8)}, encode, decode)  # ~40 kB each
    assert len(cache._items) == 2
    files = list((tmp_path / "t").glob("*.npz"))
    assert 1 <= len(files) <= 2 and sum(f.stat().st_size for f in files) <= 0.1 * 2**20


def test_pickled_objects_are_refused(tmp_path):
    cache = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    (tmp_path / "t").mkdir(parents=True)
    np.savez(tmp_path / "t" / f"{cache.key_of(('k',))}.npz", x=np.array([{"a": 1}], dtype=object))
    compute, calls = counting({"x": np.ones(1)})
    assert np.array_equal(cache.get(("k",), compute, encode, decode)["x"], np.ones(1)) and calls


def test_fingerprint_sees_any_weight_change():
    import torch

    weights = {"a": torch.zeros(3), "b": torch.ones(2)}
    changed = {"a": torch.tensor([0.0, 0.0, 1e-6]), "b": torch.ones(2)}
    assert fingerprint(weights.items()) == fingerprint(reversed(list(weights.items())))
    assert fingerprint(weights.items()) != fingerprint(changed.items())


def test_get_many_computes_only_the_missing_keys_in_one_call_and_keeps_the_order(tmp_path):
    cache = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    cache.get(("k", 1), lambda: {"v": np.array([1])}, encode, decode)
    calls = []

    def compute(missing):
        calls.append(list(missing))
        return [{"v": np.array([i * 10])} for i in missing]

    keys = [("k", 0), ("k", 1), ("k", 2)]
    values = cache.get_many(keys, compute, encode, decode)
    assert calls == [[0, 2]], "one call, for the two keys not cached"
    assert [int(v["v"][0]) for v in values] == [0, 1, 20]
    restarted = EvaluationCache("t", directory=tmp_path, disk_mb=10)
    again = restarted.get_many(keys, compute, encode, decode)
    assert len(calls) == 1 and [int(v["v"][0]) for v in again] == [0, 1, 20], "read back from disk"


def test_get_many_refuses_a_compute_that_returns_the_wrong_count(tmp_path):
    cache = EvaluationCache("t", directory=tmp_path, disk_mb=0)
    with pytest.raises(RuntimeError, match="1 values for 2 keys"):
        cache.get_many([("a",), ("b",)], lambda missing: [1])
