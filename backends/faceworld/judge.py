"""The FaceWorld attribute judge: a supervised classifier, independent of every model a method trains through.

Verdicts of forgetting ("does this image show glasses?") must come from a model the method cannot move
(EVALUATION.md, "the judge is never the model a method optimises through"). The FaceWorld CLIP guides
Text-to-Unlearn and scores its losses, so it cannot also grade it. This judge is a small CNN with one
softmax head per FaceWorld attribute, trained by ``scripts/train_judge.py`` on renders only (labels are
the renderer's ground truth; no CLIP, GAN or diffusion weights involved), with augmentations that make it
transfer to generator output (blur, noise, colour jitter, shifts, down/up-scaling). It shares no weights
with any other model, its parameters never require gradients, and no method may put it in a loss (a test
checks that no registered method calls it).

    judge = load_judge()
    classes = judge.classify(images)   # images (N, 3, H, W) in [-1, 1] or uint8 (N, H, W, 3)
    classes["glasses"]                 # (N,) value index into world.ATTRIBUTES["glasses"]

Shipped as assets/faceworld/judge.safetensors (architecture in the metadata); card: JUDGE.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.device import pick_device
from backends.faceworld import WeightsCache, read_weights, world

if TYPE_CHECKING:
    import torch

ASSET_PATH = Path(__file__).resolve().parents[2] / "assets" / "faceworld" / "judge.safetensors"
#: Images are judged at this size (FaceWorld's generators draw 32 px; others are resized to it).
IMAGE_SIZE = 32
DEFAULT_ARCH: dict[str, Any] = {"widths": [32, 64, 128], "hidden": 256, "image_size": IMAGE_SIZE}
NAME = "FaceWorld attribute judge"

_CACHE = WeightsCache()


def build_net(arch: dict[str, Any] | None = None) -> "torch.nn.Module":
    """Conv stack (two 3x3 conv-BN-ReLU + 2x2 max-pool per width) -> MLP -> one logit block per attribute.
    Always used in eval mode outside training, so batch norm uses its running statistics: a sample's
    verdict does not depend on the batch it is in.

    (N, 3, 32, 32) -> (N, sum of |values|) logits, attribute blocks in world.ATTRIBUTES order.
    """
    from torch import nn

    arch = {**DEFAULT_ARCH, **(arch or {})}
    layers: list[nn.Module] = []
    channels = 3
    for width in arch["widths"]:
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.MaxPool2d(2)]
        channels = width
    side = arch["image_size"] // 2 ** len(arch["widths"])
    outputs = sum(len(v) for v in world.ATTRIBUTES.values())
    layers += [nn.Flatten(), nn.Linear(channels * side * side, arch["hidden"]), nn.ReLU(), nn.Dropout(0.1),
               nn.Linear(arch["hidden"], outputs)]
    return nn.Sequential(*layers)


def split_logits(logits: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """(N, sum |values|) -> {attribute: (N, |values|)} in world.ATTRIBUTES order."""
    out, start = {}, 0
    for attribute, values in world.ATTRIBUTES.items():
        out[attribute] = logits[:, start:start + len(values)]
        start += len(values)
    return out


def to_judge_input(images: Any, device: str) -> "torch.Tensor":
    """uint8 (N, H, W, 3) or float (N, 3, H, W) in [-1, 1] -> float (N, 3, 32, 32) in [-1, 1] on ``device``."""
    import torch
    import torch.nn.functional as F

    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
        images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W), got {getattr(images, 'shape', type(images))}")
    images = images.detach().float().to(device)
    if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        mode = "area" if images.shape[-1] > IMAGE_SIZE else "bilinear"
        images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode=mode,
                               **({} if mode == "area" else {"align_corners": False}))
    return images.clamp(-1.0, 1.0)


class FaceWorldJudge:
    """Frozen attribute classifier. Nothing here builds a graph: every call runs under ``torch.no_grad``."""

    name = NAME

    def __init__(self, net: "torch.nn.Module", device: str, description: str = NAME):
        self.net = net.to(device).eval().requires_grad_(False)
        self.device = device
        self.description = description

    def probabilities(self, images: Any, batch_size: int = 500) -> dict[str, np.ndarray]:
        """{attribute: (N, |values|) softmax probabilities}."""
        import torch

        chunks: list[dict[str, np.ndarray]] = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                logits = split_logits(self.net(to_judge_input(images[i:i + batch_size], self.device)))
                chunks.append({a: l.softmax(dim=-1).cpu().numpy() for a, l in logits.items()})
        if not chunks:
            return {a: np.zeros((0, len(v)), dtype=np.float32) for a, v in world.ATTRIBUTES.items()}
        return {a: np.concatenate([c[a] for c in chunks]) for a in world.ATTRIBUTES}

    def classify(self, images: Any) -> dict[str, np.ndarray]:
        """{attribute: (N,) int value index into world.ATTRIBUTES[attribute]}."""
        return {a: p.argmax(axis=1) for a, p in self.probabilities(images).items()}

    def features(self, images: Any, batch_size: int = 500) -> np.ndarray:
        """The judge's penultimate activations (N, hidden): a feature space no method optimises, for
        Frechet distances."""
        import torch

        trunk = self.net[:-2]  # up to the hidden ReLU
        with torch.no_grad():
            out = [trunk(to_judge_input(images[i:i + batch_size], self.device)).cpu().numpy()
                   for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.net[-1].in_features), dtype=np.float32)

    def feature_maps(self, images: Any) -> list["torch.Tensor"]:
        """Activations after each conv block [(N, C, H, W), ...], for an unweighted-LPIPS-style distance."""
        import torch
        from torch import nn

        maps, h = [], to_judge_input(images, self.device)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Flatten):
                    break
                h = layer(h)
                if isinstance(layer, nn.MaxPool2d):
                    maps.append(h)
        return maps


def random_judge(device: str = "cpu", seed: int = 0) -> FaceWorldJudge:
    """An untrained judge of the same class (tiny test preset): seeded, so its verdicts are deterministic."""
    import torch

    torch.manual_seed(seed)
    return FaceWorldJudge(build_net(), device, description=f"random {NAME} (seed {seed}, tests only)")


def load_judge(device: str | None = None, path: str | Path | None = None) -> FaceWorldJudge:
    """The trained judge from assets/faceworld/judge.safetensors (cached per process and device)."""
    device = pick_device(device)
    return _CACHE.get(Path(path) if path is not None else ASSET_PATH, device, _load)


def _load(weights: Path, device: str) -> FaceWorldJudge:
    state, metadata = read_weights(weights, "scripts/train_judge.py")
    net = build_net(json.loads(metadata.get("arch", "{}")))
    net.load_state_dict(state)  # strict: a mismatched file is an error, not a silent skip
    return FaceWorldJudge(net, device)
