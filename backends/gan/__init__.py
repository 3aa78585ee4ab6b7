"""GAN backend: Text-to-Unlearn and Adapt-then-Unlearn on a style-based face GAN.

Importing this package registers the backend, its presets, methods and attacks; it imports no
torch or open_clip (those load inside functions). Methods are imported in tab order.
"""
# isort: skip_file
from backends.gan import backend, presets  # noqa: F401  (backend and presets first)
from backends.gan import text_to_unlearn  # noqa: F401  (the headline method first)
from backends.gan import adapt_then_unlearn, attacks  # noqa: F401
