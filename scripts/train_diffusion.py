"""Train the FaceWorld latent text-to-image diffusion model (32x32 faces, 8x8x8 latents) on renders and captions.

Stage 1 (once, shared by every variant): an ``AutoencoderKL`` on the pool's images, L1 reconstruction plus a
tiny KL term (Rombach et al., 2022, without their perceptual and adversarial terms, which flat-shaded 32 px
renders do not need). The decoder is trained on the posterior mean (the latent the UNet is trained on and
samples), not on a posterior sample: at this scale the sampling noise kept eyes, mouths and glasses frames
blurry for hundreds of steps. The latent scaling factor is 1 / std of the pool's latents, as SD's 0.18215.
Stage 2: the UNet on the autoencoder's latents. Recipe: DDPM epsilon-prediction MSE (Ho et al., 2020) with Min-SNR-gamma loss weighting (Hang et al., 2023),
the frozen MiniLM text encoder's token states as conditioning (cached once per caption pool, fp16),
10% caption dropout to "" for classifier-free guidance (Ho & Salimans, 2022), AdamW with warm-up and cosine
decay, EMA weights (the shipped ones). ``--exclude glasses`` trains the unlearning gold standard: the same
recipe on a world without glasses or sunglasses.

Work files go to ``--work-dir`` (default: scripts/training_common.default_work_dir("diffusion")): the encoded
caption pool in data/, a checkpoint every few minutes in autoencoder/ and <variant>/ (resumed automatically),
a sample grid beside it, and train.log. The EMA UNet is written to the asset file (``--asset``) at every
checkpoint, so an interrupted run still leaves usable weights.

    python scripts/train_diffusion.py --steps 4000 --minutes 75                    # base (shipped)
    python scripts/train_diffusion.py --exclude glasses --steps 4000 --minutes 44  # gold standard (shipped)
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.diffusion.pipeline import tokenize_padded  # noqa: E402  (light modules: no torch at import)
from backends.diffusion.presets import faceworld_model  # noqa: E402
from backends.faceworld import diffusion as D  # noqa: E402
from backends.faceworld import world  # noqa: E402
from scripts import training_common  # noqa: E402

if TYPE_CHECKING:
    from backends.diffusion.pipeline import DiffusionModel

# Concepts that can be removed from the training world, as world.sample_faces exclusions.
EXCLUSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "glasses": {"glasses": ("glasses", "sunglasses")},
}
GRID_PROMPTS = (
    "a smiling person with glasses",
    "a man wearing a red cap",
    "a bearded face with grey hair on a blue background",
    "a frowning person in sunglasses",
    "a blond woman wearing a beanie on pink",
    "a dark-skinned face with a big grin",
    "a photo of Alice",
    "",
)


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the checkpoint)."""

    variant: str = "base"
    exclude: str | None = None  # a key of EXCLUSIONS, or None for the full world
    unet: D.UNetConfig = field(default_factory=D.UNetConfig)
    autoencoder: D.AutoencoderConfig = field(default_factory=D.AutoencoderConfig)
    autoencoder_steps: int = 3000  # stage 1, run only when the autoencoder file is missing
    autoencoder_lr: float = 1e-3
    autoencoder_kl_weight: float = 1e-6
    autoencoder_path: str | None = None  # default: assets/faceworld/<AUTOENCODER_FILE>
    text_encoder: str = D.TEXT_ENCODER_MINILM
    steps: int = 3000
    minutes: float | None = None  # wall-time budget: the LR schedule anneals by whichever ends first
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.995
    caption_dropout: float = 0.1
    snr_gamma: float = 5.0
    bf16: bool = True  # bf16 autocast for the UNet forward on CPU (weights and optimizer stay fp32)
    pool_size: int = 10000
    seed: int = 0
    num_threads: int = 1
    work_dir: str = field(default_factory=lambda: str(training_common.default_work_dir("diffusion")))
    asset_path: str | None = None  # default: assets/faceworld/<VARIANTS[variant]>
    grids: bool = True  # a sample grid beside the variant's checkpoint
    checkpoint_every_s: float = 180.0
    grid_every_s: float = 720.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.exclude is not None and self.exclude not in EXCLUSIONS:
            raise ValueError(f"unknown exclusion {self.exclude!r}; expected one of {', '.join(EXCLUSIONS)}")
        if self.steps < 1 or self.batch_size < 1 or self.pool_size < 1:
            raise ValueError("steps, batch_size and pool_size must be positive")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")

    def resolved_asset_path(self) -> Path:
        if self.asset_path is not None:
            return Path(self.asset_path)
        if self.variant not in D.VARIANTS:
            raise ValueError(f"no default asset for variant {self.variant!r}; pass asset_path")
        return D.ASSET_DIR / D.VARIANTS[self.variant]

    def resolved_autoencoder_path(self) -> Path:
        return Path(self.autoencoder_path) if self.autoencoder_path else D.ASSET_DIR / D.AUTOENCODER_FILE

    def run_dir(self, stage: str) -> Path:
        """A stage's ("autoencoder" or the variant) checkpoint (last.pt) and sample grid (grid.png)."""
        return Path(self.work_dir) / stage

    @property
    def log_path(self) -> Path:
        return Path(self.work_dir) / "train.log"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def tiny_config(work_dir: Path, steps: int = 2) -> TrainConfig:
    """A seconds-long configuration (tiny UNet, 2-layer text encoder) for smoke tests."""
    work_dir = Path(work_dir)
    return TrainConfig(
        variant="tiny", unet=D.TINY_UNET, autoencoder=D.TINY_AUTOENCODER, autoencoder_steps=steps,
        autoencoder_path=str(work_dir / "tiny_autoencoder.safetensors"),
        text_encoder=D.TEXT_ENCODER_TINY, steps=steps, batch_size=4, pool_size=8, warmup_steps=1,
        work_dir=str(work_dir), asset_path=str(work_dir / "tiny.safetensors"), grids=False, progress=False,
        bf16=False,
    )


