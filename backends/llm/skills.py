"""Skill sets for LLM unlearning: prompts, references and scorer data, split into probe and test halves.

The sets are made by ``scripts/make_skill_sets.py`` from templates and hand-written tables (no
downloads) and shipped as ``assets/llm_skills/<skill>.json``; ``assets/llm_skills/README.md``
explains how each was made and why each scorer is a fair criterion. The probe half is what methods
may look at (probing, training), and so is ``probe_paraphrase``: hand-written everyday wordings of probe
tasks (Key Space Detection fits its key space on them). ``tune`` holds a few probe-side families set aside
for choosing defaults. The test half is only for measuring, and so is ``test_paraphrase``: hand-written
everyday wordings of test tasks, unlike any template. The splits are cut by task family (``add_2`` and
``add_7`` are one family), so no split is a parameter variant of another.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SKILLS: tuple[str, ...] = ("python_coding", "story_writing", "factual_qa", "antonyms")
SKILL_TITLES: dict[str, str] = {
    "python_coding": "Python coding",
    "story_writing": "Story writing",
    "factual_qa": "Simple English factual QA",
    "antonyms": "English antonyms",
}
SPLITS: tuple[str, ...] = ("probe", "probe_paraphrase", "tune", "test", "test_paraphrase")
Split = Literal["probe", "probe_paraphrase", "tune", "test", "test_paraphrase"]
MIN_ITEMS_PER_SKILL = 120
MAX_PROMPT_CHARS = 1000  # well inside SmolLM2's 8192-token context even with a chat template
MAX_USER_PROMPTS = 200
SKILL_DIR = Path(__file__).resolve().parents[2] / "assets" / "llm_skills"


@dataclass(frozen=True)
class SkillItem:
    """One prompt of a skill.

    ``reference``: a good answer (used for the likelihood score and for relearning).
    ``check``: scorer data, by skill: python_coding -> assert statements run in the sandbox;
    factual_qa and antonyms -> accepted answers separated by ``|``; story_writing -> the
    character/topic words separated by ``|`` (at least one must appear). See ``backends.llm.scoring``.
    ``family``: the task family (no family has items in both the probe and a test split).
    """

    skill: str
    prompt: str
    reference: str
    check: str
    family: str = ""


def load_skill_set(skill: str, split: Split) -> list[SkillItem]:
    """The ``split`` half of ``skill``'s set (a fresh list each call; the file is read once)."""
    if skill not in SKILLS:
        raise ValueError(f"unknown skill {skill!r}; choose one of {', '.join(SKILLS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return list(_load_file(skill)[split])


@functools.lru_cache(maxsize=None)
def _load_file(skill: str) -> dict[str, tuple[SkillItem, ...]]:
    path = SKILL_DIR / f"{skill}.json"
    if not path.exists():
        raise ValueError(f"skill set file {path} is missing; run scripts/make_skill_sets.py")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        split: tuple(SkillItem(skill, row["prompt"], row["reference"], row["check"], row["family"])
                     for row in data[split])
        for split in SPLITS
    }


def answer_span(item: SkillItem) -> tuple[int, int]:
    """[start, end) characters of the answer inside the item's reference, without the template around it.

    Antonyms and QA: the last whole-word occurrence of an accepted answer (with the space before it, so the
    word keeps its usual token), e.g. "small" in 'The opposite of "big" is "small".'. Python: the function's
    body (the ``def`` line repeats the prompt's signature; the fence is formatting). Stories have no single
    answer: the whole reference.
    """
    ref = item.reference
    if item.skill in ("antonyms", "factual_qa"):
        for option in item.check.split("|"):
            pattern = re.escape(option).replace(r"\ ", r"[\s-]")  # "twenty four" matches "twenty-four"
            matches = list(re.finditer(rf"(?<!\w){pattern}(?!\w)", ref, flags=re.IGNORECASE))
            if matches:
                start = matches[-1].start()
                while start > 0 and ref[start - 1] == " ":
                    start -= 1
                return start, matches[-1].end()
        raise ValueError(f"no accepted answer of {item.prompt!r} occurs in its reference")
    if item.skill == "python_coding":
        start = ref.index(":\n", ref.index("def ")) + 2
        return start, ref.rindex("```")
    return 0, len(ref)


def parse_user_prompts(text: str) -> list[str]:
    """User-pasted prompts: one per line; surrounding spaces and blank lines are dropped, exact
    duplicates are kept once (first occurrence). Raises ValueError on empty input, a prompt longer
    than MAX_PROMPT_CHARS characters or more than MAX_USER_PROMPTS prompts."""
    if text is None or not isinstance(text, str):
        raise ValueError("prompts must be text: paste one prompt per line")
    prompts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        prompt = line.strip()
        if not prompt:
            continue
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"prompt on line {number} has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        if prompt not in prompts:
            prompts.append(prompt)
    if not prompts:
        raise ValueError("no prompts given: paste at least one prompt, one per line")
    if len(prompts) > MAX_USER_PROMPTS:
        raise ValueError(f"{len(prompts)} prompts given; the limit is {MAX_USER_PROMPTS}")
    return prompts
