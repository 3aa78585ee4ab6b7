"""Guided lessons for workshops: one per backend, a few steps each with settings filled in, and a closing
"what did we learn" written from the run's own numbers. Data and pure functions only (no gradio, no models):
the Lessons tab (panels/lessons.py) runs each step through :class:`backends.lab.Lab`, like the backend tabs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from backends.contract import MetricRow

Action = Literal["generate", "unlearn", "attack"]


@dataclass(frozen=True)
class Step:
    """One button of a lesson: what it does, with which settings, and why (plain language)."""

    title: str
    explanation: str
    action: Action
    name: str = ""                       # method or attack name (unlearn / attack)
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    backend: str
    preset: str
    intro: str
    steps: tuple[Step, ...]
    verdict_metric: str    # the metrics-table row the conclusion quotes (name prefix)
    attack_metric: str     # the attack-summary row it quotes (name prefix)
    concept: str           # what is forgotten, in words


LESSONS: dict[str, Lesson] = {lesson.name: lesson for lesson in (
    Lesson(
        "gan", "Make a GAN forget glasses from text alone", "gan", "faceworld",
        "A GAN draws faces from random numbers. Text-to-Unlearn fine-tunes it so that it stops drawing "
        "glasses, guided only by the word 'glasses' through a CLIP model. Then we check with an independent "
        "judge, and we attack the edit.",
        (Step("Draw 16 faces", "Sixteen faces from fixed seeds: some wear glasses or sunglasses.", "generate",
              values={"seed": 0, "count": 16}),
         Step("Forget 'glasses'", "Text-to-Unlearn pushes the faces away from CLIP's 'glasses' direction. The "
                                  "same seeds are drawn again, so each face sits beside its edited twin.",
              "unlearn", "text_to_unlearn", {"concept": "glasses", "eval_samples": 200}),
         Step("Attack: search for glasses", "Eight latent searches climb CLIP's 'glasses' score in the edited GAN. "
                                            "If the concept is only hidden, they find it again.",
              "attack", "latent_search", {"concept": "glasses", "starts": 8, "steps": 40})),
        verdict_metric="concept presence (judge)", attack_metric="attack success rate", concept="glasses"),
    Lesson(
        "diffusion", "Erase glasses from a text-to-image model", "diffusion", "faceworld",
        "A text-to-image model draws what a prompt asks for. UCE edits its cross-attention in closed form so "
        "that 'glasses' no longer steers the picture. The check uses wordings the edit never saw, and an "
        "adversarial prompt attack.",
        (Step("Draw the prompts", "Images of a few prompts, with fixed seeds.", "generate", values={}),
         Step("Erase 'glasses' with UCE", "One closed-form edit of every cross-attention key and value matrix.",
              "unlearn", "uce", {"concept": "glasses", "eval_prompts": 2, "eval_seeds": 2}),
         Step("Attack: adversarial tokens", "UnlearnDiffAtk prepends three optimised tokens to a glasses prompt "
                                            "and tries to bring glasses back.",
              "attack", "unlearndiffatk", {"concept": "glasses", "prompts": 1, "seeds": 2, "steps": 20})),
        verdict_metric="Concept presence, held-out", attack_metric="Attack success rate", concept="glasses"),
    Lesson(
        "llm", "Make a language model refuse Python coding", "llm", "smollm2_embedded",
        "Key Space Detection watches one layer of the model: when a request looks like the Python requests it "
        "was shown, the model refuses. Does it catch requests worded differently?",
        (Step("Ask each skill", "One request per skill, answered by the model.", "generate",
              values={"per_skill": 1, "max_new_tokens": 48}),
         Step("Forget Python coding", "Fit the detector on Python requests (no training), then score 6 held-out "
                                      "requests per split on Python and on factual questions (a quick check: wide "
                                      "intervals).", "unlearn",
              "key_space_detection", {"forget_skill": "python_coding", "retain_skills": ("factual_qa",),
                                      "eval_items": 6}),
         Step("Attack: reword the requests", "Ask the same Python tasks in other words and count the escapes.",
              "attack", "paraphrase", {"forget_skill": "python_coding", "items": 8, "score_answers": False})),
        verdict_metric="python_coding score", attack_metric="best rewrite answered",
        concept="Python coding"),
)}


def find_row(rows: list[MetricRow], prefix: str) -> MetricRow | None:
    """The first row whose name starts with ``prefix`` (case-insensitive)."""
    prefix = prefix.lower()
    return next((r for r in rows if prefix and r.name.lower().startswith(prefix)), None)


def _value(row: MetricRow, which: str) -> str:
    value, interval = (row.before, row.before_ci) if which == "before" else (row.after, row.after_ci)
    if value is None:
        return "not measured"
    text = f"{value:.3g}{(' ' + row.unit) if row.unit else ''}"
    return f"{text} (95 % interval {interval[0]:.3g}-{interval[1]:.3g})" if interval else text


def conclusion(lesson: Lesson, metrics: list[MetricRow], attack: list[MetricRow], explanation: str = "") -> str:
    """'What did we learn', from this run's numbers (steps not run yet are named, not invented)."""
    lines = [f"### What did we learn? ({lesson.title})"]
    verdict = find_row(metrics, lesson.verdict_metric) or (metrics[0] if metrics else None)
    if verdict is None:
        lines.append("- Run step 2 first: there is no edit to judge yet.")
    else:
        lines.append(f"- **{verdict.name}**: {_value(verdict, 'before')} before, {_value(verdict, 'after')} after"
                     + (f", on {verdict.n} samples." if verdict.n else "."))
        clip = find_row(metrics, "concept presence (CLIP")
        if clip is not None:
            lines.append(f"- CLIP, which guided the edit, says {_value(clip, 'before')} -> {_value(clip, 'after')}. "
                         "Where it reads much lower than the judge, the edit fooled its own guide.")
    hit = find_row(attack, lesson.attack_metric) or (attack[0] if attack else None)
    if hit is None:
        lines.append("- Run step 3 to see whether an attack brings the concept back.")
    else:
        lines.append(f"- **The attack** ({hit.name}): {_value(hit, 'before')} on the base model, "
                     f"{_value(hit, 'after')} on your edit. {explanation}".rstrip())
    if verdict is not None and hit is not None and verdict.after is not None and hit.after is not None:
        passed = verdict.before is not None and verdict.after < 0.5 * verdict.before
        lines.append(f"- So: the edit {'passed' if passed else 'did not pass'} the plain check, and the attack "
                     f"{'still found ' + lesson.concept if hit.after > 0 else 'did not bring ' + lesson.concept + ' back'}"
                     f" ({_value(hit, 'after')}). Forgetting is judged by both.")
    return "\n".join(lines)
