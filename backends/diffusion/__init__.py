"""Diffusion backend: concept erasure in text-to-image models (FaceWorld offline, Stable Diffusion on the hub).

Importing this package registers the backend, its presets, methods and attacks; it imports no
heavy library (torch, diffusers, transformers are imported inside functions).
"""
# isort: skip_file
# Methods in tab order: the closed-form UCE (about a second) first, then by cost.
from backends.diffusion import backend, presets  # noqa: F401  (registration side effects)
from backends.diffusion import uce, esd, fewshot_te, salun, advunlearn  # noqa: F401
from backends.diffusion import attacks  # noqa: F401
