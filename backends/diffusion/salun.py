"""SalUn, saliency unlearning (Fan et al., ICLR 2024, OPTML-Group/Unlearn-Saliency), for diffusion.

1. Saliency mask: the gradient of the forgetting (denoising) loss over the forget set, summed;
   keep the top ``mask_ratio`` of |g| entries across all UNet weights (one global threshold).
2. Random-label objective, gradients multiplied by the mask before each step:
   MSE(eps_theta(x_t^f, c_f), stopgrad eps_theta(x_t^f, c')) + alpha * MSE(eps_theta(x_t^r, c_r), eps)
   where c' is another concept's prompt (here, by default, the forget prompt reworded to the
   concept's absence: "a face wearing glasses" -> "a face without glasses"; the neutral prompt "a
   face" would still draw glasses as often as the data has them) and the retain term is the
   standard diffusion loss on retain images.

Forget images: base-model generations of the concept's prompts the judge sees the concept in;
retain images: generations of neighbouring and unrelated prompts. Authors' defaults: mask 50%,
lr 1e-5, alpha 0.1-0.5, batch 8, a few epochs over ~800 images; ours use far fewer images and
steps with a higher learning rate (see the field help).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import MethodCall
from backends.diffusion.common import adam, check_concept_drawn, concept_images, retain_images, reworded_prompts
from backends.diffusion.erasure_config import ErasureConfig
from backends.registry import register_method

if TYPE_CHECKING:
    import torch

    from backends.diffusion.pipeline import DiffusionModel


@dataclass(frozen=True)
class SalUnConfig(ErasureConfig):
    """SalUn settings (authors: mask 50%, lr 1e-5, alpha 0.1-0.5, batch 8, hundreds of images)."""

    pseudo_prompt: str = param("", max_length=120,
                               help="Prompt c' whose prediction replaces the concept's; empty = each forget prompt "
                                    "reworded to the concept's absence (\"a face without glasses\").")
    forget_count: int = param(12, min=1, max=256, help="Forget images generated from the concept's prompts.")
    retain_count: int = param(12, min=1, max=256, help="Retain images from neighbouring / unrelated prompts.")
    mask_ratio: float = param(0.5, min=0.01, max=1.0, help="Share of UNet weights SalUn may change (authors: 0.5).")
    alpha: float = param(0.5, min=0.0, max=10.0, help="Weight of the retain loss (authors: 0.1-0.5).")
    steps: int = param(80, min=1, max=5000, help="Training steps.")
    batch: int = param(4, min=1, max=32, help="Forget and retain images per step (authors: 8).")
    lr: float = param(5e-4, min=1e-7, max=1e-2, help="Adam learning rate (authors: 1e-5 on SD).")
    seed: int = param(0, min=0, max=2**31 - 1, advanced=True, help="Seed of image, noise and timestep draws.")

    @classmethod
    def smoke(cls) -> "SalUnConfig":
        return cls(forget_count=2, retain_count=2, steps=2, batch=2, eval_prompts=1, eval_seeds=1)


def saliency_mask(grads: dict[str, "torch.Tensor"], ratio: float) -> dict[str, "torch.Tensor"]:
    """1 on the top ``ratio`` of |g| entries across all tensors (one global threshold), 0 elsewhere."""
    import torch

    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = max(1, int(round(ratio * flat.numel())))
    threshold = torch.topk(flat, keep, sorted=True).values[-1]
    return {name: (g.abs() >= threshold).to(g.dtype) for name, g in grads.items()}


@register_method("diffusion", "salun", title="SalUn (saliency-masked random label)", config=SalUnConfig,
                 paper="Fan et al., SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency, "
                       "ICLR 2024")
def run(call: MethodCall) -> None:
    """Mask the UNet weights most salient for the concept, then map the concept to another prompt there."""
    import torch

    from backends.diffusion.pipeline import trainable

    cfg: SalUnConfig = call.config
    model: DiffusionModel = call.model
    check_concept_drawn(call.base, cfg.concept, call.ctx, cfg.eval_seeds, cfg.eval_prompts)
    call.ctx.phase("generating forget and retain images")
    forget_imgs, forget_prompts = concept_images(call.base, cfg.concept, cfg.forget_count, offset=cfg.seed)
    retain_imgs, retain_prompts = retain_images(call.base, cfg.concept, cfg.retain_count,
                                                 offset=10_000 + cfg.seed)
    z_forget = model.images_to_latents(forget_imgs)  # (F, C, h, w)
    z_retain = model.images_to_latents(retain_imgs)  # (R, C, h, w)
    if cfg.pseudo_prompt.strip():
        pseudo_prompts = [cfg.pseudo_prompt.strip()] * len(forget_prompts)
    else:
        pseudo_prompts = reworded_prompts(model, forget_prompts, cfg.concept, absent=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        forget_states = model.encode(forget_prompts)  # (F, T, D)
        retain_states = model.encode(retain_prompts)  # (R, T, D)
        pseudo_states = model.encode(pseudo_prompts)  # (F, T, D), row i is c' of forget prompt i

    unet = model.editable_unet()
    params = dict(unet.named_parameters())
    with trainable(unet, lambda name: True):
        call.ctx.phase("saliency mask", total=len(z_forget))
        grads = {name: torch.zeros_like(p) for name, p in params.items()}
        for start in range(0, len(z_forget), cfg.batch):
            part = slice(start, start + cfg.batch)
            x_t, eps, t = model.add_noise(z_forget[part], generator)
            loss = torch.nn.functional.mse_loss(model.predict_noise(x_t, t, forget_states[part], unet), eps)
            unet.zero_grad(set_to_none=True)
            loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    grads[name] += p.grad
            call.ctx.step(min(start + cfg.batch, len(z_forget)), len(z_forget))
        mask = saliency_mask(grads, cfg.mask_ratio)
        del grads
        optimiser = adam(list(params.values()), cfg.lr)
        call.ctx.phase("unlearning (random label)", total=cfg.steps)
        for step in range(cfg.steps):
            f = torch.randint(0, len(z_forget), (cfg.batch,), generator=generator)
            r = torch.randint(0, len(z_retain), (cfg.batch,), generator=generator)
            x_f, _, t_f = model.add_noise(z_forget[f], generator)
            with torch.no_grad():
                pseudo_target = model.predict_noise(x_f, t_f, pseudo_states[f], unet)
            forget_loss = torch.nn.functional.mse_loss(model.predict_noise(x_f, t_f, forget_states[f], unet),
                                                       pseudo_target)
            x_r, eps_r, t_r = model.add_noise(z_retain[r], generator)
            retain_loss = torch.nn.functional.mse_loss(model.predict_noise(x_r, t_r, retain_states[r], unet), eps_r)
            loss = forget_loss + cfg.alpha * retain_loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    p.grad.mul_(mask[name])
            optimiser.step()
            call.ctx.step(step + 1, cfg.steps, loss=loss.item(), forget_loss=forget_loss.item(),
                          retain_loss=retain_loss.item())
