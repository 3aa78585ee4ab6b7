"""The diffusion backend: text-to-image concept erasure (FaceWorld by default, SD presets on a GPU).

Generation uses three prompt groups, as in the erasure literature (ESD, Gandikota et al., 2023;
UCE, Gandikota et al., 2024): the concept in several phrasings, neighbouring concepts (collateral
damage) and unrelated prompts, plus the user's own prompts, all with the same seeds before and
after. Heavy libraries are imported inside functions only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.config import param
from backends.contract import Backend, MapData, MetricRow, Sample
from backends.diffusion.prompt_sets import GALLERY_SEEDS
from backends.faceworld.concepts import MAX_CONCEPT_CHARS
from backends.registry import register_backend

if TYPE_CHECKING:
    from backends.diffusion.erasure_config import ErasureConfig
    from backends.diffusion.pipeline import DiffusionModel
    from backends.jobs import JobContext

PROMPT_MAX_CHARS = 120


@dataclass(frozen=True)
class DiffusionGenerateConfig:
    """Prompts in three groups plus your own; every prompt is drawn with the same seeds."""

    concept: str = param("glasses", max_length=MAX_CONCEPT_CHARS,
                         help="The concept you study: its synonyms and neighbours anchor the embedding maps.")
    concept_prompts: tuple[str, ...] = param(
        ("a face wearing glasses", "a photo of a person wearing sunglasses", "a cartoon face in eyeglasses"),
        max_items=8, max_length=PROMPT_MAX_CHARS, help="Prompts asking for the concept, one per line.")
    neighbour_prompts: tuple[str, ...] = param(
        ("a face wearing a cap", "a face wearing a beanie", "a face with a beard"),
        max_items=8, max_length=PROMPT_MAX_CHARS, help="Neighbouring concepts that should survive, one per line.")
    unrelated_prompts: tuple[str, ...] = param(
        ("a face with blond hair", "a face on a blue background", "a face with a smile"),
        max_items=8, max_length=PROMPT_MAX_CHARS, help="Unrelated prompts that should not change, one per line.")
    user_prompts: tuple[str, ...] = param((), max_items=8, max_length=PROMPT_MAX_CHARS,
                                          help="Your own prompts, one per line.")
    seeds_per_prompt: int = param(2, min=1, max=16, help="Images per prompt (seeds first_seed, first_seed+1, ...).")
    first_seed: int = param(GALLERY_SEEDS.start, min=GALLERY_SEEDS.start, max=GALLERY_SEEDS.stop - 16,
                            help="First seed; the same seeds are used for every prompt (training and evaluation "
                                 "use seeds of their own).")
    steps: int = param(20, min=1, max=100, advanced=True, help="Sampling steps (DPM-Solver++).")
    guidance: float = param(5.0, min=0.0, max=20.0, step=0.5, advanced=True,
                            help="Classifier-free guidance scale (1 = none).")

    def __post_init__(self) -> None:
        if not (self.concept_prompts or self.neighbour_prompts or self.unrelated_prompts or self.user_prompts):
            raise ValueError("Prompts: give at least one prompt in any group")

    @classmethod
    def smoke(cls) -> "DiffusionGenerateConfig":
        return cls(concept_prompts=("a face wearing glasses",), neighbour_prompts=("a face with a beard",),
                   unrelated_prompts=(), seeds_per_prompt=2, steps=2)


def _prompt_table(config: DiffusionGenerateConfig) -> list[tuple[str, str, int]]:
    """(group, prompt, seed) of every image, in gallery order."""
    groups = (("concept", config.concept_prompts), ("neighbour", config.neighbour_prompts),
              ("unrelated", config.unrelated_prompts), ("user", config.user_prompts))
    return [(group, prompt, config.first_seed + k) for group, prompts in groups for prompt in prompts
            for k in range(config.seeds_per_prompt)]


@register_backend
class DiffusionBackend(Backend):
    """Concept erasure in text-to-image diffusion models."""

    name = "diffusion"
    title = "Diffusion"
    description = ("Erase a concept from a text-to-image diffusion model (UCE, ESD, few-shot text-encoder "
                   "erasure, SalUn, AdvUnlearn), compare before/after with the same seeds on concept, "
                   "neighbouring and unrelated prompts, and attack the edit (UnlearnDiffAtk, synonyms).")
    output = "image"
    map_views = (("embed", "Generations (CLIP image space)"),
                 ("embed_text", "Text side (cross-attention keys of concept, synonyms, neighbours)"))
    generate_config = DiffusionGenerateConfig

    # ------------------------------------------------------------------ models
    def clone(self, model: "DiffusionModel") -> "DiffusionModel":
        return model.clone()

    def state_tensors(self, model: "DiffusionModel") -> dict[str, Any]:
        tensors = {f"unet.{k}": v for k, v in model.unet.state_dict().items()}
        tensors.update({f"text_encoder.{k}": v for k, v in model.text_encoder.state_dict().items()})
        return tensors

    def nbytes(self, model: "DiffusionModel") -> int:
        """Only the modules this edit owns (shared frozen modules cost nothing extra)."""
        owned = [m for m, own in ((model.unet, model.owns_unet), (model.text_encoder, model.owns_text_encoder)) if own]
        return sum(p.numel() * p.element_size() for m in owned for p in m.state_dict().values())

    # ------------------------------------------------------------------ generation
    def generate(self, model: "DiffusionModel", config: DiffusionGenerateConfig) -> list[Sample]:
        table = _prompt_table(config)
        if not table:
            return []
        from backends.diffusion.common import check_fits

        check_fits(model, sorted({prompt for _, prompt, _ in table}))
        images = model.generate([p for _, p, _ in table], [s for _, _, s in table], config.steps, config.guidance)
        labels = model.judge.labels(images) if model.judge is not None else [{} for _ in table]
        return [Sample(key=f"{group} · {prompt} · seed {seed}", seed=seed, prompt=prompt, image=image,
                       labels=label, group=group)
                for (group, prompt, seed), image, label in zip(table, images, labels)]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, base: "DiffusionModel", edited: "DiffusionModel", method_config: "ErasureConfig",
                 ctx: "JobContext") -> list[MetricRow]:
        from backends.diffusion.evaluation import evaluate_edit

        return evaluate_edit(base, edited, method_config.concept, per_group=method_config.eval_prompts,
                             seeds=method_config.eval_seeds, ctx=ctx)

    def warm_up(self, base: "DiffusionModel", method_config: Any, ctx: "JobContext") -> None:
        """The base's and the gold models' evaluation images (kept by the frozen models' generation
        caches): evaluating the base against itself asks for exactly those."""
        self.evaluate(base, base, method_config, ctx)

    # ------------------------------------------------------------------ maps
    def embed(self, base: "DiffusionModel", edited: "DiffusionModel | None",
              config: DiffusionGenerateConfig) -> MapData:
        """Image embeddings (FaceWorld CLIP; pooled pixels without it) before/after, per prompt group.

        Anchors are CLIP text embeddings of the concept, its held-out synonyms and the prompts.
        """
        import numpy as np

        from backends.diffusion.judging import pixel_features
        from backends.diffusion.prompt_sets import synonym_prompts

        table = _prompt_table(config)
        prompts, seeds = [p for _, p, _ in table], [s for _, _, s in table]
        models = [("before", base)] + ([("after", edited)] if edited is not None else [])
        feats, labels, groups, names = [], [], [], []
        for tag, model in models:
            images = model.generate(prompts, seeds, config.steps, config.guidance)
            feats.append(base.clip.embed_images(images) if base.clip is not None else pixel_features(images))
            labels += [g for g, _, _ in table]
            groups += [tag] * len(table)
            names += [f"{p} · seed {s} ({tag})" for _, p, s in table]
        if base.clip is not None:
            texts = [config.concept] + synonym_prompts(config.concept, base.faceworld) + sorted(set(prompts))
            feats.append(base.clip.embed_texts(texts))
            labels += ["concept"] + ["synonym"] * (len(texts) - 1 - len(set(prompts))) + ["prompt"] * len(set(prompts))
            groups += ["anchor"] * len(texts)
            names += [f"text: {t}" for t in texts]
        space = "FaceWorld CLIP" if base.clip is not None else "pooled pixels (no image encoder for this preset)"
        return MapData(points=np.concatenate(feats), labels=labels, groups=groups, names=names,
                       title=f"Generations before/after in {space}")

    def embed_text(self, base: "DiffusionModel", edited: "DiffusionModel | None",
                   config: DiffusionGenerateConfig) -> MapData:
        """Text side: cross-attention keys the UNet reads for the concept, its synonyms and neighbours.

        Each prompt's point is the concatenation over every ``attn2.to_k`` of the key at the prompt's
        last real token, under the base model ("before") and the edit ("after"): UCE / ESD-x move it
        through to_k, the text-encoder methods (few-shot, AdvUnlearn) through the token states.
        """
        import numpy as np
        import torch

        from backends.diffusion.prompt_sets import synonym_prompts

        rows = ([("concept", config.concept)] + [("concept", p) for p in config.concept_prompts]
                + [("synonym", p) for p in synonym_prompts(config.concept, base.faceworld)]
                + [("neighbour", p) for p in config.neighbour_prompts]
                + [("unrelated", p) for p in config.unrelated_prompts]
                + [("user", p) for p in config.user_prompts])
        prompts = [p for _, p in rows]
        feats, labels, groups, names = [], [], [], []
        models = [("before", base)] + ([("after", edited)] if edited is not None else [])
        for tag, model in models:
            with torch.no_grad():
                states = model.encode(prompts)  # (N, T, D)
                last = base.last_real_token(prompts)  # (N,)
                token = states[torch.arange(len(prompts)), last]  # (N, D)
                keys = [attn.to_k(token) for attn in model.cross_attention_layers().values()]
            feats.append(torch.cat(keys, dim=1).float().cpu().numpy())  # (N, sum K)
            labels += [g for g, _ in rows]
            groups += [tag] * len(rows)
            names += [f"{p} ({tag})" for p in prompts]
        return MapData(points=np.concatenate(feats), labels=labels, groups=groups, names=names,
                       title="Cross-attention keys of the concept, synonyms and neighbours")
