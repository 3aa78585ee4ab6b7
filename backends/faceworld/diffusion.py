"""FaceWorld text-to-image diffusion's architecture and weight files: a small latent diffusion model
(Stable Diffusion's shape) for 32x32 faces.

The structure mirrors Stable Diffusion (Rombach et al., 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models") so that the erasure methods written for SD apply unchanged:

- a diffusers ``AutoencoderKL`` (SD's VAE, scaled down) mapping 32x32 RGB images to 8 x 8 x 8 latents,
  trained on FaceWorld renders and shared by every variant (as SD's VAE is by its fine-tunes);
- a diffusers ``UNet2DConditionModel`` on those latents whose ``CrossAttn*`` blocks hold ``attn2`` cross-attention
  layers with ``to_k`` / ``to_v`` projections reading the text states (UCE, ESD-x edit these);
- a FROZEN text encoder (MiniLM-L6, a 6-layer BERT, standing in for SD's CLIP text tower) whose
  last hidden states ``(N, T, 384)``, padded to a fixed length, condition the UNet;
- epsilon prediction trained with DDPM (Ho et al., 2020) and sampled with DPM-Solver++
  (Lu et al., 2022) under classifier-free guidance (Ho & Salimans, 2022; the empty prompt ""
  is the unconditional input, as in SD).

The tiny test model (``TINY_UNET``, ``TINY_AUTOENCODER``, ``TEXT_ENCODER_TINY``) has the same parts,
randomly initialised. This module builds, saves and loads the parts; ``backends.diffusion.presets``
assembles them into the one ``DiffusionModel`` that samples every preset.

Heavy libraries (torch, diffusers, transformers) are imported inside functions only.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from backends.faceworld import expected_load_notices_silenced, minilm_dir

ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "faceworld"
VARIANTS: dict[str, str] = {
    "base": "diffusion_base.safetensors",
    "no_glasses": "diffusion_no_glasses.safetensors",
}
AUTOENCODER_FILE = "diffusion_autoencoder.safetensors"
IMAGE_SIZE = 32
LATENT_CHANNELS = 8  # SD has 4 at 1/8 resolution; 8 at 1/4 keeps eyes, mouths and glasses frames sharp
LATENT_SIZE = IMAGE_SIZE // 4  # two stride-2 stages in the autoencoder
MAX_TOKENS = 32  # every prompt is padded / truncated to this many tokens (SD pads to 77)
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 7.5  # tuned on prompt adherence (80 tuning prompts), see assets/faceworld/DIFFUSION.md
TEXT_ENCODER_MINILM = "minilm"
TEXT_ENCODER_TINY = "tiny"

# One DDPM noise schedule for training and sampling: Stable Diffusion's (scaled linear, 0.00085-0.012).
NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "clip_sample": False,
}


class _JsonConfig:
    """JSON round trip of a frozen architecture dataclass (lists come back as tuples)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Any:
        raw = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


@dataclass(frozen=True)
class UNetConfig(_JsonConfig):
    """Architecture of the UNet (a subset of ``UNet2DConditionModel``'s arguments).

    On 8x8 latents every level (8x8, 4x4, 2x2) and the mid block cross-attend to the text, as in
    SD. ``attention_heads`` is passed to diffusers' (historically misnamed) ``attention_head_dim``,
    which counts heads.
    """

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D",) * 3
    layers_per_block: int = 1
    attention_heads: int = 4
    norm_num_groups: int = 16
    cross_attention_dim: int = 384
    sample_size: int = LATENT_SIZE
    channels: int = LATENT_CHANNELS  # latent channels in and out

    def diffusers_kwargs(self) -> dict[str, Any]:
        return {
            "sample_size": self.sample_size,
            "in_channels": self.channels,
            "out_channels": self.channels,
            "block_out_channels": tuple(self.block_out_channels),
            "down_block_types": tuple(self.down_block_types),
            "up_block_types": tuple(self.up_block_types),
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": self.attention_heads,
            "norm_num_groups": self.norm_num_groups,
            "cross_attention_dim": self.cross_attention_dim,
        }


TINY_UNET = UNetConfig(
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    attention_heads=2,
    norm_num_groups=4,
    cross_attention_dim=32,
)


@dataclass(frozen=True)
class AutoencoderConfig(_JsonConfig):
    """Architecture of the ``AutoencoderKL`` (SD's VAE, Rombach et al. 2022, at FaceWorld scale).

    ``len(block_out_channels) - 1`` stride-2 stages: 32x32x3 images <-> 8x8x8 latents.
    ``scaling_factor`` (1 / std of the training latents, SD's 0.18215) is measured after training.
    """

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    latent_channels: int = LATENT_CHANNELS
    norm_num_groups: int = 16
    scaling_factor: float = 1.0

    def diffusers_kwargs(self) -> dict[str, Any]:
        levels = len(self.block_out_channels)
        return {
            "in_channels": 3, "out_channels": 3, "sample_size": IMAGE_SIZE,
            "down_block_types": ("DownEncoderBlock2D",) * levels, "up_block_types": ("UpDecoderBlock2D",) * levels,
            "block_out_channels": tuple(self.block_out_channels), "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels, "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scaling_factor,
        }


