"""GAN backend: presets, generation, evaluation, embedding map and attacks on the tiny preset."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import AttackCall, MethodCall  # noqa: E402
from backends.gan import attacks, concepts, presets  # noqa: E402
from backends.gan.backend import GanGenerateConfig  # noqa: E402
from backends.jobs import JobContext  # noqa: E402

BACKEND = registry.backend("gan")


def context() -> JobContext:
    return JobContext.standalone()


@pytest.fixture(scope="module")
def edited(base):
    spec = registry.method("gan", "text_to_unlearn")
    model = BACKEND.clone(base)
    spec.run(MethodCall(BACKEND, base, model, build_config(spec.config, {"steps": 6, "lr": 0.01, "layers": "all"}),
                        context()))
    return model


def test_importing_the_package_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, backends.gan; heavy = [m for m in ('torch', 'open_clip', 'transformers', 'gradio') "
            "if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_presets_are_registered_with_the_right_flags():
    specs = registry.presets("gan")
    assert {name: spec.offline for name, spec in specs.items()} == {
        "faceworld": True, "clip_vit_b32": False, "tiny": True}
    assert next(iter(specs)) == "faceworld", "the embedded preset is the default"
    assert specs["tiny"].title == "Tiny random (tests)"


def test_tiny_preset_builds_the_shipped_classes_with_a_judge_apart_from_the_guide():
    model = registry.preset("gan", "tiny").load("cpu")
    assert type(model.generator.gan).__name__ == "FaceWorldGAN"
    assert type(model.judge).__name__ == "FaceWorldJudge"
    judge_tensors = {p.data_ptr() for p in model.judge.net.parameters()}
    assert judge_tensors.isdisjoint(p.data_ptr() for p in model.generator.generator.parameters())


def test_hub_clip_loading_code_runs_with_random_weights():
    encoder = presets.load_open_clip(presets.HUB_CLIP[0], None, "cpu")
    images = torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        assert encoder.encode_images(images).shape == (2, 512)
    assert encoder.encode_text(["a face with glasses"]).shape == (1, 512)
    assert len(encoder.feature_modules()) == 2


def test_generate_is_seeded_and_labelled(base):
    first = BACKEND.generate(base, GanGenerateConfig(seed=5, count=3))
    again = BACKEND.generate(base, GanGenerateConfig(seed=4, count=3))
    assert [s.key for s in first] == ["seed 5", "seed 6", "seed 7"]
    assert np.array_equal(first[0].image, again[1].image), "a seed gives the same image in any batch"
    assert set(first[0].labels) == {"expression", "glasses", "hat", "beard", "hair", "skin", "background"}


def test_clone_shares_the_encoder_and_copies_the_generator(base):
    twin = BACKEND.clone(base)
    assert twin.encoder is base.encoder
    name, tensor = next(iter(BACKEND.state_tensors(twin).items()))
    assert tensor.data_ptr() != BACKEND.state_tensors(base)[name].data_ptr()


def test_evaluation_of_an_unchanged_copy_shows_no_change(base):
    config = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": 30})
    rows = {r.name: r for r in BACKEND.evaluate(base, BACKEND.clone(base), config, context())}
    for name in ("concept presence (judge)", "concept presence (CLIP, the guide's own opinion)"):
        assert rows[name].before == rows[name].after and rows[name].before_ci == rows[name].after_ci
        assert rows[name].n == 30 and rows[name].before_ci[0] <= rows[name].before <= rows[name].before_ci[1]
    assert rows["degree of unlearning (W1 of CLIP alignment)"].after == 0.0
    assert rows["collateral damage (max, judge)"].after == 0.0
    assert rows["redistribution error (largest gap to the reference)"].after is not None
    assert rows["Frechet judge-feature distance to base"].after == pytest.approx(0.0, abs=1e-6)
    assert sum(name.startswith("verdict: ") for name in rows) == 1


def test_evaluation_of_an_edit_reports_every_metric(base, edited):
    config = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": 40})
    rows = {r.name: r for r in BACKEND.evaluate(base, edited, config, context())}
    assert rows["degree of unlearning (W1 of CLIP alignment)"].after > 0
    assert rows["Frechet judge-feature distance to base"].after > 0
    assert any(name.startswith("collateral: ") for name in rows)
    assert {"mass to glasses=none"} <= set(rows), "where the concept's samples went"
    assert not any(name.startswith("gold: ") for name in rows), "tiny has no gold standard"
    hat = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": 40, "concept": "hat"})
    rows = {r.name: r for r in BACKEND.evaluate(base, edited, hat, context())}
    assert rows["perceptual distance (samples without the concept)"].after > 0


def test_gold_standard_rows_appear_when_a_gold_model_exists(base):
    model = BACKEND.clone(base)
    model.gold = {"glasses": lambda: BACKEND.clone(base).generator}
    config = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": 30})
    rows = {r.name: r for r in BACKEND.evaluate(model, BACKEND.clone(base), config, context())}
    assert rows["gold: concept presence (judge)"].after == rows["gold: concept presence (judge)"].before
    assert "gold: degree of unlearning (W1 of CLIP alignment)" in rows
    assert "gold: Frechet judge-feature distance to base" in rows
    # the gold model is the redistribution's reference: an unchanged edit equals the (unchanged) gold model
    assert rows["redistribution error (largest gap to the reference)"].after == pytest.approx(0.0)


def test_embedding_map_has_before_after_and_text_anchors(base, edited):
    data = BACKEND.embed(base, edited, GanGenerateConfig(count=5))
    assert data.points.shape == (12, 32)
    assert data.groups == ["before"] * 5 + ["after"] * 5 + ["anchor"] * 2
    assert data.names[-2:] == ["a face with glasses", "a face"]
    assert set(data.labels[:10]) <= {"glasses", "no glasses"}
    only_base = BACKEND.embed(base, None, GanGenerateConfig(count=5, concept="hat"))
    assert only_base.groups == ["before"] * 5 + ["anchor"] * 2 and only_base.names[-2] == "a face with hat"


def test_synonym_probe_scores_every_wording(base, edited):
    spec = registry.attack("gan", "synonym_probe")
    config = build_config(spec.config, {"samples": 40})
    result = spec.run(AttackCall(BACKEND, base, edited, True, config, context()))
    wordings = attacks.default_wordings(concepts.resolve(base.encoder, "glasses"))
    from backends.faceworld import world

    assert result.chart.x == wordings and set(world.synonym_prompts("glasses", "glasses")) & set(wordings)
    assert len(result.table) == len(wordings) and set(result.chart.series) == {"base", "edited"}
    assert any(r.name == "worst wording: presence" for r in result.summary)
    assert result.summary[0].name == "concept presence (judge)" and result.summary[0].n == 40


def test_latent_search_raises_the_concept_alignment_on_the_base(base):
    spec = registry.attack("gan", "latent_search")
    config = build_config(spec.config, {"starts": 3, "steps": 8, "space": "w+"})
    result = spec.run(AttackCall(BACKEND, base, base, False, config, context()))
    curve = result.chart.series["base"]
    assert len(curve) == 9 and curve[-1] > curve[0]
    assert len(result.samples) == 3 and len(result.table) == 3
    assert result.summary[0].before == result.summary[0].after, "no edit: base and 'edited' are the same model"
    assert "independent judge" in result.summary[0].help, "success is the judge's verdict, not CLIP's"
    assert f"in {sum(row['base shows concept'] for row in result.table)} of 3" in result.explanation
    shown = [row["base shows concept"] for row in result.table]
    assert result.summary[0].before == pytest.approx(100 * sum(shown) / len(shown))


def test_bad_attack_input_raises_value_error(base):
    spec = registry.attack("gan", "synonym_probe")
    with pytest.raises(ValueError, match="over the limit"):
        build_config(spec.config, {"wordings": "\n".join(f"w{i}" for i in range(20))})
    config = build_config(spec.config, {"concept": ""})
    with pytest.raises(ValueError, match="empty"):
        spec.run(AttackCall(BACKEND, base, base, False, config, context()))


def test_base_evaluation_is_computed_once_and_keyed_by_weights_concept_and_seeds(base):
    from backends.gan.backend import BASE_MEASUREMENTS, MeasurementCache

    config = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": 24})
    first = BACKEND.evaluate(base, BACKEND.clone(base), config, context())
    hits = BASE_MEASUREMENTS.store.hits
    again = BACKEND.evaluate(base, BACKEND.clone(base), config, context())
    assert BASE_MEASUREMENTS.store.hits >= hits + 2, "base and noise-floor samples come from the cache"
    assert [(r.name, r.before, r.after) for r in first] == [(r.name, r.before, r.after) for r in again]
    misses = BASE_MEASUREMENTS.store.misses
    BACKEND.evaluate(base, BACKEND.clone(base), build_config(type(config), {"eval_samples": 25}), context())
    assert BASE_MEASUREMENTS.store.misses > misses, "other seeds are measured anew"
    other = presets.tiny_model("cpu", seed=1)  # other weights, same preset name
    assert MeasurementCache.fingerprint(other) != MeasurementCache.fingerprint(base)


def test_a_measurement_survives_the_disk_cache_unchanged(base):
    import numpy as np

    from backends.gan.backend import Measurement, measure, seeds_from

    concept = concepts.resolve(base.encoder, "glasses")
    original = measure(base, base.generator, concept, seeds_from(0, 6))
    restored = Measurement.from_arrays({k: np.array(v) for k, v in original.to_arrays().items()})
    assert restored.images.equal(original.images)
    for name in ("embeddings", "alignment", "clip_mask", "judge_mask", "judge_features"):
        assert np.array_equal(getattr(restored, name), getattr(original, name)), name
    for name in ("clip_classes", "judge_classes"):
        assert getattr(restored, name).keys() == getattr(original, name).keys()
        for attribute, values in getattr(original, name).items():
            assert np.array_equal(getattr(restored, name)[attribute], values), (name, attribute)


def test_evaluation_shows_a_quick_estimate_first_and_the_split_measurement_matches_one_run(base):
    from backends.gan.backend import PREVIEW_SAMPLES, Measurement, measure, seeds_from

    ctx = context()
    config = build_config(registry.method("gan", "text_to_unlearn").config, {"eval_samples": PREVIEW_SAMPLES + 12})
    rows = BACKEND.evaluate(base, BACKEND.clone(base), config, ctx)
    preview = ctx._state.preview
    assert preview and [r.name for r in preview] == [r.name for r in rows]
    assert {r.n for r in preview if r.n} == {PREVIEW_SAMPLES}
    assert {r.n for r in rows if r.n} == {PREVIEW_SAMPLES + 12}
    concept = concepts.resolve(base.encoder, "glasses")
    seeds = seeds_from(0, 10)
    whole = measure(base, base.generator, concept, seeds)
    split = Measurement.joined(measure(base, base.generator, concept, seeds[:4]),
                               measure(base, base.generator, concept, seeds[4:]))
    assert np.allclose(split.images.numpy(), whole.images.numpy(), atol=1e-5)
    assert np.array_equal(split.judge_mask, whole.judge_mask) and np.array_equal(split.clip_mask, whole.clip_mask)
    assert np.array_equal(whole.head(4).judge_classes["glasses"], whole.judge_classes["glasses"][:4])
