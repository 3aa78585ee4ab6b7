"""Tests for the procedural FaceWorld renderer, sampler and caption grammar."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from backends.faceworld import world
from backends.faceworld.world import ATTRIBUTES, CHARACTERS, DEFAULT_FREQS, Attrs, Face


def _with(face: Face, **values: str) -> Face:
    return replace(face, attrs=Attrs(dict(face.attrs, **values)), character=None)


def _luma(image: np.ndarray, center: tuple[float, float], radius: float) -> float:
    x, y = center
    x0, x1 = int(round(x - radius)), int(round(x + radius)) + 1
    y0, y1 = int(round(y - radius)), int(round(y + radius)) + 1
    patch = image[y0:y1, x0:x1].astype(np.float64)
    return float((patch @ np.array([0.299, 0.587, 0.114])).mean())


# ------------------------------------------------------------------------------------------ sampling

def test_sampling_and_rendering_are_deterministic():
    first, second = world.sample_faces(20, seed=7), world.sample_faces(20, seed=7)
    assert first == second
    assert first != world.sample_faces(20, seed=8)
    np.testing.assert_array_equal(world.render_batch(first, 32), world.render_batch(second, 32))
    captions_a = [world.caption(f, np.random.default_rng(3)) for f in first]
    captions_b = [world.caption(f, np.random.default_rng(3)) for f in second]
    assert captions_a == captions_b


def test_shapes_and_dtype():
    faces = world.sample_faces(5, seed=0)
    for size in (32, 64, 96):
        image = world.render(faces[0], size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
    batch = world.render_batch(faces, 32)
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.uint8
    assert world.render_batch([], 32).shape == (0, 32, 32, 3)
    assert batch.std() > 20  # not a blank image


def test_faces_are_hashable_and_attrs_complete():
    faces = world.sample_faces(50, seed=1)
    assert len({hash(f) for f in faces}) > 40
    for face in faces:
        assert list(face.attrs) == list(ATTRIBUTES)
        for name, value in face.attrs.items():
            assert value in ATTRIBUTES[name]


def test_exclude_really_excludes():
    no_glasses = world.sample_faces(1500, seed=2, exclude={"glasses": ("glasses", "sunglasses")}, character_rate=0.2)
    assert all(f.attrs["glasses"] == "none" for f in no_glasses)
    names = {f.character for f in no_glasses}
    assert "Alice" not in names and "Carmen" not in names  # both wear glasses
    assert "Bob" in names and "Dmitri" in names
    no_bob = world.sample_faces(1000, seed=3, exclude={"character": "Bob", "hat": "cap"}, character_rate=0.3)
    assert all(f.character != "Bob" and f.attrs["hat"] != "cap" for f in no_bob)


def test_frequencies_match_defaults_and_overrides():
    faces = world.sample_faces(2000, seed=11)
    for name, table in DEFAULT_FREQS.items():
        counts = {v: 0 for v in ATTRIBUTES[name]}
        for face in faces:
            counts[face.attrs[name]] += 1
        for value, prob in table.items():
            assert abs(counts[value] / len(faces) - prob) < 0.045, (name, value, counts[value] / len(faces))
    smiley = world.sample_faces(2000, seed=12, freqs={"expression": {"smiling": 0.9, "frowning": 0.1}})
    share = np.mean([f.attrs["expression"] == "smiling" for f in smiley])
    assert abs(share - 0.9) < 0.03
    assert not any(f.attrs["expression"] == "neutral" for f in smiley)


def test_characters_are_fixed_and_sampled():
    assert set(CHARACTERS) == {"Alice", "Bob", "Carmen", "Dmitri"}
    faces = world.sample_faces(2000, seed=4)
    drawn = [f for f in faces if f.character is not None]
    assert 40 <= len(drawn) <= 130  # DEFAULT_CHARACTER_RATE = 0.04
    for face in drawn:
        base = CHARACTERS[face.character]
        for name in ATTRIBUTES:
            if name != "background":
                assert face.attrs[name] == base.attrs[name]
        assert face.face_shape == base.face_shape and face.face_width == base.face_width


@pytest.mark.parametrize("kwargs", [
    {"n": -1, "seed": 0}, {"n": 3, "seed": 0, "exclude": {"glasses": "monocle"}},
    {"n": 3, "seed": 0, "exclude": {"mood": "happy"}}, {"n": 3, "seed": 0, "freqs": {"hat": {"crown": 1.0}}},
    {"n": 3, "seed": 0, "exclude": {"beard": ("none", "beard")}},
])
def test_bad_sampling_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        world.sample_faces(**kwargs)


def test_bad_render_and_prompt_arguments_raise_value_error():
    with pytest.raises(ValueError):
        world.render("not a face")
    with pytest.raises(ValueError):
        world.attribute_prompts("glasses", "monocle")
    with pytest.raises(ValueError):
        world.synonym_prompts("mood", "happy")
    with pytest.raises(ValueError):
        Attrs({"glasses": "none"})


# ------------------------------------------------------------------------------------- pixel checks

def test_background_colour_at_corners():
    faces = world.sample_faces(200, seed=5)
    images = world.render_batch(faces, 64)
    for face, image in zip(faces, images):
        expected = np.array(world.BACKGROUND_RGB[face.attrs["background"]])
        for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
            assert np.abs(corner.astype(int) - expected).max() <= 2


def test_sunglasses_darken_the_eye_region():
    for face in world.sample_faces(60, seed=6):
        marks = world.landmarks(face, 64)
        radius = 0.15 * marks["head_half_size"][0]
        shaded = world.render(_with(face, glasses="sunglasses"), 64)
        bare = world.render(_with(face, glasses="none"), 64)
        for eye in ("left_eye", "right_eye"):
            assert _luma(shaded, marks[eye], radius) < 45
            assert _luma(bare, marks[eye], radius) > 65   # white eye with a dark pupil


def test_glasses_keep_eyes_visible_but_add_frames():
    for face in world.sample_faces(40, seed=7):
        marks = world.landmarks(face, 64)
        fw = marks["head_half_size"][0]
        with_glasses = world.render(_with(face, glasses="glasses"), 64)
        bare = world.render(_with(face, glasses="none"), 64)
        eye = marks["left_eye"]
        assert _luma(with_glasses, eye, 0.1 * fw) > 70      # clear lenses: the eye still shows
        assert np.abs(with_glasses.astype(int) - bare.astype(int)).sum(-1).astype(bool).mean() > 0.01


def test_smile_frown_and_beard_change_the_right_region():
    for face in world.sample_faces(40, seed=8):
        marks = world.landmarks(face, 64)
        fw, fh = marks["head_half_size"]
        mouth_x, mouth_y = marks["mouth"]
        smiling = world.render(_with(face, expression="smiling", beard="none"), 64)
        neutral = world.render(_with(face, expression="neutral", beard="none"), 64)
        # open smiling mouth is dark red below the mouth line
        r, g, b = smiling[int(mouth_y + 0.2 * fw), int(mouth_x)].astype(int)
        assert r > g + 40 and r > b + 30 and r < 200
        assert np.abs(smiling.astype(int) - neutral.astype(int)).sum() > 0
        bearded = world.render(_with(face, beard="beard"), 64)
        shaven = world.render(_with(face, beard="none"), 64)
        x, y = int(marks["chin"][0] - 0.4 * fw), int(marks["chin"][1] - 0.1 * fh)
        colour_change = np.abs(bearded[y - 1:y + 2, x - 1:x + 2].astype(int)
                               - shaven[y - 1:y + 2, x - 1:x + 2].astype(int)).sum(-1).mean()
        assert colour_change > 70  # the jaw takes the (contrasting) beard colour


def test_hats_cover_the_top_of_the_head_and_cap_has_a_brim():
    for face in world.sample_faces(40, seed=9):
        marks = world.landmarks(face, 64)
        fw, fh = marks["head_half_size"]
        top = marks["head_top"]
        for hat in ("cap", "beanie"):
            image = world.render(_with(face, hat=hat), 64)
            pixel = image[int(top[1] + 0.1 * fh), int(top[0])].astype(int)
            assert np.abs(pixel - np.array(face.hat_color)).max() < 40
        cap = world.render(_with(face, hat="cap"), 64)
        beanie = world.render(_with(face, hat="beanie"), 64)
        brim = (top[0] + face.brim_side * 1.4 * fw, top[1] + 0.48 * fh)
        background = np.array(world.BACKGROUND_RGB[face.attrs["background"]])
        assert np.abs(cap[int(brim[1]), int(brim[0])].astype(int) - background).max() > 40
        assert np.abs(beanie[int(brim[1]), int(brim[0])].astype(int) - background).max() <= 2


# ------------------------------------------------------------------------------------------- captions

def _phrase_table() -> list[tuple[str, tuple[str, str]]]:
    """(phrase, (attr, value)) pairs, longest phrase first, for parsing captions back."""
    pairs = [(phrase, key) for key, table in world.PHRASES.items() for phrase in table["adj"] + table["post"]]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _parse(text: str) -> set[tuple[str, str]]:
    found = set()
    for phrase, key in _phrase_table():
        pattern = r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])"
        if re.search(pattern, text):
            found.add(key)
            text = re.sub(pattern, "#", text)
    return found


def test_captions_mention_only_true_attributes():
    rng = np.random.default_rng(0)
    faces = world.sample_faces(2000, seed=10)
    mentioned_absent = 0
    for face in faces:
        text = world.caption(face, rng)
        mentions = _parse(text)
        for attr, value in mentions:
            assert face.attrs[attr] == value, (text, dict(face.attrs))
        if face.character is None or face.character not in text:
            assert mentions, text
        mentioned_absent += any(world.ABSENT_VALUES.get(a) == v for a, v in mentions)
    assert mentioned_absent > 200  # "without glasses", "clean-shaven", ... do appear


def test_captions_vary_in_wording():
    rng = np.random.default_rng(1)
    faces = world.sample_faces(500, seed=12)
    captions = [world.caption(face, rng) for face in faces]
    assert len(set(captions)) > 450
    text = " ".join(captions)
    for word in ("spectacles", "eyeglasses", "grinning", "beaming", "scowling", "bearded", "clean-shaven"):
        assert word in text


def test_synonym_prompts_are_held_out_from_training_captions():
    rng = np.random.default_rng(2)
    faces = world.sample_faces(3000, seed=13, character_rate=0.1)
    caption_vocab = set().union(*(world.caption_words(world.caption(f, rng)) for f in faces))
    assert caption_vocab <= world.training_vocabulary()
    assert not caption_vocab & world.HELD_OUT_WORDS
    assert not world.training_vocabulary() & world.HELD_OUT_WORDS
    for attr, values in ATTRIBUTES.items():
        for value in values:
            synonyms = world.synonym_prompts(attr, value)
            canonical = world.attribute_prompts(attr, value)
            assert synonyms and canonical and not set(synonyms) & set(canonical)
            for prompt in synonyms:
                assert world.caption_words(prompt) & world.HELD_OUT_WORDS, prompt
            for prompt in canonical:
                assert world.caption_words(prompt) <= world.training_vocabulary(), prompt


def test_caption_mentions_match_the_text():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    for face in world.sample_faces(300, seed=14, character_rate=0.3):
        text, mentions = world.caption_with_mentions(face, rng_a)
        assert text == world.caption(face, rng_b)
        stated = {a: v for a, v in mentions.items() if a != "character"}
        assert _parse(text) == set(stated.items()), text
        if "character" in mentions:
            assert mentions["character"] == face.character and face.character in text
