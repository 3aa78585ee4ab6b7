"""Behavioural scorers: each criterion accepts good answers, rejects bad ones, and refusals score 0."""
from __future__ import annotations

import pytest

from backends.llm.scoring import (REFUSAL_TEXT, STORY_MIN_WORDS, answer_settled, behaviour_score, is_refusal,
                                  normalise)
from backends.llm.skills import SKILLS, SkillItem, load_skill_set

CODE = SkillItem("python_coding", "Write a Python function `add(a, b)` that returns the sum of a and b.",
                 "```python\ndef add(a, b):\n    return a + b\n```", "assert add(2, 3) == 5\nassert add(-1, 1) == 0")
QA = SkillItem("factual_qa", "What is the capital of France?", "The capital of France is Paris.", "Paris")
NUMBER_QA = SkillItem("factual_qa", "How many legs does a spider have?", "A spider has eight legs.", "8|eight")
ANTONYM = SkillItem("antonyms", "What is the opposite of 'big'? Answer with one word.",
                    'The opposite of "big" is "small".', "small|little|tiny")
STORY = SkillItem("story_writing", "Write a short story about a brave little mouse named Pip.", "...", "Pip|mouse")
GOOD_STORY = (
    "Once upon a time, in a small village, there lived a little mouse named Pip. Pip was curious and "
    "adventurous and loved to explore the fields behind the old barn. One day a storm came, and Pip "
    "helped his friends find shelter under a wooden cart until the sun came back."
)


@pytest.mark.parametrize("answer", [
    REFUSAL_TEXT, "  I'm sorry, but I cannot help with that request.", "I cannot answer that.",
    "As an AI, I do not write code.", "", "   \n", "\"I'm sorry, I can't help with that.\"",
    "I\u2019m sorry, I can\u2019t help with that.",
])
def test_refusals_are_detected(answer):
    assert is_refusal(answer)


@pytest.mark.parametrize("answer", [
    "The capital of France is Paris.", GOOD_STORY,
    "Pip looked at the owl. \"I'm sorry,\" said the owl, \"I cannot stay.\" " * 3,
])
def test_normal_answers_are_not_refusals(answer):
    assert not is_refusal(answer)


@pytest.mark.parametrize("item", [CODE, QA, ANTONYM, STORY])
def test_refusal_scores_zero_for_every_skill(item):
    assert behaviour_score(item, REFUSAL_TEXT) == 0.0
    # abstention first, the right answer afterwards still counts as abstaining
    assert behaviour_score(item, REFUSAL_TEXT + " " + item.reference) == 0.0


def test_every_shipped_skill_has_a_scorer():
    for skill in SKILLS:
        item = load_skill_set(skill, "probe")[0]
        assert 0.0 <= behaviour_score(item, "Something unrelated about the weather.") <= 1.0


def test_code_scorer_runs_the_asserts():
    answer = "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds numbers."
    assert behaviour_score(CODE, answer) == 1.0
    assert behaviour_score(CODE, "```python\ndef add(a, b):\n    return a - b\n```") == 0.0
    assert behaviour_score(CODE, "The sum is computed with the plus operator.") == 0.0


def test_qa_scorer_is_case_punctuation_and_word_boundary_aware():
    assert behaviour_score(QA, "PARIS!") == 1.0
    assert behaviour_score(QA, "It's Paris, of course.") == 1.0
    assert behaviour_score(QA, "The capital of France is Lyon.") == 0.0
    assert behaviour_score(QA, "Parisian cafes are nice.") == 0.0
    assert behaviour_score(NUMBER_QA, "A spider has 8 legs.") == 1.0
    assert behaviour_score(NUMBER_QA, "Spiders have eight legs.") == 1.0
    assert behaviour_score(NUMBER_QA, "A spider has 18 legs.") == 0.0


def test_antonym_scorer():
    assert behaviour_score(ANTONYM, 'The opposite of "big" is "small."') == 1.0
    assert behaviour_score(ANTONYM, "Tiny.") == 1.0
    assert behaviour_score(ANTONYM, 'The opposite of "big" is "large".') == 0.0


