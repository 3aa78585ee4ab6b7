"""The FaceWorld attribute judge: loading, accuracy on fresh renders, input handling, independence."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import MethodCall  # noqa: E402
from backends.faceworld import judge as fw_judge  # noqa: E402
from backends.faceworld import world  # noqa: E402
from backends.gan import presets  # noqa: E402
from backends.gan.backend import GanGenerateConfig  # noqa: E402
from backends.jobs import JobContext  # noqa: E402

#: Fresh renders: apart from the judge's training (7_000) and held-out (7_001) seeds and the benchmark's.
FRESH_SEED = 424_242


@pytest.fixture(scope="module")
def judge():
    return fw_judge.load_judge("cpu")


@pytest.mark.slow
def test_judge_is_accurate_on_fresh_renders(judge):
    faces = world.sample_faces(400, FRESH_SEED)
    classes = judge.classify(world.render_small(faces))
    for attribute, values in world.ATTRIBUTES.items():
        truth = np.array([values.index(f.attrs[attribute]) for f in faces])
        accuracy = float((classes[attribute] == truth).mean())
        assert accuracy >= 0.97, f"{attribute}: accuracy {accuracy:.3f} on fresh renders"


@pytest.mark.slow
def test_judge_takes_uint8_and_float_images_of_any_size_alike(judge):
    images = world.render_small(world.sample_faces(8, FRESH_SEED + 1))           # (8, 32, 32, 3) uint8
    as_float = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    bigger = world.render_batch(world.sample_faces(8, FRESH_SEED + 1), 64)       # (8, 64, 64, 3): area-resized
    a, b, c = judge.classify(images), judge.classify(as_float), judge.classify(bigger)
    for attribute in world.ATTRIBUTES:
        assert (a[attribute] == b[attribute]).all()
        assert (a[attribute] == c[attribute]).mean() >= 0.75
    probabilities = judge.probabilities(images)
    assert all(np.allclose(p.sum(axis=1), 1.0, atol=1e-5) for p in probabilities.values())
    assert judge.features(images).shape == (8, fw_judge.DEFAULT_ARCH["hidden"])


def test_bad_images_raise_value_error():
    judge = fw_judge.random_judge()
    with pytest.raises(ValueError, match="uint8"):
        judge.classify(np.zeros((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        judge.classify(torch.zeros(2, 32, 32))


def test_random_judge_is_seeded_and_verdicts_do_not_depend_on_the_batch():
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    a, b = fw_judge.random_judge(seed=3), fw_judge.random_judge(seed=3)
    full, pieces = a.classify(images), [b.classify(images[i:i + 1]) for i in range(6)]
    for attribute in world.ATTRIBUTES:
        assert full[attribute].tolist() == [int(p[attribute][0]) for p in pieces]


@pytest.mark.slow
def test_judge_shares_no_weights_with_the_models_methods_train_through():
    model = registry.preset("gan", "faceworld").load("cpu")
    judge_tensors = {p.data_ptr() for p in model.judge.net.parameters()}
    others = [*model.generator.generator.parameters(), *model.encoder.clip.model.parameters()]
    assert judge_tensors.isdisjoint({p.data_ptr() for p in others})
    assert not any(p.requires_grad for p in model.judge.net.parameters())


@pytest.mark.parametrize("method", sorted(registry.methods("gan")))
def test_no_method_calls_the_judge(method):
    """The judge gives verdicts only: a method run must never call it (so no loss can reach it)."""
    backend = registry.backend("gan")
    base = presets.tiny_model("cpu")
    calls = []
    hook = base.judge.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        gallery = backend.generate(base, GanGenerateConfig(count=4))   # the gallery labels use the judge
        calls.clear()
        spec = registry.method("gan", method)
        values = {k: v for k, v in dataclasses.asdict(spec.config.smoke()).items() if k != "picked"}
        model = backend.clone(base)
        spec.run(MethodCall(backend, base, model, build_config(spec.config, values), JobContext.standalone(),
                            gallery[:2]))
    finally:
        hook.remove()
    assert calls == [], f"{method} called the judge {len(calls)} times"
    assert model.judge is base.judge
    assert all(p.grad is None for p in base.judge.net.parameters())
