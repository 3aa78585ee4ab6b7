"""GAN presets (the allow-list): FaceWorld GAN with FaceWorld CLIP, with hub CLIP ViT-B-32, and tiny random.

Each ``load(device)`` returns a :class:`backends.gan.backend.GanModel`. Hub loading code is real
(open_clip ``create_model`` with a fixed tag, safetensors preferred, ``weights_only`` torch loads) and
is tested with ``pretrained=None`` (same classes, random weights, no download).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

from backends.registry import register_preset

if TYPE_CHECKING:
    from backends.gan.adapter import GeneratorAdapter
    from backends.gan.backend import GanModel
    from backends.gan.encoders import OpenClipEncoder

#: The hub CLIP of the "clip_vit_b32" preset (open_clip model name and pretrained tag).
HUB_CLIP = ("ViT-B-32", "laion2b_s34b_b79k")
#: Tiny test models: a 16 px style-based GAN of the FaceWorld classes and a tiny random CLIP-style model.
TINY_GAN = dict(z_dim=16, w_dim=32, mapping_layers=2, image_size=16, channels=(32, 16, 8),
                d_channels=(16, 16, 8), mbstd_group=2)
TINY_CLIP = dict(embed_dim=32, vocab_size=1024, context_length=16)
TINY_SEED = 0


def faceworld_generator(variant: str, device: str) -> "GeneratorAdapter":
    """A shipped FaceWorld GAN (``base`` or the gold standard ``no_glasses``) behind the adapter."""
    from backends.faceworld.gan import load_gan
    from backends.gan.adapter import FaceWorldAdapter

    return FaceWorldAdapter(load_gan(variant, device))


def faceworld_gold(device: str) -> dict[str, Callable[[], "GeneratorAdapter"]]:
    """Gold standards by FaceWorld attribute: GANs retrained from scratch without it."""
    return {"glasses": functools.partial(faceworld_generator, "no_glasses", device)}


def load_open_clip(model_name: str, pretrained: str | None, device: str) -> "OpenClipEncoder":
    """An open_clip model by name and pretrained tag (None: random init, used by the tests)."""
    import open_clip

    from backends.gan.encoders import OpenClipEncoder

    model = open_clip.create_model(model_name, pretrained=pretrained, device=device,
                                   require_pretrained=pretrained is not None, weights_only=True)
    cfg = model.visual.preprocess_cfg
    return OpenClipEncoder(model, open_clip.get_tokenizer(model_name), device, image_size=cfg["size"][0],
                           mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                           name=f"open_clip {model_name} ({pretrained or 'random'})")


def tiny_clip(device: str, seed: int = TINY_SEED) -> "OpenClipEncoder":
    """A seeded random CLIP-style model with a hashing tokenizer (no open_clip import: loads in ms)."""
    from backends.gan.encoders import HashTokenizer, OpenClipEncoder, tiny_clip_model

    model = tiny_clip_model(embed_dim=TINY_CLIP["embed_dim"], vocab_size=TINY_CLIP["vocab_size"], seed=seed)
    return OpenClipEncoder(model, HashTokenizer(TINY_CLIP["vocab_size"], TINY_CLIP["context_length"]), device,
                           image_size=TINY_GAN["image_size"], mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                           name="tiny random CLIP")


def tiny_model(device: str, seed: int = TINY_SEED) -> "GanModel":
    """Tiny seeded random GAN + CLIP of the preset classes (tests, < 1 s)."""
    from backends.faceworld.gan import random_gan
    from backends.gan.adapter import FaceWorldAdapter
    from backends.gan.backend import GanModel

    from backends.faceworld.judge import random_judge

    return GanModel(FaceWorldAdapter(random_gan(TINY_GAN, seed=seed, device=device)), tiny_clip(device, seed),
                    preset="tiny", gold={}, judge=random_judge(device, seed))


@register_preset("gan", "faceworld", title="FaceWorld GAN + FaceWorld CLIP", offline=True,
                 description="Small StyleGAN2 trained on FaceWorld cartoon faces, guided by the FaceWorld CLIP "
                             "(MiniLM text tower); verdicts by the FaceWorld attribute judge (a classifier "
                             "trained on renders, independent of the CLIP). Runs offline on a CPU.")
def load_faceworld(device: str) -> "GanModel":
    from backends.faceworld.clip import load_clip
    from backends.faceworld.judge import load_judge
    from backends.gan.backend import GanModel
    from backends.gan.encoders import FaceWorldClipEncoder

    return GanModel(faceworld_generator("base", device), FaceWorldClipEncoder(load_clip(device), device),
                    preset="faceworld", gold=faceworld_gold(device), judge=load_judge(device))


@register_preset("gan", "clip_vit_b32", title="FaceWorld GAN + CLIP ViT-B-32 (hub)", offline=False,
                 description="The FaceWorld GAN guided by open_clip ViT-B-32 (laion2b_s34b_b79k, downloaded "
                             "from the Hugging Face hub); verdicts by the FaceWorld attribute judge, which "
                             "shares nothing with the guiding CLIP.")
def load_clip_vit_b32(device: str) -> "GanModel":
    from backends.faceworld.judge import load_judge
    from backends.gan.backend import GanModel

    return GanModel(faceworld_generator("base", device), load_open_clip(*HUB_CLIP, device),
                    preset="clip_vit_b32", gold=faceworld_gold(device), judge=load_judge(device))


@register_preset("gan", "tiny", title="Tiny random (tests)", offline=True,
                 description="Seeded random 16 px GAN and CLIP of the same classes; for tests only.")
def load_tiny(device: str) -> "GanModel":
    return tiny_model(device)
