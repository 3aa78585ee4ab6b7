"""Knowledge and request probes: high where the answer is decodable, chance where it is not (tiny models)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backends import registry
from backends.contract import AttackCall
from backends.jobs import JobContext
from backends.llm.probes import (
    KnowledgeProbeConfig,
    knowledge_probe_data,
    last_token_states,
    probe_accuracies,
    random_twin,
    return_type,
)
from backends.llm.skills import SkillItem


@pytest.fixture(scope="module")
def tiny():
    return registry.preset("llm", "tiny").load("cpu")


def test_probe_reads_a_linearly_embedded_label_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 2
    noise = rng.normal(size=(3, 80, 16))
    embedded = noise.copy()
    embedded[:, :, 0] += 6 * labels  # the label is one direction of every layer
    assert min(probe_accuracies(embedded, labels, folds=4)) > 0.95
    assert max(probe_accuracies(noise, labels, folds=4)) < 0.7


def test_tiny_model_exposes_a_label_written_in_the_prompt_but_not_shuffled_labels(tiny):
    words = ["apple", "river", "stone", "cloud", "table", "green", "paper", "light", "horse", "music"]
    # Most of each prompt is its label's letter, so attention carries it to the answer position.
    prompts = [f"{w}: {label * 40}" for w in words for label in "AB"]
    labels = np.array([0, 1] * len(words))
    states = last_token_states(tiny, prompts)
    assert states.shape[:2] == (tiny.n_layers, len(prompts))
    assert max(probe_accuracies(states, labels, folds=4)) >= 0.9
    shuffled = np.random.default_rng(1).permutation(labels)
    assert max(probe_accuracies(states, shuffled, folds=4)) <= 0.75


def test_return_types_come_from_the_first_assert():
    def item(check):
        return SkillItem("python_coding", "p", "r", check)

    assert return_type(item("assert is_even(4) is True")) == "bool"
    assert return_type(item("assert squares([1]) == [1]")) == "list"
    assert return_type(item("assert greet('A') == 'Hello, A!'")) == "str"
    assert return_type(item("assert add(2, 3) == 5")) == "number"


@pytest.mark.parametrize("skill", ["factual_qa", "antonyms"])
def test_two_option_questions_are_balanced_and_the_label_names_the_right_option(skill):
    from backends.llm.skills import load_skill_set

    prompts, labels, classes = knowledge_probe_data(skill, 40)
    assert classes == ["A", "B"] and abs(int(labels.sum()) - 20) <= 1
    for item, prompt, label in zip(load_skill_set(skill, "test"), prompts, labels):
        right = item.check.split("|")[0]
        option = prompt.split(f"({classes[label]}) ")[1].split(" or (B)")[0].rstrip("?")
        assert option.split("?")[0] == right


def test_random_twin_has_the_architecture_but_not_the_weights(tiny):
    twin = random_twin(tiny)
    assert type(twin.model) is type(tiny.model) and twin is random_twin(tiny)
    pairs = list(zip(tiny.model.parameters(), twin.model.parameters()))
    assert all(a.shape == b.shape for a, b in pairs)
    assert not all(torch.equal(a, b) for a, b in pairs)


def test_knowledge_probe_reports_controls_per_layer(tiny):
    be = registry.backend("llm")
    spec = registry.attack("llm", "knowledge_probe")
    result = spec.run(AttackCall(be, tiny, tiny, False, KnowledgeProbeConfig(skill="antonyms", items=16, folds=2),
                                 JobContext.standalone()))
    assert set(result.chart.series) == {"base", "edited", "random model (control)", "shuffled labels (chance)"}
    assert len(result.table) == tiny.n_layers
    above = result.summary[0]
    assert above.unit == "pts" and above.n == 16
    assert above.before == pytest.approx(max(row["base above control (pts)"] for row in result.table), abs=0.1)
    assert result.explanation
