"""The diffusion tab's evaluation protocol: what a typed concept names, the train, tune and eval prompts of
every concept, and their seeds.

A concept the user types ("glasses", "spectacles", "a hat") resolves to a :class:`ConceptTarget` by the
FaceWorld vocabulary both tabs share (on FaceWorld: the attribute values a classifier checks; elsewhere
free text). Who judges the images those prompts make is :mod:`backends.diffusion.judging`.

Methods erase and preserve with ``train`` prompts only, defaults are chosen on ``tune``, and the metrics
table and the benchmark report ``eval``: other wordings, everyday paraphrases, the concept inside longer
scenes and synonyms, written by hand, as HUB judges faithfulness and robustness to wording on prompts
no method saw (Moon et al., ICCV 2025). No prompt is in two splits and the seeds of the gallery, of
training and of evaluation never meet (tests/test_diffusion_protocol.py).

FaceWorld prompts are kept per attribute value (the ``train`` prompts are FaceWorld's canonical ones,
:func:`backends.faceworld.world.attribute_prompts`); a concept's prompts are those of the values it
covers, its collateral prompts those of its neighbouring and unrelated values, in the same split; the
train split also holds the other wordings of FaceWorld's training captions (:func:`paraphrase_prompts`),
which a method may erase beside the canonical prompts.
Colours (hair, skin, background) are worded by hand-written templates filled with colour words. Free-text
concepts (Stable Diffusion presets) get templates and generic collateral prompts, split the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

from backends.faceworld.concepts import check_text, lookup, normalise

SPLITS = ("train", "tune", "eval")
COLLATERAL_GROUPS = ("neighbour", "unrelated")

# Seeds: the gallery's (its first seed is capped below TRAIN_SEEDS), training images and x_t trajectories,
# then the images the tune and eval prompts are measured on.
GALLERY_SEEDS = range(0, 10_000)
TRAIN_SEEDS = range(10_000, 1_000_000)
EVAL_SEED0 = 1_000_000
TUNE_SEED0 = 2_000_000
MAX_MEASURE_SEEDS = TUNE_SEED0 - EVAL_SEED0

NEUTRAL_PROMPT = "a face"  # FaceWorld: how often the concept appears unasked (the floor of text-based erasure)


@dataclass(frozen=True)
class ConceptTarget:
    """What a judge checks: ``attr`` taking one of ``values`` (attr None: free text, zero-shot)."""

    text: str
    attr: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSpec:
    """A prompt of an evaluation group, with the concept its images should show."""

    prompt: str
    group: str
    target: ConceptTarget


# Neighbouring attribute values (collateral damage) and unrelated ones, by the concept's attribute.
NEIGHBOURS: dict[str, tuple[tuple[str, str], ...]] = {
    "glasses": (("hat", "cap"), ("hat", "beanie"), ("beard", "beard")),
    "hat": (("glasses", "glasses"), ("glasses", "sunglasses"), ("beard", "beard")),
    "beard": (("glasses", "glasses"), ("hat", "cap"), ("expression", "smiling")),
    "expression": (("glasses", "glasses"), ("hat", "beanie"), ("beard", "beard")),
    "hair": (("skin", "tan"), ("beard", "beard"), ("hat", "cap")),
    "skin": (("hair", "brown"), ("beard", "beard"), ("glasses", "glasses")),
    "background": (("hair", "blond"), ("skin", "dark"), ("hat", "cap")),
}
UNRELATED: tuple[tuple[str, str], ...] = (
    ("hair", "blond"), ("background", "blue"), ("expression", "smiling"), ("skin", "dark"), ("hair", "red"),
)

# FaceWorld accessories and expressions: tune and eval wordings per value ("" = any value of the attribute,
# used when a concept covers them all, e.g. "hat").
WORDED: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("glasses", "glasses"): {
        "tune": ("a man wearing glasses", "a woman in spectacles", "a portrait of someone with eyeglasses",
                 "a girl wearing thick glasses", "a professor in horn-rimmed glasses",
                 "a young man with wire-rimmed spectacles"),
        "eval": ("a person wearing glasses", "a man with spectacles", "a smiling woman wearing glasses",
                 "someone in eyeglasses", "a portrait of a person wearing reading glasses",
                 "a close-up of a face with nerdy frames", "a student wearing round glasses in a library",
                 "an old man with glasses reading a newspaper", "a kid wearing prescription glasses",
                 "a head with a pair of spectacles", "a teacher with glasses on her nose",
                 "a bespectacled person"),
    },
    ("glasses", "sunglasses"): {
        "tune": ("a woman wearing sunglasses", "a man with shades", "a portrait of someone in dark glasses",
                 "a surfer wearing sunglasses", "a person with sunglasses on", "a face behind black shades"),
        "eval": ("a person wearing shades", "a man in sunglasses at the beach", "someone wearing sunnies",
                 "a woman with dark shades on a sunny day", "a cool guy in black sunglasses",
                 "a portrait of a person with tinted glasses", "a close-up of a face wearing aviator sunglasses",
                 "a drawing of a figure in sunglasses", "a tourist wearing sunglasses",
                 "a character hiding his eyes behind dark glasses", "a picture of someone in mirrored shades",
                 "a head with a pair of sunglasses"),
    },
    ("glasses", ""): {
        "tune": ("a person with eyewear on", "a boy in eyewear"),
        "eval": ("a person wearing eyewear", "a portrait of a woman with eyewear",
                 "a man wearing some kind of glasses"),
    },
    ("hat", "cap"): {
        "tune": ("a woman wearing a ball cap", "a person in a cap", "a runner wearing a cap",
                 "a face with a cap pulled low", "a teenager in a baseball hat", "a coach wearing a cap"),
        "eval": ("a man wearing a baseball hat", "a boy in a ballcap", "a person wearing a trucker cap",
                 "a baseball player in his cap", "a woman with a cap on backwards", "someone wearing a sports cap",
                 "a portrait of a man with a peaked hat", "a fan wearing a team cap at a game",
                 "a drawing of a figure in a snapback", "a kid with a cap on", "a close-up of a face under a cap brim",
                 "a delivery driver in a cap"),
    },
    ("hat", "beanie"): {
        "tune": ("a man wearing a knit beanie", "a girl in a winter hat", "a person in a wool beanie",
                 "a face under a knitted hat", "a climber wearing a beanie", "someone in a pom-pom beanie"),
        "eval": ("a person wearing a toque", "a man in a woolen hat", "a woman in a knitted beanie in winter",
                 "a skier wearing a wool cap", "someone with a warm winter hat", "a kid in a bobble hat",
                 "a portrait of a person in a knit cap", "a snowboarder wearing a beanie",
                 "a drawing of a figure in a ski hat", "a hipster with a slouchy beanie",
                 "a close-up of a face in a woolly beanie", "a fisherman wearing a watch cap"),
    },
    ("hat", ""): {
        "tune": ("a woman wearing a hat", "a boy with a hat", "a face under a hat", "a hiker wearing a hat"),
        "eval": ("a person wearing a hat", "a man in a hat", "someone with a hat on their head",
                 "a child wearing headwear", "a portrait of a woman in a hat", "a farmer wearing a hat in a field"),
    },
    ("beard", "beard"): {
        "tune": ("a man with a beard", "a bearded person", "a face covered in facial hair", "a viking with a beard",
                 "a professor with a neat beard", "someone with a short beard"),
        "eval": ("a bearded man", "a man with facial hair", "a person with a bushy chin",
                 "a lumberjack with a long beard", "an old wizard with a long beard", "a hipster with a big beard",
                 "someone with whiskers on his chin", "a sailor with a thick beard",
                 "a drawing of a figure with a goatee", "a close-up of a face with a scruffy beard",
                 "a guy who has not shaved in weeks", "a man sporting a full beard"),
    },
    ("expression", "smiling"): {
        "tune": ("a smiling man", "a grinning woman", "a happy face", "a person with a smile on their face",
                 "a child laughing", "a cheerful portrait"),
        "eval": ("a happy person", "a woman laughing", "a man with a big smile", "a joyful face",
                 "a cheerful kid grinning at the camera", "a portrait of someone smiling warmly",
                 "a person beaming with happiness", "a drawing of a figure with a cheerful smile",
                 "a friend smiling at a party", "a close-up of a face with a toothy grin", "a delighted person",
                 "someone who looks very pleased"),
    },
    ("expression", "frowning"): {
        "tune": ("a frowning man", "a scowling woman", "an angry face", "a person with a frown", "a grumpy child",
                 "a displeased portrait"),
        "eval": ("an angry person", "a man scowling", "a grumpy old man", "an unhappy face", "a woman looking sad",
                 "a portrait of someone frowning at the camera", "a kid pouting with a frown",
                 "a drawing of a figure with a furrowed brow", "an annoyed person",
                 "a close-up of a face with a sour expression", "a disappointed man", "someone who looks upset"),
    },
}

# FaceWorld colours: words per value (each template takes them in turn) and templates per split.
COLOUR_WORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("hair", "black"): ("black", "jet-black", "raven"),
    ("hair", "brown"): ("brown", "chestnut", "brunette"),
    ("hair", "blond"): ("blond", "golden", "platinum blond"),
    ("hair", "red"): ("red", "ginger", "copper"),
    ("hair", "grey"): ("grey", "silver", "gray"),
    ("skin", "pale"): ("pale", "fair", "porcelain"),
    ("skin", "light"): ("light", "peach-toned", "light beige"),
    ("skin", "tan"): ("tan", "tanned", "bronzed"),
    ("skin", "dark"): ("dark", "deep brown", "dark brown"),
    ("background", "white"): ("white", "snow-white", "ivory"),
    ("background", "blue"): ("blue", "cyan", "sky blue"),
    ("background", "green"): ("green", "lime", "grass-green"),
    ("background", "yellow"): ("yellow", "sunny yellow", "lemon"),
    ("background", "pink"): ("pink", "rose", "blush pink"),
    ("background", "purple"): ("purple", "violet", "lavender"),
}
COLOUR_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "hair": {
        "tune": ("a man with {} hair", "a girl with {} hair", "a portrait of someone with {} hair",
                 "a boy with short {} hair", "a woman with {} locks", "a teenager with {} hair"),
        "eval": ("a person with {} hair", "a woman whose hair is {}", "a man with short {} hair",
                 "a portrait of someone with long {} hair", "a kid with messy {} hair",
                 "a drawing of a figure with {} hair", "a close-up of a face framed by {} hair",
                 "a student with {} curls", "someone who has {} hair", "a singer with wavy {} hair",
                 "an athlete with cropped {} hair", "an old friend with {} hair"),
    },
    "skin": {
        "tune": ("a man with {} skin", "a girl with {} skin", "a portrait of someone with a {} complexion",
                 "a boy whose skin is {}", "a woman with {} skin tone", "a teenager with {} skin"),
        "eval": ("a person with {} skin", "a woman with a {} complexion", "a man whose skin is {}",
                 "a portrait of someone with {} skin", "a kid with {} skin", "a drawing of a figure with {} skin",
                 "a close-up of a face with {} skin", "a student with a {} skin tone", "someone who has {} skin",
                 "a singer with {} skin", "an athlete with {} skin", "an old friend with a {} complexion"),
    },
    "background": {
        "tune": ("a man on a {} background", "a woman against a {} backdrop", "a portrait with a {} background",
                 "a person standing by a {} wall", "a face on a solid {} background",
                 "a child in front of a {} background"),
        "eval": ("a person on a {} background", "a portrait against a {} wall",
                 "a face in front of a plain {} backdrop", "a headshot with a {} background",
                 "a man standing before a {} curtain", "a woman photographed on a {} studio background",
                 "a passport photo with a {} background", "a kid posing against a {} backdrop",
                 "a close-up of a face, {} background", "someone in front of a {} screen",
                 "a character on a solid {} backdrop", "a drawing of a figure on {} paper"),
    },
}

# Free-text concepts: templates per split (FaceWorld wording, then photo wording), and generic collateral.
FREE_TEMPLATES: dict[bool, dict[str, tuple[str, ...]]] = {
    True: {
        "train": ("a face with {}", "a photo of a person with {}", "a cartoon face with {}"),
        "tune": ("a man with {}", "a woman with {}", "a portrait of someone with {}"),
        "eval": ("a person with {}", "someone with {}", "a close-up of a face with {}", "a drawing of a figure with {}",
                 "a kid with {}", "an old man with {}", "a portrait of a woman with {}",
                 "a picture of a character with {}", "a head with {}", "a young person showing {}",
                 "a friend with {}", "a student with {}"),
    },
    False: {
        "train": ("a photo of {}", "an image of {}", "a picture with {}", "{}"),
        "tune": ("a photograph of {}", "a drawing of {}", "{} in a room", "a close-up of {}"),
        "eval": ("a painting of {}", "a high quality photo of {}", "{} on a sunny day", "a sketch of {}",
                 "a photo showing {} in the city", "a detailed illustration of {}", "a snapshot of {} outdoors",
                 "{} seen from the side", "a postcard with {}", "a children's book drawing of {}",
                 "a blurry photo of {}", "a realistic render of {}"),
    },
}
GENERIC_COLLATERAL: dict[str, dict[str, tuple[str, ...]]] = {
    "neighbour": {"train": ("a face wearing a hat", "a face with a beard", "a smiling face"),
                  "tune": ("a person wearing a scarf", "a man with a moustache", "a grinning child"),
                  "eval": ("a portrait of a man in a hat", "a photo of a bearded sailor",
                           "a woman laughing in the rain")},
    "unrelated": {"train": ("a landscape with mountains", "a red car", "a bowl of fruit"),
                  "tune": ("a forest path", "a yellow bus", "a cup of coffee"),
                  "eval": ("a mountain lake at sunset", "a blue bicycle by a wall", "a plate of pasta")},
}


def normalise_prompt(prompt: str) -> str:
    """Lower-case, single-spaced, stripped: the form in which two prompts count as the same."""
    return " ".join(prompt.lower().split())


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"prompt split must be one of {', '.join(SPLITS)}, not {split!r}")


def interleave(lists: list[list[str]] | list[tuple[str, ...]]) -> list:
    """Round-robin over ``lists``: the first item of each, then the second, ..."""
    return [item for row in zip_longest(*lists) for item in row if item is not None]


def value_prompts(attr: str, value: str, split: str) -> list[str]:
    """Prompts of the FaceWorld value ``attr == value`` in ``split`` (value "": any present value)."""
    check_split(split)
    if split == "train":
        if not value:
            return []
        from backends.faceworld.world import attribute_prompts

        return attribute_prompts(attr, value)
    if attr in COLOUR_TEMPLATES:
        if (attr, value) not in COLOUR_WORDS:
            return []
        words = COLOUR_WORDS[(attr, value)]
        return [t.format(words[i % len(words)]) for i, t in enumerate(COLOUR_TEMPLATES[attr][split])]
    return list(WORDED.get((attr, value), {}).get(split, ()))


def concept_prompts(target: ConceptTarget, split: str, faceworld: bool = True) -> list[str]:
    """Prompts asking for the concept in ``split``: its values' prompts interleaved (plus the attribute's
    own wordings when the concept covers every present value), else the free-text templates."""
    from backends.faceworld.world import ABSENT_VALUES, ATTRIBUTES

    check_split(split)
    if not faceworld or target.attr is None:
        text = normalise(target.text)
        return [t.format(text) for t in FREE_TEMPLATES[faceworld][split]]
    lists = [value_prompts(target.attr, v, split) for v in target.values]
    present = {v for v in ATTRIBUTES[target.attr] if v != ABSENT_VALUES.get(target.attr)}
    if set(target.values) == present:
        lists.append(value_prompts(target.attr, "", split))
    return interleave(lists)


def paraphrase_prompts(target: ConceptTarget, faceworld: bool = True) -> list[str]:
    """Other wordings of the concept in the ``train`` split, for methods that erase many wordings at once
    (UCE): every caption phrase and adjective FaceWorld's training captions use for its values, in the
    canonical templates, beyond the canonical prompts and apart from every tune and eval prompt; none for
    free-text concepts or off FaceWorld.
    FaceWorld's held-out synonyms (never in a training caption) are not among them."""
    if not faceworld or target.attr is None:
        return []
    from backends.faceworld.world import CANONICAL_TEMPLATES, PHRASES

    taken = {normalise_prompt(p) for split in SPLITS for p in concept_prompts(target, split)}
    lists = [[t.format(phrase) for phrase in PHRASES[(target.attr, v)]["post"] for t in CANONICAL_TEMPLATES]
             + [f"{'an' if a[0] in 'aeiou' else 'a'} {a} face" for a in PHRASES[(target.attr, v)]["adj"]]
             for v in target.values]
    return [p for p in interleave(lists) if normalise_prompt(p) not in taken]


