"""GAN metrics and concept mapping: hand-checked values, scipy agreement, edge cases."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import stats  # noqa: E402
from backends.gan import concepts, metrics, presets  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return presets.tiny_clip("cpu")


def test_w1_degree_on_hand_data():
    assert metrics.wasserstein1([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]) == pytest.approx(5.0)
    assert metrics.wasserstein1([0.0, 0.0, 1.0, 1.0], [0.0, 1.0]) == pytest.approx(0.0)
    assert metrics.wasserstein1([0.0], [0.25, 0.75]) == pytest.approx(0.5)


def test_w1_matches_scipy_on_random_scores():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 0.05, 200), rng.normal(0.1, 0.08, 150)
    assert metrics.wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_w1_needs_scores_on_both_sides():
    with pytest.raises(ValueError, match="at least one score"):
        metrics.wasserstein1([], [1.0])


def test_frechet_distance_is_zero_on_identical_sets_and_the_mean_shift_for_translations():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    assert stats.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert stats.frechet_distance(x, x + shift) == pytest.approx(5.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        stats.frechet_distance(x[:1], x)


def test_collateral_reports_the_most_changed_value_per_other_attribute():
    before = {"glasses": np.array([0, 1, 1, 0]), "hat": np.array([0, 0, 1, 2])}
    after = {"glasses": np.array([0, 0, 0, 0]), "hat": np.array([0, 1, 1, 2])}
    out = metrics.collateral(before, after, {"glasses": 3, "hat": 3}, skip="glasses")
    assert set(out) == {"hat"}
    index, rate_before, rate_after = out["hat"]
    assert (index, rate_before, rate_after) in ((0, 50.0, 25.0), (1, 25.0, 50.0))


def test_perceptual_distance_is_zero_for_identical_images_and_grows_with_change(encoder):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=gen) * 2 - 1
    clip_blocks = lambda x: encoder.encode_images_with_features(x)[1]  # noqa: E731
    assert np.allclose(metrics.perceptual_distance(clip_blocks, images, images), 0.0)
    small = metrics.perceptual_distance(clip_blocks, images, (images + 0.05).clamp(-1, 1))
    large = metrics.perceptual_distance(clip_blocks, images, -images)
    assert (small > 0).all() and (large > small).all()


def test_perceptual_features_come_from_the_early_vision_blocks(encoder):
    images = torch.zeros(2, 3, 16, 16)
    embeddings, features = encoder.encode_images_with_features(images)
    assert embeddings.shape == (2, 32) and len(features) == 2
    assert features[0].shape == (2, 16, 8, 8)


@pytest.mark.parametrize("text, attribute, values", [
    ("glasses", "glasses", ("glasses", "sunglasses")),
    ("Glasses", "glasses", ("glasses", "sunglasses")),
    ("sunglasses", "glasses", ("sunglasses",)),
    ("smiling", "expression", ("smiling",)),
    ("hat", "hat", ("cap", "beanie")),
    ("beard", "beard", ("beard",)),
])
def test_concepts_that_name_an_attribute_or_value(encoder, text, attribute, values):
    concept = concepts.resolve(encoder, text)
    assert (concept.attribute, concept.values) == (attribute, values)
    assert concept.prompt == f"a face with {text}"
    covered = [f"a face with {v}" for v in values if v != text.lower()] if text.lower() == attribute else []
    assert concept.prompts == [concept.prompt, *covered]


def test_descriptions_are_kept_and_the_neutral_text_is_used(encoder):
    assert concepts.resolve(encoder, "a man wearing a cap").prompt == "a man wearing a cap"
    assert concepts.resolve(encoder, "glasses", neutral="a person").prompt == "a person with glasses"


@pytest.mark.parametrize("text, message", [("", "empty"), ("  \n ", "empty"), ("y" * 81, "limit is 80")])
def test_bad_concepts_raise_value_error(encoder, text, message):
    with pytest.raises(ValueError, match=message):
        concepts.resolve(encoder, text)


def test_unmatched_concepts_fall_back_to_binary_zero_shot(encoder, monkeypatch):
    monkeypatch.setattr(concepts, "MATCH_MIN_COSINE", 2.0)  # nothing can match
    concept = concepts.resolve(encoder, "a purple dragon")
    assert concept.attribute is None and "closer to" in concept.how
    embeddings = encoder.encode_text([concept.prompt, concept.neutral])
    assert concepts.presence(encoder, concept, embeddings).tolist() == [True, False]


def test_feature_capture_ignores_other_threads_using_the_shared_encoder(encoder):
    import threading

    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            encoder.embed_images(torch.zeros(4, 3, 16, 16))

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        for _ in range(20):
            _, features = encoder.encode_images_with_features(torch.zeros(2, 3, 16, 16))
            assert len(features) == 2 and all(f.shape[0] == 2 for f in features)
    finally:
        stop.set()
        worker.join()
