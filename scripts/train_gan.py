"""Train the FaceWorld style-based GAN (StyleGAN2 recipe, Karras et al. 2020) on FaceWorld renders.

Non-saturating logistic loss, lazy R1 regularisation on reals, Adam (lr 0.0025, betas (0, 0.99)), EMA of the
generator weights (shipped), w_avg tracked for truncation. Data: a pool of faces drawn by world.sample_faces,
rendered at 64 px and area-downscaled to 32 px, cached as uint8 .npy in the work folder.

Because the world is ours, every training face also has a latent code (LatentCode in
backends/faceworld/latent_code.py: each sampling factor of the face owns z coordinates, so z ~ N(0, I) keeps the
data's attribute frequencies), and G pays an L1 reconstruction term on (z_face, render(face)) pairs next to the
adversarial loss. On a 2-core CPU budget a plain GAN of this size had not found faces (nor the attribute
frequencies) after ~80k images; the paired term makes the frequencies right by construction and the training
fast. recon_weight 0 gives the plain GAN.

    python scripts/train_gan.py                        # base model  -> assets/faceworld/gan_base.safetensors
    python scripts/train_gan.py --exclude glasses      # gold standard without glasses/sunglasses
                                                       #             -> assets/faceworld/gan_no_glasses.safetensors

Work files live in --work-dir (default: scripts/training_common.default_work_dir("gan")): the render pool in
data/, the log in train.log, and per variant <variant>/last.pt (a checkpoint every ckpt_every_s seconds;
training resumes from it) and <variant>/grid.png (samples). The shipped asset and the model card
(assets/faceworld/GAN.md) in --asset-dir are rewritten at every checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import re
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backends.faceworld import world
from backends.faceworld.latent_code import LatentCode
from scripts import training_common

EXCLUDE_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "glasses": {"glasses": ("glasses", "sunglasses")},
}
VARIANT_FOR_EXCLUDE = {"": "base", "glasses": "no_glasses"}
GRID_SEEDS = list(range(64))


@dataclass
class TrainConfig:
    """Everything that defines a run (saved in the checkpoint and the model card)."""

    variant: str = "base"
    exclude: str = ""                        # key of EXCLUDE_PRESETS, "" = full distribution
    steps: int = 6000
    max_minutes: float = 70.0                # wall-time budget over all resumes; stops early and ships
    batch: int = 32
    lr: float = 0.0025
    lr_decay_from: float = 0.5               # share of the wall-time budget after which lr decays (cosine) ...
    lr_final_ratio: float = 0.1              # ... to this share of lr: the reconstruction term settles
    r1_gamma: float = 1.0
    r1_interval: int = 16
    style_mixing_prob: float = 0.0           # pairs z -> render need unmixed styles
    recon_weight: float = 20.0               # L1 weight of G(z_face) vs render(face); 0 = plain GAN
    feature_weight: float = 0.0              # + recon_weight * this * L1 averaged over the mouth and brows only
    init_from: str = ""                      # fine-tune: a shipped asset's G, G_ema and D start a fresh run
    decode_code: bool = True                 # mapping reads the categorical factors as one-hot codes (see LatentCode)
    ema_kimg: float = 5.0                    # EMA half-life in thousands of images
    ema_rampup: float = 0.05                 # half-life <= rampup * images seen (early EMA follows G closely)
    pool_size: int = 50_000
    data_seed: int = 1
    seed: int = 0
    render_size: int = 64                    # rendered, then area-downscaled to gan["image_size"]
    gan: dict = field(default_factory=dict)  # GANConfig overrides; {} = shipped architecture
    # render pool, log, checkpoints and sample grids
    work_dir: str = field(default_factory=lambda: str(training_common.default_work_dir("gan")))
    asset_dir: str = str(REPO / "assets" / "faceworld")
    ckpt_every_s: float = 180.0
    grid_every_s: float = 600.0
    log_every: int = 50
    threads: int = 1
    device: str = "cpu"                      # "cuda" on a GPU machine
    progress: bool = True

    def __post_init__(self) -> None:
        if self.exclude and self.exclude not in EXCLUDE_PRESETS:
            raise ValueError(f"unknown exclude {self.exclude!r}; valid: {sorted(EXCLUDE_PRESETS)}")
        for name in ("steps", "batch", "pool_size", "r1_interval", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def run_dir(self) -> Path:
        """This variant's checkpoint (last.pt) and sample grid (grid.png)."""
        return Path(self.work_dir) / self.variant

    @property
    def pool_dir(self) -> Path:
        return Path(self.work_dir) / "data"

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir) / "train.log"

    @property
    def grid_path(self) -> Path:
        return self.run_dir / "grid.png"

    @property
    def asset_path(self) -> Path:
        return Path(self.asset_dir) / f"gan_{self.variant}.safetensors"

    @property
    def card_path(self) -> Path:
        return Path(self.asset_dir) / "GAN.md"


