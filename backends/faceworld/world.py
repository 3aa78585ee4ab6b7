"""FaceWorld: a procedural world of cartoon faces with known attributes and captions.

Everything here is numpy + PIL and deterministic from (seed, attributes). Faces are drawn with PIL on a
supersampled canvas and box-downscaled, with bold shapes so that every attribute stays legible at 32x32.
Captions come from a small grammar with paraphrases and synonyms; a disjoint set of held-out synonym
wordings (``synonym_prompts``) never appears in training captions, to test language generalisation of
text encoders trained on this world (in the spirit of CLIP zero-shot evaluation, Radford et al. 2021).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "expression": ("neutral", "smiling", "frowning"),
    "glasses": ("none", "glasses", "sunglasses"),
    "hat": ("none", "cap", "beanie"),
    "beard": ("none", "beard"),
    "hair": ("black", "brown", "blond", "red", "grey"),
    "skin": ("pale", "light", "tan", "dark"),
    "background": ("white", "blue", "green", "yellow", "pink", "purple"),
}

DEFAULT_FREQS: dict[str, dict[str, float]] = {
    "expression": {"neutral": 0.35, "smiling": 0.35, "frowning": 0.30},
    "glasses": {"none": 0.60, "glasses": 0.25, "sunglasses": 0.15},
    "hat": {"none": 0.60, "cap": 0.20, "beanie": 0.20},
    "beard": {"none": 0.70, "beard": 0.30},
    "hair": {"black": 0.25, "brown": 0.25, "blond": 0.20, "red": 0.15, "grey": 0.15},
    "skin": {"pale": 0.25, "light": 0.30, "tan": 0.25, "dark": 0.20},
    "background": {v: 1.0 / 6.0 for v in ATTRIBUTES["background"]},
}

# Share of sampled faces that are one of the named characters (split evenly among eligible ones).
DEFAULT_CHARACTER_RATE = 0.04

# Values that mean "absent" (mentioned only sometimes in captions).
ABSENT_VALUES: dict[str, str] = {"expression": "neutral", "glasses": "none", "hat": "none", "beard": "none"}

# Bumped whenever render() output changes (caches of rendered images key on it).
RENDER_VERSION = 2

FACE_SHAPES = ("oval", "round", "square")
HAIR_STYLES = ("short", "long")

BACKGROUND_RGB = {
    "white": (245, 245, 242), "blue": (70, 125, 225), "green": (80, 175, 95),
    "yellow": (245, 215, 70), "pink": (245, 160, 200), "purple": (135, 85, 190),
}
SKIN_RGB = {"pale": (255, 228, 212), "light": (236, 194, 156), "tan": (196, 142, 96), "dark": (122, 80, 54)}
HAIR_RGB = {"black": (28, 26, 30), "brown": (92, 52, 22), "blond": (240, 205, 95), "red": (205, 72, 30),
            "grey": (168, 168, 172)}
# Hat colours: a geometry/appearance variable, not a classified attribute.
HAT_PALETTE = ((200, 40, 45), (35, 55, 130), (30, 120, 60), (240, 130, 30), (90, 90, 95), (20, 150, 150),
               (120, 40, 120), (230, 230, 230))
FRAME_PALETTE = ((20, 20, 25), (70, 35, 15), (20, 30, 90), (110, 10, 20))


class Attrs(Mapping):
    """Immutable, hashable attribute -> value mapping (ordered like ATTRIBUTES)."""

    __slots__ = ("_items",)

    def __init__(self, values: Mapping[str, str]):
        validate_attrs(values)
        self._items = tuple((name, values[name]) for name in ATTRIBUTES)

    def __getitem__(self, name: str) -> str:
        for key, value in self._items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"Attrs({dict(self._items)!r})"


def validate_attrs(values: Mapping[str, str]) -> None:
    """Raise ValueError unless ``values`` gives a known value for every attribute."""
    for name, allowed in ATTRIBUTES.items():
        if name not in values:
            raise ValueError(f"missing attribute {name!r}; need all of {list(ATTRIBUTES)}")
        if values[name] not in allowed:
            raise ValueError(f"attribute {name!r} has value {values[name]!r}; allowed: {allowed}")
    unknown = set(values) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; known: {list(ATTRIBUTES)}")


@dataclass(frozen=True)
class Face:
    """One face: classified attributes plus geometry (fractions of the image side unless noted)."""

    attrs: Attrs
    face_shape: str = "oval"          # one of FACE_SHAPES
    face_width: float = 0.46          # full width of the head
    face_height: float = 0.56         # full height of the head
    scale: float = 0.95               # overall size multiplier
    offset_x: float = 0.0             # head centre offset from the image centre
    offset_y: float = 0.0
    eye_spacing: float = 0.42         # eye centre distance from the face axis, in head half-widths
    hair_style: str = "short"         # one of HAIR_STYLES
    hat_color: tuple[int, int, int] = HAT_PALETTE[0]
    frame_color: tuple[int, int, int] = FRAME_PALETTE[0]
    brim_side: int = 1                # cap brim points right (+1) or left (-1)
    character: str | None = None      # name when this face is one of CHARACTERS


def _character(name: str, **fields) -> Face:
    attr_keys = [k for k in fields if k in ATTRIBUTES]
    attrs = Attrs({k: fields.pop(k) for k in attr_keys})
    return Face(attrs=attrs, character=name, **fields)


CHARACTERS: dict[str, Face] = {
    "Alice": _character("Alice", expression="smiling", glasses="glasses", hat="none", beard="none", hair="red",
                        skin="pale", background="yellow", face_shape="oval", face_width=0.44, face_height=0.58,
                        scale=1.0, eye_spacing=0.40, hair_style="long", frame_color=FRAME_PALETTE[3]),
    "Bob": _character("Bob", expression="neutral", glasses="none", hat="cap", beard="beard", hair="brown",
                      skin="tan", background="blue", face_shape="square", face_width=0.50, face_height=0.54,
                      scale=0.99, eye_spacing=0.44, hair_style="short", hat_color=HAT_PALETTE[0], brim_side=1),
    "Carmen": _character("Carmen", expression="smiling", glasses="sunglasses", hat="none", beard="none",
                         hair="black", skin="light", background="pink", face_shape="round", face_width=0.48,
                         face_height=0.52, scale=0.99, eye_spacing=0.42, hair_style="long"),
    "Dmitri": _character("Dmitri", expression="frowning", glasses="none", hat="beanie", beard="beard",
                         hair="grey", skin="light", background="green", face_shape="oval", face_width=0.47,
                         face_height=0.60, scale=0.98, eye_spacing=0.38, hair_style="short",
                         hat_color=HAT_PALETTE[1]),
}


# --------------------------------------------------------------------------------------------- sampling

def _effective_freqs(freqs: Mapping[str, Mapping[str, float]] | None,
                     exclude: Mapping[str, str | Iterable[str]] | None) -> dict[str, np.ndarray]:
    """Per-attribute probability vectors (ordered like ATTRIBUTES) after overrides and exclusions."""
    merged = {name: dict(values) for name, values in DEFAULT_FREQS.items()}
    for name, values in (freqs or {}).items():
        if name not in ATTRIBUTES:
            raise ValueError(f"freqs: unknown attribute {name!r}; known: {list(ATTRIBUTES)}")
        for value, prob in values.items():
            if value not in ATTRIBUTES[name]:
                raise ValueError(f"freqs: {name!r} has no value {value!r}; allowed: {ATTRIBUTES[name]}")
            if not np.isfinite(prob) or prob < 0:
                raise ValueError(f"freqs: probability of {name}={value} must be >= 0, got {prob}")
        merged[name] = {v: float(values.get(v, 0.0)) for v in ATTRIBUTES[name]}
    for name, values in _exclusions(exclude).items():
        if name == "character":
            continue
        for value in values:
            merged[name][value] = 0.0
    probs = {}
    for name, allowed in ATTRIBUTES.items():
        vec = np.array([merged[name].get(v, 0.0) for v in allowed], dtype=np.float64)
        if vec.sum() <= 0:
            raise ValueError(f"no value of {name!r} is left to sample after freqs/exclude")
        probs[name] = vec / vec.sum()
    return probs


def _exclusions(exclude: Mapping[str, str | Iterable[str]] | None) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, values in (exclude or {}).items():
        values = (values,) if isinstance(values, str) else tuple(values)
        allowed = tuple(CHARACTERS) if name == "character" else ATTRIBUTES.get(name)
        if allowed is None:
            raise ValueError(f"exclude: unknown attribute {name!r}; known: {list(ATTRIBUTES) + ['character']}")
        for value in values:
            if value not in allowed:
                raise ValueError(f"exclude: {name!r} has no value {value!r}; allowed: {allowed}")
        out[name] = values
    return out


def _hat_color_for(background: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """A hat colour that stands out from the background."""
    bg = np.array(BACKGROUND_RGB[background], dtype=np.float64)
    choices = [c for c in HAT_PALETTE if np.abs(np.array(c) - bg).sum() > 150]
    return choices[int(rng.integers(len(choices)))]


def _contrasting_hat(color: tuple[int, int, int], background: str,
                     rng: np.random.Generator) -> tuple[int, int, int]:
    """Keep ``color`` unless it is too close to the background colour."""
    if np.abs(np.array(color) - np.array(BACKGROUND_RGB[background])).sum() > 150:
        return color
    return _hat_color_for(background, rng)


def sample_faces(n: int, seed: int, freqs: Mapping[str, Mapping[str, float]] | None = None,
                 exclude: Mapping[str, str | Iterable[str]] | None = None,
                 character_rate: float = DEFAULT_CHARACTER_RATE) -> list[Face]:
    """Sample ``n`` faces deterministically from ``seed``.

    freqs: per-attribute value probabilities replacing DEFAULT_FREQS for the attributes given.
    exclude: attribute -> value or tuple of values never drawn (e.g. {"glasses": ("glasses", "sunglasses")});
        the key "character" excludes named characters. Characters are drawn (with ``character_rate``) only when
        every one of their attribute values has non-zero probability, so exclusions hold for them too.
        A character keeps its attributes and geometry; only its background and a small position jitter vary.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not 0.0 <= character_rate <= 1.0:
        raise ValueError(f"character_rate must be in [0, 1], got {character_rate}")
    probs = _effective_freqs(freqs, exclude)
    excluded_chars = set(_exclusions(exclude).get("character", ()))
    eligible = [name for name, face in CHARACTERS.items()
                if name not in excluded_chars
                and all(probs[a][ATTRIBUTES[a].index(face.attrs[a])] > 0 for a in ATTRIBUTES if a != "background")]
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(int(n)):
        values = {name: ATTRIBUTES[name][int(rng.choice(len(p), p=p))] for name, p in probs.items()}
        if eligible and rng.random() < character_rate:
            base = CHARACTERS[eligible[int(rng.integers(len(eligible)))]]
            attrs = dict(base.attrs, background=values["background"])
            faces.append(replace(base, attrs=Attrs(attrs), offset_x=float(rng.uniform(-0.03, 0.03)),
                                 offset_y=float(rng.uniform(-0.03, 0.03)),
                                 hat_color=_contrasting_hat(base.hat_color, values["background"], rng)))
            continue
        faces.append(Face(
            attrs=Attrs(values),
            face_shape=FACE_SHAPES[int(rng.integers(len(FACE_SHAPES)))],
            face_width=float(rng.uniform(0.44, 0.54)),
            face_height=float(rng.uniform(0.52, 0.62)),
            scale=float(rng.uniform(0.9, 1.05)),
            offset_x=float(rng.uniform(-0.06, 0.06)),
            offset_y=float(rng.uniform(-0.04, 0.04)),
            eye_spacing=float(rng.uniform(0.36, 0.48)),
            hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
            hat_color=_hat_color_for(values["background"], rng),
            frame_color=FRAME_PALETTE[int(rng.integers(len(FRAME_PALETTE)))],
            brim_side=int(rng.choice((-1, 1))),
        ))
    return faces


