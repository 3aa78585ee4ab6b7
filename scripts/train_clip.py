"""Train the FaceWorld CLIP (backends/faceworld/clip.py) and ship its trained parts.

Contrastive image-text training (CLIP, Radford et al. 2021) of a small ResNet vision tower + the text projection
+ logit scale, with the MiniLM text tower frozen. Because MiniLM is frozen, the pooled (pre-projection) MiniLM
features of a caption pool are computed once and cached. Since the world is ours, the loss uses exact
multi-positive targets (a caption is a positive for every image it is true of; cf. supervised contrastive
learning, Khosla et al. 2020), which removes CLIP's false negatives, and extra pool captions per batch serve as
additional (hard) negatives.

Usage:  python scripts/train_clip.py --steps 3000 --max-minutes 60     (resumes from --work-dir checkpoints)
Outputs: --out, default assets/faceworld/clip.safetensors (vision tower, text projection, logit scale; arch in
metadata). Work files (caption features, renders, checkpoint, log) go to --work-dir, default
scripts/training_common.default_work_dir("clip").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backends.faceworld import clip as fw_clip  # noqa: E402
from backends.faceworld import world  # noqa: E402
from scripts import training_common  # noqa: E402

ATTR_NAMES = list(world.ATTRIBUTES)
CHARACTER_NAMES = list(world.CHARACTERS)


@dataclass
class TrainConfig:
    """Everything that determines a training run."""

    out: str = str(fw_clip.ASSET_PATH)
    work_dir: str = field(default_factory=lambda: str(training_common.default_work_dir("clip")))  # caches, ckpt
    log: str | None = None           # None: train.log in work_dir
    seed: int = 0
    n_images: int = 48000            # training renders (seeds: seed*1000 + 1 ...)
    n_caption_pool: int = 16000      # captions whose MiniLM features are computed (own captions of the first faces)
    steps: int = 3000
    batch_size: int = 256
    extra_captions: int = 256        # additional pool captions per batch (text-only negatives / positives)
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    eval_every: int = 250
    eval_images: int = 1000          # 0 skips evaluation (and the prompt features it needs)
    ckpt_minutes: float = 4.0
    max_minutes: float | None = None  # stop (after a checkpoint) when exceeded; resume later
    threads: int = 1
    arch: dict = field(default_factory=lambda: json.loads(json.dumps(fw_clip.DEFAULT_ARCH)))


# ------------------------------------------------------------------------------------------------- data

def face_codes(faces: list[world.Face]) -> np.ndarray:
    """(N, 8) int codes: value index per attribute, then character index (-1 = none)."""
    codes = np.empty((len(faces), len(ATTR_NAMES) + 1), dtype=np.int16)
    for i, face in enumerate(faces):
        codes[i, :-1] = [world.ATTRIBUTES[a].index(face.attrs[a]) for a in ATTR_NAMES]
        codes[i, -1] = CHARACTER_NAMES.index(face.character) if face.character else -1
    return codes


def mention_codes(mentions: dict[str, str]) -> np.ndarray:
    """(8,) constraint codes of a caption: value index, or -1 where the caption says nothing."""
    code = np.full(len(ATTR_NAMES) + 1, -1, dtype=np.int16)
    for i, attr in enumerate(ATTR_NAMES):
        if attr in mentions:
            code[i] = world.ATTRIBUTES[attr].index(mentions[attr])
    if "character" in mentions:
        code[-1] = CHARACTER_NAMES.index(mentions["character"])
    return code


def matches(caption_codes: np.ndarray, image_codes: np.ndarray) -> np.ndarray:
    """(C, N) bool: caption c is true of image n (every stated attribute/character agrees)."""
    cap = caption_codes[:, None, :]
    return ((cap == -1) | (cap == image_codes[None, :, :])).all(-1)


def pooled_text_features(model, tokenizer, texts: list[str], batch_size: int = 128, desc: str = "text") -> np.ndarray:
    """(N, 384) mean-pooled MiniLM states (pre-projection), computed in length-sorted batches."""
    import torch
    from tqdm import tqdm

    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), fw_clip.TEXT_WIDTH), dtype=np.float32)
    text_tower = model.text
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, mininterval=10, file=sys.stdout):
            idx = order[start:start + batch_size]
            ids = tokenizer([texts[i] for i in idx])                       # (B, T)
            mask = (ids != text_tower.config.pad_token_id).long()
            length = int(mask.sum(1).max())
            ids, mask = ids[:, :length], mask[:, :length]
            hidden = text_tower.transformer(input_ids=ids, attention_mask=mask)
            out[idx] = text_tower.pooler(hidden, mask).numpy()
    return out


def prompt_texts(cfg: TrainConfig) -> list[str]:
    """Every zero-shot prompt the evaluation needs (none when evaluation is off)."""
    if not cfg.eval_images:
        return []
    return sorted({p for attr, values in world.ATTRIBUTES.items() for v in values
                   for p in world.attribute_prompts(attr, v) + world.synonym_prompts(attr, v)}
                  | {p for name in world.CHARACTERS for p in world.character_prompts(name)})


def _save_npz(path: Path, data: dict[str, np.ndarray]) -> None:
    with training_common.atomic_path(path) as tmp:
        np.savez(tmp, **data)


def prepare_data(cfg: TrainConfig, model, tokenizer, log) -> dict[str, np.ndarray]:
    """Render training/eval images and compute caption features, cached in work_dir.

    Text features (which depend only on attributes and captions) and renders (which depend on
    world.RENDER_VERSION) are cached separately, so a renderer change only re-renders.
    """
    work = Path(cfg.work_dir)
    text_cache = work / f"text_{cfg.seed}_{cfg.n_images}_{cfg.n_caption_pool}.npz"
    image_size = int(cfg.arch["vision_cfg"]["image_size"])
    image_cache = work / (f"images_{cfg.seed}_{cfg.n_images}_{cfg.eval_images}_{image_size}"
                          f"_v{world.RENDER_VERSION}.npz")
    faces = world.sample_faces(cfg.n_images, seed=cfg.seed * 1000 + 1)
    eval_faces = world.sample_faces(cfg.eval_images, seed=cfg.seed * 1000 + 3)
    if text_cache.is_file():
        log(f"loading cached caption features {text_cache}")
        with np.load(text_cache) as cached:
            text = dict(cached)
    else:
        rng = np.random.default_rng(cfg.seed * 1000 + 2)
        pool = [world.caption_with_mentions(face, rng) for face in faces[:cfg.n_caption_pool]]
        t0 = time.time()
        feats = pooled_text_features(model, tokenizer, [c for c, _ in pool], desc="caption features")
        log(f"caption features for {len(pool)} captions in {time.time() - t0:.0f}s")
        text = {"image_codes": face_codes(faces), "caption_feats": feats,
                "caption_codes": np.stack([mention_codes(m) for _, m in pool]),
                "prompt_texts": np.array([], dtype=str), "prompt_feats": np.zeros((0, fw_clip.TEXT_WIDTH), np.float32)}
    missing = sorted(set(prompt_texts(cfg)) - set(text["prompt_texts"].tolist()))
    if missing or not text_cache.is_file():
        if missing:
            feats = pooled_text_features(model, tokenizer, missing, desc="prompt features")
            text["prompt_texts"] = np.concatenate([text["prompt_texts"], np.array(missing)])
            text["prompt_feats"] = np.concatenate([text["prompt_feats"], feats])
        _save_npz(text_cache, text)
    if image_cache.is_file():
        log(f"loading cached renders {image_cache}")
        with np.load(image_cache) as cached:
            images = dict(cached)
    else:
        t0 = time.time()
        images = {"images": world.render_batch(faces, image_size),                  # (N, S, S, 3)
                  "eval_images": world.render_batch(eval_faces, image_size),
                  "eval_codes": face_codes(eval_faces)}
        log(f"rendered {len(faces) + len(eval_faces)} images in {time.time() - t0:.0f}s")
        _save_npz(image_cache, images)
    return {**text, **images}


# --------------------------------------------------------------------------------------------- training

def augment(x, generator):
    """Light photometric noise/blur so the encoder tolerates generator outputs. x: (B, 3, S, S) in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    blur = torch.rand(b, 1, 1, 1, generator=generator) < 0.2
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = torch.where(blur, 0.5 * x + 0.5 * blurred, x)
    sigma = 0.08 * torch.rand(b, 1, 1, 1, generator=generator)
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def to_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0   # (B, 3, S, S)