# ------------------------------------------------------------------------------------------------ data

def _world_fingerprint(exclude: str = "", image_size: int = 32, render_size: int = 64) -> str:
    """Hash of a few renders from the pool's sampler: changes when sampling or rendering changes."""
    probe = render_pool(64, seed=12345, exclude=exclude, render_size=render_size, image_size=image_size)
    return hashlib.sha1(probe.tobytes()).hexdigest()[:10]


def render_pool(n: int, seed: int, exclude: str, render_size: int, image_size: int) -> np.ndarray:
    """(n, image_size, image_size, 3) uint8 faces: rendered at render_size, area-averaged down."""
    faces = world.sample_faces(n, seed, exclude=EXCLUDE_PRESETS.get(exclude))
    return np.concatenate([world.render_small(faces[start:start + 2000], image_size, render_size)
                           for start in range(0, n, 2000)])


def feature_boxes(faces: list, image_size: int) -> np.ndarray:
    """(N, 2, 4) pixel boxes (x0, y0, x1, y1) of where a face's expression shows in an ``image_size`` render:
    its mouth and its two brows (world.render's geometry, a little margin around the widest expression)."""
    boxes = np.zeros((len(faces), 2, 4), np.float32)
    for i, face in enumerate(faces):
        marks = world.landmarks(face, image_size)
        (cx, mouth_y), (left_x, eye_y) = marks["mouth"], marks["left_eye"]
        fw, _ = marks["head_half_size"]
        half_mouth = 1.2 * 0.42 * fw
        brow_y = eye_y - 0.38 * fw
        boxes[i, 0] = (cx - half_mouth, mouth_y - 0.35 * fw, cx + half_mouth, mouth_y + 0.4 * fw)
        boxes[i, 1] = (left_x - 0.35 * fw, brow_y - 0.25 * fw, 2 * cx - left_x + 0.35 * fw, brow_y + 0.3 * fw)
    return boxes


def box_masks(boxes: np.ndarray, image_size: int):
    """(B, 1, H, W) float mask of the pixels whose centres lie in any of each face's boxes (B, K, 4)."""
    import torch

    centre = torch.arange(image_size, dtype=torch.float32) + 0.5  # (H,) = (W,)
    b = torch.from_numpy(boxes)[..., None, None]  # (B, K, 4, 1, 1)
    inside = ((centre[None, :] >= b[:, :, 0]) & (centre[None, :] < b[:, :, 2])  # x: (B, K, 1, W)
              & (centre[:, None] >= b[:, :, 1]) & (centre[:, None] < b[:, :, 3]))  # y: (B, K, H, W)
    return inside.any(dim=1, keepdim=True).float()


def load_pool(config: TrainConfig, image_size: int, log=print) -> tuple[np.ndarray, str]:
    """Cached render pool (keyed by size, seed, exclusion and a render fingerprint) and its fingerprint."""
    fingerprint = _world_fingerprint(config.exclude, image_size, config.render_size)
    name = (f"pool_{config.exclude or 'all'}_{config.pool_size}_s{config.data_seed}_{config.render_size}to"
            f"{image_size}_{fingerprint}.npy")
    path = config.pool_dir / name
    if path.exists():
        return np.load(path), fingerprint
    start = time.time()
    pool = render_pool(config.pool_size, config.data_seed, config.exclude, config.render_size, image_size)
    with training_common.atomic_path(path) as tmp:
        np.save(tmp, pool)
    log(f"rendered pool {path} in {time.time() - start:.1f}s")
    return pool, fingerprint