def resume(path: Path, parts: dict, generator, architecture: dict) -> tuple[int, float]:
    """Load ``parts`` (name -> module or optimizer) and ``generator`` from the checkpoint at ``path``;
    (step, seconds trained) it was at, or (0, 0.0) without one."""
    ckpt = training_common.load_checkpoint(path)
    if ckpt is None:
        return 0, 0.0
    if ckpt["architecture"] != architecture:
        raise ValueError(f"checkpoint {path} has a different architecture; delete it or change --work-dir")
    for name, part in parts.items():
        part.load_state_dict(ckpt[name])
    generator.set_state(ckpt["generator"])
    return int(ckpt["step"]), float(ckpt["elapsed_s"])


def save_state(path: Path, parts: dict, generator, architecture: dict, step: int, elapsed: float,
               **extra) -> None:
    """The checkpoint :func:`resume` reads (plus ``extra`` plain values), written atomically."""
    training_common.save_checkpoint(path, {**{name: part.state_dict() for name, part in parts.items()},
                                           "generator": generator.get_state(), "architecture": architecture,
                                           "step": step, "elapsed_s": elapsed, **extra})


# ------------------------------------------------------------------------------------------------ data

def make_pool(config: TrainConfig, tokenizer) -> tuple[np.ndarray, list[str]]:
    """Rendered images ``(P, 32, 32, 3)`` uint8 and one caption per image, for the FULL world.

    Captions longer than the token limit are redrawn (so nothing is ever truncated in training).
    """
    faces = world.sample_faces(config.pool_size, seed=config.seed)
    rng = np.random.default_rng(config.seed + 1)
    captions = []
    for face in faces:
        for _ in range(20):
            text = world.caption(face, rng)
            if len(tokenizer(text)["input_ids"]) <= D.MAX_TOKENS:
                break
        else:
            raise RuntimeError(f"could not draw a caption within {D.MAX_TOKENS} tokens for {face.attrs}")
        captions.append(text)
    images = world.render_batch(faces, size=D.IMAGE_SIZE)  # (P, 32, 32, 3)
    return images, captions


