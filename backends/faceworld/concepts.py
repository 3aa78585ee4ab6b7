"""The FaceWorld concept vocabulary: typed text -> the attribute values it names, one set of rules for
every tab (GAN, diffusion), so "spectacles" means the same everywhere.

``lookup`` knows, in this order: the words of :data:`WORDS` (attribute names, plurals, synonyms);
a value name, alone or as "<value> hair / skin / background" ("blond", "blue background"). Anything
else returns None: the GAN tab then matches it by CLIP text offsets, the diffusion tab treats it as
free text. ``check_text`` is the one validation of typed concepts (one length limit).
"""
from __future__ import annotations

import re

from backends.faceworld import world

MAX_CONCEPT_CHARS = 80

#: Words beyond the attribute values' own names. An attribute that can be absent, named as a whole
#: ("glasses", "hat"), covers all its present values: the gold model retrained without glasses lacks
#: sunglasses too.
WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "glasses": ("glasses", ("glasses", "sunglasses")),
    "eyeglasses": ("glasses", ("glasses", "sunglasses")),
    "spectacles": ("glasses", ("glasses", "sunglasses")),
    "clear glasses": ("glasses", ("glasses",)),
    "hat": ("hat", ("cap", "beanie")),
    "hats": ("hat", ("cap", "beanie")),
    "baseball cap": ("hat", ("cap",)),
    "smile": ("expression", ("smiling",)),
    "frown": ("expression", ("frowning",)),
    "expression": ("expression", ("smiling", "frowning")),
}


def normalise(text: str) -> str:
    """Lower-case, single-spaced, without a leading article: "A  Hat" -> "hat"."""
    words = re.sub(r"\s+", " ", text.strip().lower())
    return re.sub(r"^(a|an|the) ", "", words)


def check_text(text: object, what: str = "Concept") -> str:
    """The text single-spaced, or ValueError when it is not text, empty, has no letters or is too long."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected text, got {type(text).__name__}")
    text = " ".join(text.split())
    if not text:
        raise ValueError(f"{what} is empty: type what to unlearn, e.g. 'glasses'")
    if not re.search(r"[^\W\d_]", text):
        raise ValueError(f"{what}: {text!r} has no letters; name a concept, e.g. 'glasses'")
    if len(text) > MAX_CONCEPT_CHARS:
        raise ValueError(f"{what} is {len(text)} characters; the limit is {MAX_CONCEPT_CHARS}")
    return text


def lookup(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(attribute, values) the text names in FaceWorld, or None (see the module docstring)."""
    key = normalise(text)
    if key in WORDS:
        return WORDS[key]
    for attribute, values in world.ATTRIBUTES.items():
        absent = world.ABSENT_VALUES.get(attribute)
        for value in values:
            if value != absent and key in (value, f"{value} hair", f"{value} skin", f"{value} background"):
                return attribute, (value,)
    if key in world.ABSENT_VALUES:
        return key, tuple(v for v in world.ATTRIBUTES[key] if v != world.ABSENT_VALUES[key])
    return None


def known_words() -> list[str]:
    """Every single word or phrase ``lookup`` resolves without colour suffixes: WORDS, the attribute
    names and every present value."""
    values = [v for a, vs in world.ATTRIBUTES.items() for v in vs if v != world.ABSENT_VALUES.get(a)]
    return list(dict.fromkeys([*WORDS, *world.ABSENT_VALUES, *values]))
