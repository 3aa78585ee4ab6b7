"""LLM methods on hand examples and the tiny random Llama: NA, KSD, GA/GradDiff, NPO, attacks."""
from __future__ import annotations

import math

import pytest
import torch

from backends import registry
from backends.contract import AttackCall, MethodCall
from backends.jobs import JobContext
from backends.llm import abstention, bundles, chat, decoding, likelihood
from backends.llm.attacks import steps_to_recover_half
from backends.llm.hooks import token_uniforms
from backends.llm.flat import TEMPLATE_REFUSALS, FlatConfig, flat_loss, mean_token_probability
from backends.llm.grad_ascent import GradAscentConfig, GradDiffConfig
from backends.llm.hooks import capture
from backends.llm.key_space_detection import (
    KeySpaceDetectionConfig,
    capped_h,
    fit_region,
    key_score,
    smallest_k,
    z_max,
)
from backends.llm.neuron_adjust import NeuronAdjustEdit, adjust, select_neurons
from backends.llm.npo import NPOConfig, npo_loss
from backends.llm.scoring import REFUSAL_TEXT
from backends.llm.skills import load_skill_set


def ctx() -> JobContext:
    return JobContext.standalone()


@pytest.fixture(scope="module")
def tiny():
    return registry.preset("llm", "tiny").load("cpu")


def run_method(name, base, config):
    be = registry.backend("llm")
    edited = be.clone(base)
    registry.method("llm", name).run(MethodCall(be, base, edited, config, ctx()))
    return edited


# ---------------------------------------------------------------- Neuron Adjust
def test_neuron_adjust_replaces_forget_like_values_by_the_mirrored_retain_value():
    # neuron 0: forget N(5, 1), retain N(0, 1); neuron 1 is not selected.
    out = torch.tensor([[[5.0, 7.0], [6.0, 7.0], [-1.0, 7.0]]])  # (B=1, T=3, I=2)
    new = adjust(out, torch.tensor([0]), torch.tensor([5.0]), torch.tensor([1.0]), torch.tensor([0.0]),
                 torch.tensor([1.0]), torch.full((1, 3, 1), 1e-9))  # coins that always allow the swap
    # x = 5 and x = 6 are far more likely under forget (p_f / (p_r + p_f) ~ 1): x -> mu_r - s_r (x - mu_f) / s_f
    assert new[0, 0, 0].item() == pytest.approx(0.0)
    assert new[0, 1, 0].item() == pytest.approx(-1.0)
    assert new[0, 2, 0].item() == -1.0            # more likely under retain: kept
    assert torch.equal(new[..., 1], out[..., 1])  # unselected neuron untouched
    assert out[0, 0, 0].item() == 5.0             # the input is not modified in place


def test_neuron_adjust_replaces_with_probability_p_forget():
    # forget N(4, 1), retain N(0, 2), x = 3: p_f / (p_r + p_f) by hand; the replacement is 0 - 2 (3 - 4) / 1 = 2.
    p_f = math.exp(-0.5 * 1.0) / 1.0
    p_r = math.exp(-0.5 * (3 / 2) ** 2) / 2.0
    out = torch.full((1, 8000, 1), 3.0)
    coins = token_uniforms(0, 3, torch.tensor([0]), torch.arange(8000)[None], torch.zeros(1, 8000))  # (1, T, 1)
    new = adjust(out, torch.tensor([0]), torch.tensor([4.0]), torch.tensor([1.0]), torch.tensor([0.0]),
                 torch.tensor([2.0]), coins)
    replaced = new != 3.0
    assert replaced.float().mean().item() == pytest.approx(p_f / (p_r + p_f), abs=0.02)
    assert torch.allclose(new[replaced], torch.tensor(2.0))


def test_token_uniforms_are_uniform_and_keyed_by_each_rows_own_tokens():
    positions, ids = torch.arange(4000).repeat(2, 1), torch.randint(0, 50_000, (2, 4000))
    coins = token_uniforms(7, 2, torch.arange(5), positions, ids)  # (2, T, 5)
    assert coins.shape == (2, 4000, 5) and 0 <= coins.min() and coins.max() < 1
    assert abs(coins.mean().item() - 0.5) < 0.01 and abs(coins.var().item() - 1 / 12) < 0.005
    alone = token_uniforms(7, 2, torch.arange(5), positions[1:], ids[1:])
    assert torch.equal(alone[0], coins[1]), "a row's coins do not depend on the other rows"
    assert not torch.equal(token_uniforms(8, 2, torch.arange(5), positions, ids), coins), "the seed matters"


