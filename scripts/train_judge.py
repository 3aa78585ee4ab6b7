"""Train the FaceWorld attribute judge (backends/faceworld/judge.py) on renders only.

Supervised: one cross-entropy per attribute on the renderer's ground-truth labels. No CLIP, GAN or diffusion
weights are involved, so no method can move the judge. Each batch is augmented so that the judge transfers to
generator output: random blur, Gaussian noise, brightness/contrast and per-channel jitter (small enough to
keep hair and skin colours apart), shifts of up to 2 px, horizontal flips, and down/up-scaling through 16-28 px.

Usage:  python scripts/train_judge.py --steps 4000 --max-minutes 30   (resumes from --work-dir)
Output: --out, default assets/faceworld/judge.safetensors (architecture, data seeds and held-out accuracy in the
metadata). The checkpoint goes to --work-dir, default scripts/training_common.default_work_dir("judge").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backends.faceworld import judge as fw_judge  # noqa: E402
from backends.faceworld import world  # noqa: E402
from scripts import training_common  # noqa: E402

#: Data seeds: training renders and the held-out check. The GAN/CLIP/diffusion trainers use seeds 0-1 and
#: the benchmarks 20_261_130; these are apart from all of them.
TRAIN_SEED = 7_000
HELDOUT_SEED = 7_001


@dataclass
class TrainConfig:
    out: str = str(fw_judge.ASSET_PATH)
    work_dir: str = field(default_factory=lambda: str(training_common.default_work_dir("judge")))  # checkpoint
    seed: int = 0
    n_train: int = 40_000
    n_heldout: int = 4_000
    steps: int = 4_000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    eval_every: int = 500
    max_minutes: float | None = None
    threads: int = 2


def labels_of(faces: list[world.Face]) -> np.ndarray:
    """(N, n_attributes) int value indices in world.ATTRIBUTES order."""
    return np.array([[values.index(face.attrs[a]) for a, values in world.ATTRIBUTES.items()] for face in faces],
                    dtype=np.int64)


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    faces = world.sample_faces(n, seed)
    images = np.concatenate([world.render_small(faces[i:i + 2000]) for i in range(0, n, 2000)])
    return images, labels_of(faces)


def augment(images, generator):
    """Random degradations of a batch (N, 3, 32, 32) in [-1, 1], each applied with probability 1/2."""
    import torch
    import torch.nn.functional as F

    n = images.shape[0]

    def chance() -> "torch.Tensor":
        return (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).float()

    def uniform(low: float, high: float, *shape: int) -> "torch.Tensor":
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    x = images
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    # shift up to 2 px with edge padding
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    offsets = torch.randint(0, 5, (n, 2), generator=generator).tolist()
    x = torch.stack([padded[i, :, dy:dy + 32, dx:dx + 32] for i, (dy, dx) in enumerate(offsets)])
    # down/up-scaling (16-28 px and back): GAN output is softer than an area-averaged render
    size = int(torch.randint(16, 29, (1,), generator=generator))
    rescaled = F.interpolate(F.interpolate(x, size=(size, size), mode="area"), size=(32, 32), mode="bilinear",
                             align_corners=False)
    x = torch.lerp(x, rescaled, chance())
    # Gaussian blur, sigma 0.4-1.0
    sigma = float(0.4 + 0.6 * torch.rand(1, generator=generator))
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    blurred = F.pad(x, (2, 2, 2, 2), mode="replicate")
    blurred = F.conv2d(blurred, kernel.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
    blurred = F.conv2d(blurred, kernel.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    x = torch.lerp(x, blurred, chance())
    # colour: brightness +-0.05, contrast x0.93-1.07, per-channel offsets +-0.03 (in [-1, 1] units)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    jittered = (x - mean) * uniform(0.93, 1.07, 1, 1, 1) + mean + uniform(-0.05, 0.05, 1, 1, 1) \
        + uniform(-0.03, 0.03, 3, 1, 1)
    x = torch.lerp(x, jittered, chance())
    # pixel noise, std 0-0.06
    x = x + chance() * uniform(0.0, 0.06, 1, 1, 1) * torch.randn(x.shape, generator=generator)
    return x.clamp(-1.0, 1.0)


def to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def accuracy(net, images: np.ndarray, labels: np.ndarray, generator=None) -> dict[str, float]:
    """Per-attribute accuracy on (optionally augmented) images."""
    import torch

    correct = np.zeros(len(world.ATTRIBUTES))
    net.eval()
    with torch.no_grad():
        for i in range(0, len(images), 500):
            x = to_tensor(images[i:i + 500])
            if generator is not None:
                x = augment(x, generator)
            logits = fw_judge.split_logits(net(x))
            for j, block in enumerate(logits.values()):
                correct[j] += (block.argmax(dim=1).numpy() == labels[i:i + 500, j]).sum()
    net.train()
    return {a: round(float(c / len(images)), 4) for a, c in zip(world.ATTRIBUTES, correct)}


def train(cfg: TrainConfig) -> dict:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    torch.set_num_threads(cfg.threads)
    start_time = time.time()
    train_x, train_y = make_split(cfg.n_train, TRAIN_SEED)
    held_x, held_y = make_split(cfg.n_heldout, HELDOUT_SEED)
    print(f"rendered {len(train_x)} + {len(held_x)} faces in {time.time() - start_time:.0f} s", flush=True)

    torch.manual_seed(cfg.seed)
    net = fw_judge.build_net()
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    ckpt_path = Path(cfg.work_dir) / "last.pt"
    step, elapsed_before = 0, 0.0
    ckpt = training_common.load_checkpoint(ckpt_path)
    if ckpt is not None:
        net.load_state_dict(ckpt["net"])
        optimiser.load_state_dict(ckpt["optimiser"])
        generator.set_state(ckpt["rng"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed"])
        print(f"resumed at step {step}", flush=True)
    labels = torch.from_numpy(train_y)
    session_start = time.time()

    def save_ckpt() -> None:
        training_common.save_checkpoint(ckpt_path, {
            "net": net.state_dict(), "optimiser": optimiser.state_dict(), "rng": generator.get_state(),
            "step": step, "elapsed": elapsed_before + time.time() - session_start})

    while step < cfg.steps:
        for group in optimiser.param_groups:   # cosine decay to 5 % of lr
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        index = torch.randint(len(train_x), (cfg.batch_size,), generator=generator)
        x = augment(to_tensor(train_x[index.numpy()]), generator)
        logits = fw_judge.split_logits(net(x))
        loss = sum(F.cross_entropy(block, labels[index, j]) for j, block in enumerate(logits.values()))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = accuracy(net, held_x, held_y)
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "heldout_min": min(acc.values()),
                              "heldout": acc, "s": round(time.time() - session_start, 1)}), flush=True)
            save_ckpt()
        if cfg.max_minutes is not None and elapsed_before + time.time() - session_start > cfg.max_minutes * 60:
            save_ckpt()
            print(f"stopped at step {step} (time budget); run again to resume", flush=True)
            return {}

    net.eval()
    clean = accuracy(net, held_x, held_y)
    augmented = accuracy(net, held_x, held_y, torch.Generator().manual_seed(1))
    minutes = (elapsed_before + time.time() - session_start) / 60
    report = {"heldout_acc": clean, "heldout_acc_augmented": augmented, "steps": step,
              "train_minutes": round(minutes, 1), "config": asdict(cfg),
              "data": {"train": f"world.sample_faces({cfg.n_train}, seed={TRAIN_SEED})",
                       "heldout": f"world.sample_faces({cfg.n_heldout}, seed={HELDOUT_SEED})",
                       "render": "world.render_small (64 px, area-averaged to 32 px)"}}
    with training_common.atomic_path(cfg.out) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp),
                  metadata={"arch": json.dumps(fw_judge.DEFAULT_ARCH), "report": json.dumps(report)})
    print(json.dumps(report), flush=True)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        kind = float if name == "max_minutes" else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    return train(TrainConfig(**vars(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