def kept_mask(config: TrainConfig) -> np.ndarray:
    """(P,) bool: pool faces outside the excluded concept (all True without an exclusion).

    The gold-standard pool is the full pool minus every face showing the concept. Since attributes are
    drawn independently, this is the world sampled with the concept excluded (world.sample_faces(exclude=...)),
    and the kept faces' captions only mention their true attributes, so they never claim the concept.
    """
    faces = world.sample_faces(config.pool_size, seed=config.seed)
    keep = np.ones(len(faces), dtype=bool)
    for attr, values in (EXCLUSIONS[config.exclude] if config.exclude else {}).items():
        keep &= np.array([face.attrs[attr] not in values for face in faces])
    return keep


def encode_pool(captions: list[str], tokenizer, text_encoder, batch: int = 128, progress: bool = False):
    """Token states of every caption, ``(P, T, D)`` fp16 (the text encoder is frozen: computed once)."""
    import torch
    from tqdm import tqdm

    chunks = []
    with torch.no_grad():
        for start in tqdm(range(0, len(captions), batch), desc="encode captions", disable=not progress):
            ids, mask = tokenize_padded(tokenizer, captions[start:start + batch], D.MAX_TOKENS, "cpu")
            states = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, D)
            chunks.append(states.to(torch.float16))
    return torch.cat(chunks)  # (P, T, D)