# ------------------------------------------------------------------------------------------------ training

class Trainer:
    """Holds G, G_ema, D, optimisers and RNG state; one `step()` = one D update and one G update."""

    def __init__(self, config: TrainConfig, log=print, code: LatentCode | None = None) -> None:
        import torch

        from backends.faceworld.gan import build_networks

        self.config, self.log = config, log
        torch.set_num_threads(config.threads)
        decoded = code is not None and config.decode_code
        gan_config = {**config.gan, "code_groups": code.groups()} if decoded else config.gan
        self.G, self.D = build_networks(gan_config, seed=config.seed)
        if decoded:
            self.G.mapping.code_bias.copy_(code.bias_vector())
        self.G, self.D = self.G.to(config.device), self.D.to(config.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # lazy regularisation: R1 every r1_interval steps, Adam hyper-parameters compensated (StyleGAN2 App. B)
        ratio = config.r1_interval / (config.r1_interval + 1)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=(0.0, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr * ratio, betas=(0.0, 0.99**ratio))
        self.torch_rng = torch.Generator().manual_seed(config.seed + 1)
        self.np_rng = np.random.default_rng(config.seed + 2)
        self.step_index = 0
        self.elapsed_s = 0.0
        self.history: list[dict] = []
        self.data_fingerprint = ""  # of the render pool, set by train()

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "torch_rng": self.torch_rng.get_state(), "np_rng": json.dumps(self.np_rng.bit_generator.state),
            "step": self.step_index, "elapsed_s": self.elapsed_s, "history": json.dumps(self.history),
            "config": json.dumps(asdict(self.config)),
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.torch_rng.set_state(state["torch_rng"].cpu())
        self.np_rng.bit_generator.state = json.loads(state["np_rng"])
        self.step_index = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.history = json.loads(state["history"])

    # -- one iteration ------------------------------------------------------------------------------------
    def _ws(self, z):
        """Mapped latents (B, num_ws, w_dim), with style mixing when enabled (a random crossover layer on)."""
        import torch

        batch = z.shape[0]
        ws = self.G.mapping(z, update_w_avg=True)[:, None].repeat(1, self.G.num_ws, 1)
        if self.config.style_mixing_prob > 0:
            z2 = torch.randn(batch, self.G.config.z_dim, generator=self.torch_rng).to(z.device)
            w2 = self.G.mapping(z2)[:, None]
            cutoff = torch.randint(1, self.G.num_ws, (batch, 1, 1), generator=self.torch_rng).to(z.device)
            mix = (torch.rand(batch, 1, 1, generator=self.torch_rng) < self.config.style_mixing_prob).to(z.device)
            layer = torch.arange(self.G.num_ws, device=z.device)[None, :, None]
            ws = torch.where(mix & (layer >= cutoff), w2, ws)
        return ws

    def step(self, pool: np.ndarray, code: LatentCode | None = None, boxes: np.ndarray | None = None) -> dict:
        """One D and one G update. With a LatentCode, fakes use the z of the sampled real faces and G also
        pays recon_weight * L1(G(z_face), face), plus feature_weight times that L1 over the faces' ``boxes``
        (feature_boxes: mouth and brows, about 9 % of the pixels, where the expression shows)."""
        import torch
        import torch.nn.functional as F

        config, batch = self.config, self.config.batch
        index = self.np_rng.integers(len(pool), size=batch)
        real = torch.from_numpy(pool[index]).to(config.device).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, H, W)
        paired = code is not None and config.recon_weight > 0
        z = (code.sample(index, self.torch_rng) if paired
             else torch.randn(batch, self.G.config.z_dim, generator=self.torch_rng)).to(config.device)  # (B, z_dim)
        do_r1 = self.step_index % config.r1_interval == 0

        # discriminator: softplus(D(fake)) + softplus(-D(real)) [+ lazy R1 on reals]
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.G.synthesis(self._ws(z), noise_mode="random")
        real.requires_grad_(do_r1)
        logits_real = self.D(real)
        loss_D = F.softplus(self.D(fake)).mean() + F.softplus(-logits_real).mean()
        r1 = torch.zeros(())
        if do_r1:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_D = loss_D + r1 * (config.r1_gamma / 2) * config.r1_interval
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()

        # generator: non-saturating loss softplus(-D(G(z))) [+ reconstruction of the paired renders]
        self.D.requires_grad_(False)
        fake = self.G.synthesis(self._ws(z), noise_mode="random")
        logits_fake = self.D(fake)
        loss_G = F.softplus(-logits_fake).mean()
        error = (fake - real.detach()).abs() if paired else None  # (B, 3, H, W)
        recon = error.mean() if paired else torch.zeros(())
        features = torch.zeros(())
        if paired and config.feature_weight > 0 and boxes is not None:
            mask = box_masks(boxes[index], fake.shape[-1]).to(fake.device)  # (B, 1, H, W)
            features = (error * mask).sum() / (mask.sum() * error.shape[1]).clamp(min=1)
        self.opt_G.zero_grad(set_to_none=True)
        (loss_G + config.recon_weight * (recon + config.feature_weight * features)).backward()
        self.opt_G.step()

        self._update_ema()
        self.step_index += 1
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item(), "recon": recon.item() if paired else None,
                "recon_features": features.item() if paired and config.feature_weight > 0 else None,
                "r1": r1.item() if do_r1 else None,
                "D_real": logits_real.mean().item(), "D_fake": logits_fake.mean().item()}

    def set_lr_for(self, budget_share: float) -> float:
        """Constant lr, then a cosine decay to lr_final_ratio * lr over the last part of the budget.

        (Not in the StyleGAN2 recipe, whose lr is constant: our paired reconstruction term is a regression that
        plateaus at lr 0.0025 with beta1 = 0.)"""
        config = self.config
        progress = min(max((budget_share - config.lr_decay_from) / max(1 - config.lr_decay_from, 1e-8), 0.0), 1.0)
        factor = config.lr_final_ratio + (1 - config.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        ratio = config.r1_interval / (config.r1_interval + 1)
        for group in self.opt_G.param_groups:
            group["lr"] = config.lr * factor
        for group in self.opt_D.param_groups:
            group["lr"] = config.lr * ratio * factor
        return config.lr * factor

    def _update_ema(self) -> None:
        import torch

        images_seen = (self.step_index + 1) * self.config.batch
        half_life = min(self.config.ema_kimg * 1000, images_seen * self.config.ema_rampup)
        beta = 0.5 ** (self.config.batch / max(half_life, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)


# ------------------------------------------------------------------------------------------------ outputs

def save_grid(G_ema, path: str | Path, seeds: list[int] = GRID_SEEDS, upscale: int = 3) -> None:
    """8 x 8 grid of EMA samples (truncation 1.0), nearest-upscaled, as PNG."""
    from PIL import Image

    from backends.faceworld.gan import FaceWorldGAN

    images = FaceWorldGAN(G_ema, None, str(next(G_ema.parameters()).device)).generate(seeds)  # (N, H, W, 3)
    side = int(math.ceil(math.sqrt(len(images))))
    pad = np.zeros((side * side - len(images), *images.shape[1:]), np.uint8)
    tiles = np.concatenate([images, pad]).reshape(side, side, *images.shape[1:])
    grid = tiles.transpose(0, 2, 1, 3, 4).reshape(side * images.shape[1], side * images.shape[2], 3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * upscale, grid.shape[0] * upscale), Image.NEAREST).save(path)


def _summary(history: list[dict]) -> dict:
    recent = history[-20:]
    if not recent:
        return {}
    keys = [key for key in ("loss_D", "loss_G", "recon", "recon_features", "D_real", "D_fake")
            if recent[-1].get(key) is not None]
    return {key: round(float(np.mean([h[key] for h in recent if h.get(key) is not None])), 4) for key in keys}


def write_card(trainer: Trainer, finished: bool, metrics: dict | None = None) -> None:
    """Update this variant's section of assets/faceworld/GAN.md (other variants' sections are kept)."""
    config, G = trainer.config, trainer.G_ema
    params_G = sum(p.numel() for p in G.parameters())
    params_D = sum(p.numel() for p in trainer.D.parameters())
    exclude = EXCLUDE_PRESETS.get(config.exclude)
    lines = [
        f"<!-- variant:{config.variant} -->",
        f"## `{config.asset_path.name}` ({config.variant})",
        "",
        f"- Data: {config.pool_size:,} FaceWorld faces, `world.sample_faces(n={config.pool_size}, "
        f"seed={config.data_seed}, exclude={exclude})`, rendered at {config.render_size} px and area-downscaled "
        f"to {G.config.image_size} px (render fingerprint {trainer.data_fingerprint}).",
        f"- Architecture: {json.dumps(G.config.to_dict())}; G {params_G:,} params, D {params_D:,} params, "
        f"num_ws {G.num_ws}.",
        f"- Recipe: non-saturating logistic loss + {config.recon_weight} x L1 reconstruction of renders from "
        f"their latent code (see LatentCode in backends/faceworld/latent_code.py"
        f"{'; the mapping decodes its categorical factors to one-hot codes' if G.config.code_groups else ''}), lazy R1 (gamma {config.r1_gamma}, every "
        f"{config.r1_interval} steps), Adam lr {config.lr} betas (0, 0.99) (cosine decay to {config.lr_final_ratio:g} x lr over the last "
        f"{1 - config.lr_decay_from:.0%} of the budget), batch {config.batch}, style mixing "
        f"{config.style_mixing_prob}, EMA half-life {config.ema_kimg} kimg (ramp-up {config.ema_rampup}); "
        f"no path-length regulariser, no noise inputs. Shipped weights: G_ema + D + w_avg (fp32).",
        *([f"- Fine-tuned from `{Path(config.init_from).name}` (its G_ema as G and G_ema, its D; fresh Adam state) "
           f"with lr {config.lr}; the reconstruction term adds {config.feature_weight:g} x the L1 averaged over each "
           f"face's mouth and brows (`feature_boxes`: where the expression shows, about 9 % of the pixels)."]
          if config.init_from else []),
        f"- Seeds: init/latents {config.seed}, data {config.data_seed}.",
        f"- Steps: {trainer.step_index:,} of {config.steps:,} planned ({trainer.step_index * config.batch / 1000:.0f} "
        f"kimg){'' if finished else ' - checkpoint of a run still in progress'}; wall time "
        f"{trainer.elapsed_s / 60:.1f} min ({trainer.elapsed_s / max(trainer.step_index, 1):.2f} s/step).",
        f"- Machine: {'2-core CPU' if config.device == 'cpu' else config.device}, "
        f"torch.set_num_threads({config.threads}), shared with other jobs.",
        f"- Final losses (mean of last 20 logged): {json.dumps(_summary(trainer.history))}.",
    ]
    if metrics is None:  # keep metrics recorded earlier by set_card_metrics
        metrics = _card_metrics(config.card_path, config.variant)
    if metrics:
        lines.append(f"- Metrics (bench/faceworld_gan.py): {json.dumps(metrics)}")
    fine_tune = (f" --init-from {config.init_from} --feature-weight {config.feature_weight:g} --lr {config.lr:g}"
                 if config.init_from else "")
    lines.append(f"- Reproduce: `python scripts/train_gan.py{' --exclude ' + config.exclude if config.exclude else ''} "
                 f"--steps {config.steps} --max-minutes {config.max_minutes:g}{fine_tune}`.")
    lines.append(f"<!-- /variant:{config.variant} -->")
    section = "\n".join(lines)

    path = config.card_path
    text = path.read_text() if path.exists() else (
        "# FaceWorld style-based GAN\n\n"
        "A small StyleGAN2 (Karras et al., CVPR 2020) at 32x32 trained from scratch on FaceWorld renders by "
        "`scripts/train_gan.py`; loaded by `backends.faceworld.gan.load_gan(variant)`. `base` sees the full "
        "attribute distribution; `no_glasses` is the gold standard of unlearning (retrained without glasses "
        "and sunglasses). Attribute-frequency metrics come from `bench/faceworld_gan.py` (FaceWorld CLIP "
        "zero-shot on 2,000 GAN samples vs 2,000 training-distribution renders).\n")
    pattern = _section_pattern(config.variant)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")


def _section_pattern(variant: str) -> re.Pattern:
    return re.compile(rf"<!-- variant:{variant} -->.*?<!-- /variant:{variant} -->", re.DOTALL)


def _card_metrics(card_path: Path, variant: str) -> dict:
    match = card_path.exists() and _section_pattern(variant).search(card_path.read_text())
    metrics = match and re.search(r"^- Metrics \(bench/faceworld_gan.py\): (.*)$", match.group(0), re.MULTILINE)
    return json.loads(metrics.group(1)) if metrics else {}


def set_card_metrics(card_path: Path, variant: str, metrics: dict) -> None:
    """Record benchmark metrics in a variant's card section (kept by later checkpoints)."""
    text = card_path.read_text() if card_path.exists() else ""
    match = _section_pattern(variant).search(text)
    if not match:
        raise ValueError(f"{card_path} has no section for variant {variant!r}; train it first")
    lines = [line for line in match.group(0).splitlines() if not line.startswith("- Metrics (bench/")]
    reproduce = next(i for i, line in enumerate(lines) if line.startswith("- Reproduce"))
    lines.insert(reproduce, f"- Metrics (bench/faceworld_gan.py): {json.dumps(metrics)}")
    card_path.write_text(text[:match.start()] + "\n".join(lines) + text[match.end():])


def checkpoint(trainer: Trainer, finished: bool) -> None:
    """Checkpoint for resume + shipped asset + model card (so a cut-short run still ships)."""
    from backends.faceworld.gan import save_gan

    training_common.save_checkpoint(trainer.config.run_dir / "last.pt", trainer.state_dict())
    save_gan(trainer.config.asset_path, trainer.G_ema, trainer.D, metadata={
        "variant": trainer.config.variant, "steps": str(trainer.step_index),
        "train_config": json.dumps(asdict(trainer.config))})
    write_card(trainer, finished)


def start_from_asset(trainer: Trainer, path: Path) -> None:
    """G and G_ema from an asset's shipped G_ema, D from its D (fresh optimisers): a fine-tuning start. The
    asset must have this run's architecture and latent-code layout."""
    from backends.faceworld.gan import load_gan_file

    shipped = load_gan_file(path, device=trainer.config.device)
    if shipped.discriminator is None:
        raise ValueError(f"{path} has no discriminator to fine-tune")
    if shipped.generator.config.to_dict() != trainer.G.config.to_dict():
        raise ValueError(f"{path} has another architecture or code layout than this run")
    for target in (trainer.G, trainer.G_ema):
        target.load_state_dict(shipped.generator.state_dict())
    trainer.D.load_state_dict(shipped.discriminator.state_dict())


def train(config: TrainConfig) -> Trainer:
    """Train (resuming from run_dir/last.pt if present) until config.steps or the wall-time budget."""
    from tqdm import tqdm

    log = training_common.RunLog(config.log_path, config.variant, echo=False)

    code = boxes = None
    if config.recon_weight > 0 or config.decode_code:
        from backends.faceworld._gan_nets import GANConfig

        faces = world.sample_faces(config.pool_size, config.data_seed, exclude=EXCLUDE_PRESETS.get(config.exclude))
        code = LatentCode(faces, config.gan.get("z_dim", GANConfig.z_dim))
        log(f"latent code: {len(code.factors)} factors {code.factors}")
        if config.feature_weight > 0:
            boxes = feature_boxes(faces, config.gan.get("image_size", GANConfig.image_size))
    trainer = Trainer(config, log, code)
    last = config.run_dir / "last.pt"
    state = training_common.load_checkpoint(last, map_location=config.device)
    if state is not None:
        trainer.load_state_dict(state)
        log(f"resumed from {last} at step {trainer.step_index}")
    elif config.init_from:
        start_from_asset(trainer, Path(config.init_from))
        log(f"fine-tuning from {config.init_from}")
    pool, trainer.data_fingerprint = load_pool(config, trainer.G.config.image_size, log)
    log(f"start step {trainer.step_index}/{config.steps}, pool {pool.shape}, config {json.dumps(asdict(config))}")

    session_start = time.time()
    start_elapsed = trainer.elapsed_s
    last_ckpt = last_grid = session_start
    bar = tqdm(total=config.steps, initial=trainer.step_index, disable=not config.progress, mininterval=20,
               desc=f"gan[{config.variant}]")
    stop = threading.Event()  # SIGTERM: finish the step, checkpoint, ship, exit
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while (trainer.step_index < config.steps and trainer.elapsed_s < config.max_minutes * 60
           and not stop.is_set()):
        t0 = time.time()
        lr = trainer.set_lr_for(max(trainer.elapsed_s / (config.max_minutes * 60), trainer.step_index / config.steps))
        stats = trainer.step(pool, code, boxes)
        trainer.elapsed_s = start_elapsed + time.time() - session_start
        bar.update(1)
        if trainer.step_index % config.log_every == 0 or trainer.step_index == 1:
            stats.update(step=trainer.step_index, lr=lr, s_per_step=round(time.time() - t0, 3))
            trainer.history.append(stats)
            log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items()
                         if v is not None) + f" elapsed={trainer.elapsed_s / 60:.1f}min")
        now = time.time()
        if now - last_grid >= config.grid_every_s:
            save_grid(trainer.G_ema, config.grid_path)
            last_grid = now
        if now - last_ckpt >= config.ckpt_every_s:
            checkpoint(trainer, finished=False)
            last_ckpt = now
    bar.close()
    if previous_handler is not None:
        signal.signal(signal.SIGTERM, previous_handler)
    save_grid(trainer.G_ema, config.grid_path)
    checkpoint(trainer, finished=not stop.is_set())
    log(f"{'stopped' if stop.is_set() else 'done'} at step {trainer.step_index}, {trainer.elapsed_s / 60:.1f} min; "
        f"asset {config.asset_path}")
    return trainer


