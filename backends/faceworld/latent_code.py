"""What a latent z of the shipped FaceWorld GAN means: the latent code it was trained with.

scripts/train_gan.py pairs each training face with a z drawn from :class:`LatentCode` and pays a reconstruction
term on (z, render(face)); the shipped mapping network decodes the categorical slices of z as one-hot codes
(``GANConfig.code_groups`` = :meth:`LatentCode.groups`, buffer ``code_bias`` = :meth:`LatentCode.bias_vector`).
So a change here changes what every shipped GAN's z means. numpy only at import; torch is imported lazily.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backends.faceworld import world


class LatentCode:
    """Where each training face sits in z-space, so the generator can also learn the renderer.

    A categorical factor of world.sample_faces (each attribute, face shape, hair style, hat/frame colour, brim
    side) with V values owns V coordinates of z: its value is argmax_v(z_v + b_v), the biases b chosen so that
    z ~ N(0, I) gives each value its frequency in the pool (a Gaussian "argmax code": each value has its own
    direction, which a network learns far faster than thresholds on one axis). Continuous geometry (size,
    position, eye spacing) owns one coordinate through its empirical CDF. A face's z is drawn from N(0, I)
    conditioned on its values (rejection sampling); the remaining coordinates are free noise. So z ~ N(0, I)
    has the data's marginals and (z, render(face)) pairs give the reconstruction term. Named characters are
    encoded through their attribute and geometry values.

    With the trainer's decode_code (its default) the mapping network reads each categorical slice as the one-hot of
    that argmax (GANConfig.code_groups, buffer code_bias), so G need not learn the argmax cones itself. Without it, 100
    minutes of training left G(z_face) showing the face's expression for 32 % of faces (chance: 33 %) and its
    hair colour for 34 %; with it, 150 seconds of the reconstruction term alone gave 84 % skin and 92 % beard.
    """

    CANDIDATES = 48  # rejection-sampling draws per face and factor (misses are fixed up, see sample)

    def __init__(self, faces: list, z_dim: int, seed: int = 0) -> None:
        columns: dict[str, list] = {f"attr.{name}": [face.attrs[name] for face in faces] for name in world.ATTRIBUTES}
        for item in dataclasses.fields(faces[0]):
            if item.name not in ("attrs", "character"):
                columns[item.name] = [getattr(face, item.name) for face in faces]
        n = len(faces)
        is_continuous = {name: all(isinstance(v, float) for v in values) for name, values in columns.items()}
        needed = sum(1 if is_continuous[name] else len({repr(v) for v in values}) for name, values in columns.items())
        if needed > z_dim:
            raise ValueError(f"z_dim {z_dim} is smaller than the {needed} coordinates the face factors need")
        rng = np.random.default_rng(seed)
        self.factors = list(columns)
        self.continuous: list[tuple[int, np.ndarray]] = []        # (z index, (N,) CDF value of each face)
        self.categorical: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first z index, biases (V,), (N,) value)
        self.attribute_slices: dict[str, tuple[int, list[str]]] = {}  # attr -> (first z index, its values in slice order)
        offset = 0
        for name, values in columns.items():
            if is_continuous[name]:
                rank = np.argsort(np.argsort(np.asarray(values), kind="stable"), kind="stable")
                self.continuous.append((offset, ((rank + 0.5) / n).astype(np.float64)))
                offset += 1
            else:
                keys = [repr(v) for v in values]
                categories = sorted(set(keys))
                if name.startswith("attr."):
                    self.attribute_slices[name[len("attr."):]] = (offset, [values[keys.index(c)] for c in categories])
                index = np.array([categories.index(key) for key in keys])
                freqs = np.bincount(index, minlength=len(categories)) / n
                self.categorical.append((offset, self._argmax_biases(freqs, rng), index))
                offset += len(categories)
        self.z_dim = z_dim
        self.coded_dims = offset

    @staticmethod
    def _argmax_biases(freqs: np.ndarray, rng: np.random.Generator, iterations: int = 40) -> np.ndarray:
        """b with P(argmax(z + b) = v) = freqs[v] for z ~ N(0, I), fitted by Monte Carlo fixed-point steps."""
        biases = np.zeros(len(freqs))
        if len(freqs) == 1:
            return biases
        z = rng.standard_normal((40_000, len(freqs)))
        for _ in range(iterations):
            hit = np.bincount((z + biases).argmax(1), minlength=len(freqs)) / len(z)
            biases += 0.5 * (np.log(freqs) - np.log(np.maximum(hit, 1e-6)))
            biases -= biases.mean()
        return biases

    def groups(self) -> list[tuple[int, int]]:
        """(first z index, width) of every categorical factor: GANConfig.code_groups."""
        return [(start, len(biases)) for start, biases, _ in self.categorical if len(biases) > 1]

    def bias_vector(self):
        """(z_dim,) float32 tensor of the argmax biases (zero outside the categorical slices): code_bias."""
        import torch

        bias = torch.zeros(self.z_dim)
        for start, biases, _ in self.categorical:
            bias[start:start + len(biases)] = torch.from_numpy(biases).float()
        return bias

    def attribute_values(self, z, code_bias) -> dict[str, np.ndarray]:
        """attr -> (B,) index into ``world.ATTRIBUTES[attr]`` of the value a GAN's mapping network decodes from
        each z (B, z_dim): argmax(z_slice + code_bias_slice), as ``Mapping.decode_code`` does; ``code_bias``
        (z_dim,) is the generator's buffer. The code's side of "does G draw what its code says"."""
        z, code_bias = np.asarray(z, dtype=np.float64), np.asarray(code_bias, dtype=np.float64)
        out = {}
        for attribute, (start, values) in self.attribute_slices.items():
            slot = (z[:, start:start + len(values)] + code_bias[start:start + len(values)]).argmax(1)  # (B,)
            out[attribute] = np.array([world.ATTRIBUTES[attribute].index(values[i]) for i in slot])
        return out

    def sample(self, index: np.ndarray, generator):
        """z (B, z_dim) for the faces at index: fresh conditional draws of the coded coordinates, free noise."""
        import torch

        batch = len(index)
        z = torch.randn(batch, self.z_dim, generator=generator)
        for k, cdf in self.continuous:
            jitter = (torch.rand(batch, generator=generator).double() - 0.5) / len(cdf)
            u = (torch.from_numpy(cdf[index]) + jitter).clamp(1e-6, 1 - 1e-6)
            z[:, k] = torch.special.ndtri(u).float()
        for k, biases, values in self.categorical:
            width = len(biases)
            target = torch.from_numpy(values[index])  # (B,)
            draws = torch.randn(batch, self.CANDIDATES, width, generator=generator)  # (B, C, V)
            ok = (draws + torch.from_numpy(biases).float()).argmax(-1) == target[:, None]  # (B, C)
            first = ok.float().argmax(1)  # first accepted draw (index 0 if none: fixed below)
            chosen = draws[torch.arange(batch), first]  # (B, V)
            missing = ~ok.any(1)
            if missing.any():  # vanishingly rare: lift the target coordinate just above the others
                shifted = chosen[missing] + torch.from_numpy(biases).float()
                row = torch.arange(int(missing.sum()))
                shifted[row, target[missing]] = shifted.max(1).values + 0.1
                chosen[missing] = shifted - torch.from_numpy(biases).float()
            z[:, k:k + width] = chosen
        return z
