"""The FaceWorld concept vocabulary: typed text -> the attribute values it names, one set of rules for
every tab (GAN, diffusion), so "spectacles" means the same everywhere.

``lookup`` knows, in this order: the words of :data:`WORDS` (attribute names, plurals, synonyms);
a value name, alone or as "<value> hair / skin / background" ("blond", "blue background"); a wording
of FaceWorld's training captions without its joining words ("dark glasses", "big grin"). Anything
else returns None: the GAN tab then matches it by CLIP text offsets when all its words are FaceWorld's
(:func:`vocabulary`; "a red car" is not matched to red hair), the diffusion tab treats it as free text.
``check_text`` is the one validation of typed concepts (one length limit).
"""
from __future__ import annotations

import re
from functools import lru_cache

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
    return _caption_phrases().get(key)


@lru_cache(maxsize=1)
def _caption_phrases() -> dict[str, tuple[str, tuple[str, ...]]]:
    """A wording of FaceWorld's training captions without its joining words ("dark glasses" from
    "wearing dark glasses", "big grin") -> the one present value it names."""
    phrases: dict[str, set[tuple[str, str]]] = {}
    wordings = [((a, v), w) for (a, v), kinds in world.PHRASES.items() for ws in kinds.values() for w in ws]
    for (attribute, value), wording in wordings:  # not the held-out synonyms: evaluation asks with those
        if value != world.ABSENT_VALUES.get(attribute):
            core = re.sub(r"^(with|wearing|in|on|who is|looking|against|in front of) ", "", wording)
            phrases.setdefault(normalise(core), set()).add((attribute, value))
    return {phrase: (next(iter(named))[0], (next(iter(named))[1],))
            for phrase, named in phrases.items() if len(named) == 1}


#: Words every description may use besides FaceWorld's own (articles, people, joining words).
FUNCTION_WORDS = frozenset("""a an the with without wearing wears in on of and or no not who is has having
    looking person people man men woman women someone somebody guy girl boy lady child kid face faces portrait
    photo picture image drawing cartoon character figure head""".split())


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Every word FaceWorld's captions, held-out synonyms (``SYNONYM_PHRASES``, which hold every
    ``HELD_OUT_WORDS``) and concept words use, lower case (plus :data:`FUNCTION_WORDS`): the words the
    embedded CLIP was trained and checked on."""
    texts = [*WORDS, *world.ATTRIBUTES, *(v for vs in world.ATTRIBUTES.values() for v in vs), *world.NOUNS,
             *world.PREFIXES, *world.CANONICAL_TEMPLATES,
             *(w for phrase in world.PHRASES.values() for ws in phrase.values() for w in ws),
             *(w for ws in world.SYNONYM_PHRASES.values() for w in ws)]
    return FUNCTION_WORDS | frozenset(w for text in texts for w in re.findall(r"[a-z]+", text.lower()))


def unknown_words(text: str) -> list[str]:
    """The words of ``text`` FaceWorld never uses ("a red car" -> ["car"])."""
    known = vocabulary()
    return [w for w in re.findall(r"[^\W\d_]+", text.lower()) if w not in known]


def known_words() -> list[str]:
    """Every single word or phrase ``lookup`` resolves without colour suffixes: WORDS, the attribute
    names and every present value."""
    values = [v for a, vs in world.ATTRIBUTES.items() for v in vs if v != world.ABSENT_VALUES.get(a)]
    return list(dict.fromkeys([*WORDS, *world.ABSENT_VALUES, *values]))