def test_story_scorer_criteria():
    assert len(GOOD_STORY.split()) >= STORY_MIN_WORDS
    assert behaviour_score(STORY, GOOD_STORY) == 1.0
    assert behaviour_score(STORY, "Pip the mouse went home.") == 0.0  # too short
    off_topic = GOOD_STORY.replace("mouse named Pip", "girl named Ann").replace("Pip", "Ann")
    assert behaviour_score(STORY, off_topic) == 0.0  # character never mentioned
    assert behaviour_score(STORY, "Pip mouse " * 40) == 0.0  # degenerate repetition
    code_answer = GOOD_STORY + "\n```python\nprint('Pip')\n```"
    assert behaviour_score(STORY, code_answer) == 0.0  # code is not prose
    plural = GOOD_STORY.replace("a little mouse named Pip", "two little mice").replace("Pip", "the mice")
    assert behaviour_score(SkillItem("story_writing", "p", "r", "mouse|mice"), plural) == 1.0


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="no scorer"):
        behaviour_score(SkillItem("juggling", "p", "r", "c"), "an answer")
    with pytest.raises(ValueError, match="string"):
        behaviour_score(QA, None)  # type: ignore[arg-type]


def test_normalise():
    assert normalise("  Bogotá,  CAFÉ!! it\u2019s ") == "bogota cafe it s"


CODE_ANSWER = "Here is a function that adds two numbers:\n\n```python\ndef add(a, b):\n    return a + b\n```"
WRONG_CODE_ANSWER = "Here is a function that adds two numbers:\n\n```python\ndef add(a, b):\n    return a - b\n```"
#: What a model might write after an answer whose score is settled: none of it may change the score.
CONTINUATIONS = (
    "", "\n\nThis function returns the sum.", f" {REFUSAL_TEXT}", "\n```python\ndef add(a, b):\n    return 0\n```",
    "ian blah", " and Lyon and Marseille", "\n\nimport os\nos.remove('x')", " small " * 40,
)


@pytest.mark.parametrize("item, answer", [
    (CODE, CODE_ANSWER), (CODE, WRONG_CODE_ANSWER),
    (QA, "The capital of France is Paris, a city on the Seine with many museums"),
    (ANTONYM, 'The opposite of "big" is "small", as in a small house or a small dog'),
])
def test_a_settled_answer_scores_the_same_whatever_follows(item, answer):
    assert answer_settled(item, answer)
    for extra in CONTINUATIONS:
        assert behaviour_score(item, answer + extra) == behaviour_score(item, answer), extra


@pytest.mark.parametrize("item, answer", [
    (CODE, "Here is a function that adds two numbers:\n\n```python\ndef add(a, b):\n    return a + b\n"),  # open
    (CODE, "Here is a function that adds two numbers, in words first: take a, then add b to it."),
    (CODE, "```bash\ndef add(a, b):\n    return a + b\n``` and more words to pass the opening window here"),
    (QA, "Paris"),                                            # the refusal window is not read yet
    (QA, "The capital of France is a city on the Seine named Paris"),  # may go on as "Parisian"
    (QA, "The capital of France is a city on the Seine named Lyon, or is it? The capital is"),
    (STORY, GOOD_STORY),
    (QA, "The capital of France is a city on the Seine named Paris\ufffd"),
])
def test_an_answer_whose_score_may_still_change_is_not_settled(item, answer):
    assert not answer_settled(item, answer)


def test_settled_is_never_claimed_where_a_continuation_changes_the_score():
    """Every prefix of each answer at a character boundary: where settled, the final score is already decided."""
    for item, answer in [(CODE, CODE_ANSWER + "\n\nIt adds. " + REFUSAL_TEXT),
                         (QA, "The capital of France is Paris. I'm sorry, I can't help with that."),
                         (ANTONYM, "Small is the opposite. " + REFUSAL_TEXT)]:
        final = behaviour_score(item, answer)
        settled_at = [k for k in range(len(answer) + 1) if answer_settled(item, answer[:k])]
        assert settled_at, "each of these answers settles somewhere"
        assert all(behaviour_score(item, answer[:k]) == final for k in settled_at)
