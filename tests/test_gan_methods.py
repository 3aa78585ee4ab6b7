"""GAN backend: Text-to-Unlearn and Adapt-then-Unlearn on the tiny seeded preset (properties, bad input)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import MethodCall, Sample  # noqa: E402
from backends.faceworld import world  # noqa: E402
from backends.gan import adapt_then_unlearn, concepts, text_to_unlearn  # noqa: E402
from backends.gan.backend import CHECK_SAMPLES, CHECK_SEED0, GanGenerateConfig, measure, seeds_from  # noqa: E402
from backends.jobs import JobCancelled, JobContext, JobState  # noqa: E402

BACKEND = registry.backend("gan")


def context(stop_after: int | None = None, fail_after: int | None = None) -> JobContext:
    """A job context; the user 'cancels' (or the step 'crashes') once that many steps were reported."""
    stop = threading.Event()

    class Stopping(JobContext):
        def step(self, step, total=None, **metrics):
            if fail_after is not None and len(self.history) >= fail_after:
                raise RuntimeError("boom")
            if stop_after is not None and len(self.history) >= stop_after:
                stop.set()
            super().step(step, total, **metrics)

    return Stopping(JobState(), stop, threading.Lock())


@pytest.fixture(scope="module")
def gallery(base):
    return BACKEND.generate(base, GanGenerateConfig(count=6))


def state(model) -> dict:
    return {k: v.clone() for k, v in BACKEND.state_tensors(model).items()}


def same(a: dict, b: dict, keys=None) -> bool:
    return all(torch.equal(a[k], b[k]) for k in (keys or a))


def run(method: str, base, model, values: dict, picked=(), ctx=None):
    spec = registry.method("gan", method)
    config = build_config(spec.config, values)
    spec.run(MethodCall(BACKEND, base, model, config, ctx or context(), list(picked)))
    return model


def concept_projection(model, base, concept: concepts.Concept, seeds) -> float:
    """Mean projection of CLIP image embeddings on the concept's text direction i."""
    direction = text_to_unlearn.text_direction(base.encoder, concept)
    with torch.no_grad():
        return float((base.encoder.encode_images(model.generator.images(seeds)) @ direction).mean())


def test_text_to_unlearn_moves_images_against_the_concept_direction(base):
    concept = concepts.resolve(base.encoder, "glasses")
    seeds = seeds_from(7000, 64)
    edited = run("text_to_unlearn", base, BACKEND.clone(base),
                 {"concept": "glasses", "steps": 8, "lr": 0.01, "batch_size": 8, "layers": "all",
                  "latent_pool": "all"})
    before = concept_projection(base, base, concept, seeds)
    after = concept_projection(edited, base, concept, seeds)
    assert after < before - 0.01, (before, after)
    assert edited.edits == ("glasses",)


def test_text_to_unlearn_auto_layers_train_exactly_top_k_convs(base):
    edited = run("text_to_unlearn", base, BACKEND.clone(base), {"steps": 2, "top_k": 2, "batch_size": 4})
    changed = [name for name, value in BACKEND.state_tensors(edited).items()
               if not torch.equal(value, BACKEND.state_tensors(base)[name])]
    convs = {name for name, _ in base.generator.conv_layers()}
    owners = {next((conv for conv in convs if name.startswith(conv + ".")), name) for name in changed}
    assert owners <= convs and len(owners) == 2, owners


def test_mapper_direction_trains_a_mapper_then_the_generator(base):
    ctx = context()
    edited = run("text_to_unlearn", base, BACKEND.clone(base),
                 {"direction": "mapper", "mapper_steps": 3, "steps": 2, "batch_size": 4}, ctx=ctx)
    assert [h for h in ctx.history if "mapper_loss" in h] and [h for h in ctx.history if "directional" in h]
    assert not same(state(base), BACKEND.state_tensors(edited))


def test_cancel_midway_leaves_the_base_untouched(base):
    before = state(base)
    model = BACKEND.clone(base)
    with pytest.raises(JobCancelled):
        run("text_to_unlearn", base, model, {"steps": 50, "batch_size": 4}, ctx=context(stop_after=3))
    assert same(before, state(base))


@pytest.mark.parametrize("method", ["text_to_unlearn", "adapt_then_unlearn"])
def test_error_midway_leaves_the_base_untouched(base, gallery, method):
    before = state(base)
    values = {"steps": 20, "batch_size": 4} if method == "text_to_unlearn" else {
        "adapt_runs": 1, "adapt_steps": 3, "unlearn_steps": 10, "batch_size": 4, "fisher_samples": 4}
    with pytest.raises(RuntimeError, match="boom"):
        run(method, base, BACKEND.clone(base), values, picked=gallery[:2], ctx=context(fail_after=5))
    assert same(before, state(base))


