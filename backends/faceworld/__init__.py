"""FaceWorld: procedural cartoon faces with known attributes (world.py) and the models trained on them.

Submodules: world (renderer, sampler, captions; numpy + PIL), clip (CLIP-style model; torch imported lazily).
"""
