"""One FaceWorld concept vocabulary for every tab (backends.faceworld.concepts)."""
from __future__ import annotations

import pytest

from backends.diffusion.prompt_sets import resolve_concept
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


@pytest.mark.parametrize("typed, value", [("dark glasses", ("glasses", "sunglasses")),
                                          ("a big grin", ("expression", "smiling")),
                                          ("knit hat", ("hat", "beanie")), ("a full beard", ("beard", "beard"))])
def test_a_training_caption_wording_names_its_value_on_both_tabs(typed, value, encoder):
    """"dark glasses" is FaceWorld's own wording of sunglasses (the GAN tab's text offsets made it skin=dark)."""
    gan = gan_concepts.resolve(encoder, typed)
    assert (gan.attribute, gan.values) == (value[0], (value[1],)) == (resolve_concept(typed).attr,
                                                                       resolve_concept(typed).values)


def test_held_out_synonyms_stay_out_of_the_shared_vocabulary():
    """Evaluation asks with the held-out wordings; typing one must not turn it into a training word."""
    import re

    for wordings in world.SYNONYM_PHRASES.values():
        for wording in wordings:
            core = re.sub(r"^(with|wearing|in|on|who is|looking) ", "", wording)  # "shades", "a toque"
            assert concepts.lookup(wording) is None and concepts.lookup(core) is None, wording


def test_words_faceworld_never_uses_are_not_matched_to_an_attribute():
    """The embedded CLIP weighs colour words over the rest ("a red car" was red hair); the words it was
    trained on still match, and an open-vocabulary CLIP keeps matching any text."""
    from backends.faceworld.clip import load_clip
    from backends.gan.encoders import FaceWorldClipEncoder

    faceworld = FaceWorldClipEncoder(load_clip("cpu"), "cpu")
    assert concepts.unknown_words("a red car") == ["car"] and concepts.unknown_words("a smiling man") == []
    for typed in ("a red car", "a black dog", "a white horse"):
        assert gan_concepts.resolve(faceworld, typed).attribute is None, typed
    assert gan_concepts.resolve(faceworld, "a smiling man").values == ("smiling",)
    assert not presets.tiny_clip("cpu").closed_vocabulary