def test_neuron_adjust_answers_a_prompt_the_same_alone_or_in_any_batch(tiny):
    """The coins come from each token's own position and id: batch company and padding change nothing."""
    from backends.llm.decoding import generate_greedy
    from backends.llm.neuron_adjust import NeuronAdjustEdit

    width = tiny.model.model.layers[0].mlp.gate_proj.out_features
    layers = len(tiny.model.model.layers)
    layer, neuron = torch.arange(layers).repeat_interleave(width), torch.arange(width).repeat(layers)
    zeros, ones = torch.zeros(len(layer)), torch.ones(len(layer))
    edited = registry.backend("llm").clone(tiny)
    # equal forget and retain statistics: every value flips sign (x -> -x) on a fair coin, so coins decide
    edited.edits = (NeuronAdjustEdit(layer, neuron, zeros, ones, zeros, ones),)
    prompt, others = "Name a colour.", ["Write a long story about a dragon who learns to fly.", "Hi"]
    alone = generate_greedy(edited, [prompt], max_new_tokens=12)
    together = generate_greedy(edited, [others[0], prompt, others[1]], max_new_tokens=12)
    assert together[1] == alone[0]


def test_neuron_selection_is_signed_and_pooled_over_layers():
    mu_f = torch.tensor([[0.0, 5.0, 0.0, 0.0], [3.0, 0.0, 0.0, -9.0]])
    mu_r = torch.zeros(2, 4)
    layer, neuron = select_neurons(mu_f, mu_r, percent=25.0)  # 2 of 8
    assert sorted(zip(layer.tolist(), neuron.tolist())) == [(0, 1), (1, 0)]  # -9 is not selected


def test_neuron_adjust_hook_acts_on_gate_proj_outputs_only_while_active(tiny):
    edited = registry.backend("llm").clone(tiny)
    edit = NeuronAdjustEdit(torch.tensor([0, 0]), torch.tensor([1, 4]), torch.tensor([0.0, 0.0]),
                            torch.tensor([100.0, 100.0]), torch.tensor([50.0, 50.0]), torch.tensor([0.01, 0.01]))
    edited.edits = (edit,)
    enc = chat.encode_chat(tiny, ["hello world"])
    ids = torch.tensor(enc.ids)
    gate = bundles.mlp_modules(tiny.model)[0].gate_proj
    with torch.no_grad():
        with capture(gate) as plain:
            tiny.model(input_ids=ids)
        with edited.active(), capture(gate) as hooked:
            tiny.model(input_ids=ids)
    x, y = plain.tensors[0], hooked.tensors[0]
    # forget N(0, 100) is far wider than retain N(50, 0.01): every value is "forget", p_f ~ 1.
    torch.testing.assert_close(y[..., [1, 4]], 50.0 - 0.01 * (x[..., [1, 4]] - 0.0) / 100.0)
    others = [i for i in range(x.shape[-1]) if i not in (1, 4)]
    assert torch.equal(y[..., others], x[..., others])


def test_neuron_adjust_method_selects_the_requested_share(tiny):
    from backends.llm.neuron_adjust import NeuronAdjustConfig

    edited = run_method("neuron_adjust", tiny, NeuronAdjustConfig.smoke())
    (edit,) = edited.edits
    total = sum(m.gate_proj.out_features for m in bundles.mlp_modules(tiny.model))
    assert len(edit.neuron) == round(total * NeuronAdjustConfig.smoke().neuron_percent / 100)
    assert (edit.s_f > 0).all() and (edit.s_r > 0).all()


# ---------------------------------------------------------------- Key Space Detection
def test_smallest_k_is_tight():
    keys = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 0.0]])
    mu, sigma = keys.mean(0), keys.std(0, unbiased=False)
    k = smallest_k(keys, mu, sigma)
    assert bool((z_max(keys, mu, sigma) <= k).all())
    assert not bool((z_max(keys, mu, sigma) <= k * (1 - 1e-6)).all())
    assert k == pytest.approx(float(z_max(keys, mu, sigma).max()), rel=1e-6)


def test_ellipsoid_score_is_the_root_mean_square_z_and_its_k_holds_every_key():
    keys = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 0.0]])
    mu, sigma = keys.mean(0), keys.std(0, unbiased=False)
    z = (keys - mu) / sigma
    assert torch.allclose(key_score(keys, mu, sigma, "ellipsoid"), z.pow(2).mean(-1).sqrt())
    edit = fit_region(keys, h=1.0, refusal_text=REFUSAL_TEXT, shape="ellipsoid")
    assert bool(edit.contains(keys).all())
    with pytest.raises(ValueError, match="shape"):
        fit_region(keys, h=1.0, refusal_text=REFUSAL_TEXT, shape="sphere")


