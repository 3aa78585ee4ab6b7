"""ESD, Erasing Concepts from Diffusion Models (Gandikota et al., ICCV 2023, rohitgandikota/erasing).

Each iteration samples x_t from the FROZEN model with the concept prompt c (guidance 3) stopped at
a random step, and trains the UNet so that eps_theta(x_t, c) matches the negatively guided
prediction of the frozen model: eps_c - eta * (eps_c - eps_null). Three registrations share the
loop and differ in the weights they train:

- ``esd_x``: cross-attention (``attn2``) only: targeted erasure of one word;
- ``esd_u``: everything except cross-attention (and, as in the official code, the time
  embedding and the output layer): broad erasure;
- ``esd_kv``: the strict variant, ``attn2.to_k`` / ``to_v`` only.

Authors' defaults: 200 iterations (batch 1), Adam lr 5e-5 (1e-5 for ESD-u in the paper), eta 1 in
the paper's form of the target (eps_null - eta * (eps_c - eps_null)) and 2 in the current code's,
which is ours: the same target. 50 DDIM steps to sample x_t. Ours: 120 iterations of 2 prompts
at lr 1e-3 (ESD-u: 60 at 5e-4, at 1e-3 it wrecked every attribute; ESD-kv: 240), x_t from 10
DPM-Solver++ steps, each sampled trajectory reused for a few random steps (``reuse``; 1 = the authors'
resampling); ESD-x's and ESD-kv's kept or chosen on the tune split (scripts/tune_diffusion.py). Since FaceWorld
was trained on captions, c cycles through the concept's ``train`` prompts (canonical captions) instead of
the bare word.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from backends.config import param
from backends.contract import MethodCall
from backends.diffusion.common import NoisyPool, adam, check_concept_drawn, esd_target, training_prompts
from backends.diffusion.erasure_config import ErasureConfig
from backends.registry import register_method

if TYPE_CHECKING:
    from backends.diffusion.pipeline import DiffusionModel

PAPER = "Gandikota et al., Erasing Concepts from Diffusion Models, ICCV 2023"


def _cross_attention(name: str) -> bool:
    return ".attn2." in name


def _non_cross_attention(name: str) -> bool:
    return ".attn2." not in name and not name.startswith(("time_embedding.", "conv_out.", "conv_norm_out."))


def _strict_kv(name: str) -> bool:
    return ".attn2.to_k." in name or ".attn2.to_v." in name


TRAINED: dict[str, Callable[[str], bool]] = {"esd_x": _cross_attention, "esd_u": _non_cross_attention,
                                             "esd_kv": _strict_kv}


@dataclass(frozen=True)
class ESDConfig(ErasureConfig):
    """ESD settings (authors: 200 iterations, lr 5e-5, eta 2 in our form, guidance 3, 50 DDIM steps)."""

    iterations: int = param(120, min=1, max=2000, help="Training iterations (authors: 200, batch 1).")
    batch: int = param(2, min=1, max=16, help="Prompts (x_t samples) per iteration (authors: 1).")
    lr: float = param(1e-3, min=1e-7, max=1e-2, help="Adam learning rate (authors: 5e-5 on SD 1.4).")
    eta: float = param(2.0, min=0.0, max=10.0,
                       help="Negative guidance eta of the target eps_c - eta (eps_c - eps_null) (current code: 2; "
                            "the paper's 1, in its form eps_null - eta (eps_c - eps_null), is the same target).")
    start_guidance: float = param(3.0, min=1.0, max=20.0, advanced=True,
                                  help="CFG scale when sampling x_t from the frozen model (authors: 3).")
    sampler_steps: int = param(10, min=1, max=100, advanced=True,
                               help="Sampler steps of the x_t sampling trajectory (authors: 50 DDIM).")
    reuse: int = param(5, min=1, max=50, advanced=True,
                       help="x_t draws (random steps) per sampled trajectory; 1 = resample every iteration "
                            "as the authors do.")
    seed: int = param(0, min=0, max=2**31 - 1, advanced=True, help="Seed of the noise and step draws.")

    @classmethod
    def smoke(cls) -> "ESDConfig":
        return cls(iterations=3, batch=1, sampler_steps=2, eval_prompts=1, eval_seeds=1)


def train_esd(call: MethodCall, variant: str) -> None:
    """The ESD loop on the parameters ``TRAINED[variant]`` selects."""
    import torch

    from backends.diffusion.pipeline import trainable

    cfg: ESDConfig = call.config
    model: DiffusionModel = call.model
    prompts = training_prompts(model, cfg.concept)
    check_concept_drawn(call.base, cfg.concept, call.ctx, cfg.eval_seeds, cfg.eval_prompts)
    frozen = model.frozen_view()  # the pre-edit modules, never trained
    unet = model.editable_unet()
    with trainable(unet, TRAINED[variant]) as params:
        optimiser = adam(params, cfg.lr)
        generator = torch.Generator().manual_seed(cfg.seed)
        pool = NoisyPool(frozen, cfg.sampler_steps, cfg.start_guidance, cfg.reuse, generator)
        with torch.no_grad():
            null_states = frozen.encode([""])  # (1, T, D)
        call.ctx.phase(f"training ({variant.replace('_', '-').upper()})", total=cfg.iterations)
        for i in range(cfg.iterations):
            window = i // cfg.reuse
            batch = [prompts[(window * cfg.batch + j) % len(prompts)] for j in range(cfg.batch)]
            x_t, t = pool.draw(batch)
            with torch.no_grad():
                states = frozen.encode(batch)  # (B, T, D)
            target = esd_target(frozen, x_t, t, states, null_states.expand_as(states), cfg.eta)
            loss = torch.nn.functional.mse_loss(model.predict_noise(x_t, t, states, unet), target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            call.ctx.step(i + 1, cfg.iterations, loss=loss.item())


@register_method("diffusion", "esd_x", title="ESD-x (cross-attention)", config=ESDConfig, paper=PAPER)
def run_esd_x(call: MethodCall) -> None:
    """ESD on the cross-attention layers only: erases the concept's word, keeps the rest."""
    train_esd(call, "esd_x")


@dataclass(frozen=True)
class ESDUConfig(ESDConfig):
    """ESD-u trains every layer but cross-attention, so it takes a gentler default (authors: lr 1e-5)."""

    iterations: int = param(60, min=1, max=2000, help="Training iterations (authors: 200, batch 1).")
    lr: float = param(5e-4, min=1e-7, max=1e-2, help="Adam learning rate (authors: 1e-5 for ESD-u on SD 1.4).")


@register_method("diffusion", "esd_u", title="ESD-u (all but cross-attention)", config=ESDUConfig, paper=PAPER)
def run_esd_u(call: MethodCall) -> None:
    """ESD on every UNet layer except cross-attention: broad erasure (styles, nudity)."""
    train_esd(call, "esd_u")


@dataclass(frozen=True)
class ESDKVConfig(ESDConfig):
    """ESD strict trains the fewest weights, so it takes more iterations (chosen on the tune split by
    scripts/tune_diffusion.py: 240 left hats in 0.31 of the tune images, 120 in 0.44; glasses 0.34 both)."""

    iterations: int = param(240, min=1, max=2000, help="Training iterations (authors: 200, batch 1).")


@register_method("diffusion", "esd_kv", title="ESD strict (K/V only)", config=ESDKVConfig, paper=PAPER)
def run_esd_kv(call: MethodCall) -> None:
    """ESD on the cross-attention key / value projections only (the strictest variant)."""
    train_esd(call, "esd_kv")
