"""The About tab: what unlearning is, in plain words, and the methods with their papers."""
from __future__ import annotations

import gradio as gr

from backends import registry

INTRO = """
## What is machine unlearning?

A generative model learns everything in its training data, including things it should not
produce: a person's face, a copyrighted style, unsafe content, a skill that should be withheld.
**Unlearning** changes a trained model so that it no longer produces a chosen *concept*, without
retraining it from scratch and while keeping everything else it can do.

This lab lets you try it and, just as important, **check whether it worked**:

* **Before / after, same seeds.** Every sample is drawn from the original model and from your
  edited copy with the same random seed, so any difference is caused by the edit.
* **Maps.** UMAP pictures of the models' internal representations show whether the concept has
  moved or merely been hidden.
* **Attacks.** Synonyms, adversarial prompts, latent searches, linear probes and a few steps of
  re-training test whether the concept is really gone or only hard to reach.
* **Honest metrics.** Presence of the concept before and after, collateral damage on everything
  else, and where possible a *gold standard*: a model retrained without the concept.

Your edits live in a private copy of the model for your browser session only. The original
model is never changed; *Reset* returns to it, *Export* downloads what you changed.

### Why the small cartoon faces?
Real image-text and text-to-image weights cannot be downloaded everywhere this app runs
(workshops, offline laptops, CI). So the lab ships **FaceWorld**: a small procedural world of
cartoon faces with known attributes, and a CLIP model, a GAN and a diffusion model trained on
it. Because the world is ours, we know the truth about every image, and we can retrain a model
without a concept to see what perfect unlearning would look like. On a GPU Space, the same code
runs on real checkpoints (Stable Diffusion, CLIP ViT-B/32, Qwen2.5) from the Hugging Face Hub.
"""


def methods_markdown() -> str:
    """A list of every registered method and attack, grouped by backend, with its paper."""
    lines = []
    for be in registry.backends():
        lines.append(f"### {be.title}")
        for kind, specs in (("Method", registry.methods(be.name)), ("Attack", registry.attacks(be.name))):
            for spec in specs.values():
                summary = spec.description.split("\n")[0] if spec.description else ""
                paper = f" — *{spec.paper}*" if spec.paper else ""
                lines.append(f"* **{spec.title}** ({kind.lower()}){paper}. {summary}")
    return "\n".join(lines) if lines else "No backends are installed."


def render() -> None:
    gr.Markdown(INTRO, elem_id="about-intro")
    gr.Markdown("## Methods and attacks in this lab\n" + methods_markdown())
