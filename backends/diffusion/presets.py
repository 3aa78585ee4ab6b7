"""Allow-listed diffusion models: FaceWorld (embedded default), a tiny random model, and SD hub presets.

The hub presets load real published checkpoints with diffusers / transformers ``from_pretrained``
(fixed repository ids, safetensors only, never ``trust_remote_code``). Their loading code
(:func:`load_stable_diffusion`) takes an internal ``path`` so the tests run it on a tiny randomly
initialised SD pipeline of the same classes saved with ``save_pretrained`` (no download).
"""
from __future__ import annotations

import functools
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from backends.registry import register_preset

if TYPE_CHECKING:
    from backends.diffusion.pipeline import DiffusionModel

SD_1_4 = "CompVis/stable-diffusion-v1-4"
SD_1_5 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TINY_SD = "segmind/tiny-sd"
GOLD_VARIANTS = {"glasses": "no_glasses"}  # FaceWorld models retrained without a concept


def faceworld_sampling_scheduler():
    """DPM-Solver++ (2M, Lu et al. 2022) on FaceWorld's noise schedule: good samples in ~20 steps."""
    from diffusers import DPMSolverMultistepScheduler

    from backends.faceworld.diffusion import NOISE_SCHEDULE

    schedule = {k: v for k, v in NOISE_SCHEDULE.items() if k != "clip_sample"}
    return DPMSolverMultistepScheduler(**schedule, algorithm_type="dpmsolver++", solver_order=2)


def faceworld_model(unet, unet_config, text_encoder_kind: str, vae, device: str | None = None,
                    text_encoder_seed: int = 0, preset: str = "faceworld") -> "DiffusionModel":
    """A FaceWorld-shaped :class:`DiffusionModel` from a UNet (of ``unet_config``) and an autoencoder:
    adds the frozen text encoder ``text_encoder_kind`` ("minilm" or the seeded "tiny"), MiniLM's
    tokenizer and the schedulers; ``device`` None picks one at run time."""
    from backends.device import pick_device
    from backends.diffusion.pipeline import DiffusionModel
    from backends.faceworld import diffusion as fw

    device = pick_device(device)
    text_encoder = fw.load_text_encoder(text_encoder_kind, seed=text_encoder_seed).to(device)
    hidden = text_encoder.config.hidden_size
    if hidden != unet_config.cross_attention_dim:
        raise ValueError(f"text encoder width {hidden} != UNet cross_attention_dim {unet_config.cross_attention_dim}")
    if vae.config.latent_channels != unet_config.channels:
        raise ValueError(f"autoencoder latents have {vae.config.latent_channels} channels, "
                         f"the UNet {unet_config.channels}")
    return DiffusionModel(
        unet=unet.to(device).eval(), text_encoder=text_encoder, tokenizer=fw.load_tokenizer(),
        scheduler=faceworld_sampling_scheduler(), noise_scheduler=fw.make_noise_scheduler(),
        vae=vae.to(device).eval().requires_grad_(False), preset=preset, device=device, image_size=fw.IMAGE_SIZE,
        max_tokens=fw.MAX_TOKENS, default_steps=fw.DEFAULT_STEPS, default_guidance=fw.DEFAULT_GUIDANCE,
        neutral_prompt="a face", use_attention_mask=True,
    )


def tiny_model(seed: int = 0, device: str | None = None) -> "DiffusionModel":
    """A tiny randomly initialised FaceWorld-shaped model for fast tests: autoencoder (8, 8, 8), UNet (8, 16),
    2-layer BERT (32)."""
    from backends.faceworld import diffusion as fw

    unet = fw.build_unet(fw.TINY_UNET, seed=seed).requires_grad_(False)
    vae = fw.build_autoencoder(fw.TINY_AUTOENCODER, seed=seed).requires_grad_(False)
    return faceworld_model(unet, fw.TINY_UNET, fw.TEXT_ENCODER_TINY, vae, device=device, text_encoder_seed=seed,
                           preset="tiny")


_VARIANTS: dict[tuple[str, str], "DiffusionModel"] = {}
_VARIANTS_LOCK = threading.Lock()