def choose_captions(image_codes: np.ndarray, caption_codes: np.ndarray, rng: np.random.Generator,
                    candidates: int = 4096) -> np.ndarray:
    """For each image, the index of a random pool caption that is true of it."""
    cand = rng.choice(len(caption_codes), size=min(candidates, len(caption_codes)), replace=False)
    ok = matches(caption_codes[cand], image_codes)                          # (K, B)
    chosen = np.empty(len(image_codes), dtype=np.int64)
    for j in range(len(image_codes)):
        hits = cand[np.flatnonzero(ok[:, j])]
        if len(hits) == 0:      # rare: search the whole pool
            hits = np.flatnonzero(matches(caption_codes, image_codes[j:j + 1])[:, 0])
        if len(hits) == 0:
            raise RuntimeError("no caption in the pool is true of an image; enlarge --n-caption-pool")
        chosen[j] = hits[rng.integers(len(hits))]
    return chosen


def multi_positive_loss(logits, positives):
    """Cross-entropy towards the uniform distribution over all positives. logits, positives: (R, C)."""
    import torch

    targets = positives.float() / positives.float().sum(1, keepdim=True)
    return -(targets * torch.log_softmax(logits, dim=1)).sum(1).mean()


def evaluate(model, data: dict[str, np.ndarray], batch_size: int = 500) -> dict[str, float]:
    """Zero-shot accuracies (canonical and synonym prompts, ensembled) on the eval renders ({} without any)."""
    import torch
    import torch.nn.functional as F

    if len(data["eval_images"]) == 0:
        return {}

    prompt_index = {t: i for i, t in enumerate(data["prompt_texts"].tolist())}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        feats = torch.cat([F.normalize(model.encode_image(to_tensor(data["eval_images"][i:i + batch_size])), dim=-1)
                           for i in range(0, len(data["eval_images"]), batch_size)])
        prompt_emb = F.normalize(model.text.proj(torch.from_numpy(data["prompt_feats"])), dim=-1)

        def classes(prompt_lists):
            rows = [prompt_emb[[prompt_index[p] for p in prompts]].mean(0) for prompts in prompt_lists]
            return F.normalize(torch.stack(rows), dim=-1)

        metrics = {}
        for kind, prompts_for in (("zero_shot", world.attribute_prompts), ("synonym", world.synonym_prompts)):
            accs = []
            for a, attr in enumerate(ATTR_NAMES):
                emb = classes([prompts_for(attr, v) for v in world.ATTRIBUTES[attr]])
                pred = (feats @ emb.T).argmax(-1).numpy()
                acc = float((pred == data["eval_codes"][:, a]).mean())
                metrics[f"{kind}_acc.{attr}"] = acc
                accs.append(acc)
            metrics[f"{kind}_acc_min"] = min(accs)
        chars = data["eval_codes"][:, -1]
        if (chars >= 0).any():
            emb = classes([world.character_prompts(n) for n in CHARACTER_NAMES])
            pred = (feats[torch.from_numpy(chars >= 0)] @ emb.T).argmax(-1).numpy()
            metrics["character_acc"] = float((pred == chars[chars >= 0]).mean())
    model.train(was_training)
    fw_clip.freeze_text_tower(model)
    return metrics


