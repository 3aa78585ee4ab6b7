"""Judging concept erasure in text-to-image models: who says whether an image shows a concept.

A concept the user types resolves to a :class:`~backends.diffusion.prompt_sets.ConceptTarget` (on
FaceWorld the attribute values a classifier checks). The verdicts come from the independent FaceWorld
attribute judge (:class:`AttributeJudge`, a supervised classifier no method trains through), FaceWorld's
CLIP (zero-shot, Radford et al., 2021) giving its opinion beside them and judging free-text concepts.
Evaluation uses three prompt groups, as in the erasure literature (ESD, UCE): the concept in several
phrasings, neighbouring concepts (collateral damage) and unrelated prompts, each with the attribute value
it should show (adherence). Presets without an image classifier (Stable Diffusion here) get
classifier-free scores instead: how much of the base's concept guidance eps(x, c) - eps(x, "") the edit
keeps (a signed projection) and pixel change. Which prompts each group holds, for training, tuning and
evaluation, and the concept they are built from, is :mod:`backends.diffusion.prompt_sets`.

Heavy libraries are imported inside functions only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backends.diffusion.prompt_sets import ConceptTarget

if TYPE_CHECKING:
    import numpy as np
    import torch

    from backends.diffusion.pipeline import DiffusionModel


class ClipOpinion:
    """Concept presence and image / text embeddings from FaceWorld's CLIP (loaded on first use).

    A second opinion beside the judge's verdict, the methods' own check of what the base model draws
    (CLIP is never the judge: EVALUATION.md), and the space of the embedding maps."""

    name = "FaceWorld CLIP"
    LABELLED = ("glasses", "hat", "beard", "expression")

    def __init__(self, device: str):
        self.device = device

    @property
    def clip(self) -> Any:
        from backends.faceworld.clip import load_clip

        return load_clip(self.device)

    def present(self, images: "np.ndarray", target: ConceptTarget) -> "np.ndarray":
        """(N,) bool: the images show the target (zero-shot over the attribute's values)."""
        import numpy as np

        if len(images) == 0:
            return np.zeros(0, dtype=bool)
        if target.attr is not None:
            from backends.faceworld.world import ATTRIBUTES

            index = np.asarray(self.clip.zero_shot(images, target.attr))
            names = np.array(ATTRIBUTES[target.attr])
            return np.isin(names[index], target.values)
        concept = self.clip.alignment(images, f"a face with {target.text}")
        plain = self.clip.alignment(images, "a face")
        return np.asarray(concept) > np.asarray(plain)

    def embed_images(self, images: "np.ndarray") -> "np.ndarray":
        return self.clip.encode_images(images).detach().float().cpu().numpy()

    def embed_texts(self, texts: list[str]) -> "np.ndarray":
        return self.clip.encode_text(list(texts)).detach().float().cpu().numpy()


class AttributeJudge:
    """Verdicts of the independent FaceWorld attribute judge (:mod:`backends.faceworld.judge`).

    Loaded once per preset and shared by every clone; no method calls it (a test hooks its ``net``).
    It knows FaceWorld's attribute values only: free-text concepts are judged by CLIP, labelled so."""

    LABELLED = ("glasses", "hat", "beard", "expression")

    def __init__(self, classifier: Any):
        self.classifier = classifier

    @property
    def name(self) -> str:
        return self.classifier.description

    @property
    def net(self) -> Any:
        return self.classifier.net

    def classify(self, images: "np.ndarray") -> dict[str, "np.ndarray"]:
        """{attribute: (N,) value index into world.ATTRIBUTES[attribute]}."""
        return self.classifier.classify(images)

    def present(self, images: "np.ndarray", target: ConceptTarget) -> "np.ndarray":
        """(N,) bool: the judge sees one of the target's values."""
        import numpy as np

        from backends.faceworld.world import ATTRIBUTES

        if target.attr is None:
            raise ValueError(f"the attribute judge knows FaceWorld attributes only, not {target.text!r}")
        if len(images) == 0:
            return np.zeros(0, dtype=bool)
        return np.isin(np.array(ATTRIBUTES[target.attr])[self.classify(images)[target.attr]], target.values)

    def labels(self, images: "np.ndarray") -> list[dict[str, str]]:
        """Judged accessory / expression labels per image, e.g. {"glasses": "sunglasses", ...}."""
        from backends.faceworld.world import ATTRIBUTES

        classes = self.classify(images)
        return [{a: ATTRIBUTES[a][int(classes[a][i])] for a in self.LABELLED} for i in range(len(images))]

    def features(self, images: "np.ndarray") -> "np.ndarray":
        """(N, 256) penultimate activations: a feature space no method optimises (Fréchet distances)."""
        return self.classifier.features(images)


def verdict_judge(model: "DiffusionModel", target: ConceptTarget) -> Any:
    """Who judges ``target``: the attribute judge where it knows it, else CLIP (None: no judge at all)."""
    if model.judge is not None and target.attr is not None:
        return model.judge
    return model.clip


def pixel_features(images: "np.ndarray", side: int = 8) -> "np.ndarray":
    """Classifier-free image features: images average-pooled to ``side`` x ``side``, flattened ``(N, 3*side^2)``."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    return torch.nn.functional.adaptive_avg_pool2d(x, side).flatten(1).numpy()


def guidance_strength(model: "DiffusionModel", prompts: list[str], unet: Any = None, text_encoder: Any = None,
                      seed: int = 0, timesteps: tuple[int, ...] = (250, 500, 750)) -> "torch.Tensor":
    """Per-prompt ||eps(x_t, t, c) - eps(x_t, t, "")|| averaged over fixed noise and timesteps ``(N,)``.

    How strongly the text steers the denoiser: erasing a concept should shrink it for the concept's
    prompts (the quantity ESD's negative guidance drives towards zero or below).
    """
    import torch

    n = len(prompts)
    with torch.no_grad():
        cond = model.encode(list(prompts), text_encoder)  # (N, T, D)
        uncond = model.encode([""], text_encoder).expand_as(cond)  # (N, T, D)
        total = torch.zeros(n, device=model.device)
        for k, t in enumerate(timesteps):
            x = model.initial_noise([seed * 1000 + k] * n)  # (N, C, h, w)
            tt = torch.full((n,), int(t), device=model.device)
            eps_c = model.predict_noise(x, tt, cond, unet)
            eps_u = model.predict_noise(x, tt, uncond, unet)
            total += (eps_c - eps_u).flatten(1).norm(dim=1)
    return total / len(timesteps)


def guidance_projection(base: "DiffusionModel", edited: "DiffusionModel", prompts: list[str], seeds: list[int],
                        steps: int = 10) -> "torch.Tensor":
    """Per-prompt mean of <g_edit, g_base> / ||g_base||^2 with g = eps(x_t, c) - eps(x_t, "") ``(N,)``.

    x_t runs along the base model's guided sampling trajectory of the prompt from each seed (all
    ``steps`` of it). About 1 when the edit keeps the prompt's guidance, 0 when it ignores the prompt,
    negative when it steers away (ESD's target eps_c - eta (eps_c - eps_null) gives 1 - eta). Unlike the
    norm ||g||, which a converged ESD keeps, the sign tells erasure from preservation.
    """
    import torch

    n = len(prompts)
    total = torch.zeros(n, device=base.device)
    with torch.no_grad():
        def guidance(model: "DiffusionModel") -> Any:
            cond, uncond = model.encode(list(prompts)), model.encode([""]).expand(n, -1, -1)  # (N, T, D) x2
            return lambda x_t, t: (model.predict_noise(x_t, t, cond) - model.predict_noise(x_t, t, uncond)).flatten(1)

        base_guidance, edited_guidance = guidance(base), guidance(edited)  # (x_t, t) -> (N, C*h*w)

        samples = 0
        for seed in seeds:
            trajectory: list = []
            base.sample_latents(list(prompts), [seed] * n, steps=steps, trajectory=trajectory)
            for t, x_t in trajectory:  # x_t (N, C, h, w)
                tt = torch.full((n,), int(t), device=base.device)
                g_base, g_edit = base_guidance(x_t, tt), edited_guidance(x_t, tt)
                total += (g_edit * g_base).sum(1) / (g_base * g_base).sum(1).clamp_min(1e-12)
                samples += 1
    return total / max(samples, 1)
