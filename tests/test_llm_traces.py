"""Parametric-trace probe: finds a planted value vector, reports 0 for run-time edits, more than random
for an edit of the trace (tiny model)."""
from __future__ import annotations

import pytest
import torch

from backends import registry
from backends.contract import AttackCall
from backends.jobs import JobContext
from backends.llm import bundles
from backends.llm.key_space_detection import fit_region
from backends.llm.traces import TraceConfig, relative_change, skill_tokens, trace_scores, value_vectors


@pytest.fixture(scope="module")
def tiny():
    return registry.preset("llm", "tiny").load("cpu")


def run_trace(base, edited, cfg):
    attack = registry.attack("llm", "parametric_trace")
    return attack.run(AttackCall(registry.backend("llm"), base, edited, True, cfg, JobContext.standalone()))


def planted(tiny, skill: str) -> tuple[object, int, int]:
    """A private copy of ``tiny`` whose layer-2 neuron 3 writes ``skill``'s answer tokens, and where it is."""
    copy = bundles.clone_bundle(tiny)
    bundles.own_weights(copy)
    tokens = skill_tokens(copy, skill)
    direction = copy.model.get_output_embeddings().weight[tokens].mean(0) - copy.model.get_output_embeddings().weight.mean(0)
    down = bundles.mlp_modules(copy.model)[1].down_proj.weight  # (D, I)
    down[:, 3] = 50 * direction / direction.norm() / copy.model.model.norm.weight
    return copy, 1, 3


def test_relative_change_is_the_norm_ratio():
    before = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    after = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    assert relative_change(before, after).tolist() == pytest.approx([0.0, 2.0])


def test_a_planted_value_vector_ranks_first(tiny):
    skill = "python_coding"
    copy, layer, neuron = planted(tiny, skill)
    scores = trace_scores(copy, value_vectors(copy), skill_tokens(copy, skill))
    per_layer = bundles.mlp_modules(copy.model)[0].down_proj.weight.shape[1]
    assert int(scores.argmax()) == layer * per_layer + neuron


def test_a_run_time_edit_leaves_the_trace_unchanged_and_editing_the_trace_shows(tiny):
    cfg = TraceConfig(forget_skill="python_coding", vectors=1, random_vectors=32)
    copy, layer, neuron = planted(tiny, cfg.forget_skill)
    hooked = registry.backend("llm").clone(copy)  # a hook edit (abstention) with the weights shared
    width = bundles.mlp_modules(copy.model)[-1].down_proj.weight.shape[1]
    hooked.edits = (fit_region(torch.randn(4, width), 1.0, "no", "box"),)
    result = run_trace(copy, hooked, cfg)
    assert result.summary[0].after == 0.0 and result.summary[1].after == 0.0
    edited = bundles.clone_bundle(copy)
    bundles.own_weights(edited)
    bundles.mlp_modules(edited.model)[layer].down_proj.weight[:, neuron] *= 0.5
    result = run_trace(copy, edited, cfg)
    assert result.summary[0].after == pytest.approx(0.5, rel=1e-4)
    assert result.summary[1].after < 0.05
    assert result.table[0]["layer"] == layer + 1 and result.table[0]["neuron"] == neuron