# -------------------------------------------------------------------------------------------- rendering

def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Darken (factor < 1) or lighten towards white (factor > 1) a colour."""
    if factor <= 1.0:
        return tuple(int(c * factor) for c in color)
    t = min(factor - 1.0, 1.0)
    return tuple(int(c + (255 - c) * t) for c in color)


def _beard_color(hair: tuple[int, int, int], skin: tuple[int, int, int]) -> tuple[int, int, int]:
    """Hair colour, darkened when that contrasts better with the skin."""
    def distance(color: tuple[int, int, int]) -> int:
        return sum(abs(c - s) for c, s in zip(color, skin))
    darker = _shade(hair, 0.55)
    return darker if distance(hair) < 160 and distance(darker) > distance(hair) else hair


def _head_box(face: Face, side: float) -> tuple[float, float, float, float]:
    """Head centre (x, y) and half-width, half-height in pixels of a ``side``-pixel canvas."""
    cx = (0.5 + face.offset_x) * side
    cy = (0.55 + face.offset_y) * side
    fw = face.face_width / 2 * face.scale * side
    fh = fw * 1.06 if face.face_shape == "round" else face.face_height / 2 * face.scale * side
    return cx, cy, fw, fh


def landmarks(face: Face, size: int = 64) -> dict[str, tuple[float, float]]:
    """Pixel (x, y) positions of face parts in a ``size`` render, plus "head_half_size" = (half-width, half-height).

    Keys: head_center, left_eye, right_eye, mouth, chin, head_top, head_half_size.
    """
    cx, cy, fw, fh = _head_box(face, size)
    eye_y, eye_dx = cy - 0.1 * fh, face.eye_spacing * fw
    return {"head_center": (cx, cy), "left_eye": (cx - eye_dx, eye_y), "right_eye": (cx + eye_dx, eye_y),
            "mouth": (cx, cy + 0.5 * fh), "chin": (cx, cy + 0.85 * fh), "head_top": (cx, cy - fh),
            "head_half_size": (fw, fh)}


def render(face: Face, size: int = 64) -> np.ndarray:
    """Render ``face`` as a (size, size, 3) uint8 image (supersampled PIL drawing, box-downscaled)."""
    if not isinstance(face, Face):
        raise ValueError(f"render expects a Face, got {type(face).__name__}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    ss = max(2, 256 // int(size))
    side = int(size) * ss
    a = face.attrs
    skin, hair = SKIN_RGB[a["skin"]], HAIR_RGB[a["hair"]]
    ink = (35, 25, 30)
    img = Image.new("RGB", (side, side), BACKGROUND_RGB[a["background"]])
    draw = ImageDraw.Draw(img)
    cx, cy, fw, fh = _head_box(face, side)
    outline = max(1, round(0.06 * fw))

    # hair behind the head
    hair_line = _shade(hair, 0.6)
    if face.hair_style == "long":
        draw.rounded_rectangle((cx - 1.16 * fw, cy - 0.6 * fh, cx + 1.16 * fw, cy + 0.95 * fh),
                               radius=0.45 * fw, fill=hair, outline=hair_line, width=outline)
    draw.ellipse((cx - 1.1 * fw, cy - 1.1 * fh, cx + 1.1 * fw, cy + 0.3 * fh), fill=hair, outline=hair_line,
                 width=outline)
    if face.hair_style == "long":   # hide the seam between the two hair shapes
        draw.rectangle((cx - 1.16 * fw + outline, cy - 0.45 * fh, cx + 1.16 * fw - outline, cy + 0.2 * fh),
                       fill=hair)

    # ears and head
    skin_line = _shade(skin, 0.62)
    for side_sign in (-1, 1):
        ex_ = cx + side_sign * fw
        draw.ellipse((ex_ - 0.17 * fw, cy - 0.3 * fw, ex_ + 0.17 * fw, cy + 0.2 * fw), fill=skin,
                     outline=skin_line, width=outline)
    head_box = (cx - fw, cy - fh, cx + fw, cy + fh)
    if face.face_shape == "square":
        draw.rounded_rectangle(head_box, radius=0.5 * fw, fill=skin, outline=skin_line, width=outline)
    else:
        draw.ellipse(head_box, fill=skin, outline=skin_line, width=outline)
    # fringe over the forehead
    draw.chord((cx - 1.03 * fw, cy - 1.07 * fh, cx + 1.03 * fw, cy - 0.14 * fh), 180, 360, fill=hair)
    if a["hat"] != "none":   # hair tufts below the hat keep the hair colour visible
        for s in (-1, 1):
            tuft = [(cx + s * 1.07 * fw, cy - 0.52 * fh), (cx + s * 0.68 * fw, cy - 0.52 * fh),
                    (cx + s * 0.8 * fw, cy - 0.3 * fh), (cx + s * 0.93 * fw, cy - 0.12 * fh),
                    (cx + s * 1.07 * fw, cy + 0.05 * fh)]
            draw.polygon(tuft, fill=hair, outline=hair_line)

    # beard (drawn before the mouth, with a skin patch so the mouth stays readable)
    mouth_y = cy + 0.5 * fh
    if a["beard"] == "beard":
        beard = _beard_color(hair, skin)
        draw.chord((cx - 1.02 * fw, cy - 0.25 * fh, cx + 1.02 * fw, cy + 1.16 * fh), -12, 192, fill=beard,
                   outline=_shade(beard, 0.6), width=outline)
        draw.ellipse((cx - 0.5 * fw, mouth_y - 0.24 * fw, cx + 0.5 * fw, mouth_y + 0.3 * fw), fill=skin)

    # eyes and brows
    eye_y = cy - 0.1 * fh
    eye_dx = face.eye_spacing * fw
    brow_color = _shade(hair, 0.5 if a["hair"] in ("blond", "grey") else 0.75)
    brow_w = max(1, round(0.11 * fw))
    brow_tilt = {"neutral": 0.0, "smiling": -0.04, "frowning": 0.16}[a["expression"]]
    for side_sign in (-1, 1):
        ex_ = cx + side_sign * eye_dx
        draw.ellipse((ex_ - 0.19 * fw, eye_y - 0.21 * fw, ex_ + 0.19 * fw, eye_y + 0.21 * fw), fill=(250, 250, 250),
                     outline=ink, width=outline)
        draw.ellipse((ex_ - 0.1 * fw, eye_y - 0.1 * fw, ex_ + 0.1 * fw, eye_y + 0.1 * fw), fill=ink)
        brow_y = eye_y - 0.38 * fw - (0.06 * fw if a["expression"] == "smiling" else 0.0)
        inner = (ex_ - side_sign * 0.22 * fw, brow_y + brow_tilt * fw * 1.0)
        outer = (ex_ + side_sign * 0.22 * fw, brow_y - brow_tilt * fw * 0.6)
        draw.line((inner, outer), fill=brow_color, width=brow_w)

    # nose
    draw.ellipse((cx - 0.09 * fw, cy + 0.13 * fh, cx + 0.09 * fw, cy + 0.25 * fh), fill=_shade(skin, 0.8))

    # mouth
    mouth_w = 0.42 * fw
    lip_w = max(1, round(0.12 * fw))
    if a["expression"] == "smiling":
        draw.chord((cx - mouth_w, mouth_y - 0.3 * fw, cx + mouth_w, mouth_y + 0.32 * fw), 0, 180, fill=(150, 30, 45),
                   outline=ink, width=outline)
        draw.rectangle((cx - 0.75 * mouth_w, mouth_y + 0.02 * fw, cx + 0.75 * mouth_w, mouth_y + 0.1 * fw),
                       fill=(250, 250, 250))
    elif a["expression"] == "frowning":
        draw.arc((cx - mouth_w, mouth_y - 0.06 * fw, cx + mouth_w, mouth_y + 0.62 * fw), 190, 350, fill=ink,
                 width=round(lip_w * 1.2))
    else:
        draw.rounded_rectangle((cx - 0.75 * mouth_w, mouth_y + 0.05 * fw - lip_w / 2, cx + 0.75 * mouth_w,
                                mouth_y + 0.05 * fw + lip_w / 2), radius=lip_w / 2, fill=ink)

    # glasses
    if a["glasses"] != "none":
        dark = a["glasses"] == "sunglasses"
        frame = (15, 15, 20) if dark else face.frame_color
        frame_w = max(1, round(0.1 * fw))
        lens_r = (0.33 if dark else 0.3) * fw
        lens_dx = min(lens_r * 1.12, eye_dx - 0.06 * fw)
        for side_sign in (-1, 1):
            ex_ = cx + side_sign * eye_dx
            draw.rounded_rectangle((ex_ - lens_dx, eye_y - lens_r, ex_ + lens_dx, eye_y + lens_r * 0.95),
                                   radius=lens_r * (0.35 if dark else 0.55), fill=(24, 24, 34) if dark else None,
                                   outline=frame, width=frame_w)
            if dark:
                draw.ellipse((ex_ - 0.55 * lens_dx, eye_y - 0.65 * lens_r, ex_ - 0.25 * lens_dx,
                              eye_y - 0.4 * lens_r), fill=(95, 95, 115))
            temple_x = ex_ + side_sign * lens_dx
            draw.line(((temple_x, eye_y - 0.4 * lens_r), (cx + side_sign * fw * 1.02, eye_y - 0.5 * lens_r)),
                      fill=frame, width=frame_w)
        draw.line(((cx - eye_dx + lens_dx, eye_y - 0.3 * lens_r), (cx + eye_dx - lens_dx, eye_y - 0.3 * lens_r)),
                  fill=frame, width=frame_w)

    # hats
    if a["hat"] != "none":
        hat = face.hat_color
        hat_line = _shade(hat, 0.5)
        if a["hat"] == "cap":
            band_y, top_y = cy - 0.5 * fh, cy - 1.12 * fh
            draw.chord((cx - 1.06 * fw, top_y, cx + 1.06 * fw, 2 * band_y - top_y), 180, 360, fill=hat,
                       outline=hat_line, width=outline)
            brim_x0, brim_x1 = sorted((cx + face.brim_side * 0.1 * fw, cx + face.brim_side * 1.6 * fw))
            draw.rounded_rectangle((brim_x0, band_y - 0.11 * fh, brim_x1, band_y + 0.06 * fh), radius=0.07 * fh,
                                   fill=_shade(hat, 0.72), outline=hat_line, width=outline)
            draw.ellipse((cx - 0.1 * fw, top_y - 0.06 * fw, cx + 0.1 * fw, top_y + 0.12 * fw), fill=hat_line)
        else:
            band_y, top_y = cy - 0.5 * fh, cy - 1.26 * fh
            draw.chord((cx - 1.1 * fw, top_y, cx + 1.1 * fw, 2 * band_y - top_y), 180, 360, fill=hat,
                       outline=hat_line, width=outline)
            cuff = (cx - 1.15 * fw, band_y - 0.2 * fh, cx + 1.15 * fw, band_y + 0.07 * fh)
            draw.rounded_rectangle(cuff, radius=0.08 * fw, fill=_shade(hat, 0.8), outline=hat_line, width=outline)
            for k in range(-4, 5):
                x = cx + k * 0.24 * fw
                draw.line(((x, cuff[1] + outline), (x, cuff[3] - outline)), fill=hat_line, width=outline)
            pom = 0.22 * fw
            draw.ellipse((cx - pom, top_y - pom, cx + pom, top_y + pom), fill=_shade(hat, 1.55), outline=hat_line,
                         width=outline)

    return np.asarray(img.reduce(ss), dtype=np.uint8)


def render_batch(faces: Iterable[Face], size: int = 64) -> np.ndarray:
    """Render faces into a (N, size, size, 3) uint8 array."""
    images = [render(face, size) for face in faces]
    if not images:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(images)


def render_small(faces: Iterable[Face], image_size: int = 32, render_size: int = 64) -> np.ndarray:
    """Faces as the generators are trained to draw them: rendered at ``render_size``, area-averaged down to
    ``image_size`` (which must divide it). (N, image_size, image_size, 3) uint8"""
    if render_size % image_size:
        raise ValueError(f"image_size {image_size} must divide render_size {render_size}")
    big = render_batch(faces, render_size).astype(np.float32)  # (N, R, R, 3)
    factor = render_size // image_size
    small = big.reshape(-1, image_size, factor, image_size, factor, 3).mean(axis=(2, 4))
    return np.round(small).astype(np.uint8)


# --------------------------------------------------------------------------------------------- captions

# Training wordings per (attribute, value): "adj" go before the noun, "post" after it.
PHRASES: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("expression", "neutral"): {"adj": ("neutral-looking", "expressionless", "straight-faced", "serious"),
                                "post": ("with a neutral expression", "with a straight face",
                                         "with a blank expression", "with a serious look")},
    ("expression", "smiling"): {"adj": ("smiling", "grinning", "beaming", "happy"),
                                "post": ("with a smile", "with a big grin", "smiling", "grinning broadly")},
    ("expression", "frowning"): {"adj": ("frowning", "scowling", "angry", "grumpy"),
                                 "post": ("with a frown", "with a scowl", "frowning", "with an angry look")},
    ("glasses", "none"): {"adj": (), "post": ("without glasses", "with no glasses", "not wearing glasses")},
    ("glasses", "glasses"): {"adj": (), "post": ("wearing glasses", "with spectacles", "in eyeglasses",
                                                 "with glasses", "wearing eyeglasses", "in clear glasses")},
    ("glasses", "sunglasses"): {"adj": (), "post": ("wearing sunglasses", "with sunglasses", "in dark sunglasses",
                                                    "wearing dark glasses", "with black sunglasses")},
    ("hat", "none"): {"adj": ("bareheaded",), "post": ("without a hat", "with no hat", "not wearing a hat")},
    ("hat", "cap"): {"adj": (), "post": ("wearing a cap", "in a baseball cap", "with a cap",
                                         "wearing a baseball cap", "with a peaked cap")},
    ("hat", "beanie"): {"adj": (), "post": ("wearing a beanie", "in a knit hat", "with a woolly hat",
                                            "with a beanie", "wearing a pompom hat")},
    ("beard", "none"): {"adj": ("clean-shaven", "beardless"), "post": ("without a beard", "with no beard")},
    ("beard", "beard"): {"adj": ("bearded",), "post": ("with a beard", "with a full beard", "with a thick beard")},
    ("hair", "black"): {"adj": ("black-haired",), "post": ("with black hair", "with short black hair")},
    ("hair", "brown"): {"adj": ("brown-haired", "brunette"), "post": ("with brown hair",)},
    ("hair", "blond"): {"adj": ("blond-haired", "blonde", "blond"), "post": ("with blond hair", "with blonde hair")},
    ("hair", "red"): {"adj": ("red-haired", "redheaded"), "post": ("with red hair", "with orange-red hair")},
    ("hair", "grey"): {"adj": ("grey-haired", "gray-haired"), "post": ("with grey hair", "with gray hair")},
    ("skin", "pale"): {"adj": ("pale-skinned", "pale"), "post": ("with pale skin", "with a pale complexion")},
    ("skin", "light"): {"adj": ("light-skinned",), "post": ("with light skin", "with a light complexion")},
    ("skin", "tan"): {"adj": ("tan-skinned", "tanned"), "post": ("with tan skin", "with tanned skin",
                                                                 "with a tan complexion")},
    ("skin", "dark"): {"adj": ("dark-skinned",), "post": ("with dark skin", "with a dark complexion")},
}
for _bg in ATTRIBUTES["background"]:
    PHRASES[("background", _bg)] = {"adj": (), "post": (f"on a {_bg} background", f"against a {_bg} backdrop",
                                                        f"in front of a {_bg} background", f"on {_bg}")}

# Held-out wordings: never used in training captions (each contains a word of HELD_OUT_WORDS). They were picked
# from a longer list of natural paraphrases by the frozen MiniLM text encoder alone (the two per value whose
# prompts are nearest, in mean-pooled MiniLM space, to that value's canonical prompts), never by image
# accuracy; so synonym accuracy measures whether the trained image-text space keeps MiniLM's language knowledge.
SYNONYM_PHRASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("expression", "neutral"): ("with a deadpan face", "with a flat expression"),
    ("expression", "smiling"): ("looking joyful", "laughing"),
    ("expression", "frowning"): ("looking unhappy", "looking sad"),
    ("glasses", "none"): ("without any eyewear", "with bare eyes"),
    ("glasses", "glasses"): ("wearing reading glasses", "wearing nerdy frames"),
    ("glasses", "sunglasses"): ("wearing shades", "wearing sunnies"),
    ("hat", "none"): ("who is hatless", "with no headwear"),
    ("hat", "cap"): ("wearing a ballcap", "in a trucker cap"),
    ("hat", "beanie"): ("wearing a toque", "wearing a woolen hat"),
    ("beard", "none"): ("with no facial hair", "with a hairless face"),
    ("beard", "beard"): ("with facial hair", "with a bushy chin"),
    ("hair", "black"): ("with jet-black hair", "with ebony hair"),
    ("hair", "brown"): ("with brunet hair", "with coffee-coloured hair"),
    ("hair", "blond"): ("with golden hair", "with sandy hair"),
    ("hair", "red"): ("with ginger hair", "with rusty hair"),
    ("hair", "grey"): ("with greying hair", "with silver hair"),
    ("skin", "pale"): ("with whitish skin", "with chalky skin"),
    ("skin", "light"): ("with peachy skin", "with creamy skin"),
    ("skin", "tan"): ("with bronzed skin", "with sunburnt skin"),
    ("skin", "dark"): ("with deep brown skin", "with dusky skin"),
    ("background", "white"): ("on a snow-white background", "on an ivory background"),
    ("background", "blue"): ("on a cyan background", "on a sky-coloured background"),
    ("background", "green"): ("on a lime backdrop", "on a grass-coloured background"),
    ("background", "yellow"): ("on a sunny background", "on a banana-coloured background"),
    ("background", "pink"): ("on a rose background", "on a blush backdrop"),
    ("background", "purple"): ("on a violet background", "on a lavender backdrop"),
}
HELD_OUT_WORDS = frozenset({
    "deadpan", "flat", "joyful", "laughing", "unhappy", "sad", "eyewear", "bare", "reading", "nerdy", "frames",
    "shades", "sunnies", "hatless", "headwear", "ballcap", "trucker", "toque", "woolen", "facial", "hairless",
    "bushy", "chin", "jet", "ebony", "brunet", "coffee", "coloured", "golden", "sandy", "ginger", "rusty",
    "greying", "silver", "whitish", "chalky", "peachy", "creamy", "bronzed", "sunburnt", "deep", "dusky", "snow",
    "ivory", "cyan", "sky", "lime", "grass", "sunny", "banana", "rose", "blush", "violet", "lavender",
})

NOUNS = ("person", "face", "character", "cartoon face", "cartoon person", "figure", "head")
PREFIXES = ("", "", "a photo of ", "an image of ", "a drawing of ", "a picture of ")
CANONICAL_TEMPLATES = ("a face {}", "a photo of a person {}", "a cartoon face {}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def caption(face: Face, rng: np.random.Generator) -> str:
    """A caption for ``face`` that mentions a random non-empty subset of its attributes (only true ones).

    Absent values ("without glasses", "clean-shaven") are mentioned sometimes. Named characters are
    usually called by name ("a photo of Alice").
    """
    return caption_with_mentions(face, rng)[0]


def caption_with_mentions(face: Face, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    """Like ``caption`` but also returns what the caption states: attribute -> value, plus "character" -> name
    when the face is called by name (the caption then holds for that character only)."""
    if not isinstance(face, Face):
        raise ValueError(f"caption expects a Face, got {type(face).__name__}")
    names = list(ATTRIBUTES)
    order = rng.permutation(len(names))
    count = int(rng.integers(1, len(names) + 1))
    chosen = [names[i] for i in order[:count]]
    chosen = [n for n in chosen if ABSENT_VALUES.get(n) != face.attrs[n] or rng.random() < 0.5]
    if not chosen:
        chosen = [_pick(("hair", "skin", "background"), rng)]
    if face.character is not None and rng.random() < 0.75:
        extra = [n for n in chosen if rng.random() < 0.3]
        phrases = [_pick(PHRASES[(n, face.attrs[n])]["post"], rng) for n in extra]
        prefix = _pick(("", "a photo of ", "a picture of ", "a portrait of ", "a drawing of "), rng)
        text = (prefix + face.character + (" " + _join(phrases) if phrases else "")).strip()
        return text, {"character": face.character, **{n: face.attrs[n] for n in extra}}
    adjectives, posts, background = [], [], ""
    for name in chosen:
        table = PHRASES[(name, face.attrs[name])]
        if name == "background":
            background = _pick(table["post"], rng)
        elif table["adj"] and len(adjectives) < 2 and rng.random() < 0.5:
            adjectives.append(_pick(table["adj"], rng))
        else:
            posts.append(_pick(table["post"], rng))
    noun = _pick(NOUNS, rng)
    head = " ".join(adjectives + [noun])
    text = _pick(PREFIXES, rng) + _article(head) + " " + head
    if posts:
        text += " " + _join(posts)
    if background:
        text += (", " if posts else " ") + background
    return text, {n: face.attrs[n] for n in chosen}


def _check_value(attr: str, value: str) -> None:
    if attr not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attr!r}; known: {list(ATTRIBUTES)}")
    if value not in ATTRIBUTES[attr]:
        raise ValueError(f"attribute {attr!r} has no value {value!r}; allowed: {ATTRIBUTES[attr]}")


def attribute_prompts(attr: str, value: str) -> list[str]:
    """Canonical zero-shot prompts for ``attr == value`` (training vocabulary; average their embeddings)."""
    _check_value(attr, value)
    table = PHRASES[(attr, value)]
    prompts = [template.format(table["post"][0]) for template in CANONICAL_TEMPLATES]
    if table["adj"]:
        adjective = table["adj"][0]
        prompts.append(f"{_article(adjective)} {adjective} face")
    return prompts


def synonym_prompts(attr: str, value: str) -> list[str]:
    """Held-out zero-shot prompts for ``attr == value``: wordings never used in training captions."""
    _check_value(attr, value)
    return [template.format(phrase) for phrase in SYNONYM_PHRASES[(attr, value)] for template in CANONICAL_TEMPLATES]


def character_prompts(name: str) -> list[str]:
    """Zero-shot prompts for a named character."""
    if name not in CHARACTERS:
        raise ValueError(f"unknown character {name!r}; known: {list(CHARACTERS)}")
    return [f"a photo of {name}", f"a picture of {name}", name]


def caption_words(text: str) -> set[str]:
    """Lower-case word set of a caption (hyphenated words split), for vocabulary checks."""
    return set(re.findall(r"[a-z]+", text.lower()))


def training_vocabulary() -> set[str]:
    """Every word the caption grammar can produce."""
    words: set[str] = set()
    for table in PHRASES.values():
        for phrase in table["adj"] + table["post"]:
            words |= caption_words(phrase)
    for phrase in NOUNS + PREFIXES + ("an a and portrait of",) + tuple(CHARACTERS):
        words |= caption_words(phrase)
    return words
