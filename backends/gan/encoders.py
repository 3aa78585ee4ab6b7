"""Image-text encoders (CLIP, Radford et al. 2021) as the GAN methods and metrics see them.

One interface for the FaceWorld CLIP (offline), open_clip hub models (ViT-B-32) and the tiny random
CLIP of the tests: L2-normalised image and text embeddings, differentiable in the image, plus
early-layer activations of the vision tower for the perceptual distance (see
:func:`backends.gan.metrics.perceptual_distance`).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


class ImageTextEncoder:
    """A frozen CLIP-style model: ``encode_images`` (differentiable) and ``encode_text`` (cached).

    Subclasses implement :meth:`_image_forward` and :meth:`_text_forward`; ``feature_modules`` lists
    the vision tower's early blocks whose outputs the perceptual distance compares.
    """

    name: str = "clip"
    closed_vocabulary: bool = False  # True: only FaceWorld's words are matched to attributes by text offset

    def __init__(self, device: str):
        self.device = device
        self._text_cache: dict[str, "torch.Tensor"] = {}
        self._lock = threading.Lock()

    # ---- to implement -------------------------------------------------------------------
    def _image_forward(self, images: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, H, W) in [-1, 1] -> unnormalised embeddings (N, D)."""
        raise NotImplementedError

    def _text_forward(self, texts: list[str]) -> "torch.Tensor":
        """texts -> unnormalised embeddings (N, D)."""
        raise NotImplementedError

    def feature_modules(self) -> list["torch.nn.Module"]:
        """Early vision blocks used by the perceptual distance (empty: compare pixels only)."""
        return []

    # ---- public ---------------------------------------------------------------------------
    def encode_images(self, images: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, H, W) in [-1, 1] -> (N, D) unit vectors; gradients flow to ``images``."""
        import torch.nn.functional as F

        return F.normalize(self._image_forward(images.to(self.device)).float(), dim=-1)

    def encode_images_with_features(self, images: "torch.Tensor") -> tuple["torch.Tensor", list["torch.Tensor"]]:
        """Embeddings plus the outputs of :meth:`feature_modules` from the same forward pass."""
        captured: list[Any] = []
        owner = threading.get_ident()  # the encoder is shared: ignore other threads' forward passes

        def capture(_module: Any, _inputs: Any, output: Any) -> None:
            if threading.get_ident() == owner:
                captured.append(output)

        handles = [m.register_forward_hook(capture) for m in self.feature_modules()]
        try:
            embeddings = self.encode_images(images)
        finally:
            for handle in handles:
                handle.remove()
        features = [out[0] if isinstance(out, tuple) else out for out in captured]
        return embeddings, features

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        """(N, D) unit vectors (no grad), cached per text."""
        import torch
        import torch.nn.functional as F

        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            with torch.no_grad():
                embeddings = F.normalize(self._text_forward(missing).float(), dim=-1).to(self.device)
            with self._lock:
                self._text_cache.update(zip(missing, embeddings))
        return torch.stack([self._text_cache[t] for t in texts])

    def text_direction(self, prompts: list[str]) -> "torch.Tensor":
        """Mean of the prompts' unit embeddings, re-normalised (CLIP prompt ensembling). (D,)"""
        import torch.nn.functional as F

        return F.normalize(self.encode_text(list(prompts)).mean(dim=0), dim=-1)

    def embed_images(self, images: "torch.Tensor", batch_size: int = 256) -> "torch.Tensor":
        """Embeddings of many images without grad, in chunks. (N, D)"""
        import torch

        with torch.no_grad():
            return torch.cat([self.encode_images(images[i:i + batch_size])
                              for i in range(0, len(images), batch_size)])