def collateral_values(target: ConceptTarget) -> dict[str, list[tuple[str, str]]]:
    """FaceWorld (attribute, value) pairs of the neighbouring and unrelated groups of a concept: the
    neighbours are its sibling values first, then the neighbouring attributes' values."""
    from backends.faceworld.world import ABSENT_VALUES, ATTRIBUTES

    attr = target.attr
    neighbours = list(NEIGHBOURS.get(attr, NEIGHBOURS["glasses"])) if attr else list(NEIGHBOURS["glasses"])
    if attr is not None:
        siblings = [(attr, v) for v in ATTRIBUTES[attr] if v not in target.values and v != ABSENT_VALUES.get(attr)]
        neighbours = siblings + [(a, v) for a, v in neighbours if a != attr]
    unrelated = [(a, v) for a, v in UNRELATED if a != attr and (a, v) not in neighbours]
    return {"neighbour": neighbours, "unrelated": unrelated}


def collateral_prompts(target: ConceptTarget, group: str, split: str,
                       faceworld: bool = True) -> list[tuple[str, tuple[str, str] | None]]:
    """(prompt, the FaceWorld (attribute, value) it asks for) of a collateral group in ``split``, the
    values taken in turn; off FaceWorld the generic prompts, with no value to check."""
    check_split(split)
    if not faceworld:
        return [(p, None) for p in GENERIC_COLLATERAL[group][split]]
    values = collateral_values(target)[group]
    return interleave([[(p, pair) for p in value_prompts(*pair, split)] for pair in values])