def load_or_build_data(config: TrainConfig, tokenizer, text_encoder, log: training_common.RunLog):
    """(ALL images uint8 (P, H, W, 3), KEPT states fp16 (K, T, D), empty-prompt states (1, T, D), keep (P,) bool).

    The full pool is cached on disk and shared by every variant; exclusions select from it.
    """
    import torch

    key = json.dumps({"pool": config.pool_size, "seed": config.seed, "exclude": None,
                      "encoder": config.text_encoder, "max_tokens": D.MAX_TOKENS}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = Path(config.work_dir) / "data" / f"pool_{digest}.pt"
    data = training_common.load_checkpoint(path)
    if data is not None:
        images, states, empty = data["images"].numpy(), data["states"], data["empty"]
        log(f"loaded cached pool {path}")
    else:
        t0 = time.time()
        images, captions = make_pool(config, tokenizer)
        states = encode_pool(captions, tokenizer, text_encoder, progress=config.progress)
        empty = encode_pool([""], tokenizer, text_encoder)
        training_common.save_checkpoint(path, {"images": torch.from_numpy(images), "states": states, "empty": empty,
                                               "captions": captions})
        log(f"built pool of {len(captions)} in {time.time() - t0:.0f}s -> {path}")
    keep = kept_mask(config)
    if not keep.all():
        states = states[torch.from_numpy(keep)]
        log(f"exclusion {config.exclude!r}: kept {int(keep.sum())} of {len(keep)} pool images")
    return images, states, empty, keep


# -------------------------------------------------------------------------------------------- training

def lr_factor(progress: float, warmup_fraction: float, min_ratio: float) -> float:
    """Linear warm-up then cosine decay to ``min_ratio``; ``progress`` in [0, 1]."""
    if progress < warmup_fraction:
        return max(progress / warmup_fraction, 1e-3)
    p = min((progress - warmup_fraction) / max(1.0 - warmup_fraction, 1e-8), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


def train_autoencoder(config: TrainConfig, images: np.ndarray, log: training_common.RunLog):
    """Stage 1: train (or resume) the autoencoder on ``images`` (P, 32, 32, 3) uint8 and write its asset.

    Returns the trained ``AutoencoderKL`` (eval, frozen) with ``scaling_factor`` = 1 / std of the pool's latents.
    """
    import torch
    from tqdm import tqdm

    torch.set_num_threads(config.num_threads)
    pool = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (P, 3, H, W) uint8
    vae = D.build_autoencoder(config.autoencoder, seed=config.seed).train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.autoencoder_lr)
    generator = torch.Generator().manual_seed(config.seed + 7)
    ckpt_path = config.run_dir("autoencoder") / "last.pt"
    parts, architecture = {"vae": vae, "optimizer": optimizer}, dataclasses.asdict(config.autoencoder)
    step, elapsed_before = resume(ckpt_path, parts, generator, architecture)
    if step:
        log(f"autoencoder: resumed at step {step}")
    else:
        log(f"autoencoder: start, {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M params")

    def checkpoint(elapsed: float) -> None:
        save_state(ckpt_path, parts, generator, architecture, step, elapsed)

    start = last_ckpt = time.time()
    bar = tqdm(total=config.autoencoder_steps, initial=step, desc="autoencoder", disable=not config.progress)
    losses: list[float] = []
    while step < config.autoencoder_steps:
        lr = config.autoencoder_lr * lr_factor(step / config.autoencoder_steps, 0.02, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = pool[torch.randint(0, len(pool), (config.batch_size,), generator=generator)].float() / 127.5 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mode()).sample  # (B, 3, H, W): decoded from the mean (see module doc)
        l1 = (recon - x).abs().mean()
        loss = l1 + config.autoencoder_kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(float(l1.detach()))
        bar.update(1)
        if step % 100 == 0:
            log(f"autoencoder step {step}/{config.autoencoder_steps} L1 {np.mean(losses[-100:]):.4f} lr {lr:.2e} "
                f"elapsed {(elapsed_before + time.time() - start) / 60:.1f}min")
        if time.time() - last_ckpt >= config.checkpoint_every_s:
            checkpoint(elapsed_before + time.time() - start)
            last_ckpt = time.time()
    bar.close()
    elapsed = elapsed_before + time.time() - start
    checkpoint(elapsed)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(pool[i:i + 256].float() / 127.5 - 1).latent_dist.mean
                             for i in range(0, len(pool), 256)])  # (P, C, h, w)
    scale = float(1.0 / latents.std())
    config_scaled = dataclasses.replace(config.autoencoder, scaling_factor=round(scale, 5))
    vae.register_to_config(scaling_factor=config_scaled.scaling_factor)
    l1 = float(np.mean(losses[-100:])) if losses else float("nan")
    D.save_autoencoder(vae, config_scaled, config.resolved_autoencoder_path(), metadata={
        "step": str(step), "wall_time_s": f"{elapsed:.0f}", "seed": str(config.seed), "train_l1": f"{l1:.4f}"})
    log(f"autoencoder: done at step {step}, {elapsed / 60:.1f} min, L1 {l1:.4f}, scaling factor {scale:.4f}")
    return vae