def test_capped_h_keeps_the_retain_keys_outside_up_to_the_share():
    forget = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0], [0.0, 2.0], [2.0, 0.0]])
    edit = fit_region(forget, h=3.0, refusal_text=REFUSAL_TEXT, shape="ellipsoid")
    retain = torch.tensor([[1.2, 1.0], [1.5, 1.0], [3.0, 3.0], [9.0, 9.0]])  # the first two sit near the middle
    assert int(edit.contains(retain).sum()) >= 3
    for share, allowed in ((0.0, 0), (0.25, 1), (0.5, 2)):
        edit.h = capped_h(edit, retain, share)
        assert int(edit.contains(retain).sum()) <= allowed
        edit.h = 3.0
    assert capped_h(edit, retain[3:], 0.0) == 3.0  # a key far outside does not lower h


def test_ksd_hypercube_contains_every_probe_vector_and_abstains_on_them(tiny):
    cfg = KeySpaceDetectionConfig.smoke()
    edited = run_method("key_space_detection", tiny, cfg)
    (edit,) = edited.edits
    probe = [it.prompt for it in load_skill_set(cfg.forget_skill, "probe")[:cfg.probe_items]]
    keys = abstention.last_mlp_keys(edited, probe)
    assert bool(edit.contains(keys, scale=1.0).all())
    # With h >= 1 every probe prompt gets the fixed refusal; the base still answers.
    edit.h = max(edit.h, 1.0)
    answers = decoding.generate_greedy(edited, probe, max_new_tokens=4)
    assert answers == [REFUSAL_TEXT] * len(probe)
    assert REFUSAL_TEXT not in decoding.generate_greedy(tiny, probe, max_new_tokens=4)


def test_ksd_with_a_tiny_box_does_not_abstain(tiny):
    prompts = [it.prompt for it in load_skill_set("factual_qa", "probe")[:6]]
    keys = abstention.last_mlp_keys(tiny, prompts)
    edit = fit_region(keys, h=1e-3, refusal_text=REFUSAL_TEXT)
    edited = registry.backend("llm").clone(tiny)
    edited.edits = (edit,)
    assert decoding.generate_greedy(edited, prompts, max_new_tokens=4) == decoding.generate_greedy(tiny, prompts, 4)


# ---------------------------------------------------------------- NPO / GA / GradDiff
def test_npo_loss_equals_its_formula_on_a_hand_example():
    l_theta, l_ref, beta = torch.tensor([3.0, 1.0]), torch.tensor([2.0, 2.0]), 0.1

    def log_sigmoid(z):
        return -math.log(1 + math.exp(-z))

    expected = (2 / beta) * (-(log_sigmoid(0.1) + log_sigmoid(-0.1)) / 2)
    assert npo_loss(l_theta, l_ref, beta).item() == pytest.approx(expected, rel=1e-6)
    # at l_theta == l_ref the loss is (2 / beta) * log 2
    assert npo_loss(l_ref, l_ref, beta).item() == pytest.approx(20 * math.log(2), rel=1e-6)


def test_flat_loss_is_the_total_variation_objective():
    p_template, p_forget = torch.tensor([0.2, 0.6]), torch.tensor([0.5, 0.1])
    expected = sum(-math.tanh(t) / 2 + math.tanh(f) / 2 for t, f in zip([0.2, 0.6], [0.5, 0.1])) / 2
    assert flat_loss(p_template, p_forget).item() == pytest.approx(expected, rel=1e-6)


def test_mean_token_probability_is_the_mean_of_token_probabilities(tiny):
    prompt, answer = "Name a fruit.", "apple"
    p = mean_token_probability(tiny, [prompt], [answer])
    enc = chat.encode_chat(tiny, [prompt], [answer])
    ids = torch.tensor(enc.ids)
    start, end = enc.answer_spans[0]
    with torch.no_grad():
        probs = torch.softmax(tiny.model(input_ids=ids).logits[0].float(), -1)
    expected = probs[start - 1:end - 1].gather(-1, ids[0, start:end, None]).mean()
    torch.testing.assert_close(p[0], expected, atol=1e-5, rtol=1e-4)