def main(argv: list[str] | None = None) -> Trainer | None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exclude", default="", choices=["", *EXCLUDE_PRESETS],
                        help="train without a concept (gold-standard model)")
    parser.add_argument("--variant", default=None, help="asset name; default base / no_<exclude>")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--work-dir", default=defaults.work_dir,
                        help="render pool, log, checkpoints (resumed from) and sample grids")
    parser.add_argument("--asset-dir", default=defaults.asset_dir, help="where the weights and GAN.md are written")
    parser.add_argument("--feature-weight", type=float, default=defaults.feature_weight,
                        help="extra reconstruction weight on the mouth and brows (where expression shows)")
    parser.add_argument("--init-from", default=defaults.init_from,
                        help="fine-tune: start from this shipped asset (e.g. assets/faceworld/gan_base.safetensors)")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--device", default=defaults.device, help="cpu or cuda")
    parser.add_argument("--card-metrics", metavar="JSON", default=None,
                        help="only record these benchmark metrics (a JSON object) in the variant's model card")
    args = parser.parse_args(argv)
    variant = args.variant or VARIANT_FOR_EXCLUDE.get(args.exclude, f"no_{args.exclude}")
    if args.card_metrics is not None:
        set_card_metrics(Path(args.asset_dir) / "GAN.md", variant, json.loads(args.card_metrics))
        return None
    config = TrainConfig(variant=variant, exclude=args.exclude, steps=args.steps, max_minutes=args.max_minutes,
                         batch=args.batch, lr=args.lr, pool_size=args.pool_size, seed=args.seed,
                         feature_weight=args.feature_weight, init_from=args.init_from,
                         work_dir=args.work_dir, asset_dir=args.asset_dir, threads=args.threads, device=args.device)
    return train(config)


if __name__ == "__main__":
    main()