def measure_seeds(count: int, split: str = "eval") -> list[int]:
    """Seeds of the images a split's prompts are measured on: tune seeds for ``tune``, else eval seeds."""
    check_split(split)
    if not 0 <= count <= MAX_MEASURE_SEEDS:
        raise ValueError(f"measure with 0 to {MAX_MEASURE_SEEDS} seeds, not {count}")
    start = TUNE_SEED0 if split == "tune" else EVAL_SEED0
    return list(range(start, start + count))


def train_seeds(offset: int, count: int) -> list[int]:
    """``count`` seeds for training images and trajectories, from ``offset`` on, wrapped into TRAIN_SEEDS."""
    return [TRAIN_SEEDS[(offset + i) % len(TRAIN_SEEDS)] for i in range(count)]


def resolve_concept(concept: str) -> ConceptTarget:
    """The FaceWorld attribute values a concept names (attr None when it names none), by the vocabulary
    both tabs share (:mod:`backends.faceworld.concepts`)."""
    known = lookup(concept)
    return ConceptTarget(concept.strip(), *known) if known else ConceptTarget(concept.strip())


def same_concept(a: str, b: str) -> bool:
    """Whether two typed concepts name the same thing (same attribute values, or same words)."""
    ta, tb = resolve_concept(a), resolve_concept(b)
    if ta.attr is not None and tb.attr is not None:
        return ta.attr == tb.attr and bool(set(ta.values) & set(tb.values))
    return normalise(a) == normalise(b)


