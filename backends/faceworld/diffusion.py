"""FaceWorld text-to-image diffusion: a small latent diffusion model (Stable Diffusion's shape) for 32x32 faces.

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

The tiny test model (:func:`build_tiny_diffusion`) has the same parts, randomly initialised.

Heavy libraries (torch, diffusers, transformers) are imported inside functions only.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from backends.device import pick_device
from backends.faceworld import expected_load_notices_silenced, minilm_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

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


def make_sampling_scheduler():
    """DPM-Solver++ (2M, Lu et al. 2022) on the same noise schedule: good samples in ~20 steps."""
    from diffusers import DPMSolverMultistepScheduler

    schedule = {k: v for k, v in NOISE_SCHEDULE.items() if k != "clip_sample"}
    return DPMSolverMultistepScheduler(**schedule, algorithm_type="dpmsolver++", solver_order=2)


def to_uint8_images(x: "torch.Tensor") -> "np.ndarray":
    """Float images ``(N, 3, H, W)`` in [-1, 1] -> uint8 numpy ``(N, H, W, 3)``."""
    import torch

    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu")
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def from_uint8_images(images: "np.ndarray", device: str | None = None) -> "torch.Tensor":
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in [-1, 1] (the UNet's pixel space)."""
    import numpy as np
    import torch

    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {arr.dtype} {arr.shape}")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, H, W)
    return x.to(device) if device else x


def tokenize_padded(tokenizer: Any, prompts: list[str], max_tokens: int,
                    device: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Token ids and attention mask ``(N, T)`` padded / truncated to ``max_tokens`` (T), on ``device``."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of strings")
    batch = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=max_tokens,
                      return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def guided_denoise(model: Any, scheduler: Any, x: "torch.Tensor", states: "torch.Tensor", guidance: float,
                   stop_after: int | None = None, callback: Callable[[int, int], None] | None = None,
                   trajectory: list | None = None) -> tuple["torch.Tensor", int]:
    """Run ``scheduler``'s timesteps (set beforehand) on ``x`` with classifier-free guidance.

    ``states`` is ``cat([uncond, cond])`` (2N, T, D) when ``guidance != 1``, else cond (N, T, D)
    (Ho & Salimans, 2022). Stops after ``stop_after`` steps if given; returns x and the next
    timestep (0 when finished). ``trajectory``, if a list, collects (t, x_t) before each step.
    Shared by FaceWorld and the Stable Diffusion pipeline.
    """
    import torch

    use_cfg = guidance != 1.0
    timesteps = scheduler.timesteps
    stop = len(timesteps) if stop_after is None else stop_after
    for i, t in enumerate(timesteps[:stop]):
        if trajectory is not None:
            trajectory.append((int(t), x))
        x_in = scheduler.scale_model_input(torch.cat([x, x]) if use_cfg else x, t)
        eps = model(x_in, t, encoder_hidden_states=states).sample
        if use_cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        x = scheduler.step(eps, t, x).prev_sample
        if callback is not None:
            callback(i + 1, len(timesteps))
    next_t = int(timesteps[stop]) if stop < len(timesteps) else 0
    return x, next_t


