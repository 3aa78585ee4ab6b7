"""Behavioural scores of a model's answer to a skill prompt, each in [0, 1]; abstention scores 0.

Criteria (justified in ``assets/llm_skills/README.md``):
* python_coding: the code in the answer (fenced or bare) runs and passes the item's asserts in the
  sandbox (``backends.llm.sandbox``): 1 or 0;
* factual_qa and antonyms: an accepted answer occurs in the answer as whole words after
  lower-casing and removing punctuation and accents: 1 or 0;
* story_writing: at least STORY_MIN_WORDS words of prose (no code), not degenerate (enough distinct
  words), mentioning the requested character or topic: 1 or 0.
"""
from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from backends.llm.sandbox import first_program_closed, run_python

if TYPE_CHECKING:
    from backends.llm.skills import SkillItem

REFUSAL_TEXT = "I'm sorry, I can't help with that."
STORY_MIN_WORDS = 30
STORY_MIN_DISTINCT_RATIO = 0.35
CODE_TIMEOUT_S = 3.0
CODE_MEMORY_MB = 256

_REFUSAL_OPENINGS = (
    "i'm sorry", "i am sorry", "sorry,", "sorry but", "i can't", "i cannot", "i can not", "i won't",
    "i will not", "i'm not able", "i am not able", "i'm unable", "i am unable", "as an ai",
    "i don't know", "i do not know", "i apologize", "i apologise", "unfortunately, i",
)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CODE_MARKERS_RE = re.compile(r"```|^\s*(def |class |import |for .* in .*:|print\()", re.MULTILINE)


#: is_refusal reads this many characters of an answer's opening (REFUSAL_TEXT and 20 more).
REFUSAL_WINDOW = len(REFUSAL_TEXT) + 20


def _opening(answer: str) -> str:
    """The lower-cased answer without its quotes and emphasis marks, as :func:`is_refusal` reads it."""
    return answer.strip().strip("\"'`*").strip().lower().replace("\u2019", "'")


def is_refusal(answer: str) -> bool:
    """True if the answer abstains: empty, KSD's REFUSAL_TEXT, or opening with a refusal phrase."""
    text = _opening(answer)
    if not text:
        return True
    if REFUSAL_TEXT.lower() in text[:REFUSAL_WINDOW]:
        return True
    return text.startswith(_REFUSAL_OPENINGS)


def normalise(text: str) -> str:
    """Lower case, accents removed, punctuation replaced by spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^a-z0-9' ]+", " ", text).replace("'", " ")
    return " ".join(text.split())


def _contains_words(haystack: str, needle: str) -> bool:
    """Whole-word containment of already normalised strings."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def behaviour_score(item: SkillItem, answer: str) -> float:
    """Score ``answer`` to ``item`` in [0, 1] with the item's skill's criterion; refusals score 0."""
    if not isinstance(answer, str):
        raise ValueError("answer must be a string")
    if is_refusal(answer):
        return 0.0
    scorer = _SCORERS.get(item.skill)
    if scorer is None:
        raise ValueError(f"no scorer for skill {item.skill!r}")
    return scorer(item, answer)


def answer_settled(item: SkillItem, answer: str) -> bool:
    """Whether no continuation of ``answer`` (a prefix of a greedy answer) can change its score, so decoding
    can stop: the opening that :func:`is_refusal` reads is complete, and
    * python_coding: the program :func:`~backends.llm.sandbox.extract_code` takes is complete: a closed
      fenced Python block that defines a function or class (the first such block wins, whatever follows);
    * factual_qa, antonyms: an accepted answer already occurs as whole words, followed by a word boundary
      (a score of 1 cannot be lost by more text);
    * story_writing: never (more text may add code, repeat itself or name the topic).
    """
    if len(_opening(answer)) <= REFUSAL_WINDOW or answer.endswith("\ufffd"):  # (a token may end mid-character)
        return False
    if item.skill == "python_coding":
        return first_program_closed(answer)
    if item.skill in ("factual_qa", "antonyms"):  # the scorer, on the text without its last (maybe partial) word
        return _score_qa(item, normalise(answer).rpartition(" ")[0]) == 1.0
    return False


def _score_code(item: SkillItem, answer: str) -> float:
    result = run_python(answer, item.check, timeout_s=CODE_TIMEOUT_S, memory_mb=CODE_MEMORY_MB)
    return 1.0 if result.passed else 0.0


def _score_qa(item: SkillItem, answer: str) -> float:
    text = normalise(answer)
    accepted = [normalise(option) for option in item.check.split("|")]
    return 1.0 if any(_contains_words(text, option) for option in accepted) else 0.0


def _score_story(item: SkillItem, answer: str) -> float:
    if _CODE_MARKERS_RE.search(answer):
        return 0.0
    words = _WORD_RE.findall(answer.lower())
    if len(words) < STORY_MIN_WORDS:
        return 0.0
    if len(set(words)) / len(words) < STORY_MIN_DISTINCT_RATIO:
        return 0.0
    text = normalise(answer)
    topics = [normalise(topic) for topic in item.check.split("|")]
    mentioned = any(_contains_words(text, topic) or _contains_words(text, topic + "s") for topic in topics)
    return 1.0 if mentioned else 0.0


_SCORERS = {
    "python_coding": _score_code,
    "factual_qa": _score_qa,
    "story_writing": _score_story,
    "antonyms": _score_qa,
}
