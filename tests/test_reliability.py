"""Reliability (issue 13): bad values through the real API get clear messages; loads never race.

The full load, isolation and bad-input corpus on the real models is ``python -m bench --only reliability.``;
these tests keep its fixes in place on the test-only Toy tab (a few seconds).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import pytest

from backends import registry
from backends.config import build_config, param
from backends.contract import PresetSpec
from backends.store import ModelStore


@dataclass(frozen=True)
class Form:
    name: str = param("glasses", help="text")
    words: tuple[str, ...] = param((), help="lines")
    flag: bool = param(False, help="a box")
    count: int = param(3, help="a number", min=1, max=10)


@pytest.mark.parametrize("values, message", [
    ({"name": "glasses\x00"}, "Name: contains the control character '\\x00'"),
    ({"name": "\x1b[2Jhat"}, "control character '\\x1b'"),
    ({"words": "a hat\nbeard\x07"}, "Words: contains the control character '\\x07'"),
    ({"words": 7}, "Words: expected text, one item per line"),
    ({"words": ["a hat", 3]}, "expected text, one item per line, got 3"),
    ({"flag": "false"}, "Flag: expected true or false, got 'false'"),
    ({"flag": 2}, "Flag: expected true or false"),
    ({"count": True}, "Count: expected a number, got True"),
    ({"count": "NaN"}, "Count: expected a finite number"),
])
def test_wrong_values_get_a_message_naming_the_field(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_config(Form, values)


def test_tabs_and_line_breaks_are_text():
    form = build_config(Form, {"name": "a\tface", "words": "a hat\r\nbeard\n", "flag": 1})
    assert form.name == "a\tface" and form.words == ("a hat", "beard") and form.flag is True


def test_two_presets_never_load_at_once(monkeypatch):
    """Model libraries import lazily and fail when two threads import them together, so the store loads one
    model at a time, whichever presets are asked for."""
    active, most = [], []

    def slow_load(device):
        active.append(1)
        most.append(len(active))
        time.sleep(0.2)
        active.pop()
        return object()

    monkeypatch.setitem(registry._presets, "overlap", {
        name: PresetSpec("overlap", name, name, slow_load, offline=True) for name in ("a", "b", "c")})
    store = ModelStore(device="cpu")
    threads = [threading.Thread(target=store.base, args=("overlap", name)) for name in ("a", "b", "c", "a")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(store.is_loaded("overlap", name) for name in ("a", "b", "c"))
    assert len(most) == 3, "each preset loads once"
    assert max(most) == 1, "two loads overlapped"


@pytest.fixture(scope="module")
def toy_app(tmp_path_factory):
    """The real app with only the Toy tab, served in this process on a free port."""
    import os

    from app import build_app

    os.environ.setdefault("UNLEARNING_LAB_EXPORT_DIR", str(tmp_path_factory.mktemp("exports")))
    demo = build_app(backends=["toy"])
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, ssr_mode=False)
    yield url
    demo.close()


@pytest.mark.parametrize("api, values, message", [
    ("toy_generate", {"toy-gen-n_samples": "six"}, "expected a number, got 'six'"),
    ("toy_generate", {"toy-gen-n_samples": [1, 2]}, "expected a number"),
    ("toy_generate", {"toy-gen-n_samples": None, "toy-gen-first_seed": "inf"}, "expected a finite number"),
    ("toy_generate", {"toy-preset": "nope"}, "unknown model 'nope'"),
    ("toy_generate", {"toy-preset": ["toy"]}, "unknown model ['toy']"),
    ("toy_run", {"toy-method": "nope"}, "unknown toy method 'nope'"),
    ("toy_run", {"toy-dim-concept": {"a": 1}}, "Concept: expected text, got dict"),
    ("toy_run", {"toy-dim-steps": 0}, "Steps: 0 is below the minimum 1"),
    ("toy_run", {"toy-method": "forget_picked", "toy-pick": "zero"}, "expected a list of sample seeds"),
    ("toy_run", {"toy-method": "forget_picked", "toy-pick": [99]}, "sample 99 is not in the current gallery"),
    ("toy_export", {}, "nothing to export yet"),
])
def test_wrong_values_through_the_api_get_a_clear_message(toy_app, tmp_path, api, values, message):
    from bench.reliability import MESSAGE, Visitor, is_error, text_of

    visitor = Visitor(toy_app, tmp_path)
    try:
        shown = visitor.call(api, values)
    finally:
        visitor.close()
    status = shown[MESSAGE[api.split("_", 1)[1]]]
    assert is_error(status) and message in text_of(status), text_of(status)
    assert "Internal error" not in text_of(status)