def test_a_generator_without_discriminator_is_refused(base, gallery):
    model = BACKEND.clone(base)
    model.generator.gan.discriminator = None  # only the clone's view: D is shared with the base
    with pytest.raises(ValueError, match="discriminator"):
        run("adapt_then_unlearn", base, model, {}, picked=gallery[:2])
    assert base.generator.discriminator is not None


def test_adapt_then_unlearn_changes_synthesis_only(base, gallery):
    before = state(base)
    edited = run("adapt_then_unlearn", base, BACKEND.clone(base),
                 dataclasses.asdict(adapt_then_unlearn.AdaptThenUnlearnConfig.smoke()) | {"picked": ()},
                 picked=gallery[:3])
    after = BACKEND.state_tensors(edited)
    mapping = [k for k in after if k.startswith("mapping.")]
    synthesis = [k for k in after if k.startswith("synthesis.")]
    assert same(before, state(base))
    assert same(before, after, mapping), "the mapping network must stay as it was"
    assert not same(before, after, synthesis), "stage 2 must change the synthesis network"
    assert edited.edits == ("glasses",)


@pytest.mark.parametrize("repulsion", adapt_then_unlearn.REPULSION_CHOICES)
def test_every_repulsion_variant_runs(base, gallery, repulsion):
    values = dataclasses.asdict(adapt_then_unlearn.AdaptThenUnlearnConfig.smoke()) | {
        "picked": (), "repulsion": repulsion}
    edited, ctx = BACKEND.clone(base), context()
    run("adapt_then_unlearn", base, edited, values, picked=gallery[:2], ctx=ctx)
    assert not same(state(base), BACKEND.state_tensors(edited)), "the run must change the generator"
    repulsion_values = [row["repulsion"] for row in ctx.history if "repulsion" in row]
    assert repulsion_values and all(np.isfinite(repulsion_values))


def test_ewc_penalty_is_zero_at_the_original_and_grows_with_fisher():
    original = {"a": torch.zeros(3)}
    fisher = {"a": torch.tensor([0.0, 1.0, 2.0])}
    assert float(adapt_then_unlearn.ewc_penalty(original, original, fisher, 10.0)) == 0.0
    moved = {"a": torch.ones(3)}
    assert float(adapt_then_unlearn.ewc_penalty(moved, original, fisher, 10.0)) == pytest.approx(15.0)


def test_continual_edits_compose_through_the_lab(tmp_path):
    from backends.jobs import JobManager
    from backends.lab import Lab
    from backends.store import ModelStore

    lab = Lab(ModelStore(max_edit_bytes=2**30, device="cpu"), JobManager())
    base = lab.store.base("gan", "tiny")
    first = {"concept": "glasses", "steps": 3, "batch_size": 4, "layers": "coarse", "eval_samples": 40}
    job = lab.start_unlearning("s", "gan", "tiny", "text_to_unlearn", first)
    assert job.wait(120).status == "done", job.snapshot().error
    after_first = state(lab.store.edit("s", "gan", "tiny").model)
    second = first | {"concept": "hat", "layers": "middle"}
    job = lab.start_unlearning("s", "gan", "tiny", "text_to_unlearn", second)
    assert job.wait(120).status == "done", job.snapshot().error
    edit = lab.store.edit("s", "gan", "tiny")
    after_second = state(edit.model)
    coarse = [k for k in after_first if k.startswith(tuple(base.generator.layer_groups()["coarse"]))]
    middle = [k for k in after_first if k.startswith(tuple(base.generator.layer_groups()["middle"]))]
    assert not same(state(base), after_first, coarse), "the first edit trained the coarse layers"
    assert same(after_first, after_second, coarse), "the second edit must start from the first, not the base"
    assert not same(after_first, after_second, middle)
    assert edit.model.edits == ("glasses", "hat")
    assert [r["concept"] for r in lab.runs("s", "gan", "tiny")] == ["glasses", "hat"]
    assert lab.reset("s", "gan", "tiny") and not lab.has_edit("s", "gan", "tiny")


# ---- bad input ----------------------------------------------------------------------------

#: Bad values of the fields every GAN method config has (backends/contract.py): checked for every registered method.
CONTRACT_FIELD_ERRORS = [({"concept": ""}, "empty"), ({"concept": "   "}, "empty"),
                         ({"concept": "x" * 81}, "over the limit"), ({"eval_samples": 5}, "below the minimum")]
#: Bad optimiser settings, for the methods that have them.
OPTIMISER_ERRORS = [({"lr": -1.0}, "below the minimum"), ({"batch_size": 1000}, "above the maximum")]


@pytest.mark.parametrize("method, values, message", [
    *((m, v, msg) for m in sorted(registry.methods("gan")) for v, msg in CONTRACT_FIELD_ERRORS),
    *((m, v, msg) for m in ("text_to_unlearn", "adapt_then_unlearn") for v, msg in OPTIMISER_ERRORS)])
def test_bad_values_raise_value_error(base, gallery, method, values, message):
    with pytest.raises(ValueError, match=message):
        run(method, base, BACKEND.clone(base), values, picked=gallery[:2])


