"""What every LLM method is configured with: the forget skill, the retain skills, pasted prompts and the
evaluation size (:class:`SkillConfig`), resolved into prompt sets by :func:`resolve_skill_sets`, which
raises ValueError on bad input. Methods import this module, not the backend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.llm.skills import SKILLS

if TYPE_CHECKING:
    from backends.llm.bundles import LLMBundle

CUSTOM = "custom"
MIN_PROBE_PROMPTS = 4
MAX_PASTED_CHARS = 40_000


@dataclass(frozen=True)
class SkillConfig:
    """Fields shared by every LLM method: what to forget, what to keep, how much to evaluate."""

    forget_skill: str = param("python_coding", choices=SKILLS + (CUSTOM,),
                              help="The skill to unlearn; its probe half is the forget set. "
                                   f"'{CUSTOM}': only the forget prompts you paste below.")
    retain_skills: tuple[str, ...] = param((), max_items=len(SKILLS), label="Retain skills",
                                           help="Skills to keep, one per line (empty: every other skill "
                                                "not unlearned by an earlier request). "
                                                f"Known: {', '.join(SKILLS)}.")
    forget_prompts: str = param("", widget="textarea", max_length=MAX_PASTED_CHARS, advanced=True,
                                help="Extra forget prompts, one per line.")
    retain_prompts: str = param("", widget="textarea", max_length=MAX_PASTED_CHARS, advanced=True,
                                help="Extra retain prompts, one per line.")
    probe_items: int = param(60, min=0, max=500, advanced=True,
                             help="Forget-skill probe prompts used (0: the whole probe half); the retain set "
                                  "gets as many, spread evenly over the retain skills.")
    eval_items: int = param(16, min=0, max=500, label="Evaluation prompts per skill", evaluation=True,
                            help="Held-out prompts per skill and split (test half; unseen phrasings, at most 24) "
                                 "for the before/after scores (0: all of them).")
    eval_max_new_tokens: int = param(160, min=8, max=512, advanced=True, evaluation=True,
                                     help="Answer length cap while evaluating (each skill also has its own "
                                          "cap: 160 code, 96 story, 40 QA, 24 antonyms tokens).")


@dataclass(frozen=True)
class SkillSets:
    """Resolved prompt sets of a method config."""

    forget_skill: str
    retain_skills: tuple[str, ...]
    forget_prompts: list[str]
    retain_prompts: list[str]
    forget_answers: list[str | None]        # reference answers (None for pasted prompts)
    retain_answers: list[str | None]
    retain_labels: list[str]                # skill of each retain prompt ("pasted" for pasted ones)


def parse_pasted(text: str, what: str) -> list[str]:
    from backends.llm.skills import parse_user_prompts

    if not text.strip():
        return []
    try:
        return parse_user_prompts(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def retain_skill_names(forget_skill: str, retain_skills: tuple[str, ...],
                       forgotten: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Validated retain skills (empty: every skill but the forget skill and the ``forgotten`` ones, those
    earlier requests on the same edit unlearned)."""
    unknown = [s for s in retain_skills if s not in SKILLS]
    if unknown:
        raise ValueError(f"unknown retain skill(s): {', '.join(unknown)}; known: {', '.join(SKILLS)}")
    if forget_skill in retain_skills:
        raise ValueError(f"{forget_skill!r} is both the forget skill and a retain skill: pick one")
    return tuple(retain_skills) or tuple(s for s in SKILLS if s != forget_skill and s not in forgotten)


def resolve_skill_sets(config: SkillConfig, bundle: "LLMBundle | None" = None,
                       min_forget: int = MIN_PROBE_PROMPTS, need_retain: bool = True) -> SkillSets:
    """Forget and retain prompts of a method config; ValueError on empty, overlapping or too small sets.
    With ``bundle``, the default retain skills leave out what earlier requests on it unlearned."""
    from backends.llm.chat import encode_chat
    from backends.llm.skills import load_skill_set

    if config.forget_skill != CUSTOM and config.forget_skill not in SKILLS:
        raise ValueError(f"unknown forget skill {config.forget_skill!r}; known: {', '.join(SKILLS)}, {CUSTOM}")
    retain_skills = retain_skill_names(config.forget_skill, config.retain_skills,
                                       bundle.forgotten if bundle is not None else ())
    limit = config.probe_items or None

    forget_prompts: list[str] = []
    forget_answers: list[str | None] = []
    if config.forget_skill != CUSTOM:
        for item in load_skill_set(config.forget_skill, "probe")[:limit]:
            forget_prompts.append(item.prompt)
            forget_answers.append(item.reference)
    pasted_forget = parse_pasted(config.forget_prompts, "forget prompts")
    forget_prompts += pasted_forget
    forget_answers += [None] * len(pasted_forget)

    retain_prompts: list[str] = []
    retain_answers: list[str | None] = []
    retain_labels: list[str] = []
    # The retain set has as many prompts as the forget skill's, spread evenly over the retain skills.
    per_retain = math.ceil((limit or len(forget_prompts)) / len(retain_skills)) if retain_skills else 0
    for skill in retain_skills:
        for item in load_skill_set(skill, "probe")[:per_retain]:
            retain_prompts.append(item.prompt)
            retain_answers.append(item.reference)
            retain_labels.append(skill)
    pasted_retain = parse_pasted(config.retain_prompts, "retain prompts")
    retain_prompts += pasted_retain
    retain_answers += [None] * len(pasted_retain)
    retain_labels += ["pasted"] * len(pasted_retain)

    if not forget_prompts:
        raise ValueError("the forget set is empty: pick a forget skill or paste forget prompts")
    if len(forget_prompts) < min_forget:
        raise ValueError(f"too few forget prompts: {len(forget_prompts)}, this method needs at least {min_forget}")
    if need_retain and not retain_prompts:
        raise ValueError("the retain set is empty: keep at least one retain skill or paste retain prompts")
    overlap = sorted(set(p.strip() for p in forget_prompts) & set(p.strip() for p in retain_prompts))
    if overlap:
        raise ValueError(f"{len(overlap)} prompt(s) are in both the forget and the retain set, e.g. "
                         f"{overlap[0][:60]!r}: a prompt cannot be forgotten and kept at once")
    if bundle is not None:
        encode_chat(bundle, forget_prompts, [a or "" for a in forget_answers])
        encode_chat(bundle, retain_prompts, [a or "" for a in retain_answers])
    return SkillSets(config.forget_skill, retain_skills, forget_prompts, retain_prompts,
                     forget_answers, retain_answers, retain_labels)
