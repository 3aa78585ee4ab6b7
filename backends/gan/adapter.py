"""Generator adapter: the only view of a GAN that the methods, metrics and attacks use.

An adapter exposes z -> w -> image, W+ synthesis and named layer groups. The FaceWorld GAN
(a small StyleGAN2, ``backends.faceworld.gan``) plugs in through :class:`FaceWorldAdapter`; a
StyleGAN2 port plugs in by subclassing :class:`GeneratorAdapter` without touching the methods.

Shapes: z (N, z_dim); w (N, w_dim); ws (N, num_ws, w_dim); images (N, 3, H, W) in [-1, 1].
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from backends.faceworld.gan import FaceWorldGAN


class GeneratorAdapter(abc.ABC):
    """A style-based generator (mapping + synthesis) and, optionally, its discriminator."""

    device: str
    z_dim: int
    w_dim: int
    num_ws: int
    image_size: int

    @property
    @abc.abstractmethod
    def generator(self) -> "torch.nn.Module":
        """The module whose parameters an edit changes (mapping + synthesis)."""

    @property
    @abc.abstractmethod
    def discriminator(self) -> "torch.nn.Module | None":
        """The GAN's discriminator (frozen; methods train a private copy), or None."""

    @abc.abstractmethod
    def z_from_seeds(self, seeds: list[int]) -> "torch.Tensor":
        """One z per seed, independent of batch composition. (N, z_dim)"""

    @abc.abstractmethod
    def mapping(self, z: "torch.Tensor", truncation_psi: float = 1.0) -> "torch.Tensor":
        """z (N, z_dim) -> w (N, w_dim)."""

    @abc.abstractmethod
    def synthesis(self, ws: "torch.Tensor") -> "torch.Tensor":
        """w (N, w_dim) or ws (N, num_ws, w_dim) -> images (N, 3, H, W) in [-1, 1]; differentiable."""

    @abc.abstractmethod
    def layer_groups(self) -> dict[str, list[str]]:
        """Group name (mapping, coarse, middle, fine, torgb) -> generator parameter-name prefixes."""

    @abc.abstractmethod
    def conv_layers(self) -> list[tuple[str, int]]:
        """(module name, ws index) of each synthesis conv, coarse to fine (StyleGAN-NADA's layer choice)."""

    @abc.abstractmethod
    def clone(self) -> "GeneratorAdapter":
        """Independent copy of the generator; the discriminator is shared (never trained in place)."""

    # ---- shared helpers ------------------------------------------------------------------
    def parameters_of(self, groups: list[str] | None = None,
                      layers: list[str] | None = None) -> list[tuple[str, "torch.nn.Parameter"]]:
        """Generator parameters under the named groups and/or conv layers (module names)."""
        from backends.faceworld.gan import select_parameters

        return select_parameters(self.generator, self.layer_groups(), self.conv_layers(), groups, layers)

    def images(self, seeds: list[int], truncation_psi: float = 1.0) -> "torch.Tensor":
        """Seeded images, no grad. (N, 3, H, W) in [-1, 1]"""
        import torch

        with torch.no_grad():
            return self.synthesis(self.mapping(self.z_from_seeds(seeds), truncation_psi))

    def random_w(self, count: int, generator: "torch.Generator", truncation_psi: float = 1.0) -> "torch.Tensor":
        """w of ``count`` fresh z drawn from ``generator`` (a seeded torch.Generator). (N, w_dim)"""
        import torch

        z = torch.randn(count, self.z_dim, generator=generator).to(self.device)
        with torch.no_grad():
            return self.mapping(z, truncation_psi)

    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        """Every generator parameter and buffer (what an edit may change), detached."""
        return {k: v.detach() for k, v in self.generator.state_dict().items()}

    def freeze(self) -> "GeneratorAdapter":
        """requires_grad off everywhere (call on a reference copy)."""
        self.generator.requires_grad_(False)
        return self


class FaceWorldAdapter(GeneratorAdapter):
    """Adapter over :class:`backends.faceworld.gan.FaceWorldGAN` (no noise inputs, eval mode)."""

    def __init__(self, gan: "FaceWorldGAN"):
        self.gan = gan
        self.device = gan.device
        self.z_dim, self.w_dim = gan.z_dim, gan.w_dim
        self.num_ws, self.image_size = gan.num_ws, gan.image_size
        self.variant = gan.variant

    @property
    def generator(self) -> "torch.nn.Module":
        return self.gan.generator

    @property
    def discriminator(self) -> "torch.nn.Module | None":
        return self.gan.discriminator

    def z_from_seeds(self, seeds: list[int]) -> "torch.Tensor":
        return self.gan.z_from_seeds(seeds)

    def mapping(self, z: "torch.Tensor", truncation_psi: float = 1.0) -> "torch.Tensor":
        return self.gan.mapping(z, truncation_psi)

    def synthesis(self, ws: "torch.Tensor") -> "torch.Tensor":
        return self.gan.synthesis(ws)

    def layer_groups(self) -> dict[str, list[str]]:
        return self.gan.layer_groups()

    def conv_layers(self) -> list[tuple[str, int]]:
        return self.gan.conv_layers()

    def clone(self) -> "FaceWorldAdapter":
        import copy

        from backends.faceworld.gan import FaceWorldGAN

        generator = copy.deepcopy(self.gan.generator).eval()
        twin = FaceWorldGAN(generator, self.gan.discriminator, self.device, variant=f"{self.variant}-edit")
        return FaceWorldAdapter(twin)


