"""Benchmarks: ``python -m bench [--only PREFIX]`` prints one JSON object per metric per line."""