def save_asset(model, cfg: TrainConfig, metrics: dict[str, float]) -> None:
    """Write the trained parts as float16 safetensors (loading casts back to float32), arch + metrics in metadata."""
    from safetensors.torch import save_file

    state = {k: v.half() if v.is_floating_point() else v for k, v in fw_clip.trained_state_dict(model).items()}
    metadata = fw_clip.arch_to_metadata(cfg.arch)
    metadata["metrics"] = json.dumps({k: round(v, 4) for k, v in metrics.items()})
    with training_common.atomic_path(cfg.out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run (or resume) training; writes the asset at the end and returns the final eval metrics."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = training_common.RunLog(cfg.log or work / "train.log", "clip")

    torch.manual_seed(cfg.seed)
    model, tokenizer = fw_clip.build_model(cfg.arch)
    data = prepare_data(cfg, model, tokenizer, log)
    params_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    params_other = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": params_decay, "weight_decay": cfg.weight_decay},
                                   {"params": params_other, "weight_decay": 0.0}], lr=cfg.lr)
    ckpt_path = work / f"ckpt_{cfg.seed}.pt"
    step, elapsed_before = 0, 0.0
    rng = np.random.default_rng(cfg.seed * 1000 + 4)
    generator = torch.Generator().manual_seed(cfg.seed)
    ckpt = training_common.load_checkpoint(ckpt_path)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"], strict=False)
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed"])
        rng = np.random.default_rng([cfg.seed * 1000 + 4, step])
        generator.manual_seed(cfg.seed + step)
        log(f"resumed from {ckpt_path} at step {step}")

    def save_ckpt() -> None:
        training_common.save_checkpoint(ckpt_path, {
            "model": fw_clip.trained_state_dict(model), "optimizer": optimizer.state_dict(), "step": step,
            "elapsed": elapsed_before + time.time() - start})

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.lr * (s + 1) / cfg.warmup_steps
        progress = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    start = last_ckpt = time.time()
    n_vis = sum(p.numel() for p in model.visual.parameters())
    log(f"training: {n_vis} vision params, steps {step}->{cfg.steps}, batch {cfg.batch_size}")
    model.train()
    fw_clip.freeze_text_tower(model)
    caption_feats = torch.from_numpy(data["caption_feats"])
    n_images = len(data["images"])
    metrics: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=step, desc="clip", mininterval=30, file=sys.stdout)
    stopped_early = False
    while step < cfg.steps:
        batch = rng.choice(n_images, size=cfg.batch_size, replace=False)
        codes = data["image_codes"][batch]
        own = choose_captions(codes, data["caption_codes"], rng)
        extra = rng.choice(len(caption_feats), size=cfg.extra_captions, replace=False)
        caption_idx = np.concatenate([own, extra])
        positives = torch.from_numpy(matches(data["caption_codes"][caption_idx], codes).T)   # (B, B + E)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        images = augment(to_tensor(data["images"][batch]), generator)                       # (B, 3, S, S)
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)              # (B, D)
        txt = torch.nn.functional.normalize(model.text.proj(caption_feats[caption_idx]), dim=-1)  # (B + E, D)
        logits = model.logit_scale.exp() * img @ txt.T                                       # (B, B + E)
        loss = 0.5 * (multi_positive_loss(logits, positives)
                      + multi_positive_loss(logits[:, :cfg.batch_size].T, positives[:, :cfg.batch_size].T))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate(model, data)
            log(f"step {step} loss {loss.item():.4f} " + " ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())))
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60:
            save_ckpt()
            last_ckpt = time.time()
        if cfg.max_minutes is not None and time.time() - start > cfg.max_minutes * 60 and step < cfg.steps:
            stopped_early = True
            break
    bar.close()
    save_ckpt()
    if not metrics or stopped_early:
        metrics = evaluate(model, data)
    metrics["steps"] = float(step)
    metrics["train_seconds"] = elapsed_before + time.time() - start
    save_asset(model, cfg, metrics)
    log(f"{'stopped (resume to continue)' if stopped_early else 'done'} at step {step}; wrote {cfg.out}; "
        f"metrics {json.dumps({k: round(v, 4) for k, v in metrics.items()})}")
    return metrics


def parse_args(argv: list[str] | None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in asdict(defaults).items():
        if name == "arch":
            parser.add_argument("--arch", type=json.loads, default=defaults.arch, help="architecture JSON")
        elif name in ("max_minutes", "log"):
            parser.add_argument(f"--{name.replace('_', '-')}", type=float if name == "max_minutes" else str,
                                default=value)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, float]:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
