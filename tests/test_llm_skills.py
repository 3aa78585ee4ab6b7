"""Skill sets: sizes, deterministic generation, disjoint probe/test halves, user prompt parsing."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from backends.llm.scoring import behaviour_score, normalise
from backends.llm.skills import (
    MAX_PROMPT_CHARS,
    MAX_USER_PROMPTS,
    MIN_ITEMS_PER_SKILL,
    SKILL_DIR,
    SKILLS,
    SPLITS,
    SkillItem,
    load_skill_set,
    parse_user_prompts,
)

REPO = Path(__file__).resolve().parents[1]


def _make_module():
    spec = importlib.util.spec_from_file_location("make_skill_sets", REPO / "scripts" / "make_skill_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skills_cover_the_required_ones():
    assert "python_coding" in SKILLS and len(SKILLS) >= 4
    from backends.llm.backend import SKILL_MAX_NEW_TOKENS

    assert set(SKILL_MAX_NEW_TOKENS) == set(SKILLS), "every skill has an evaluation answer cap"


@pytest.mark.parametrize("skill", SKILLS)
def test_skill_set_size_and_disjoint_halves(skill):
    probe = load_skill_set(skill, "probe")
    test = load_skill_set(skill, "test")
    tune = load_skill_set(skill, "tune")
    assert len(probe) + len(tune) + len(test) >= MIN_ITEMS_PER_SKILL
    assert abs(len(probe) + len(tune) - len(test)) <= 4  # the tune split is carved from the probe half
    probe_prompts = {item.prompt for item in probe}
    test_prompts = {item.prompt for item in test}
    assert len(probe_prompts) == len(probe) and len(test_prompts) == len(test)
    assert not probe_prompts & test_prompts
    for item in probe + test:
        assert isinstance(item, SkillItem) and item.skill == skill
        assert item.prompt.strip() and item.reference.strip() and item.check.strip()
        assert len(item.prompt) <= MAX_PROMPT_CHARS


@pytest.mark.parametrize("skill", SKILLS)
def test_shipped_files_equal_a_fresh_deterministic_generation(skill):
    module = _make_module()
    first = module.make_skill_set(skill)
    second = _make_module().make_skill_set(skill)
    assert first == second
    shipped = json.loads((SKILL_DIR / f"{skill}.json").read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(first))


def test_story_subjects_stay_in_one_half():
    module = _make_module()
    probe = [item.prompt for item in load_skill_set("story_writing", "probe") + load_skill_set("story_writing", "tune")]
    test = [item.prompt for item in load_skill_set("story_writing", "test")]
    for subject, _, _ in module.STORY_SUBJECTS:
        in_probe = any(prompt.endswith(f"about {subject}.") for prompt in probe)
        in_test = any(prompt.endswith(f"about {subject}.") for prompt in test)
        assert in_probe != in_test, subject


def _antonym_pairs(split: str) -> set[tuple[str, str]]:
    pairs = set()
    for item in load_skill_set("antonyms", split):
        word, opposite = re.findall(r'"([^"]+)"', item.reference)
        pairs.add(tuple(sorted((word, opposite))))
    return pairs


def test_antonym_pairs_stay_in_one_half():
    """"big"->"small" and "small"->"big" are one group: never one in probe and the other in test."""
    assert not _antonym_pairs("probe") & _antonym_pairs("test")


@pytest.mark.parametrize("skill", SKILLS)
def test_paraphrase_split_is_disjoint_from_the_probe_half_by_family_and_by_text(skill):
    probe = load_skill_set(skill, "probe")
    test = load_skill_set(skill, "test")
    paraphrase = load_skill_set(skill, "test_paraphrase")
    assert len(paraphrase) >= 24
    probe_families = {item.family for item in probe}
    assert all(item.family for item in probe + test + paraphrase)
    assert not probe_families & {item.family for item in test + paraphrase}
    assert {item.family for item in paraphrase} <= {item.family for item in test}
    texts = [normalise(item.prompt) for item in paraphrase]
    assert len(set(texts)) == len(texts)
    assert not set(texts) & {normalise(item.prompt) for item in probe + test}


@pytest.mark.parametrize("skill", SKILLS)
def test_probe_paraphrase_and_tune_splits_are_disjoint_from_each_other_and_the_test_side(skill):
    """Key Space Detection fits on probe_paraphrase and defaults are tuned on tune: neither may share a
    family or a prompt with test or test_paraphrase, nor tune with what methods train on."""
    splits = {split: load_skill_set(skill, split) for split in SPLITS}
    assert len(splits["probe_paraphrase"]) >= 16 and len(splits["tune"]) >= 12
    families = {split: {item.family for item in items} for split, items in splits.items()}
    texts = {split: {normalise(item.prompt) for item in items} for split, items in splits.items()}
    test_side = families["test"] | families["test_paraphrase"]
    assert not (families["probe"] | families["probe_paraphrase"] | families["tune"]) & test_side
    assert families["probe_paraphrase"] <= families["probe"]
    assert not families["tune"] & (families["probe"] | families["probe_paraphrase"])
    for a in SPLITS:
        assert len(texts[a]) == len(splits[a])
        for b in SPLITS:
            if a < b:
                assert not texts[a] & texts[b], (a, b)


def test_parametrised_python_families_stay_in_one_half():
    """add_2 in the probe half and add_7 in the test half would test a parameter, not a skill."""
    def names(split):
        return {re.match(r"```python\ndef (\w+)", item.reference).group(1) for item in load_skill_set("python_coding", split)}

    probe, test = names("probe") | names("tune"), names("test")
    for sig, *_ in _make_module().PYTHON_FAMILIES:
        pattern = re.compile(re.escape(sig.split("(")[0]).replace(r"\{k\}", r"\d+").replace(r"\{c\}", "[a-z]") + "$")
        members = [n for n in probe | test if pattern.match(n)]
        assert len(members) >= 4, sig
        assert {n in probe for n in members} in ({True}, {False}), sig


def test_paraphrases_are_not_the_templates():
    module = _make_module()
    templates = module.PYTHON_PROMPTS + module.STORY_PROMPTS + module.ANTONYM_PROMPTS
    openings = {normalise(t.split("{")[0]) for t in templates} | {normalise("What is the capital of")}
    for skill in SKILLS:
        for item in load_skill_set(skill, "test_paraphrase") + load_skill_set(skill, "probe_paraphrase"):
            assert not any(normalise(item.prompt).startswith(o) for o in openings if o), item.prompt


@pytest.mark.parametrize("skill", [s for s in SKILLS if s != "python_coding"])
def test_references_get_full_marks(skill):
    for item in (item for split in SPLITS for item in load_skill_set(skill, split)):
        assert behaviour_score(item, item.reference) == 1.0, item.prompt


def test_code_references_pass_their_asserts_sample():
    items = load_skill_set("python_coding", "test")[:4] + load_skill_set("python_coding", "test_paraphrase")[:2]
    for item in items:
        assert behaviour_score(item, item.reference) == 1.0, item.prompt


def test_load_skill_set_errors_and_fresh_lists():
    with pytest.raises(ValueError, match="unknown skill"):
        load_skill_set("juggling", "probe")
    with pytest.raises(ValueError, match="unknown split"):
        load_skill_set("python_coding", "train")
    first = load_skill_set("factual_qa", "probe")
    first.clear()
    assert load_skill_set("factual_qa", "probe")


def test_parse_user_prompts_lines_blank_and_duplicates():
    text = "  Write a poem about rain  \n\n\tWhat is 2+2?\nWrite a poem about rain\n   \n"
    assert parse_user_prompts(text) == ["Write a poem about rain", "What is 2+2?"]


@pytest.mark.parametrize("text", ["", "   \n\n \t\n"])
def test_parse_user_prompts_empty(text):
    with pytest.raises(ValueError, match="no prompts"):
        parse_user_prompts(text)


def test_parse_user_prompts_too_long_names_the_line():
    text = "short prompt\n" + "x" * (MAX_PROMPT_CHARS + 1)
    with pytest.raises(ValueError, match=f"line 2 .*limit is {MAX_PROMPT_CHARS}"):
        parse_user_prompts(text)
    assert parse_user_prompts("y" * MAX_PROMPT_CHARS) == ["y" * MAX_PROMPT_CHARS]


def test_parse_user_prompts_too_many_and_wrong_type():
    with pytest.raises(ValueError, match="limit is"):
        parse_user_prompts("\n".join(f"prompt {i}" for i in range(MAX_USER_PROMPTS + 1)))
    with pytest.raises(ValueError, match="must be text"):
        parse_user_prompts(None)  # type: ignore[arg-type]
