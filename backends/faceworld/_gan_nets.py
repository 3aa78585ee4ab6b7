"""Networks of the FaceWorld style-based GAN (imported lazily: this module imports torch).

A small StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020):
mapping network z -> w, learned constant 4x4 input, modulated/demodulated 3x3 convolutions with one w per
layer (W+), skip-architecture toRGB at every resolution, and a residual discriminator with minibatch
standard deviation. Equalised learning rate (Karras et al., ProGAN 2018) throughout. No custom CUDA ops:
modulation is applied to activations and demodulation to outputs ("non-fused" modconv), which is exact and
fast on CPU; upsampling convs are transposed 4x4 stride-2 convs followed by a [1, 2, 1] blur, and the
discriminator convolves after pooling, both as in StyleGAN2 and both cheaper than full-resolution convs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)


@dataclass(frozen=True)
class GANConfig:
    """Architecture of generator and discriminator (stored with the weights)."""

    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 3
    mapping_lr_mul: float = 1.0  # StyleGAN uses 0.01; the latent code needs a mapping that learns fast
    normalize_z: bool = False  # StyleGAN rescales z to unit 2nd moment; off: z's coordinates keep their meaning
    image_size: int = 32
    # channels per resolution, for resolutions 4, 8, ..., image_size
    channels: tuple[int, ...] = (128, 64, 32, 16)
    d_channels: tuple[int, ...] = (64, 64, 32, 16)
    use_noise: bool = False
    mbstd_group: int = 4
    # categorical latent code: (first index, width) of each z slice the mapping reads as a one-hot of
    # argmax(z_slice + code_bias) (cf. InfoGAN's categorical codes); () = plain z
    code_groups: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        num_res = int(math.log2(self.image_size)) - 1  # 4 -> 1, 8 -> 2, 32 -> 4
        if self.image_size < 8 or 2 ** (num_res + 1) != self.image_size:
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        for name in ("channels", "d_channels"):
            if len(getattr(self, name)) != num_res:
                raise ValueError(f"{name} needs {num_res} entries (resolutions 4..{self.image_size})")

    @property
    def resolutions(self) -> list[int]:
        return [4 * 2**i for i in range(len(self.channels))]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GANConfig:
        values = dict(values)
        for key in ("channels", "d_channels"):
            values[key] = tuple(values[key])
        values["code_groups"] = tuple(tuple(group) for group in values.get("code_groups", ()))
        return cls(**values)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and an optional lr multiplier (mapping uses 0.01)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activate else x


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim); tracks w_avg (moving average) for the truncation trick.

    With code_groups, each listed slice of z is first replaced by the one-hot of argmax(z_slice + code_bias): a
    categorical latent code (InfoGAN-style) whose values keep the training data's frequencies under z ~ N(0, I)
    when code_bias is set from them (backends/faceworld/latent_code.py, LatentCode). The other coordinates pass unchanged.
    """

    CODE_SCALE = 2.0  # one-hot height: about the magnitude of the Gaussian coordinates beside it

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_mul: float = 0.01, normalize_z: bool = True,
                 w_avg_beta: float = 0.995, code_groups: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activate=True) for i in range(num_layers))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta
        self.normalize_z = normalize_z
        self.code_groups = tuple(code_groups)
        if any(start < 0 or width < 2 or start + width > z_dim for start, width in self.code_groups):
            raise ValueError(f"code_groups {self.code_groups} must be slices of width >= 2 inside z (dim {z_dim})")
        if self.code_groups:
            self.register_buffer("code_bias", torch.zeros(z_dim))

    def decode_code(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) -> z with each code group replaced by its scaled one-hot (no gradient through argmax)."""
        if not self.code_groups:
            return z
        x = z.clone()
        for start, width in self.code_groups:
            value = (z[:, start:start + width] + self.code_bias[start:start + width]).argmax(dim=1)  # (B,)
            x[:, start:start + width] = F.one_hot(value, width).to(z.dtype) * self.CODE_SCALE
        return x

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False) -> torch.Tensor:
        x = self.decode_code(z)  # (B, z_dim)
        if self.normalize_z:
            x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()  # 2nd-moment normalised
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            x = self.w_avg.lerp(x, truncation_psi)
        return x  # (B, w_dim)


def blur(x: torch.Tensor) -> torch.Tensor:
    """Depthwise separable [1, 2, 1] / 4 low-pass filter, same size. (B, C, H, W)"""
    kernel = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


class ModulatedConv(nn.Module):
    """Style-modulated convolution; demodulation normalises each output feature map (StyleGAN2 Eq. 1-3)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, kernel: int = 3, demodulate: bool = True,
                 upsample: bool = False, activate: bool = True, use_noise: bool = False,
                 resolution: int = 4) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        if upsample:  # transposed 4x4 stride-2 conv: computed at the input resolution, ~2x cheaper
            kernel = 4
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.upsample, self.activate = demodulate, upsample, activate
        self.padding = kernel // 2
        self.use_noise = use_noise
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros(()))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        styles = self.affine(w)  # (B, in_ch)
        weight = self.weight * self.weight_gain  # (out_ch, in_ch, k, k)
        x = x * styles[:, :, None, None]
        if self.upsample:  # (B, out_ch, 2H, 2W), then a [1, 2, 1] blur against checkerboard artefacts
            x = blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1))
        else:
            x = F.conv2d(x, weight, padding=self.padding)  # (B, out_ch, H, W)
        if self.demodulate:
            # sum over in_ch, k, k of (w_oi * s_i)^2 = sum_i s_i^2 * sum_kk w_oikk^2
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # (B, out_ch)
            x = x * dcoefs[:, :, None, None]
        if self.use_noise and noise_mode != "none":
            noise = (torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device) if noise_mode == "random"
                     else self.noise_const[None, None])
            x = x + noise * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activate else x


