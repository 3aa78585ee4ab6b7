"""Compute side of Unlearning Lab: models, methods, attacks. Never imports gradio."""
