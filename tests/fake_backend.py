"""A tiny seeded backend that exists only for tests: "toy" colour-patch images.

It implements the whole contract with a real (tiny) torch model, so the generic contract tests
and the browser test can exercise the app without any real backend.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from backends.config import param
from backends.contract import AttackCall, AttackResult, Backend, Chart, MapData, MethodCall, MetricRow, Sample
from backends.registry import register_attack, register_backend, register_method, register_preset

CHANNELS = ("red", "green", "blue")
SIZE = 8


@dataclass(frozen=True)
class ToyGenerate:
    n_samples: int = param(6, help="how many samples", min=1, max=32)
    first_seed: int = param(0, help="seed of the first sample", min=0, max=10_000)


class ToyModel:
    """z (4) -> sigmoid(W z + b) -> (8, 8, 3) image."""

    def __init__(self, seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(SIZE * SIZE * 3, 4, generator=g) * 0.5  # (192, 4)
        self.bias = torch.zeros(SIZE * SIZE * 3)

    def images(self, seeds: list[int]):
        import torch

        z = torch.stack([torch.randn(4, generator=torch.Generator().manual_seed(s)) for s in seeds])  # (N, 4)
        return torch.sigmoid(z @ self.weight.T + self.bias).view(-1, SIZE, SIZE, 3)  # (N, 8, 8, 3)


@register_preset("toy", "toy", title="Toy colour patches", offline=True)
def load_toy(device: str) -> ToyModel:
    return ToyModel(seed=0)


def channel_mean(model: ToyModel, channel: str, n: int = 64) -> float:
    return float(model.images(list(range(1000, 1000 + n)))[..., CHANNELS.index(channel)].mean())


@register_backend
class ToyBackend(Backend):
    name = "toy"
    title = "Toy"
    description = "A tiny test backend."
    generate_config = ToyGenerate

    def clone(self, model):
        return copy.deepcopy(model)

    def generate(self, model, config):
        seeds = list(range(config.first_seed, config.first_seed + config.n_samples))
        images = (model.images(seeds).detach().numpy() * 255).round().astype(np.uint8)
        return [Sample(key=f"seed {s}", seed=s, image=np.kron(img, np.ones((4, 4, 1), dtype=np.uint8)),
                       labels={"dominant": CHANNELS[int(img.reshape(-1, 3).mean(0).argmax())]})
                for s, img in zip(seeds, images)]

    def evaluate(self, base, edited, method_config, ctx):
        return [MetricRow(f"{c} mean", channel_mean(base, c), channel_mean(edited, c), better="lower"
                          if c == method_config.concept else None) for c in CHANNELS]

    def embed(self, base, edited, config):
        seeds = list(range(config.first_seed, config.first_seed + config.n_samples))
        models = [("before", base)] + ([("after", edited)] if edited is not None else [])
        points, labels, groups, names = [], [], [], []
        for group, model in models:
            flat = model.images(seeds).detach().reshape(len(seeds), -1).numpy()
            for s, row in zip(seeds, flat):
                points.append(row)
                labels.append(CHANNELS[int(row.reshape(-1, 3).mean(0).argmax())])
                groups.append(group)
                names.append(f"seed {s}")
        return MapData(np.stack(points), labels, groups, names, title="Toy pixels")

    def state_tensors(self, model):
        return {"weight": model.weight, "bias": model.bias}


@dataclass(frozen=True)
class DimConfig:
    concept: str = param("red", help="channel to forget", choices=CHANNELS)
    steps: int = param(5, help="gradient steps", min=1, max=500)
    lr: float = param(0.5, help="learning rate", min=0.0, max=10.0)

    def __post_init__(self):
        if self.concept == "blue" and self.steps > 400:
            raise ValueError("blue cannot take more than 400 steps")


@register_method("toy", "dim", title="Dim a channel", config=DimConfig, paper="(test only)")
def dim_channel(call: MethodCall) -> None:
    """Gradient descent on the mean of one colour channel."""
    import torch

    model, cfg = call.model, call.config
    bias = model.bias.clone().requires_grad_(True)
    opt = torch.optim.SGD([bias], lr=cfg.lr)
    channel = CHANNELS.index(cfg.concept)
    for step in range(cfg.steps):
        model.bias = bias
        loss = model.images(list(range(8)))[..., channel].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        call.ctx.step(step + 1, cfg.steps, loss=float(loss.detach()))
    model.bias = bias.detach()


@dataclass(frozen=True)
class ForgetPickedConfig:
    picked: tuple[int, ...] = param((), help="samples to forget", widget="picked", max_items=16)
    concept: str = param("red", help="their channel", choices=CHANNELS)

    @classmethod
    def smoke(cls):
        return cls(picked=(0,))


@register_method("toy", "forget_picked", title="Forget picked samples", config=ForgetPickedConfig)
def forget_picked(call: MethodCall) -> None:
    """Darken the picked samples' dominant channel."""
    if not call.picked:
        raise ValueError("pick at least one sample in the gallery")
    channel = CHANNELS.index(call.config.concept)
    call.model.bias = call.model.bias.clone()
    call.model.bias.view(SIZE, SIZE, 3)[..., channel] -= 0.5 * len(call.picked)
    call.ctx.step(1, 1, loss=0.0)


@dataclass(frozen=True)
class ChannelProbeConfig:
    n: int = param(16, help="samples", min=2, max=256)


@register_attack("toy", "channel_probe", title="Channel probe", config=ChannelProbeConfig)
def channel_probe(call: AttackCall) -> AttackResult:
    """Mean of each channel under base and edit."""
    base = [channel_mean(call.base, c, call.config.n) for c in CHANNELS]
    edited = [channel_mean(call.edited, c, call.config.n) for c in CHANNELS]
    call.ctx.step(1, 1)
    return AttackResult(summary=[MetricRow(f"{c} mean", b, e) for c, b, e in zip(CHANNELS, base, edited)],
                        table=[{"channel": c, "base": b, "edited": e} for c, b, e in zip(CHANNELS, base, edited)],
                        chart=Chart("bar", list(CHANNELS), {"base": base, "edited": edited}, title="Channel means"))
