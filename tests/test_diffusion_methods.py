"""Property tests of the diffusion erasure methods and attacks on the tiny seeded FaceWorld-style model."""
from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import AttackCall, MethodCall, Sample  # noqa: E402
from backends.jobs import JobCancelled, JobContext  # noqa: E402

METHODS = sorted(registry.methods("diffusion"))



def _ctx(cancel_after: int | None = None) -> JobContext:
    """A job context; with ``cancel_after`` the stop flag is raised once that many steps were reported."""
    stop = threading.Event()
    ctx = JobContext.standalone(stop)
    if cancel_after is not None:
        report = ctx.step

        def step(i, total=None, **metrics):
            if i >= cancel_after:
                stop.set()
            report(i, total, **metrics)
        ctx.step = step
    return ctx


def _picked(model, n: int = 2) -> list[Sample]:
    images = model.generate(["a face wearing glasses"] * n, list(range(n)), steps=2)
    return [Sample(key=f"s{i}", seed=i, prompt="a face wearing glasses", image=images[i]) for i in range(n)]


def _snapshot(backend, model) -> dict:
    return {k: v.detach().clone() for k, v in backend.state_tensors(model).items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _BlindClip:
    """A stand-in for FaceWorld's CLIP that sees the concept in no image: the base model 'never draws' anything."""

    name = "blind CLIP"

    def present(self, images, target):
        return np.zeros(len(images), dtype=bool)


# ------------------------------------------------------------------------------------------ UCE


def test_uce_closed_form_equals_least_squares():
    from backends.diffusion.uce import uce_closed_form

    g = torch.Generator().manual_seed(0)
    out, d, n_e, n_p, lam = 5, 7, 3, 4, 0.5
    w = torch.randn(out, d, generator=g, dtype=torch.float64)
    c_e, v_e = torch.randn(n_e, d, generator=g, dtype=torch.float64), torch.randn(n_e, out, generator=g, dtype=torch.float64)
    c_p = torch.randn(n_p, d, generator=g, dtype=torch.float64)
    new = uce_closed_form(w, c_e, v_e, c_p, lam, erase_scale=1.0, preserve_scale=2.0).double()
    # min lam*||X - W||^2 + ||X c_e - v_e||^2 + 2*||X c_p - W c_p||^2, solved row-wise by least squares
    a = torch.cat([lam ** 0.5 * torch.eye(d, dtype=torch.float64), c_e, 2 ** 0.5 * c_p])  # (d + n_e + n_p, d)
    b = torch.cat([lam ** 0.5 * w.T, v_e, 2 ** 0.5 * (c_p @ w.T)])  # (d + n_e + n_p, out)
    direct = torch.linalg.lstsq(a, b).solution.T
    assert torch.allclose(new, direct, atol=1e-4)


def test_uce_maps_concept_keys_to_guide_and_keeps_preserved(tiny, backend):
    from backends.diffusion.uce import UCEConfig, concept_states, run

    # The canonical prompts only: the tiny encoder's 32-d states leave no room to map 30 wordings and keep beard.
    config = UCEConfig(concept="glasses", paraphrases=False, preserve=("beard",), preserve_neighbours=False,
                       tokens="last", lam=0.01)
    edited = backend.clone(tiny)
    run(MethodCall(backend, tiny, edited, config, _ctx()))
    c_e, c_g = concept_states(tiny, ["a face wearing glasses"], "last", align_to=["a face"])
    c_p, _ = concept_states(tiny, ["a face with a beard"], "last")
    for name, attn in edited.cross_attention_layers().items():
        base_attn = tiny.cross_attention_layers()[name]
        with torch.no_grad():
            erased, guide = attn.to_k(c_e), base_attn.to_k(c_g)
            kept, original = attn.to_k(c_p), base_attn.to_k(c_p)
            moved_before = (base_attn.to_k(c_e) - guide).norm()
        assert (erased - guide).norm() < 0.2 * moved_before
        assert (kept - original).norm() < 0.2 * original.norm()


# ------------------------------------------------------------------------------------------ ESD


def test_few_esd_steps_shrink_the_concept_guidance(tiny, backend):
    from backends.diffusion.esd import ESDConfig, run_esd_x
    from backends.diffusion.judging import guidance_strength
    from tests.diffusion_fixtures import text_steered

    base = text_steered(tiny)
    # A random model's sampling trajectory diverges, so x_t is drawn at the first step (t = 999) only.
    prompts, timesteps = ["a face wearing glasses"], (999, 950)
    config = ESDConfig(iterations=8, batch=2, lr=3e-3, eta=1.0, sampler_steps=1, reuse=1)
    edited = backend.clone(base)
    run_esd_x(MethodCall(backend, base, edited, config, _ctx()))
    before = float(guidance_strength(base, prompts, timesteps=timesteps).mean())
    after = float(guidance_strength(edited, prompts, timesteps=timesteps).mean())
    assert after < 0.8 * before


# ------------------------------------------------------------------------------------------ every method


@pytest.mark.parametrize("method", METHODS)
def test_method_edits_clone_and_keeps_base(tiny, backend, method):
    spec = registry.method("diffusion", method)
    before = _snapshot(backend, tiny)
    edited = backend.clone(tiny)
    spec.run(MethodCall(backend, tiny, edited, spec.config.smoke(), _ctx(), _picked(tiny)))
    assert _same(before, _snapshot(backend, tiny)), "the base model changed"
    assert not _same(before, _snapshot(backend, edited)), "the edit changed nothing"
    assert not any(p.requires_grad for p in edited.unet.parameters())
    assert not any(p.requires_grad for p in edited.text_encoder.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_cancel_keeps_base(tiny, backend, method):
    spec = registry.method("diffusion", method)
    before = _snapshot(backend, tiny)
    with pytest.raises(JobCancelled):
        spec.run(MethodCall(backend, tiny, backend.clone(tiny), spec.config.smoke(), _ctx(cancel_after=1),
                            _picked(tiny)))
    assert _same(before, _snapshot(backend, tiny))


def test_clone_copies_only_what_a_method_edits(tiny, backend):
    from backends.diffusion.fewshot_te import FewShotConfig, run

    edited = backend.clone(tiny)
    assert edited.unet is tiny.unet and backend.nbytes(edited) == 0
    run(MethodCall(backend, tiny, edited, FewShotConfig.smoke(), _ctx(), _picked(tiny)))
    assert edited.unet is tiny.unet and edited.text_encoder is not tiny.text_encoder
    assert backend.nbytes(edited) == sum(t.numel() * t.element_size() for t in edited.text_encoder.state_dict().values())


def test_saliency_mask_keeps_the_global_top_share():
    from backends.diffusion.salun import saliency_mask

    grads = {"a": torch.tensor([0.1, -5.0, 0.2]), "b": torch.tensor([[3.0, -0.05], [0.3, 4.0]])}
    mask = saliency_mask(grads, 3 / 7)
    assert mask["a"].tolist() == [0, 1, 0] and mask["b"].tolist() == [[1, 0], [0, 1]]


# ------------------------------------------------------------------------------------------ pipeline


def test_prefix_embeddings_equal_the_tokens_they_copy(tiny):
    ids = tiny.tokenizer("smiling", add_special_tokens=False)["input_ids"]
    prefix = tiny.token_embeddings()[ids]  # (k, E)
    with torch.no_grad():
        direct = tiny.encode(["smiling a face"])
        inserted = tiny.encode(["a face"], prefix=prefix)
    assert torch.allclose(direct[:, :6], inserted[:, :6], atol=1e-5)


def test_same_seeds_same_images_whatever_the_batch(tiny):
    a = tiny.generate(["a face", "a face wearing a cap"], [5, 6], steps=3)
    b = tiny.generate(["a face wearing a cap"], [6], steps=3)
    assert np.array_equal(a[1], b[0])


def test_project_simplex_rows_sum_to_one():
    from backends.diffusion.attacks import project_simplex

    p = project_simplex(torch.tensor([[0.5, 2.0, -1.0, 0.1], [0.25, 0.25, 0.25, 0.25]]))
    assert torch.allclose(p.sum(-1), torch.ones(2)) and (p >= 0).all()
    assert torch.allclose(p[1], torch.full((4,), 0.25)) and p[0].argmax() == 1


# ------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_value_errors(tiny, backend):
    spec = registry.method("diffusion", "uce")
    with pytest.raises(ValueError, match="is empty"):
        build_config(spec.config, {"concept": "  "})
    with pytest.raises(ValueError, match="over the limit"):
        build_config(spec.config, {"concept": "glasses " * 20})
    with pytest.raises(ValueError, match="overlaps"):
        build_config(spec.config, {"concept": "glasses", "preserve": "spectacles\nbeard"})
    fewshot = registry.method("diffusion", "fewshot_te")
    with pytest.raises(ValueError, match="tick at least one"):
        fewshot.run(MethodCall(backend, tiny, backend.clone(tiny), build_config(fewshot.config, {}), _ctx()))


@pytest.mark.parametrize("method", ["uce", "esd_x", "salun", "advunlearn"])
def test_concept_the_model_never_draws_is_refused_with_its_base_rate(tiny, backend, method):
    import dataclasses

    judged = dataclasses.replace(tiny, clip=_BlindClip(), _cache={})
    spec = registry.method("diffusion", method)
    config = dataclasses.replace(spec.config.smoke(), eval_seeds=1, eval_prompts=1)
    with pytest.raises(ValueError, match=r"only 0% of 1 images"):
        spec.run(MethodCall(backend, judged, backend.clone(judged), config, _ctx()))


# ------------------------------------------------------------------------------------------ attacks, maps


def test_attacks_and_maps_run_on_tiny(tiny, backend):
    edited = backend.clone(tiny)
    registry.method("diffusion", "uce").run(MethodCall(backend, tiny, edited, build_config(
        registry.method("diffusion", "uce").config, {}), _ctx()))
    for name, spec in registry.attacks("diffusion").items():
        result = spec.run(AttackCall(backend, tiny, edited, True, spec.config.smoke(), _ctx()))
        assert result.summary and all(r.before is not None and r.after is not None for r in result.summary), name
    config = backend.generate_config.smoke()
    image_map = backend.embed(tiny, edited, config)
    assert image_map.points.shape[0] == len(image_map.labels) == len(image_map.groups) == len(image_map.names)
    assert set(image_map.groups) == {"before", "after"}
    text_map = backend.embed_text(tiny, edited, config)
    assert text_map.points.shape[0] == len(text_map.names) and "synonym" in text_map.labels


def test_fewshot_trains_bert_mlp_and_last_self_attention(tiny):
    from backends.diffusion.fewshot_te import fewshot_trainable

    selected = fewshot_trainable(tiny.text_encoder)
    names = [n for n, _ in tiny.text_encoder.named_parameters() if selected(n)]
    assert "encoder.layer.0.intermediate.dense.weight" in names and "encoder.layer.1.output.dense.weight" in names
    assert "encoder.layer.1.attention.self.query.weight" in names
    assert not any("attention.output" in n or "layer.0.attention" in n or "embeddings" in n for n in names)


def test_retain_prompts_never_use_the_evaluation_wording():
    from backends.diffusion.prompt_sets import eval_prompts, retain_prompts

    for concept in ("glasses", "hat", "beard", "smiling", "blond hair"):
        evaluated = {s.prompt for s in eval_prompts(concept, True, 6)}
        kept = retain_prompts(concept, True)
        assert kept and not evaluated & set(kept), concept
        assert not any(word in p for p in retain_prompts(concept, True, ("neighbour",)) for word in ("blond", "background"))


def test_reworded_prompts_swap_the_concept_for_its_absence():
    from types import SimpleNamespace

    from backends.diffusion.common import reworded_prompts

    model = SimpleNamespace(faceworld=True, neutral_prompt="a face")
    prompts = ["a face wearing sunglasses", "a bearded face", "a face with blond hair"]
    assert reworded_prompts(model, prompts[:1], "glasses") == ["a face"]
    assert reworded_prompts(model, prompts[:1], "glasses", absent=True) == ["a face without glasses"]
    assert reworded_prompts(model, prompts[1:2], "beard", absent=True) == ["a clean-shaven face"]
    assert reworded_prompts(model, prompts[2:], "blond hair", absent=True) == ["a face"]  # hair has no absent value
    assert reworded_prompts(model, ["a red car"], "glasses", absent=True) == ["a face"]


def test_uce_erases_the_train_wordings_and_logs_them(tiny, backend):
    from backends.diffusion.prompt_sets import resolve_concept
    from backends.diffusion.prompt_sets import paraphrase_prompts
    from backends.diffusion.uce import UCEConfig, run

    wordings = paraphrase_prompts(resolve_concept("glasses"))
    assert "a face with spectacles" in wordings and "a face in eyeglasses" in wordings
    for paraphrases in (True, False):
        ctx, logged = _ctx(), []
        ctx.log = logged.append
        run(MethodCall(backend, tiny, backend.clone(tiny), UCEConfig(paraphrases=paraphrases), ctx))
        text = "\n".join(logged)
        assert "a face wearing glasses" in text
        assert all(w in text for w in wordings) == paraphrases


def test_attacks_run_at_the_authors_strength_by_default():
    from backends.diffusion.advunlearn import AdvUnlearnConfig
    from backends.diffusion.attacks import UnlearnDiffAtkConfig

    assert UnlearnDiffAtkConfig().steps == 40 and UnlearnDiffAtkConfig().check_every <= 10
    assert AdvUnlearnConfig().attack_steps >= 10


def test_unlearndiffatk_returns_the_adversarial_prompt_and_its_images(tiny, backend):
    from backends.diffusion.attacks import UnlearnDiffAtkConfig, run_unlearndiffatk

    edited = backend.clone(tiny)
    registry.method("diffusion", "uce").run(MethodCall(backend, tiny, edited, build_config(
        registry.method("diffusion", "uce").config, {}), _ctx()))
    config = UnlearnDiffAtkConfig(prompts=1, seeds=2, tokens=2, steps=4, check_every=2)
    result = run_unlearndiffatk(AttackCall(backend, tiny, edited, True, config, _ctx()))
    assert [s.group for s in result.samples] == ["before attack", "after attack"] * 2
    for before, after, row in zip(result.samples[::2], result.samples[1::2], result.table):
        assert before.key == after.key and before.image.shape == after.image.shape == (32, 32, 3)
        assert after.prompt == row["adversarial prompt"] and after.prompt.endswith(before.prompt)
        assert row["attack steps"] in (0, 2, 4) and (row["attack steps"] == 0) == row["pre-attack"]
    assert all(r.n == 2 and r.after_ci is not None for r in result.summary)
