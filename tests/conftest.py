"""Shared fixtures. Importing tests.fake_backend registers the "toy" backend for every test."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("UNLEARNING_LAB_DEVICE", "cpu")
# Base evaluations stay in memory in tests (tests of the disk copy give it a temporary folder).
os.environ.setdefault("UNLEARNING_LAB_EVAL_CACHE_MB", "0")

import pytest  # noqa: E402

import tests.fake_backend  # noqa: E402,F401  (registers "toy")

pytest_plugins = ["tests.diffusion_fixtures", "tests.gan_fixtures"]  # module-scoped fixtures of those tests
from backends import registry  # noqa: E402
from backends.jobs import JobManager  # noqa: E402
from backends.lab import Lab  # noqa: E402
from backends.store import ModelStore  # noqa: E402

registry.load_all()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one intra-op thread; two spin-wait against each other on 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lab(tmp_path, monkeypatch) -> Lab:
    """A fresh Lab (own store and job manager) exporting into a temp dir."""
    monkeypatch.setenv("UNLEARNING_LAB_EXPORT_DIR", str(tmp_path / "exports"))
    return Lab(ModelStore(max_edit_bytes=2**30, device="cpu"), JobManager(concurrency=1))


def test_preset(backend: str) -> str:
    """The preset contract tests use: "tiny" where a backend has one, else its first offline preset."""
    presets = registry.presets(backend)
    if "tiny" in presets:
        return "tiny"
    offline = [name for name, spec in presets.items() if spec.offline]
    if not offline:
        raise AssertionError(f"backend {backend!r} has no offline preset to test with")
    return offline[0]


test_preset.__test__ = False  # a helper, not a test


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item (the browser tests screenshot a failure)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
