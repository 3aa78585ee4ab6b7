"""FaceWorld style-based GAN: loading, seeded sampling, W+ synthesis and layer groups.

The networks (a small StyleGAN2, Karras et al. CVPR 2020) live in `_gan_nets`, which imports torch and is
imported lazily, so importing this module stays cheap. Weights are trained by scripts/train_gan.py and
shipped as assets/faceworld/gan_<variant>.safetensors (G_ema + D + w_avg, config in the metadata).

    gan = load_gan("base")
    images = gan.generate([0, 1, 2])                 # (3, 32, 32, 3) uint8
    ws = gan.mapping(gan.z_from_seeds([0]))[:, None].repeat(1, gan.num_ws, 1)   # (1, num_ws, w_dim)
    twin = gan.clone()                               # trainable copy for unlearning
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backends.device import pick_device
from backends.faceworld import read_weights
from backends.pixels import to_uint8

if TYPE_CHECKING:
    import torch

    from backends.faceworld._gan_nets import Discriminator, GANConfig, Generator

ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "faceworld"
VARIANTS: dict[str, str] = {
    "base": "gan_base.safetensors",        # trained on the full FaceWorld distribution
    "no_glasses": "gan_no_glasses.safetensors",  # gold standard: retrained without glasses/sunglasses
}
_GENERATE_CHUNK = 16
_CACHE: dict[tuple[str, str], FaceWorldGAN] = {}



def select_parameters(generator: "torch.nn.Module", known_groups: dict[str, list[str]],
                      conv_layers: list[tuple[str, int]], groups: list[str] | None = None,
                      layers: list[str] | None = None) -> list[tuple[str, "torch.nn.Parameter"]]:
    """Parameters of ``generator`` under the named layer groups and/or conv layers (module names).

    Shared by :class:`FaceWorldGAN` and every ``backends.gan.adapter.GeneratorAdapter``.
    """
    known_layers = {name for name, _ in conv_layers}
    prefixes: list[str] = []
    for group in groups or []:
        if group not in known_groups:
            raise ValueError(f"unknown layer group {group!r}; valid: {sorted(known_groups)}")
        prefixes += known_groups[group]
    for layer in layers or []:
        if layer not in known_layers:
            raise ValueError(f"unknown conv layer {layer!r}; valid: {sorted(known_layers)}")
        prefixes.append(layer + ".")
    return [(name, p) for name, p in generator.named_parameters()
            if any(name.startswith(prefix) for prefix in prefixes)]


class FaceWorldGAN:
    """A generator/discriminator pair with seeded sampling helpers.

    Shapes: z (N, z_dim); w (N, w_dim); ws (N, num_ws, w_dim) = one w per synthesis layer (W+);
    images (N, 3, H, W) in [-1, 1] from `synthesis`, uint8 (N, H, W, 3) from `generate`.
    """

    def __init__(self, generator: Generator, discriminator: Discriminator | None, device: str,
                 variant: str = "custom") -> None:
        self.generator = generator.to(device)
        self.discriminator = discriminator.to(device) if discriminator is not None else None
        self.device = device
        self.variant = variant
        config = generator.config
        self.config = config
        self.z_dim: int = config.z_dim
        self.w_dim: int = config.w_dim
        self.num_ws: int = generator.num_ws
        self.image_size: int = config.image_size
        self.metadata: dict[str, str] = {}

    # ---- latents -------------------------------------------------------------------------------------------
    def z_from_seeds(self, seeds: list[int]) -> torch.Tensor:
        """One z per seed from its own torch.Generator, so a seed gives the same z in any batch. (N, z_dim)"""
        import torch

        seeds = _check_seeds(seeds)
        zs = [torch.randn(self.z_dim, generator=torch.Generator().manual_seed(seed)) for seed in seeds]
        return torch.stack(zs).to(self.device)

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """z (N, z_dim) -> w (N, w_dim); psi < 1 pulls w towards the tracked mean w_avg (truncation trick)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.generator.mapping(z.to(self.device), _check_psi(truncation_psi))

    def broadcast_ws(self, w: torch.Tensor) -> torch.Tensor:
        """(N, w_dim) -> (N, num_ws, w_dim); (N, num_ws, w_dim) passes through (validated)."""
        if w.ndim == 2 and w.shape[1] == self.w_dim:
            return w[:, None].expand(-1, self.num_ws, -1)
        if w.ndim == 3 and w.shape[1:] == (self.num_ws, self.w_dim):
            return w
        raise ValueError(f"expected w (N, {self.w_dim}) or ws (N, {self.num_ws}, {self.w_dim}), "
                         f"got {tuple(w.shape)}")

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (N, num_ws, w_dim) or w (N, w_dim) -> images (N, 3, H, W) clamped to [-1, 1]; differentiable."""
        return self.generator.synthesis(self.broadcast_ws(ws).to(self.device)).clamp(-1.0, 1.0)

    def generate(self, seeds: list[int], truncation_psi: float = 1.0) -> np.ndarray:
        """Seeded samples as uint8 (N, H, W, 3)."""
        import torch

        seeds = _check_seeds(seeds)
        out = []
        with torch.no_grad():
            for start in range(0, len(seeds), _GENERATE_CHUNK):
                chunk = seeds[start:start + _GENERATE_CHUNK]
                # always a full chunk (zero-padded): CPU conv kernels round differently for other batch sizes,
                # and a seed must give the same pixels in any batch
                z = torch.zeros(_GENERATE_CHUNK, self.z_dim, device=self.device)
                z[:len(chunk)] = self.z_from_seeds(chunk)
                out.append(to_uint8(self.synthesis(self.mapping(z, truncation_psi)))[:len(chunk)])
        return np.concatenate(out)

    # ---- layers --------------------------------------------------------------------------------------------
    def layer_groups(self) -> dict[str, list[str]]:
        """Group -> generator parameter-name prefixes: mapping, coarse (4-8 px), middle (16), fine (32), torgb."""
        return self.generator.layer_groups()

    def conv_layers(self) -> list[tuple[str, int]]:
        """(module name, ws index) for each modulated 3x3 synthesis conv, coarse to fine (for top-k selection
        as in StyleGAN-NADA, Gal et al. 2022: rank layers by how much their w moves, train the top k)."""
        return self.generator.synthesis.conv_layers()

    def parameters_of(self, groups: list[str] | None = None,
                      layers: list[str] | None = None) -> list[tuple[str, torch.nn.Parameter]]:
        """Generator parameters in the named groups and/or conv layers (module names from conv_layers())."""
        return select_parameters(self.generator, self.layer_groups(), self.conv_layers(), groups, layers)

    def clone(self) -> FaceWorldGAN:
        """Independent trainable copy (requires_grad on, train mode off: no noise or w_avg updates)."""
        twin = FaceWorldGAN(copy.deepcopy(self.generator), copy.deepcopy(self.discriminator), self.device,
                            variant=f"{self.variant}-copy")
        for module in (twin.generator, twin.discriminator):
            if module is not None:
                module.requires_grad_(True)
        return twin

    def num_parameters(self) -> dict[str, int]:
        counts = {"generator": sum(p.numel() for p in self.generator.parameters())}
        if self.discriminator is not None:
            counts["discriminator"] = sum(p.numel() for p in self.discriminator.parameters())
        return counts


def _check_seeds(seeds: list[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        raise ValueError("seeds must be a list of ints, e.g. [0, 1, 2], not a single int")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty list of ints")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"seeds must be non-negative ints, got {seed!r}")
    return [int(seed) for seed in seeds]


def _check_psi(truncation_psi: float) -> float:
    psi = float(truncation_psi)
    if not math.isfinite(psi) or not 0.0 <= psi <= 2.0:
        raise ValueError(f"truncation_psi must be in [0, 2], got {truncation_psi!r}")
    return psi


def build_networks(config: GANConfig | dict | None = None, seed: int = 0) -> tuple[Generator, Discriminator]:
    """Freshly initialised (seeded) generator and discriminator; config may be a GANConfig or a dict of fields."""
    import torch

    from backends.faceworld._gan_nets import Discriminator, GANConfig, Generator

    if config is None:
        config = GANConfig()
    elif isinstance(config, dict):
        unknown = set(config) - set(GANConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GAN config fields {sorted(unknown)}; valid: "
                             f"{sorted(GANConfig.__dataclass_fields__)}")
        config = GANConfig.from_dict({**GANConfig().to_dict(), **config})
    torch.manual_seed(seed)
    return Generator(config), Discriminator(config)


def random_gan(config: GANConfig | dict | None = None, seed: int = 0, device: str | None = None) -> FaceWorldGAN:
    """Untrained seeded GAN (tests, training start)."""
    generator, discriminator = build_networks(config, seed)
    return FaceWorldGAN(generator.eval(), discriminator.eval(), pick_device(device), variant="random")


def save_gan(path: str | Path, generator: Generator, discriminator: Discriminator | None,
             metadata: dict[str, str] | None = None) -> None:
    """Write G (+ D) weights, buffers (w_avg) and config to one safetensors file (fp32)."""
    from safetensors.torch import save_file

    tensors = {f"G.{k}": v.detach().float().cpu().contiguous() for k, v in generator.state_dict().items()}
    if discriminator is not None:
        tensors.update({f"D.{k}": v.detach().float().cpu().contiguous()
                        for k, v in discriminator.state_dict().items()})
    meta = {"config": json.dumps(generator.config.to_dict()), **(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.chmod(0o644)  # safetensors creates the file owner-only
    tmp.replace(path)


def load_gan_file(path: str | Path, device: str | None = None, variant: str = "custom") -> FaceWorldGAN:
    """Load a file written by save_gan (frozen: eval mode, requires_grad off)."""
    from backends.faceworld._gan_nets import Discriminator, GANConfig, Generator

    tensors, meta = read_weights(Path(path), "scripts/train_gan.py")
    if "config" not in meta:
        raise ValueError(f"{path} has no GAN config in its metadata (not written by save_gan?)")
    config = GANConfig.from_dict(json.loads(meta["config"]))
    generator = Generator(config)
    generator.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
    discriminator = None
    d_state = {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}
    if d_state:
        discriminator = Discriminator(config)
        discriminator.load_state_dict(d_state)
        discriminator.eval().requires_grad_(False)
    generator.eval().requires_grad_(False)
    gan = FaceWorldGAN(generator, discriminator, pick_device(device), variant=variant)
    gan.metadata = meta
    return gan


def load_gan(variant: str = "base", device: str | None = None) -> FaceWorldGAN:
    """Shipped FaceWorld GAN, cached per (variant, device). Frozen: use .clone() for a trainable copy."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown GAN variant {variant!r}; valid: {sorted(VARIANTS)}")
    device = pick_device(device)
    key = (variant, device)
    if key not in _CACHE:
        path = ASSET_DIR / VARIANTS[variant]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; train it with: python scripts/train_gan.py"
                                    + (" --exclude glasses" if variant == "no_glasses" else ""))
        _CACHE[key] = load_gan_file(path, device, variant=variant)
    return _CACHE[key]