def test_bad_choices_raise_value_error(base):
    with pytest.raises(ValueError, match="empty for this 16 px generator"):
        run("text_to_unlearn", base, BACKEND.clone(base), {"layers": "fine"})
    for field, value in (("layers", "everything"), ("direction", "sideways")):
        with pytest.raises(ValueError, match="is not one of"):
            run("text_to_unlearn", base, BACKEND.clone(base), {field: value})
    with pytest.raises(ValueError, match="is not one of"):
        run("adapt_then_unlearn", base, BACKEND.clone(base), {"repulsion": "push"})


def test_concept_absent_from_the_base_states_its_base_rate(base):
    check = measure(base, base.generator, concepts.resolve(base.encoder, "glasses"),
                    seeds_from(CHECK_SEED0, CHECK_SAMPLES))
    absent = [(a, v) for a, idx in check.clip_classes.items() for i, v in enumerate(world.ATTRIBUTES[a])
              if v != world.ABSENT_VALUES.get(a) and not (idx == i).any()]
    assert absent, "the tiny preset should leave some attribute value unseen"
    attribute, value = absent[0]
    with pytest.raises(ValueError, match=rf"absent from the base model: 0 of {CHECK_SAMPLES} samples \(0.0%\)"):
        run("text_to_unlearn", base, BACKEND.clone(base), {"concept": value})


def test_no_picked_samples_is_refused(base):
    with pytest.raises(ValueError, match="no samples picked"):
        run("adapt_then_unlearn", base, BACKEND.clone(base), {})


def test_picked_samples_from_another_resolution_are_refused(base):
    wrong = Sample(key="seed 0", seed=0, image=np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="16 px"):
        run("adapt_then_unlearn", base, BACKEND.clone(base), {}, picked=[wrong])


def test_picked_indices_outside_the_gallery_are_refused():
    from backends.jobs import JobManager
    from backends.lab import Lab
    from backends.store import ModelStore

    lab = Lab(ModelStore(max_edit_bytes=2**30, device="cpu"), JobManager())
    lab.generate("s", "gan", "tiny", {"count": 4})
    with pytest.raises(ValueError, match="not in the current gallery"):
        lab.start_unlearning("s", "gan", "tiny", "adapt_then_unlearn", {"picked": [0, 99]})


def test_per_value_directions_cover_each_value_of_a_multi_valued_concept(base):
    glasses = concepts.resolve(base.encoder, "glasses")
    directions = text_to_unlearn.value_directions(base.encoder, glasses)
    assert directions.shape[0] == len(glasses.values) == 2
    assert torch.allclose(directions.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(directions[0], directions[1]), "glasses and sunglasses are pushed apart"
    smiling = concepts.resolve(base.encoder, "smiling")
    assert text_to_unlearn.value_directions(base.encoder, smiling).shape[0] == 1


def test_remaining_targets_share_the_forgotten_samples_by_frequency_and_follow_w(base):
    smiling = concepts.resolve(base.encoder, "smiling")
    names = world.ATTRIBUTES["expression"]
    pool_classes = torch.tensor([names.index("neutral")] * 100 + [names.index("frowning")] * 300)
    forget_w = torch.randn(400, base.generator.w_dim, generator=torch.Generator().manual_seed(0))
    seen = torch.zeros(400, dtype=torch.long)
    rng = torch.Generator().manual_seed(1)
    directions = text_to_unlearn.target_directions(base.encoder, smiling, forget_w, seen, pool_classes, rng)
    to_neutral = torch.isclose(directions, directions[(directions - directions[0]).norm(dim=1).argmin()]).all(1)
    share = min(float(to_neutral.float().mean()), 1 - float(to_neutral.float().mean()))
    assert abs(share - 0.25) < 0.02, "targets in proportion to the pool's 1:3 neutral:frowning"
    again = text_to_unlearn.target_directions(base.encoder, smiling, forget_w, seen, pool_classes,
                                              torch.Generator().manual_seed(1))
    assert torch.equal(directions, again)
    glasses = concepts.resolve(base.encoder, "glasses")
    assert text_to_unlearn.target_directions(base.encoder, glasses, forget_w, seen, pool_classes, rng) is None


@pytest.mark.parametrize("method", sorted(registry.methods("gan")))
def test_a_concept_the_gan_never_draws_is_refused_with_the_words_it_knows(method, base, gallery, monkeypatch):
    free_text = concepts.Concept("an elephant", "an elephant", "a face", None, (), "no FaceWorld attribute is close")
    monkeypatch.setattr(concepts, "resolve", lambda *args, **kwargs: free_text)  # as the FaceWorld CLIP resolves it
    model = BACKEND.clone(base)
    before = state(model)
    picked = gallery[:2] if method == "adapt_then_unlearn" else ()
    with pytest.raises(ValueError, match="not something this GAN draws.*glasses"):
        run(method, base, model, {"concept": "an elephant"}, picked)
    assert same(before, state(model)), "refused before any change"
