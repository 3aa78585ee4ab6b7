"""One FaceWorld concept vocabulary for every tab (backends.faceworld.concepts)."""
from __future__ import annotations

import pytest

from backends.diffusion.metrics import resolve_concept
from backends.faceworld import concepts, world
from backends.gan import concepts as gan_concepts
from backends.gan import presets


@pytest.fixture(scope="module")
def encoder():
    return presets.tiny_clip("cpu")


@pytest.mark.parametrize("word", concepts.known_words() + ["Spectacles", "a hat", "blue background", "blond hair"])
def test_each_word_resolves_the_same_on_both_tabs(word, encoder):
    gan = gan_concepts.resolve(encoder, word)
    diffusion = resolve_concept(word)
    assert gan.attribute is not None, "a FaceWorld word never falls back to CLIP matching"
    assert (gan.attribute, gan.values) == (diffusion.attr, diffusion.values)


def test_attribute_names_cover_every_present_value_and_unknown_words_are_free_text(encoder):
    assert concepts.lookup("glasses") == ("glasses", ("glasses", "sunglasses"))
    assert concepts.lookup("spectacles") == concepts.lookup("eyeglasses") == concepts.lookup("glasses")
    assert concepts.lookup("hat")[1] == tuple(v for v in world.ATTRIBUTES["hat"] if v != "none")
    assert concepts.lookup("a dog") is None and resolve_concept("a dog").attr is None


@pytest.mark.parametrize("bad, message", [("", "empty"), ("   ", "empty"), ("1234", "no letters"),
                                          ("x" * 81, "the limit is 80"), (3, "expected text")])
def test_one_validation_with_one_length_limit(bad, message):
    with pytest.raises(ValueError, match=message):
        concepts.check_text(bad)
    assert concepts.check_text("  sun   glasses ") == "sun glasses"
