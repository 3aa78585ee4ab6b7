"""FaceWorld CLIP benchmark: zero-shot attribute accuracy on held-out renders.

Metrics (2,000 renders at 32 px from a seed disjoint from the training seeds 1..4):
- faceworld.clip.zero_shot_acc_min / .zero_shot_acc.<attr>: prompt-ensembled zero-shot accuracy with the
  canonical attribute_prompts (training vocabulary);
- faceworld.clip.synonym_acc_min / .synonym_acc.<attr>: the same with synonym_prompts (wordings never seen in
  training captions);
- faceworld.clip.character_acc: which of the 4 named characters, on 400 character renders ("a photo of Alice");
- faceworld.clip.encode_images_per_s: image-encoding throughput (batch 500, this machine).
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

PREFIX = "faceworld.clip"
NUM_RENDERS = 2000
HELD_OUT_SEED = 5_550_001


def run() -> Iterator[dict]:
    import torch

    from backends.faceworld import world
    from backends.faceworld.clip import load_clip

    clip = load_clip()
    faces = world.sample_faces(NUM_RENDERS, seed=HELD_OUT_SEED)
    images = world.render_batch(faces, clip.image_size)                            # (N, S, S, 3)
    start = time.perf_counter()
    feats = torch.cat([clip.encode_images(images[i:i + 500]) for i in range(0, len(images), 500)])  # (N, D)
    encode_seconds = time.perf_counter() - start
    for kind, synonyms in (("zero_shot", False), ("synonym", True)):
        accuracies = {}
        for attr, values in world.ATTRIBUTES.items():
            truth = np.array([values.index(f.attrs[attr]) for f in faces])
            predicted = (feats @ clip.class_embeddings(attr, synonyms=synonyms).T).argmax(-1).cpu().numpy()
            accuracies[attr] = float((predicted == truth).mean())
        yield {"name": f"{PREFIX}.{kind}_acc_min", "value": min(accuracies.values()), "unit": "ratio"}
        for attr, accuracy in accuracies.items():
            yield {"name": f"{PREFIX}.{kind}_acc.{attr}", "value": accuracy, "unit": "ratio"}
    characters = world.sample_faces(400, seed=HELD_OUT_SEED + 1, character_rate=1.0)
    truth = np.array([list(world.CHARACTERS).index(f.character) for f in characters])
    predicted = clip.zero_shot_characters(world.render_batch(characters, clip.image_size))
    yield {"name": f"{PREFIX}.character_acc", "value": float((predicted == truth).mean()), "unit": "ratio"}
    yield {"name": f"{PREFIX}.encode_images_per_s", "value": NUM_RENDERS / encode_seconds, "unit": "images/s"}