def faceworld_variant(variant: str = "base", device: str | None = None) -> "DiffusionModel":
    """The shipped FaceWorld model ``variant`` (``backends.faceworld.diffusion.VARIANTS``), loaded once per
    process and device; every call returns a frozen view of it with a generation cache of its own."""
    from backends.device import pick_device
    from backends.faceworld.diffusion import load_variant_files

    device = pick_device(device)
    with _VARIANTS_LOCK:
        if (variant, device) not in _VARIANTS:
            unet, config, meta, vae = load_variant_files(variant)
            _VARIANTS[variant, device] = faceworld_model(unet, config, meta["text_encoder"], vae, device=device,
                                                         preset=f"faceworld:{variant}")
        return _VARIANTS[variant, device].frozen_view()


@register_preset("diffusion", "faceworld", title="FaceWorld diffusion (32 px, offline)", offline=True,
                 description="A small latent diffusion model (AutoencoderKL to 8x8x8 latents, 2M-parameter "
                             "UNet2DConditionModel) trained on FaceWorld captions, conditioned on MiniLM token "
                             "states; judged by the FaceWorld attribute judge, with CLIP's opinion beside it. A twin retrained "
                             "without glasses is the gold standard of unlearning.")
def load_faceworld(device: str) -> "DiffusionModel":
    from backends.diffusion.judging import AttributeJudge, ClipOpinion
    from backends.faceworld.judge import load_judge

    gold = {concept: functools.partial(faceworld_variant, variant, device)
            for concept, variant in GOLD_VARIANTS.items()}
    return replace(faceworld_variant("base", device), preset="faceworld", judge=AttributeJudge(load_judge(device)),
                   clip=ClipOpinion(device), gold=gold)


@register_preset("diffusion", "tiny", title="Tiny random (tests)", offline=True,
                 description="A seeded random FaceWorld-shaped model (UNet 8/16 channels, 2-layer BERT) for tests, "
                             "judged by an untrained attribute judge.")
def load_tiny(device: str) -> "DiffusionModel":
    from backends.diffusion.judging import AttributeJudge
    from backends.faceworld.judge import random_judge

    return replace(tiny_model(seed=0, device=device), judge=AttributeJudge(random_judge(device)))


def load_stable_diffusion(device: str, repo_id: str, *, path: str | Path | None = None) -> "DiffusionModel":
    """A Stable Diffusion 1.x-layout pipeline from the hub (``repo_id``) or a local folder (``path``, tests).

    Components are loaded one by one (tokenizer, CLIPTextModel, UNet2DConditionModel, AutoencoderKL,
    scheduler), safetensors only; sampling uses DPM-Solver++ on the checkpoint's noise schedule.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from backends.diffusion.pipeline import DiffusionModel

    source = str(path) if path is not None else repo_id
    local = path is not None
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", use_safetensors=True,
                                                 local_files_only=local)
    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", use_safetensors=True,
                                                local_files_only=local)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", use_safetensors=True, local_files_only=local)
    noise_scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", local_files_only=local)
    scheduler = DPMSolverMultistepScheduler.from_config(noise_scheduler.config, algorithm_type="dpmsolver++")
    for module in (text_encoder, unet, vae):
        module.to(device).eval().requires_grad_(False)
    vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return DiffusionModel(
        unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        noise_scheduler=noise_scheduler, vae=vae, preset=repo_id, device=device,
        image_size=int(unet.config.sample_size) * vae_scale, max_tokens=int(tokenizer.model_max_length),
        default_steps=25, default_guidance=7.5, neutral_prompt="a photo", faceworld=False,
        use_attention_mask=False,
    )


@register_preset("diffusion", "sd_1_4", title="Stable Diffusion 1.4 (hub, GPU)", offline=False,
                 description=f"{SD_1_4}: the model of the ESD / UCE / UnlearnDiffAtk papers. Needs a GPU and the hub.")
def load_sd_1_4(device: str) -> "DiffusionModel":
    return load_stable_diffusion(device, SD_1_4)


@register_preset("diffusion", "sd_1_5", title="Stable Diffusion 1.5 (hub, GPU)", offline=False,
                 description=f"{SD_1_5}. Needs a GPU and the hub.")
def load_sd_1_5(device: str) -> "DiffusionModel":
    return load_stable_diffusion(device, SD_1_5)


@register_preset("diffusion", "tiny_sd", title="Segmind tiny-SD (hub)", offline=False,
                 description=f"{TINY_SD}: a distilled SD 1.5 (about half the UNet). Needs the hub; slow on CPU.")
def load_tiny_sd(device: str) -> "DiffusionModel":
    return load_stable_diffusion(device, TINY_SD)