def save_grid(model: "DiffusionModel", unet, path: str | Path, seeds: tuple[int, ...] = (0, 1, 2, 3)) -> None:
    """Sample grid: one row per GRID_PROMPTS entry (labelled), one column per seed, 3x upscaled."""
    from PIL import Image, ImageDraw

    prompts = [p for p in GRID_PROMPTS for _ in seeds]
    images = model.generate(prompts, list(seeds) * len(GRID_PROMPTS), unet=unet)  # (R*C, 32, 32, 3)
    label_w, side = 300, D.IMAGE_SIZE * 3  # tiles 3x upscaled
    canvas = Image.new("RGB", (label_w + side * len(seeds), side * len(GRID_PROMPTS)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, prompt in enumerate(GRID_PROMPTS):
        draw.text((4, r * side + side // 2 - 6), prompt or '"" (unconditional)', fill="black")
        for c in range(len(seeds)):
            tile = Image.fromarray(images[r * len(seeds) + c]).resize((side, side), Image.NEAREST)
            canvas.paste(tile, (label_w + c * side, r * side))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def train(config: TrainConfig) -> dict:
    """Train (or resume) per ``config``; returns a summary dict (step, loss, wall time, asset path)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    torch.set_num_threads(config.num_threads)
    log = training_common.RunLog(config.log_path, config.variant, echo=False)
    tokenizer = D.load_tokenizer()
    text_encoder = D.load_text_encoder(config.text_encoder, seed=config.seed)
    if text_encoder.config.hidden_size != config.unet.cross_attention_dim:
        raise ValueError("text encoder width does not match unet.cross_attention_dim")
    images, states, empty, keep = load_or_build_data(config, tokenizer, text_encoder, log)
    vae_path = config.resolved_autoencoder_path()
    if vae_path.is_file():
        vae, _, _ = D.load_autoencoder_file(vae_path)
        log(f"autoencoder: loaded {vae_path}")
    else:  # trained on the FULL pool, shared by every variant (as SD's VAE is by its fine-tunes)
        vae = train_autoencoder(config, images, log)
    unet = D.build_unet(config.unet, seed=config.seed).train()
    ema = D.build_unet(config.unet, seed=config.seed).requires_grad_(False).eval()
    ema.load_state_dict(unet.state_dict())
    sample_model = faceworld_model(ema, config.unet, config.text_encoder, vae, device="cpu",
                                   text_encoder_seed=config.seed)
    images = images[keep]
    pool = torch.cat([sample_model.images_to_latents(images[i:i + 256])
                      for i in range(0, len(images), 256)])  # (P, C, h, w) scaled latents
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    noise_scheduler = D.make_noise_scheduler()
    alphas_cumprod = noise_scheduler.alphas_cumprod  # (1000,)
    snr = alphas_cumprod / (1 - alphas_cumprod)  # (1000,)
    generator = torch.Generator().manual_seed(config.seed)

    ckpt_path = config.run_dir(config.variant) / "last.pt"
    grid_path = config.run_dir(config.variant) / "grid.png" if config.grids else None
    parts, architecture = {"unet": unet, "ema": ema, "optimizer": optimizer}, dataclasses.asdict(config.unet)
    step, elapsed_before = resume(ckpt_path, parts, generator, architecture)
    if step:
        log(f"resumed from {ckpt_path} at step {step} ({elapsed_before / 60:.1f} min done)")
    else:
        n_params = sum(p.numel() for p in unet.parameters())
        log(f"start: {n_params / 1e6:.2f}M params, config {json.dumps(config.to_dict())}")

    asset_path = config.resolved_asset_path()

    def write_outputs(current_step: int, elapsed: float, loss_avg: float) -> None:
        save_state(ckpt_path, parts, generator, architecture, current_step, elapsed, config=config.to_dict())
        D.save_unet(ema, config.unet, asset_path, metadata={
            "variant": config.variant, "step": str(current_step), "wall_time_s": f"{elapsed:.0f}",
            "exclude": config.exclude or "", "seed": str(config.seed), "train_loss": f"{loss_avg:.4f}"},
            text_encoder_kind=config.text_encoder, autoencoder=vae_path.name)
        log(f"checkpoint step {current_step}, wrote {asset_path}")

    stop_requested = threading.Event()  # SIGTERM: save a checkpoint and the asset, then stop
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    start = time.time()
    last_ckpt = last_grid = start
    losses: list[float] = []
    warmup_fraction = config.warmup_steps / config.steps
    bar = tqdm(total=config.steps, initial=step, desc=f"diffusion[{config.variant}]", disable=not config.progress)
    loss_avg = float("nan")
    while step < config.steps and not stop_requested.is_set():
        elapsed = elapsed_before + time.time() - start
        progress = step / config.steps
        if config.minutes:
            if elapsed >= config.minutes * 60:
                log(f"wall-time budget of {config.minutes} min reached at step {step}")
                break
            progress = max(progress, elapsed / (config.minutes * 60))
        lr = config.lr * lr_factor(progress, warmup_fraction, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr

        idx = torch.randint(0, len(pool), (config.batch_size,), generator=generator)
        x0 = pool[idx]  # (B, C, h, w)
        cond = states[idx].float()  # (B, T, D)
        drop = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        cond[drop] = empty.float()
        noise = torch.randn(x0.shape, generator=generator)  # (B, C, h, w)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
        x_t = noise_scheduler.add_noise(x0, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            pred = unet(x_t, t, encoder_hidden_states=cond).sample
        per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))  # (B,)
        weight = torch.clamp(snr[t], max=config.snr_gamma) / snr[t] if config.snr_gamma else torch.ones_like(per_sample)
        loss = (weight * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters()):
                p_ema.lerp_(p, 1 - decay)
        step += 1
        losses.append(float(per_sample.detach().mean()))
        bar.update(1)
        if step % 50 == 0 or step == config.steps:
            loss_avg = float(np.mean(losses[-50:]))
            now = time.time()
            log(f"step {step}/{config.steps} loss {loss_avg:.4f} lr {lr:.2e} "
                f"{(now - start) / max(len(losses), 1):.2f}s/it elapsed {(elapsed_before + now - start) / 60:.1f}min")
            bar.set_postfix(loss=f"{loss_avg:.4f}")
        now = time.time()
        if now - last_ckpt >= config.checkpoint_every_s:
            write_outputs(step, elapsed_before + now - start, float(np.mean(losses[-50:])))
            last_ckpt = time.time()
        if grid_path and now - last_grid >= config.grid_every_s:
            save_grid(sample_model, ema, grid_path)
            log(f"sample grid -> {grid_path}")
            last_grid = time.time()
    bar.close()
    if previous_handler is not None:
        signal.signal(signal.SIGTERM, previous_handler)
    elapsed = elapsed_before + time.time() - start
    if losses:
        loss_avg = float(np.mean(losses[-50:]))
    write_outputs(step, elapsed, loss_avg)
    if grid_path and not stop_requested.is_set():
        save_grid(sample_model, ema, grid_path)
    log(f"done: step {step}, {elapsed / 60:.1f} min")
    return {"step": step, "loss": loss_avg, "wall_time_s": elapsed, "asset": str(asset_path),
            "checkpoint": str(ckpt_path)}


def parse_args(argv: list[str] | None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exclude", choices=sorted(EXCLUSIONS), default=None,
                        help="remove a concept from the world (trains the gold-standard variant)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget (LR anneals to fit)")
    parser.add_argument("--autoencoder-steps", type=int, default=3000,
                        help="stage-1 steps (only when the autoencoder asset is missing)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pool-size", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, nargs="+", default=list(D.UNetConfig().block_out_channels))
    parser.add_argument("--no-bf16", action="store_true", help="train in fp32")
    parser.add_argument("--work-dir", default=str(training_common.default_work_dir("diffusion")),
                        help="caption pool, checkpoints, sample grids and log")
    parser.add_argument("--no-grid", action="store_true", help="write no sample grids")
    parser.add_argument("--asset", default=None, help="output safetensors (default: the variant's shipped file)")
    parser.add_argument("--autoencoder", default=None,
                        help="autoencoder safetensors, read or trained there (default: the shipped file)")
    args = parser.parse_args(argv)
    variant = f"no_{args.exclude}" if args.exclude else "base"
    unet = dataclasses.replace(D.UNetConfig(), block_out_channels=tuple(args.channels))
    return TrainConfig(variant=variant, exclude=args.exclude, unet=unet, steps=args.steps, minutes=args.minutes,
                       autoencoder_steps=args.autoencoder_steps, batch_size=args.batch_size, lr=args.lr,
                       pool_size=args.pool_size, seed=args.seed,
                       bf16=not args.no_bf16, grids=not args.no_grid, asset_path=args.asset,
                       autoencoder_path=args.autoencoder, work_dir=args.work_dir)


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