def test_flat_lowers_its_loss_and_makes_the_template_refusal_likelier(tiny):
    """On a byte-level tiny model the refusal and the answer share bytes, so the answer's NLL need not rise;
    the objective itself must fall on a private copy, the base untouched."""
    config = FlatConfig(**{**FlatConfig.smoke().__dict__, "steps": 3, "lr": 1e-2})
    items = load_skill_set(config.forget_skill, "probe")[:config.probe_items]
    prompts, answers = [it.prompt for it in items], [it.reference for it in items]
    refusals = [TEMPLATE_REFUSALS[i % len(TEMPLATE_REFUSALS)] for i in range(len(prompts))]

    def loss_and_template(bundle):
        with torch.no_grad():
            p_template = mean_token_probability(bundle, prompts, refusals)
            return float(flat_loss(p_template, mean_token_probability(bundle, prompts, answers))), \
                float(p_template.mean())

    before = loss_and_template(tiny)
    edited = run_method("flat", tiny, config)
    after = loss_and_template(edited)
    assert edited.private_weights and after[0] < before[0] and after[1] > before[1]
    assert loss_and_template(tiny) == before


def test_answer_nll_is_the_summed_token_cross_entropy_of_the_answer(tiny):
    prompt, answer = "Name a fruit.", "apple"
    total, count = likelihood.answer_nll(tiny, [prompt], [answer])
    enc = chat.encode_chat(tiny, [prompt], [answer])
    ids = torch.tensor(enc.ids)
    start, end = enc.answer_spans[0]
    with torch.no_grad():
        logits = tiny.model(input_ids=ids).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[start - 1:end - 1], ids[0, start:end], reduction="sum")
    assert int(count) == end - start == len(answer) + 1  # byte tokens + end-of-turn
    torch.testing.assert_close(total[0], expected, atol=1e-4, rtol=1e-4)


def test_continuation_nll_matches_each_row_scored_alone_whatever_the_batch(tiny):
    """Batched, length-sorted and with logits only over the spans, each row's continuation NLL equals the
    cross-entropy of that row's own unpadded forward pass."""
    prompts = ["Name a fruit.", "What is the opposite of big? Answer with one word.", "Hi"]
    prefixes = ["", "The opposite of big is ", "A greeting: "]
    continuations = ["apple, pear and plum", "small", "hello there, how are you today?"]
    batched = likelihood.continuation_nll(tiny, prompts, prefixes, continuations, batch_size=2)
    before, after = chat.chat_pieces(tiny)
    for i, (prompt, prefix, continuation) in enumerate(zip(prompts, prefixes, continuations)):
        context = (chat.token_ids(tiny, before) + chat.token_ids(tiny, prompt) + chat.token_ids(tiny, after)
                   + chat.token_ids(tiny, prefix))
        scored = chat.token_ids(tiny, continuation)
        ids = torch.tensor([context + scored])
        with torch.no_grad():
            logits = tiny.model(input_ids=ids).logits[0]
        expected = torch.nn.functional.cross_entropy(logits[len(context) - 1:-1], ids[0, len(context):])
        torch.testing.assert_close(batched[i], expected, atol=1e-4, rtol=1e-4)


def mean_answer_nll(bundle, prompts, answers):
    with torch.no_grad():
        total, count = likelihood.answer_nll(bundle, prompts, answers)
    return (total / count.clamp(min=1)).mean()


@pytest.mark.parametrize("name, config", [("grad_ascent", GradAscentConfig.smoke()),
                                          ("grad_diff", GradDiffConfig.smoke()),
                                          ("npo", NPOConfig.smoke())])
def test_training_methods_raise_the_forget_nll_on_a_private_copy(tiny, name, config):
    config = type(config)(**{**config.__dict__, "steps": 3, "lr": 1e-2})
    items = load_skill_set(config.forget_skill, "probe")[:config.probe_items]
    prompts, refs = [it.prompt for it in items], [it.reference for it in items]
    before = mean_answer_nll(tiny, prompts, refs).mean()
    edited = run_method(name, tiny, config)
    assert edited.private_weights and edited.model is not tiny.model
    assert not any(p.requires_grad for p in edited.model.parameters())
    assert mean_answer_nll(edited, prompts, refs).mean() > before
    assert mean_answer_nll(tiny, prompts, refs).mean() == before


# ---------------------------------------------------------------- attacks
def test_steps_to_recover_half():
    assert steps_to_recover_half([1.0, 0.9], [1.0, 0.9]) == 0
    assert steps_to_recover_half([1.0, 1.0, 1.0], [3.0, 2.5, 1.9]) == 2
    assert steps_to_recover_half([1.0, 1.0], [3.0, 2.5]) is None


