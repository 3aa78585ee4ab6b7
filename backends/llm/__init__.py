"""LLM backend package: importing it registers the backend, presets, methods and attacks (no torch)."""
from backends.llm import backend, presets  # noqa: F401  (registration side effects)
from backends.llm import neuron_adjust, key_space_detection, grad_ascent, npo, flat  # noqa: F401  (tab order)
from backends.llm import probes, attacks, traces  # noqa: F401