@dataclass
class FaceWorldDiffusion:
    """A text-to-image model: autoencoder + latent UNet + frozen text encoder + tokenizer + schedulers.

    The shared instance from :func:`load_diffusion` is frozen (``requires_grad`` off); an
    unlearning method makes a ``copy.deepcopy`` of ``unet`` or ``text_encoder``, edits it, and
    samples before/after with the same seeds via ``generate(..., unet=edited)``.
    """

    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any  # sampling (DPM-Solver++); a fresh copy is made for every call
    noise_scheduler: Any  # training (DDPM): add_noise, alphas_cumprod
    unet_config: UNetConfig
    text_encoder_kind: str
    vae: Any = None  # AutoencoderKL: 32x32x3 images <-> 8x8x8 latents (times vae.config.scaling_factor)
    device: str = "cpu"
    image_size: int = IMAGE_SIZE
    max_tokens: int = MAX_TOKENS
    default_steps: int = DEFAULT_STEPS
    default_guidance: float = DEFAULT_GUIDANCE
    info: dict[str, str] = field(default_factory=dict)

    def tokenize(self, prompts: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Token ids and attention mask ``(N, T)``, padded to ``max_tokens`` (SD's convention)."""
        return tokenize_padded(self.tokenizer, prompts, self.max_tokens, self.device)

    def encode_prompts(self, prompts: list[str], text_encoder=None) -> "torch.Tensor":
        """Last hidden states of the text encoder, ``(N, T, D)`` with T = max_tokens.

        The encoder sees the attention mask (padding does not change the real tokens' states);
        the UNet attends to all T positions, padding included, exactly as SD does with CLIP.
        Gradients flow when ``text_encoder`` has trainable parameters (few-shot erasure).
        """
        import torch

        encoder = self.text_encoder if text_encoder is None else text_encoder
        ids, mask = self.tokenize(prompts)
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in encoder.parameters())):
            return encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (N, T, D)

    def predict_noise(self, x_t: "torch.Tensor", timesteps: "torch.Tensor", states: "torch.Tensor",
                      unet=None) -> "torch.Tensor":
        """eps_theta(z_t, t, c): latents ``x_t`` (N, C, h, w), ``timesteps`` (N,) or scalar, ``states`` (N, T, D)."""
        model = self.unet if unet is None else unet
        return model(x_t, timesteps, encoder_hidden_states=states).sample  # (N, C, h, w)

    def initial_noise(self, seeds: list[int]) -> "torch.Tensor":
        """Per-seed starting latent noise ``(N, C, h, w)``: image i depends on seeds[i] only."""
        import torch

        shape = (self.unet_config.channels, self.unet_config.sample_size, self.unet_config.sample_size)
        noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
        return torch.stack(noise).to(self.device)

    def decode(self, z: "torch.Tensor") -> "torch.Tensor":
        """Scaled latents ``(N, C, h, w)`` -> images ``(N, 3, 32, 32)`` in about [-1, 1]."""
        import torch

        with torch.no_grad():
            return self.vae.decode(z / self.vae.config.scaling_factor).sample

    def encode_images(self, images: "np.ndarray") -> "torch.Tensor":
        """uint8 ``(N, 32, 32, 3)`` -> scaled latents ``(N, C, h, w)`` (the posterior mean, as SD's trainers)."""
        import torch

        x = from_uint8_images(images, self.device)  # (N, 3, H, W)
        with torch.no_grad():
            return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    def _check_sampling_args(self, prompts: list[str], seeds: list[int], steps: int, guidance: float) -> None:
        if isinstance(prompts, str) or len(prompts) == 0:
            raise ValueError("prompts must be a non-empty list of strings")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        if not 1 <= int(steps) <= 1000:
            raise ValueError(f"steps must be between 1 and 1000, got {steps}")
        if not 0.0 <= float(guidance) <= 50.0:
            raise ValueError(f"guidance must be between 0 and 50, got {guidance}")

    def sample_tensor(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                      guidance: float | None = None, unet=None, text_encoder=None,
                      callback: Callable[[int, int], None] | None = None,
                      stop_after: int | None = None) -> tuple["torch.Tensor", int]:
        """Run the sampler; returns latents ``(z, t)`` with z ``(N, C, h, w)``.

        With ``stop_after=k`` the loop stops after k of the ``steps`` steps and returns the noisy
        ``z_t`` together with the next timestep t (ESD samples z_t this way); otherwise z is the
        clean latent (t = 0), which :meth:`decode` turns into an image.
        """
        import torch

        steps = self.default_steps if steps is None else int(steps)
        guidance = self.default_guidance if guidance is None else float(guidance)
        self._check_sampling_args(prompts, seeds, steps, guidance)
        if stop_after is not None and not 0 <= stop_after <= steps:
            raise ValueError(f"stop_after must be between 0 and steps ({steps}), got {stop_after}")
        model = self.unet if unet is None else unet
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        n = len(prompts)
        use_cfg = guidance != 1.0
        with torch.no_grad():
            cond = self.encode_prompts(list(prompts), text_encoder)  # (N, T, D)
            if use_cfg:
                uncond = self.encode_prompts([""], text_encoder).expand(n, -1, -1)  # (N, T, D)
                states = torch.cat([uncond, cond])  # (2N, T, D)
            else:
                states = cond
            x = self.initial_noise(seeds) * scheduler.init_noise_sigma  # (N, C, h, w)
            return guided_denoise(model, scheduler, x, states, guidance, stop_after, callback)

    def generate(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                 guidance: float | None = None, unet=None, text_encoder=None,
                 callback: Callable[[int, int], None] | None = None) -> "np.ndarray":
        """Images for prompts[i] from seeds[i]: uint8 ``(N, 32, 32, 3)``.

        The same (prompt, seed) gives the same image whatever the batch; pass an edited
        ``unet`` / ``text_encoder`` to sample the edited model with the same seeds.
        ``callback(step, total)`` is called after each sampling step.
        """
        z, _ = self.sample_tensor(prompts, seeds, steps, guidance, unet, text_encoder, callback)
        return to_uint8_images(self.decode(z))

    def copy_unet(self, trainable: bool = True):
        """A deep copy of the UNet to edit (the shared one stays untouched)."""
        unet = copy.deepcopy(self.unet)
        return unet.requires_grad_(trainable)

    def cross_attention_layers(self, unet=None) -> dict[str, Any]:
        """Name -> ``attn2`` module for every cross-attention layer (with ``to_k`` / ``to_v``)."""
        model = self.unet if unet is None else unet
        return {name: m for name, m in model.named_modules() if name.endswith("attn2")}