def test_neuron_activation_histograms_show_the_shift(tiny):
    from backends.llm.neuron_adjust import NeuronAdjustConfig

    be = registry.backend("llm")
    spec = registry.attack("llm", "neuron_activations")
    assert spec.run(AttackCall(be, tiny, tiny, False, spec.config.smoke(), ctx())).chart is None
    edited = run_method("neuron_adjust", tiny, NeuronAdjustConfig.smoke())
    result = spec.run(AttackCall(be, tiny, edited, True, spec.config.smoke(), ctx()))
    assert set(result.chart.series) == {"forget, base", "forget, edited", "retain, base", "retain, edited"}
    for values in result.chart.series.values():
        assert sum(values) == pytest.approx(1.0)
    assert result.chart.series["forget, base"] != result.chart.series["forget, edited"]


def test_attacks_compare_base_and_edit(tiny):
    be = registry.backend("llm")
    edited = run_method("key_space_detection", tiny, KeySpaceDetectionConfig.smoke())
    for name in ("knowledge_probe", "request_probe", "relearning", "paraphrase"):
        spec = registry.attack("llm", name)
        result = spec.run(AttackCall(be, tiny, edited, True, spec.config.smoke(), ctx()))
        assert result.summary and result.chart is not None
        assert all(len(v) == len(result.chart.x) for v in result.chart.series.values())


# ---------------------------------------------------------------- answer-only likelihood
def test_answer_span_skips_the_reference_template():
    from backends.llm.skills import SkillItem, answer_span

    def answer(skill, reference, check):
        item = SkillItem(skill, "q", reference, check)
        start, end = answer_span(item)
        return reference[start:end]

    assert answer("antonyms", 'The opposite of "big" is "small".', "small|little") == "small"
    assert answer("factual_qa", "There are twenty-four hours in a day.", "24|twenty four") == " twenty-four"
    assert answer("python_coding", "```python\ndef sq(n):\n    return n * n\n```", "assert sq(2) == 4") == \
        "    return n * n\n"


def test_continuation_nll_scores_only_the_answer_tokens(tiny):
    prompt, prefix, answer = "What is the opposite of big?", 'The opposite of "big" is "', "small"
    nll = likelihood.continuation_nll(tiny, [prompt], [prefix], [answer])
    before, after = chat.chat_pieces(tiny)
    context = tiny.tokenizer(before + prompt + after + prefix, add_special_tokens=False)["input_ids"]
    scored = tiny.tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + scored])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(input_ids=ids).logits[0, :-1].float(), -1)
    expected = -logp[len(context) - 1:, :].gather(-1, ids[0, len(context):, None]).mean()
    assert float(nll[0]) == pytest.approx(float(expected), rel=1e-4)
    # A different template around the same answer changes the context, never which tokens are scored.
    other = likelihood.continuation_nll(tiny, [prompt], ["Answer: "], [answer])
    assert other.shape == nll.shape and float(other[0]) != pytest.approx(float(nll[0]))


def test_relearn_gap_compares_with_the_control():
    from backends.llm.attacks import relearn_gap, steps_to_fall

    base = [1.0, 1.0, 1.0]
    edited = [3.0, 1.8, 1.5]                        # half its 2-nat gap closed at step 1
    assert steps_to_fall([2.0, 1.5, 0.9], 1.0) == 2
    assert relearn_gap(base, edited, [2.0, 1.5, 0.9]) == 1 - 2    # faster than the control: hidden
    assert relearn_gap(base, edited, [2.0, 0.5, 0.4]) == 0
    assert relearn_gap(base, [3.0, 2.9, 2.8], [2.0, 0.5, 0.4]) == 3 - 1  # never recovers: censored at 3


def test_relearning_plots_the_control_curve(tiny):
    from backends.llm.attacks import RelearnConfig

    be = registry.backend("llm")
    spec = registry.attack("llm", "relearning")
    result = spec.run(AttackCall(be, tiny, tiny, False, RelearnConfig.smoke(), ctx()))
    control = result.chart.series["control: base fine-tuned on antonyms"]
    assert len(control) == 3 and control != result.chart.series["base"]
    assert result.explanation
    with pytest.raises(ValueError, match="control skill"):
        spec.run(AttackCall(be, tiny, tiny, False, RelearnConfig(forget_skill="antonyms", control_skill="antonyms"),
                            ctx()))