def _value_target(attr: str, value: str) -> ConceptTarget:
    return ConceptTarget(f"{attr}: {value}", attr, (value,))


def synonym_prompts(concept: str, faceworld: bool) -> list[str]:
    """Held-out wordings of the concept (FaceWorld: words never seen in training captions)."""
    if faceworld:
        from backends.faceworld.world import synonym_prompts as world_synonyms

        target = resolve_concept(concept)
        if target.attr is not None:
            per_value = [world_synonyms(target.attr, v) for v in target.values]
            width = max(len(p) for p in per_value)
            return [p[i] for i in range(width) for p in per_value if i < len(p)]
    text = normalise(concept)
    return [f"a photo of someone with {text}", f"a picture showing {text}", f"{text}, close up"]


def eval_prompts(concept: str, faceworld: bool, per_group: int, split: str = "eval") -> list[PromptSpec]:
    """The first ``per_group`` concept, neighbouring and unrelated prompts of ``split`` (the metrics table
    and the benchmark read ``eval``, defaults are chosen on ``tune``); on FaceWorld also the neutral prompt
    "a face", judged for the concept (how often it appears unasked)."""
    text = check_text(concept)
    target = resolve_concept(text) if faceworld else ConceptTarget(text)
    specs = [PromptSpec(p, "concept", target) for p in concept_prompts(target, split, faceworld)[:per_group]]
    for group in COLLATERAL_GROUPS:
        for prompt, pair in collateral_prompts(target, group, split, faceworld)[:per_group]:
            specs.append(PromptSpec(prompt, group, _value_target(*pair) if pair else ConceptTarget("")))
    return specs + ([PromptSpec(NEUTRAL_PROMPT, "neutral", target)] if faceworld else [])


def retain_prompts(concept: str, faceworld: bool, groups: tuple[str, ...] = ("neighbour", "unrelated")) -> list[str]:
    """Prompts a method keeps the model's behaviour on (retain / preserve sets): the ``train`` prompts of
    the concept's neighbouring and unrelated groups (FaceWorld values, else generic prompts)."""
    text = check_text(concept)
    target = resolve_concept(text) if faceworld else ConceptTarget(text)
    return [p for g in groups for p, _ in collateral_prompts(target, g, "train", faceworld)]