TINY_AUTOENCODER = AutoencoderConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)


@functools.lru_cache(maxsize=1)
def load_tokenizer():
    """MiniLM's WordPiece tokenizer (shared by the full and the tiny text encoder; loaded once)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)


def load_text_encoder(kind: str, seed: int = 0):
    """The frozen text encoder: pretrained MiniLM (``"minilm"``) or a seeded 2-layer BERT (``"tiny"``)."""
    import torch
    from transformers import BertConfig, BertModel

    if kind == TEXT_ENCODER_MINILM:
        with expected_load_notices_silenced():
            model = BertModel.from_pretrained(str(minilm_dir()), local_files_only=True, add_pooling_layer=False)
    elif kind == TEXT_ENCODER_TINY:
        vocab_size = load_tokenizer().vocab_size
        config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    else:
        raise ValueError(f"unknown text encoder {kind!r}; expected {TEXT_ENCODER_MINILM!r} or {TEXT_ENCODER_TINY!r}")
    model.eval().requires_grad_(False)
    return model


def build_unet(config: UNetConfig, seed: int = 0):
    """A randomly initialised (seeded) ``UNet2DConditionModel`` with the given architecture."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**config.diffusers_kwargs())


def build_autoencoder(config: AutoencoderConfig, seed: int = 0):
    """A randomly initialised (seeded) ``AutoencoderKL`` with the given architecture."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**config.diffusers_kwargs())


def save_autoencoder(vae, config: AutoencoderConfig, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write the autoencoder (fp16) + architecture to a safetensors file, atomically."""
    _save_safetensors(vae, path, {"autoencoder_config": config.to_json(), **(metadata or {})}, half=True)


def load_autoencoder_file(path: Path):
    """(autoencoder fp32, AutoencoderConfig, metadata) from a file written by :func:`save_autoencoder`."""
    return _load_safetensors(path, "autoencoder_config", AutoencoderConfig, build_autoencoder)


def make_noise_scheduler():
    """DDPM scheduler used for training (``add_noise``) and by training-based erasure methods."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE)


def _save_safetensors(module, path: Path, metadata: dict[str, str], half: bool) -> None:
    import torch
    from safetensors.torch import save_file

    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _load_safetensors(path: Path, config_key: str, config_cls: type, build: Callable[[Any], Any]):
    """(module fp32 in eval mode, its config, metadata) from a file of :func:`_save_safetensors`;
    ValueError when the file lacks its architecture entry ``config_key``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if config_key not in meta:
        raise ValueError(f"{path} has no {config_key!r} metadata; it was not written by this module")
    config = config_cls.from_json(meta[config_key])
    module = build(config)
    module.load_state_dict({k: v.to(torch.float32) for k, v in load_file(str(path)).items()})
    return module.requires_grad_(False).eval(), config, meta


def save_unet(unet, unet_config: UNetConfig, path: Path, metadata: dict[str, str] | None = None,
              half: bool = True, text_encoder_kind: str = TEXT_ENCODER_MINILM,
              autoencoder: str = AUTOENCODER_FILE) -> None:
    """Write UNet weights (fp16 by default) + architecture to a safetensors file, atomically.

    ``autoencoder``: file name (in the same folder) of the autoencoder whose latents it denoises.
    """
    meta = {"unet_config": unet_config.to_json(), "text_encoder": text_encoder_kind, "autoencoder": autoencoder,
            "max_tokens": str(MAX_TOKENS), "noise_schedule": json.dumps(NOISE_SCHEDULE)}
    _save_safetensors(unet, path, {**meta, **(metadata or {})}, half)


def load_unet_file(path: Path):
    """(unet fp32, UNetConfig, metadata) from a file written by :func:`save_unet`."""
    return _load_safetensors(path, "unet_config", UNetConfig, build_unet)


def load_variant_files(variant: str = "base"):
    """(unet fp32, UNetConfig, metadata, autoencoder fp32) of the shipped model ``variant``.

    "base" or the gold-standard "no_glasses", trained from scratch on the same recipe with glasses and
    sunglasses removed from the data (the unlearning gold standard); both share the one shipped
    autoencoder. Raises ValueError for an unknown variant and FileNotFoundError when the weights have
    not been trained yet (scripts/train_diffusion.py).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown diffusion variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    path = ASSET_DIR / VARIANTS[variant]
    if not path.is_file():
        how = " --exclude glasses" if variant == "no_glasses" else ""
        raise FileNotFoundError(f"{path} is missing; train it with `python scripts/train_diffusion.py{how}`")
    unet, config, meta = load_unet_file(path)
    vae_path = ASSET_DIR / AUTOENCODER_FILE  # the one shipped autoencoder (never a path from a file)
    if meta.get("autoencoder") != AUTOENCODER_FILE or not vae_path.is_file():
        raise FileNotFoundError(f"autoencoder {vae_path} is missing; train it with scripts/train_diffusion.py")
    vae, _, _ = load_autoencoder_file(vae_path)
    return unet, config, meta, vae