def assemble(unet, unet_config: UNetConfig, text_encoder_kind: str, vae, device: str | None = None,
             text_encoder_seed: int = 0, info: dict[str, str] | None = None) -> FaceWorldDiffusion:
    """Wrap a UNet and autoencoder with the text encoder, tokenizer and schedulers into a :class:`FaceWorldDiffusion`."""
    device = pick_device(device)
    text_encoder = load_text_encoder(text_encoder_kind, seed=text_encoder_seed).to(device)
    hidden = text_encoder.config.hidden_size
    if hidden != unet_config.cross_attention_dim:
        raise ValueError(f"text encoder width {hidden} != UNet cross_attention_dim {unet_config.cross_attention_dim}")
    if vae.config.latent_channels != unet_config.channels:
        raise ValueError(f"autoencoder latents have {vae.config.latent_channels} channels, the UNet {unet_config.channels}")
    unet = unet.to(device).eval()
    vae = vae.to(device).eval().requires_grad_(False)
    return FaceWorldDiffusion(
        unet=unet, text_encoder=text_encoder, tokenizer=load_tokenizer(),
        scheduler=make_sampling_scheduler(), noise_scheduler=make_noise_scheduler(),
        unet_config=unet_config, text_encoder_kind=text_encoder_kind, vae=vae, device=device, info=dict(info or {}),
    )


def build_tiny_diffusion(seed: int = 0, device: str | None = None) -> FaceWorldDiffusion:
    """A tiny randomly initialised model for fast tests: autoencoder (8, 8, 8), UNet (8, 16), 2-layer BERT (32)."""
    unet = build_unet(TINY_UNET, seed=seed).requires_grad_(False)
    vae = build_autoencoder(TINY_AUTOENCODER, seed=seed).requires_grad_(False)
    return assemble(unet, TINY_UNET, TEXT_ENCODER_TINY, vae, device=device, text_encoder_seed=seed)


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


_CACHE: dict[tuple[str, str], FaceWorldDiffusion] = {}
_CACHE_LOCK = threading.Lock()


def load_diffusion(variant: str = "base", device: str | None = None) -> FaceWorldDiffusion:
    """The shipped model ``variant`` ("base" or the gold-standard "no_glasses"), cached per process.

    "no_glasses" was trained from scratch on the same recipe with glasses and sunglasses removed
    from the data: the unlearning gold standard. Raises ValueError for an unknown variant and
    FileNotFoundError when the weights have not been trained yet (scripts/train_diffusion.py).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown diffusion variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    device = pick_device(device)
    key = (variant, device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            path = ASSET_DIR / VARIANTS[variant]
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; train it with "
                                        f"`python scripts/train_diffusion.py --variant {variant}`")
            unet, config, meta = load_unet_file(path)
            vae_path = ASSET_DIR / AUTOENCODER_FILE  # the one shipped autoencoder (never a path from a file)
            if meta.get("autoencoder") != AUTOENCODER_FILE or not vae_path.is_file():
                raise FileNotFoundError(f"autoencoder {vae_path} is missing; train it with scripts/train_diffusion.py")
            vae, _, _ = load_autoencoder_file(vae_path)
            _CACHE[key] = assemble(unet, config, meta["text_encoder"], vae, device=device, info=meta)
        return _CACHE[key]