class OpenClipEncoder(ImageTextEncoder):
    """An open_clip ``CLIP`` model (hub ViT-B-32, FaceWorld's tower layout, or a tiny random one)."""

    def __init__(self, model: Any, tokenizer: Callable[[list[str]], "torch.Tensor"], device: str,
                 image_size: int, mean: tuple[float, ...], std: tuple[float, ...], name: str = "open_clip",
                 feature_blocks: int = 2):
        import torch

        super().__init__(device)
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.name = name
        self.feature_blocks = feature_blocks

    def _image_forward(self, images: "torch.Tensor") -> "torch.Tensor":
        import torch.nn.functional as F

        x = (images + 1) / 2  # (N, 3, H, W) in [0, 1]
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return self.model.encode_image((x - self.mean) / self.std)

    def _text_forward(self, texts: list[str]) -> "torch.Tensor":
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def feature_modules(self) -> list["torch.nn.Module"]:
        return early_blocks(self.model.visual, self.feature_blocks)


def early_blocks(visual: Any, count: int) -> list["torch.nn.Module"]:
    """The first ``count`` blocks of an open_clip vision tower (ViT, ModifiedResNet or timm trunk)."""
    transformer = getattr(visual, "transformer", None)
    if transformer is not None and hasattr(transformer, "resblocks"):
        return list(transformer.resblocks)[:count]
    stages = [getattr(visual, f"layer{i}") for i in range(1, 5) if hasattr(visual, f"layer{i}")]
    if stages:
        return stages[:count]
    trunk = getattr(visual, "trunk", None)
    for attr in ("stages", "blocks", "layers"):
        seq = getattr(trunk, attr, None) if trunk is not None else None
        if seq is not None:
            return list(seq)[:count]
    return []


class FaceWorldClipEncoder(ImageTextEncoder):
    """The embedded FaceWorld CLIP (``backends.faceworld.clip.FaceWorldClip``) behind this interface."""

    name = "faceworld_clip"
    closed_vocabulary = True  # trained on FaceWorld captions only: words outside them are not matched

    def __init__(self, clip: Any, device: str, feature_blocks: int = 2):
        super().__init__(device)
        self.clip = clip
        self.clip.model.requires_grad_(False)  # frozen: gradients flow to the images only
        self.feature_blocks = feature_blocks

    def _image_forward(self, images: "torch.Tensor") -> "torch.Tensor":
        return self.clip.encode_images(images)

    def _text_forward(self, texts: list[str]) -> "torch.Tensor":
        return self.clip.encode_text(list(texts))

    def feature_modules(self) -> list["torch.nn.Module"]:
        return early_blocks(self.clip.model.visual, self.feature_blocks)


class HashTokenizer:
    """Fast offline tokenizer for the tiny test CLIP: lower-case words hashed (CRC32) into a vocabulary."""

    def __init__(self, vocab_size: int, context_length: int):
        self.vocab_size, self.context_length = vocab_size, context_length

    def __call__(self, texts: list[str]) -> "torch.Tensor":
        import re
        import zlib

        import torch

        ids = torch.zeros(len(texts), self.context_length, dtype=torch.long)  # 0 = padding
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())[:self.context_length]
            for col, word in enumerate(words):
                ids[row, col] = 1 + zlib.crc32(word.encode()) % (self.vocab_size - 1)
        return ids


def tiny_clip_model(embed_dim: int = 32, vocab_size: int = 1024, seed: int = 0) -> "torch.nn.Module":
    """A seeded random CLIP-style model with open_clip's API (encode_image / encode_text / visual):
    a 2-stage conv image tower and a bag-of-words text tower. For tests: builds in milliseconds."""
    import torch
    from torch import nn

    class Visual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer1 = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.GELU())
            self.layer2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU())
            self.proj = nn.Linear(32 * 4, embed_dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 16, 16)
            x = self.layer2(self.layer1(x))  # (N, 32, 4, 4)
            return self.proj(nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))  # (N, D)

    class TinyClip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = Visual()
            self.token_embedding = nn.Embedding(vocab_size, 32, padding_idx=0)
            self.text_projection = nn.Linear(32, embed_dim)

        def encode_image(self, images: torch.Tensor) -> torch.Tensor:
            return self.visual(images)

        def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, T)
            mask = (tokens > 0).float()[..., None]  # (N, T, 1)
            pooled = (self.token_embedding(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
            return self.text_projection(pooled)

    torch.manual_seed(seed)
    return TinyClip()
