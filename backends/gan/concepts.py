"""Typed concept -> what to measure: its text prompt and the FaceWorld attribute that judges presence.

The typed concept is mapped to FaceWorld attribute values in this order (our choice; documented in the
GAN tab):

1. a word of the shared FaceWorld vocabulary (:mod:`backends.faceworld.concepts`, the same rules as the
   diffusion tab): an attribute that can be absent ("glasses", "hat", "beard") covers all its present
   values ("glasses" counts glasses and sunglasses, as the gold-standard model retrained without glasses
   excludes both) and its text stands for all of them: the mean embedding of "a face with glasses" and
   "a face with sunglasses" (FaceWorld CLIP was trained with sunglasses images as negatives of "glasses"
   captions, so "glasses" alone points away from sunglasses and unlearning it would add them); a value
   ("sunglasses", "smiling", "cap", "blond") names that value;
2. otherwise the value whose text offset from the neutral prompt is nearest to the concept's
   (cos(E_T(class prompts) - E_T(neutral), E_T(concept prompt) - E_T(neutral)); offsets, not raw
   embeddings, because every prompt shares "a face ..." and raw cosines are all high):
   "eyewear" -> glasses, if the cosine is at least ``MATCH_MIN_COSINE`` and, on the embedded FaceWorld
   CLIP (``encoder.closed_vocabulary``), every word is one FaceWorld uses (its text side weighs colour
   words over the rest: "a red car" would be red hair at cos 0.81);
3. otherwise (a concept FaceWorld has no attribute for) present = the image is closer to the concept
   prompt than to the neutral prompt (binary zero-shot).
CLIP's verdicts here are the guide's; the GAN tab's verdicts come from the independent judge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from backends.faceworld import world
from backends.faceworld.concepts import MAX_CONCEPT_CHARS, check_text, lookup, unknown_words  # noqa: F401

if TYPE_CHECKING:
    import torch

    from backends.gan.encoders import ImageTextEncoder

#: Nearest-attribute matching needs at least this cosine of text offsets (else binary zero-shot, rule 4).
#: Set on the shipped FaceWorld CLIP: synonyms score 0.63-0.9 ("spectacles" 0.85, "grin" 0.90, "eyewear"
#: 0.63, "joy" 0.71), unrelated words 0.40-0.55 ("dog" 0.47, "a car" 0.49, "earrings" 0.48, "freckles" 0.55).
MATCH_MIN_COSINE = 0.58


@dataclass(frozen=True)
class Concept:
    """A typed concept resolved for measurement."""

    text: str                       # as typed, stripped
    prompt: str                     # its text prompt, e.g. "a face with glasses"
    neutral: str                    # the neutral prompt, e.g. "a face"
    attribute: str | None           # FaceWorld attribute that judges presence (None: rule 4)
    values: tuple[str, ...]         # values of ``attribute`` that count as present
    how: str                        # how the mapping was made, for the UI
    variants: tuple[str, ...] = ()  # prompts of every covered value (rule 1), e.g. "... with sunglasses"

    @property
    def prompts(self) -> list[str]:
        """Text prompts whose mean embedding stands for the concept (alignment, reference direction)."""
        return [self.prompt, *self.variants]

    @property
    def label(self) -> str:
        if self.attribute is None:
            return self.text
        return f"{self.attribute}={'|'.join(self.values)}"


def concept_prompt(concept: str, neutral: str) -> str:
    """'glasses' / 'a smile' + 'a face' -> 'a face with glasses' / 'a face with a smile'; a description
    of three or more words ('a man wearing a cap') stays as typed."""
    if len(concept.split()) >= 3:
        return concept
    return f"{neutral} with {concept}"


def class_prompts(attribute: str, value: str) -> list[str]:
    """Canonical zero-shot prompts of one attribute value (FaceWorld's own wording)."""
    return world.attribute_prompts(attribute, value)


def class_embeddings(encoder: "ImageTextEncoder", attribute: str) -> "torch.Tensor":
    """(n_values, D) prompt-ensembled text embeddings of an attribute's values."""
    import torch

    return torch.stack([encoder.text_direction(class_prompts(attribute, v)) for v in world.ATTRIBUTES[attribute]])


def resolve(encoder: "ImageTextEncoder", text: str, neutral: str = "a face") -> Concept:
    """Map a typed concept to its prompt and judging attribute (rules in the module docstring)."""
    text = check_text(text)
    neutral = check_text(neutral, "Neutral text")
    prompt = concept_prompt(text, neutral)
    known = lookup(text)
    if known is not None:
        attribute, values = known
        key = text.lower()
        variants = tuple(concept_prompt(v, neutral) for v in values if v != key) if len(values) > 1 else ()
        return Concept(text, prompt, neutral, attribute, values,
                       f"FaceWorld word: {attribute}={'|'.join(values)}", variants)
    unknown = unknown_words(text) if encoder.closed_vocabulary else []
    if unknown:  # the embedded CLIP reads colour words and ignores the rest: "a red car" would be red hair
        return Concept(text, prompt, neutral, None, (),
                       f"FaceWorld has no word {', '.join(map(repr, unknown))}: present when the image is closer "
                       f"to {prompt!r} than to {neutral!r}")
    import torch.nn.functional as F

    neutral_embedding = encoder.text_direction([neutral])
    query = F.normalize(encoder.text_direction([prompt]) - neutral_embedding, dim=-1)  # (D,)
    best = (-2.0, "", "")
    for attribute, values in world.ATTRIBUTES.items():
        for value in values:
            if value == world.ABSENT_VALUES.get(attribute):
                continue
            offset = F.normalize(encoder.text_direction(class_prompts(attribute, value)) - neutral_embedding, dim=-1)
            cosine = float(offset @ query)
            if cosine > best[0]:
                best = (cosine, attribute, value)
    cosine, attribute, value = best
    if cosine >= MATCH_MIN_COSINE:
        return Concept(text, prompt, neutral, attribute, (value,),
                       f"nearest FaceWorld attribute by text offset: {attribute}={value} (cos {cosine:.2f})")
    return Concept(text, prompt, neutral, None, (),
                   f"no FaceWorld attribute is close (best {attribute}={value}, cos {cosine:.2f}): "
                   f"present when the image is closer to {prompt!r} than to {neutral!r}")


def classify(encoder: "ImageTextEncoder", embeddings: "torch.Tensor") -> dict[str, np.ndarray]:
    """Zero-shot value index of every FaceWorld attribute. embeddings (N, D) -> {attr: (N,) int}"""
    return {attribute: (embeddings @ class_embeddings(encoder, attribute).T).argmax(dim=1).cpu().numpy()
            for attribute in world.ATTRIBUTES}


def presence(encoder: "ImageTextEncoder", concept: Concept, embeddings: "torch.Tensor",
             classes: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(N,) bool: does each image show the concept (see the module docstring)."""
    if concept.attribute is None:
        texts = encoder.encode_text([concept.prompt, concept.neutral])  # (2, D)
        scores = embeddings @ texts.T  # (N, 2)
        return (scores[:, 0] > scores[:, 1]).cpu().numpy()
    if classes is None:
        classes = classify(encoder, embeddings)
    targets = [world.ATTRIBUTES[concept.attribute].index(v) for v in concept.values]
    return np.isin(classes[concept.attribute], targets)


def alignment(encoder: "ImageTextEncoder", concept: Concept, embeddings: "torch.Tensor") -> np.ndarray:
    """(N,) CLIP image-text alignment (cosine) of each image with the concept's prompt."""
    return (embeddings @ encoder.text_direction(concept.prompts)).detach().cpu().numpy()


def labels_of(classes: dict[str, np.ndarray], index: int) -> dict[str, str]:
    """{attribute: judged value} of one sample."""
    return {attribute: world.ATTRIBUTES[attribute][int(idx[index])] for attribute, idx in classes.items()}
