"""Allow-listed diffusion models: FaceWorld (embedded default), a tiny random model, and SD hub presets.

The hub presets load real published checkpoints with diffusers / transformers ``from_pretrained``
(fixed repository ids, safetensors only, never ``trust_remote_code``). Their loading code
(:func:`load_stable_diffusion`) takes an internal ``path`` so the tests run it on a tiny randomly
initialised SD pipeline of the same classes saved with ``save_pretrained`` (no download).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from backends.registry import register_preset

if TYPE_CHECKING:
    from backends.diffusion.pipeline import DiffusionModel

SD_1_4 = "CompVis/stable-diffusion-v1-4"
SD_1_5 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TINY_SD = "segmind/tiny-sd"
GOLD_VARIANTS = {"glasses": "no_glasses"}  # FaceWorld models retrained without a concept


def from_faceworld(fw, preset: str, judge=None, clip=None, gold: dict | None = None) -> "DiffusionModel":
    """Wrap a ``backends.faceworld.diffusion.FaceWorldDiffusion`` as a :class:`DiffusionModel`."""
    from backends.diffusion.pipeline import DiffusionModel

    return DiffusionModel(
        unet=fw.unet, text_encoder=fw.text_encoder, tokenizer=fw.tokenizer, scheduler=fw.scheduler,
        noise_scheduler=fw.noise_scheduler, vae=fw.vae, preset=preset, device=fw.device,
        image_size=fw.image_size, max_tokens=fw.max_tokens, default_steps=fw.default_steps,
        default_guidance=fw.default_guidance, neutral_prompt="a face", use_attention_mask=True,
        judge=judge, clip=clip, gold=dict(gold or {}),
    )


def _faceworld_gold(variant: str, device: str):
    def load() -> "DiffusionModel":
        from backends.faceworld.diffusion import load_diffusion

        return from_faceworld(load_diffusion(variant, device), f"faceworld:{variant}")
    return load


@register_preset("diffusion", "faceworld", title="FaceWorld diffusion (32 px, offline)", offline=True,
                 description="A small latent diffusion model (AutoencoderKL to 8x8x8 latents, 2M-parameter "
                             "UNet2DConditionModel) trained on FaceWorld captions, conditioned on MiniLM token "
                             "states; judged by the FaceWorld attribute judge, with CLIP's opinion beside it. A twin retrained "
                             "without glasses is the gold standard of unlearning.")
def load_faceworld(device: str) -> "DiffusionModel":
    from backends.diffusion.metrics import AttributeJudge, ClipOpinion
    from backends.faceworld.diffusion import load_diffusion
    from backends.faceworld.judge import load_judge

    gold = {concept: _faceworld_gold(variant, device) for concept, variant in GOLD_VARIANTS.items()}
    return from_faceworld(load_diffusion("base", device), "faceworld", AttributeJudge(load_judge(device)),
                          ClipOpinion(device), gold)


@register_preset("diffusion", "tiny", title="Tiny random (tests)", offline=True,
                 description="A seeded random FaceWorld-shaped model (UNet 8/16 channels, 2-layer BERT) for tests, "
                             "judged by an untrained attribute judge.")
def load_tiny(device: str) -> "DiffusionModel":
    from backends.diffusion.metrics import AttributeJudge
    from backends.faceworld.diffusion import build_tiny_diffusion
    from backends.faceworld.judge import random_judge

    return from_faceworld(build_tiny_diffusion(seed=0, device=device), "tiny", AttributeJudge(random_judge(device)))


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
