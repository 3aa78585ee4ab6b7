"""Sample grids of the shipped FaceWorld GAN and diffusion model, next to real renders (for the README).

    python scripts/sample_grids.py            # -> assets/faceworld/samples_gan.png, samples_diffusion.png

GAN: row 1 real renders (world.sample_faces, seed 0), rows 2-4 GAN samples for seeds 0-35 (truncation 1).
Diffusion: one row per prompt, real renders of faces matching the prompt on the left, samples for seeds 0-5
on the right (default steps and guidance). Tiles are upscaled 3x (nearest) so pixels stay visible.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.faceworld import world  # noqa: E402

PROMPTS = (
    ("a smiling person with glasses", {"expression": "smiling", "glasses": "glasses"}),
    ("a person wearing a cap", {"hat": "cap"}),
    ("a bearded face with grey hair on a blue background", {"beard": "beard", "hair": "grey", "background": "blue"}),
    ("a frowning person in sunglasses", {"expression": "frowning", "glasses": "sunglasses"}),
    ("a blond face wearing a beanie on pink", {"hair": "blond", "hat": "beanie", "background": "pink"}),
    ("a face without glasses", {"glasses": "none"}),
)
COLUMNS = 12
SCALE = 3
GAP = 6


def tile_row(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (H, N*W, 3), nearest-upscaled."""
    row = np.concatenate(list(images), axis=1)
    return row.repeat(SCALE, 0).repeat(SCALE, 1)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded)[:-GAP]


def matching_faces(conditions: dict[str, str], n: int, size: int) -> np.ndarray:
    """Real renders of n faces whose attributes match ``conditions``, rendered at ``size``."""
    faces, seed = [], 0
    while len(faces) < n:
        for face in world.sample_faces(200, seed=1000 + seed):
            if all(face.attrs[k] == v for k, v in conditions.items()):
                faces.append(face)
        seed += 1
    return world.render_batch(faces[:n], size=size)


def gan_grid(out: Path) -> None:
    from PIL import Image

    from backends.faceworld.gan import load_gan

    gan = load_gan("base", device="cpu")
    real = world.render_batch(world.sample_faces(COLUMNS, seed=0), size=gan.image_size)
    fake = gan.generate(list(range(3 * COLUMNS)))
    rows = [tile_row(real)] + [tile_row(fake[i * COLUMNS:(i + 1) * COLUMNS]) for i in range(3)]
    Image.fromarray(stack(rows)).save(out, optimize=True)


def diffusion_grid(out: Path) -> None:
    from PIL import Image

    from backends.diffusion.presets import faceworld_variant
    from backends.faceworld.diffusion import IMAGE_SIZE

    model = faceworld_variant("base", device="cpu")
    rows = []
    for prompt, conditions in PROMPTS:
        real = matching_faces(conditions, 3, IMAGE_SIZE)
        fake = model.generate([prompt] * (COLUMNS - 3), list(range(COLUMNS - 3)))
        spacer = np.full((1, IMAGE_SIZE, 4, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([tile_row(real), tile_row(spacer), tile_row(fake)], axis=1))
    Image.fromarray(stack(rows)).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default=str(ROOT / "assets" / "faceworld"))
    parser.add_argument("--only", choices=("gan", "diffusion"), default=None)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.only in (None, "gan"):
        gan_grid(out_dir / "samples_gan.png")
    if args.only in (None, "diffusion"):
        diffusion_grid(out_dir / "samples_diffusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
