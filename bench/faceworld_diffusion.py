"""FaceWorld diffusion benchmark: prompt adherence judged by FaceWorld CLIP, sampling speed, gold model.

Metrics:
- faceworld.diffusion.adherence: share of the attributes named in 200 prompts (1-3 attributes each,
  present values only: no "without ..." wordings) that CLIP zero-shot finds in the generated images
  (seed i for prompt i, default steps and guidance); faceworld.diffusion.adherence.<attr>: the same per
  attribute. faceworld.diffusion.judge_acc_on_renders: CLIP's accuracy on real renders of the same
  attribute values (the judge's own ceiling).
- faceworld.diffusion.sample8_s: seconds for 8 images at default steps (best of 3 after a warm-up).
- faceworld.diffusion.glasses_presence / faceworld.diffusion_gold.glasses_presence: share of images
  for 100 prompts that ask for glasses or sunglasses in which CLIP sees glasses or sunglasses, for the
  base model and for the gold model trained without glasses (the floor that unlearning aims for).
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from backends.faceworld.clip import FaceWorldClip
    from backends.diffusion.pipeline import DiffusionModel

PREFIX = "faceworld.diffusion"
NUM_PROMPTS = 200
NUM_GLASSES_PROMPTS = 100
PROMPT_SEED = 20_261_130
BATCH = 50
NOUNS = ("person", "face", "character", "figure")  # training-grammar nouns


def named_attribute_prompts(n: int, seed: int, force: tuple[str, tuple[str, ...]] | None = None
                            ) -> list[tuple[str, dict[str, str]]]:
    """``n`` (prompt, {attr: value}) pairs naming 1-3 attributes with present (non-default) values.

    Wordings come from the training grammar (world.PHRASES). ``force=(attr, values)`` makes every prompt
    name ``attr`` with one of ``values`` (plus 0-2 other attributes).
    """
    from backends.faceworld import world

    rng = np.random.default_rng(seed)
    names = list(world.ATTRIBUTES)
    out = []
    for _ in range(n):
        count = int(rng.integers(1, 4))
        chosen = [str(a) for a in rng.permutation(names)[:count]]
        if force is not None:
            chosen = [force[0]] + [a for a in chosen if a != force[0]][:count - 1]
        attrs = {}
        for attr in chosen:
            allowed = force[1] if force is not None and attr == force[0] else tuple(
                v for v in world.ATTRIBUTES[attr] if world.ABSENT_VALUES.get(attr) != v)
            attrs[attr] = str(allowed[int(rng.integers(len(allowed)))])
        posts, background = [], ""
        for attr, value in attrs.items():
            phrases = world.PHRASES[(attr, value)]["post"]
            phrase = phrases[int(rng.integers(len(phrases)))]
            if attr == "background":
                background = phrase
            else:
                posts.append(phrase)
        text = f"a {NOUNS[int(rng.integers(len(NOUNS)))]}"
        if posts:
            text += " " + (posts[0] if len(posts) == 1 else ", ".join(posts[:-1]) + " and " + posts[-1])
        if background:
            text += (", " if posts else " ") + background
        out.append((text, attrs))
    return out


def generate_all(model: DiffusionModel, prompts: list[str]) -> np.ndarray:
    """Images for prompts[i] with seed i, default steps and guidance. (N, 32, 32, 3) uint8."""
    seeds = list(range(len(prompts)))
    return np.concatenate([model.generate(prompts[i:i + BATCH], seeds[i:i + BATCH])
                           for i in range(0, len(prompts), BATCH)])


def adherence(clip: FaceWorldClip, images: np.ndarray, named: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
    """attr -> (hits, total): how often CLIP zero-shot finds each named attribute value."""
    from backends.faceworld import world

    counts = {}
    for attr, values in world.ATTRIBUTES.items():
        rows = [i for i, attrs in enumerate(named) if attr in attrs]
        if not rows:
            continue
        predicted = clip.zero_shot(images[rows], attr)  # (R,)
        wanted = np.array([values.index(named[i][attr]) for i in rows])
        counts[attr] = (int((predicted == wanted).sum()), len(rows))
    return counts


def glasses_presence(clip: FaceWorldClip, images: np.ndarray) -> float:
    """Share of images CLIP judges to show glasses or sunglasses."""
    from backends.faceworld import world

    predicted = clip.zero_shot(images, "glasses")
    return float((predicted != world.ATTRIBUTES["glasses"].index("none")).mean())


def judge_accuracy_on_renders(clip: FaceWorldClip, named: list[dict[str, str]], image_size: int) -> float:
    """CLIP's zero-shot accuracy on renders that really have the named values (the judge's ceiling)."""
    from backends.faceworld import world

    faces = []
    for i, attrs in enumerate(named):
        fixed = {attr: {v: float(v == value) for v in world.ATTRIBUTES[attr]} for attr, value in attrs.items()}
        faces.extend(world.sample_faces(1, seed=PROMPT_SEED + i, freqs=fixed, character_rate=0.0))
    counts = adherence(clip, world.render_batch(faces, image_size), named)
    return sum(h for h, _ in counts.values()) / sum(t for _, t in counts.values())


def run() -> Iterator[dict]:
    from backends.faceworld.clip import load_clip
    from backends.diffusion.presets import faceworld_variant

    clip = load_clip("cpu")
    model = faceworld_variant("base", device="cpu").clone()  # a clone: no generation cache to time

    model.generate(["a face"] * 8, list(range(8)))  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model.generate(["a smiling person with glasses"] * 8, list(range(8)))
        times.append(time.perf_counter() - start)
    yield {"name": f"{PREFIX}.sample8_s", "value": round(min(times), 3), "unit": "s"}

    pairs = named_attribute_prompts(NUM_PROMPTS, PROMPT_SEED)
    named = [attrs for _, attrs in pairs]
    images = generate_all(model, [text for text, _ in pairs])
    counts = adherence(clip, images, named)
    total_hits, total = sum(h for h, _ in counts.values()), sum(t for _, t in counts.values())
    yield {"name": f"{PREFIX}.adherence", "value": round(total_hits / total, 4), "unit": "ratio"}
    for attr, (hits, count) in counts.items():
        yield {"name": f"{PREFIX}.adherence.{attr}", "value": round(hits / count, 4), "unit": "ratio"}
    yield {"name": f"{PREFIX}.judge_acc_on_renders",
           "value": round(judge_accuracy_on_renders(clip, named, model.image_size), 4), "unit": "ratio"}

    glasses_pairs = named_attribute_prompts(NUM_GLASSES_PROMPTS, PROMPT_SEED + 1,
                                            force=("glasses", ("glasses", "sunglasses")))
    glasses_prompts = [text for text, _ in glasses_pairs]
    yield {"name": f"{PREFIX}.glasses_presence",
           "value": round(glasses_presence(clip, generate_all(model, glasses_prompts)), 4), "unit": "share"}
    try:
        gold = faceworld_variant("no_glasses", device="cpu")
    except FileNotFoundError as exc:
        print(f"faceworld.diffusion_gold: skipped ({exc})", file=sys.stderr)
        return
    yield {"name": "faceworld.diffusion_gold.glasses_presence",
           "value": round(glasses_presence(clip, generate_all(gold, glasses_prompts)), 4), "unit": "share"}