class SynthesisBlock(nn.Module):
    """One resolution: (upsample +) two modulated convs, plus a toRGB added to the upsampled skip image."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, use_noise: bool) -> None:
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_ch, 4, 4))
            self.conv_names = ["conv1"]
        else:
            self.conv0 = ModulatedConv(in_ch, out_ch, w_dim, upsample=True, use_noise=use_noise,
                                       resolution=resolution)
            self.conv_names = ["conv0", "conv1"]
        self.conv1 = ModulatedConv(out_ch, out_ch, w_dim, use_noise=use_noise, resolution=resolution)
        self.torgb = ModulatedConv(out_ch, 3, w_dim, kernel=1, demodulate=False, activate=False)

    @property
    def num_ws(self) -> int:
        """ws consumed: one per conv plus one for toRGB (shared with the next block's first conv)."""
        return len(self.conv_names) + 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        # ws: (B, num_ws, w_dim)
        if x is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)  # (B, C, 4, 4)
        for i, name in enumerate(self.conv_names):
            x = getattr(self, name)(x, ws[:, i], noise_mode)
        rgb = self.torgb(x, ws[:, len(self.conv_names)])  # (B, 3, H, W)
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        img = rgb if img is None else img + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> raw image (B, 3, H, W), roughly in [-1, 1]."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.resolutions = config.resolutions
        in_ch = config.channels[0]
        self.ws_offsets: list[int] = []
        offset = 0
        for res, out_ch in zip(self.resolutions, config.channels):
            block = SynthesisBlock(in_ch, out_ch, config.w_dim, res, config.use_noise)
            setattr(self, f"b{res}", block)
            self.ws_offsets.append(offset)
            offset += len(block.conv_names)
            in_ch = out_ch
        self.num_ws = offset + 1

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.resolutions]

    def conv_layers(self) -> list[tuple[str, int]]:
        """(module name relative to the generator, index into ws) of every modulated 3x3 conv, coarse to fine."""
        layers = []
        for block, offset in zip(self.blocks(), self.ws_offsets):
            for i, name in enumerate(block.conv_names):
                layers.append((f"synthesis.b{block.resolution}.{name}", offset + i))
        return layers

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        x = img = None
        for block, offset in zip(self.blocks(), self.ws_offsets):
            x, img = block(x, img, ws[:, offset:offset + block.num_ws], noise_mode)
        return img


class Generator(nn.Module):
    """Style-based generator: z (B, z_dim) -> image (B, 3, H, W)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers, config.mapping_lr_mul,
                                      config.normalize_z, code_groups=config.code_groups)
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = self.synthesis.num_ws

    def layer_groups(self) -> dict[str, list[str]]:
        """Group name -> parameter-name prefixes; every parameter falls under exactly one group."""
        coarse, middle, fine = [], [], []
        for name, _ in self.synthesis.conv_layers():
            res = int(name.split(".")[1][1:])
            (coarse if res <= 8 else middle if res <= 16 else fine).append(name + ".")
        return {
            "mapping": ["mapping."],
            "coarse": ["synthesis.b4.const"] + coarse,
            "middle": middle,
            "fine": fine,
            "torgb": [f"synthesis.b{res}.torgb." for res in self.synthesis.resolutions],
        }

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "const") -> torch.Tensor:
        w = self.mapping(z, truncation_psi)  # (B, w_dim)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1), noise_mode)


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


class DiscriminatorBlock(nn.Module):
    """Residual block: 3x3 conv, 2x average-pool, 3x3 conv; skip is pool + 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = lrelu(self.conv0(x))
        x = lrelu(self.conv1(F.avg_pool2d(x, 2)))  # downsample first (StyleGAN2 convolves at the lower resolution)
        return (x + skip) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """ResNet discriminator (StyleGAN2 config F layout): image (B, 3, H, W) -> logit (B,)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        chans = list(reversed(config.d_channels))  # highest resolution first
        self.from_rgb = EqualConv2d(3, chans[0], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(chans[i], chans[i + 1]) for i in range(len(chans) - 1))
        top = chans[-1]
        self.mbstd_group = config.mbstd_group
        self.conv = EqualConv2d(top + 1, top, 3)
        self.fc = EqualLinear(top * 16, top, activate=True)
        self.out = EqualLinear(top, 1)

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append the mean std over groups of samples as one extra feature map (ProGAN)."""
        batch, ch, height, width = x.shape
        group = min(self.mbstd_group, batch)
        if batch % group:
            group = 1
        y = x.reshape(group, -1, ch, height, width)  # (G, B/G, C, H, W)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/G,)
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width)  # (B, 1, H, W)
        return torch.cat([x, y], dim=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.from_rgb(img))
        for block in self.blocks:
            x = block(x)  # ends at (B, C, 4, 4)
        x = lrelu(self.conv(self.minibatch_stddev(x)))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


__all__ = ["Discriminator", "GANConfig", "Generator"]
