"""The diffusion tab's evaluation protocol: train / tune / eval prompts and seeds never meet, no method
trains on what the metrics table reports, rates carry intervals, and the judge-free guidance metric."""
from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import MethodCall, Sample  # noqa: E402
from backends.diffusion import prompt_sets  # noqa: E402
from backends.diffusion.prompt_sets import eval_prompts, resolve_concept, retain_prompts  # noqa: E402
from backends.faceworld.concepts import WORDS  # noqa: E402
from backends.diffusion.prompt_sets import normalise_prompt  # noqa: E402
from backends.faceworld.world import ABSENT_VALUES, ATTRIBUTES  # noqa: E402
from backends.jobs import JobContext  # noqa: E402

SUFFIXED = ("hair", "skin", "background")  # their values are named with the attribute: "blue background"


def faceworld_concepts() -> list[str]:
    """Every concept the diffusion tab resolves to FaceWorld values: its words and every present value."""
    named = [v if a not in SUFFIXED else f"{v} {a}" for a, vs in ATTRIBUTES.items() for v in vs
             if v != ABSENT_VALUES.get(a)]
    return sorted(set(WORDS) | set(named))


def split_prompts(concept: str, split: str) -> set[str]:
    """Normalised concept, neighbouring and unrelated prompts of a split (all of them; UCE's paraphrases in train)."""
    target = resolve_concept(concept)
    prompts = prompt_sets.concept_prompts(target, split)
    prompts += prompt_sets.paraphrase_prompts(target) if split == "train" else []
    prompts += [p for g in prompt_sets.COLLATERAL_GROUPS for p, _ in prompt_sets.collateral_prompts(target, g, split)]
    return {normalise_prompt(p) for p in prompts}



def _ctx() -> JobContext:
    return JobContext.standalone(threading.Event())


def _picked(model, n: int = 2) -> list[Sample]:
    seeds = list(prompt_sets.GALLERY_SEEDS[:n])
    images = model.generate(["a face wearing glasses"] * n, seeds, steps=2)
    return [Sample(key=f"s{i}", seed=s, prompt="a face wearing glasses", image=images[i]) for i, s in enumerate(seeds)]


# ------------------------------------------------------------------------------------------ prompt sets


@pytest.mark.parametrize("concept", faceworld_concepts())
def test_train_tune_eval_prompts_of_every_faceworld_concept_are_disjoint(concept):
    assert resolve_concept(concept).attr is not None, concept
    sets = {split: split_prompts(concept, split) for split in prompt_sets.SPLITS}
    for i, a in enumerate(prompt_sets.SPLITS):
        assert sets[a], (concept, a)
        for b in prompt_sets.SPLITS[i + 1:]:
            assert not sets[a] & sets[b], (concept, a, b, sorted(sets[a] & sets[b]))
    assert len(prompt_sets.concept_prompts(resolve_concept(concept), "eval")) >= 12, concept


def test_no_prompt_is_in_two_splits_anywhere():
    """Across every concept, value, free-text template and generic collateral prompt."""
    splits = defaultdict(set)
    for concept in faceworld_concepts():
        for split in prompt_sets.SPLITS:
            for p in split_prompts(concept, split):
                splits[p].add(split)
    for faceworld in (True, False):
        for split in prompt_sets.SPLITS:
            free = prompt_sets.concept_prompts(resolve_concept("a red scarf"), split, faceworld)
            generic = [p for g in prompt_sets.COLLATERAL_GROUPS
                       for p, _ in prompt_sets.collateral_prompts(resolve_concept("a red scarf"), g, split, faceworld)]
            for p in free + generic:
                splits[normalise_prompt(p)].add(split)
    shared = {p: s for p, s in splits.items() if len(s) > 1}
    assert not shared, shared


def test_evaluation_reads_only_eval_prompts_and_fits_the_text_encoder(tiny):
    for concept in faceworld_concepts():
        evaluated = {normalise_prompt(s.prompt) for s in eval_prompts(concept, True, 12) if s.group != "neutral"}
        assert evaluated <= split_prompts(concept, "eval"), concept
    every = sorted({p for c in faceworld_concepts() for s in prompt_sets.SPLITS for p in split_prompts(c, s)})
    lengths = [len(ids) for ids in tiny.tokenizer(every, truncation=False)["input_ids"]]
    assert max(lengths) <= tiny.max_tokens


# ------------------------------------------------------------------------------------------ no method sees eval


def test_training_prompt_lists_never_meet_the_eval_set(tiny):
    from backends.diffusion.common import concept_images, reworded_prompts, training_prompts
    from backends.diffusion.uce import erase_wordings, guide_prompts

    for concept in faceworld_concepts():
        evaluated = split_prompts(concept, "eval")
        train = training_prompts(tiny, concept) + erase_wordings(tiny, concept)
        used = train + retain_prompts(concept, True) + guide_prompts(tiny, train, concept, "")
        used += reworded_prompts(tiny, train, concept, absent=True)
        assert not {normalise_prompt(p) for p in used} & evaluated, concept
    _, forget_prompts = concept_images(tiny, "hat", 3)
    assert not {normalise_prompt(p) for p in forget_prompts} & split_prompts("hat", "eval")


@pytest.mark.parametrize("concept", ["glasses", "hat", "blue background"])
def test_no_registered_method_encodes_an_eval_prompt_or_seed(tiny, backend, monkeypatch, concept):
    """Every prompt a method encodes and every seed it samples with, while it runs, is checked."""
    from backends.diffusion.pipeline import DiffusionModel

    encoded, seeds = set(), set()
    encode, sample = DiffusionModel.encode, DiffusionModel.sample_latents

    def spy_encode(self, prompts, *args, **kwargs):
        encoded.update(normalise_prompt(p) for p in prompts)
        return encode(self, prompts, *args, **kwargs)

    def spy_sample(self, prompts, seed_list, *args, **kwargs):
        seeds.update(int(s) for s in seed_list)
        return sample(self, prompts, seed_list, *args, **kwargs)

    picked = _picked(tiny)
    monkeypatch.setattr(DiffusionModel, "encode", spy_encode)
    monkeypatch.setattr(DiffusionModel, "sample_latents", spy_sample)
    for name, spec in registry.methods("diffusion").items():
        config = build_config(spec.config, {**dataclasses.asdict(spec.config.smoke()), "concept": concept})
        spec.run(MethodCall(backend, tiny, backend.clone(tiny), config, _ctx(), picked))
    assert encoded and not encoded & split_prompts(concept, "eval"), sorted(encoded & split_prompts(concept, "eval"))
    assert seeds and seeds <= set(prompt_sets.TRAIN_SEEDS), sorted(seeds - set(prompt_sets.TRAIN_SEEDS))[:5]


def test_evaluation_seeds_are_disjoint_from_gallery_and_training_seeds():
    from backends.diffusion.backend import DiffusionGenerateConfig
    from backends.diffusion.erasure_config import ErasureConfig

    fields = {f.name: f.metadata for f in dataclasses.fields(DiffusionGenerateConfig)}
    gallery = set(range(int(fields["first_seed"]["min"]),
                        int(fields["first_seed"]["max"]) + int(fields["seeds_per_prompt"]["max"])))
    eval_seeds = next(f for f in dataclasses.fields(ErasureConfig) if f.name == "eval_seeds")
    most = max(int(eval_seeds.metadata["max"]), 256)  # the tab's largest, and a benchmark's
    measured = {split: set(prompt_sets.measure_seeds(most, split)) for split in ("tune", "eval")}
    training = set(prompt_sets.train_seeds(0, 1000)) | set(prompt_sets.train_seeds(2**31 - 1, 1000))
    training |= {prompt_sets.TRAIN_SEEDS.start, prompt_sets.TRAIN_SEEDS.stop - 1}
    assert gallery <= set(prompt_sets.GALLERY_SEEDS) and training <= set(prompt_sets.TRAIN_SEEDS)
    for name, seeds in (("gallery", gallery), ("training", training), ("tune", measured["tune"])):
        assert not seeds & measured["eval"], name
    assert not gallery & training and not measured["tune"] & (gallery | training)


# ------------------------------------------------------------------------------------------ intervals


class _PixelClip:
    """A deterministic stand-in for FaceWorld's CLIP: sees the target in images brighter than a batch's median."""

    name = "pixel CLIP"

    def present(self, images, target):
        brightness = np.asarray(images, dtype=np.float32).mean(axis=(1, 2, 3))
        return brightness >= np.median(brightness)


def test_judged_rates_carry_wilson_intervals_and_image_counts(tiny, backend):
    from backends.diffusion.evaluation import evaluate_edit
    from backends.diffusion.uce import UCEConfig, run
    from backends.stats import wilson_interval

    judged = dataclasses.replace(tiny, clip=_PixelClip(), _cache={})
    edited = backend.clone(judged)
    run(MethodCall(backend, judged, edited, UCEConfig(), _ctx()))
    rows = evaluate_edit(judged, edited, "glasses", per_group=2, seeds=3)
    names = [r.name for r in rows]
    assert names[0] == "Concept presence, held-out prompts (judge)"
    assert names[1] == "Concept presence, same images (FaceWorld CLIP's opinion)"
    assert names[2].startswith("verdict: ") and names[2].count(".") == 1 and rows[2].after is None
    assert any(n.startswith("Collateral per prompt (judge): ") for n in names)
    rates = [r for r in rows if r.unit == "%"]
    assert len(rates) >= 6
    for row in rates:
        if row.name.startswith("Collateral per attribute"):
            expected = 2 * 2 * 3  # neighbouring + unrelated prompts x seeds
        elif row.name.startswith("Collateral per prompt"):
            expected = 3
        else:
            expected = 1 * 3 if "unasked" in row.name else 2 * 3
        assert row.n == expected, row.name
        for value, interval in ((row.before, row.before_ci), (row.after, row.after_ci)):
            low, high = wilson_interval(round(value / 100 * row.n), row.n)
            assert interval == pytest.approx((100 * low, 100 * high)), row.name


def test_collateral_is_the_largest_single_prompt_drop_and_attribute_shift():
    from backends.diffusion.evaluation import EditScores, collateral_attr_pts, collateral_prompt_pts, worst_attribute

    ones, half = np.ones(4, dtype=bool), np.array([1, 1, 0, 0], dtype=bool)
    before = EditScores(1.0, {}, prompt_judged={"a": ones, "b": ones},
                        classes={"glasses": np.array([1, 1, 1, 1]), "hat": np.array([0, 0, 0, 0])})
    after = EditScores(0.0, {}, prompt_judged={"a": ones, "b": half},
                       classes={"glasses": np.array([0, 0, 0, 0]), "hat": np.array([0, 2, 2, 2])})
    assert collateral_prompt_pts(before, after) == pytest.approx(50.0)
    assert collateral_attr_pts(before, after, skip="glasses") == pytest.approx(75.0)
    assert worst_attribute(before, after, skip="glasses")[:2] == ("hat", 0)
    assert collateral_attr_pts(before, after, skip="hat") == pytest.approx(100.0)


def test_no_method_calls_the_judge_and_clones_share_it(tiny, backend):
    """The judge is loaded once per model, shared by clones, and never runs while a method does."""
    from backends.diffusion.evaluation import score_models

    judged = dataclasses.replace(tiny, clip=_PixelClip(), _cache={})  # the methods' own check runs, by "CLIP"
    calls = []
    handle = judged.judge.net.register_forward_hook(lambda *args: calls.append(1))
    try:
        picked = _picked(judged)
        for name, spec in registry.methods("diffusion").items():
            edited = backend.clone(judged)
            assert edited.judge is judged.judge, name
            spec.run(MethodCall(backend, judged, edited, spec.config.smoke(), _ctx(), picked))
            assert not calls, f"{name} called the judge"
        score_models(judged, [], "glasses", per_group=1, seeds=1)
        assert calls, "the hook never fires: the test would prove nothing"
    finally:
        handle.remove()


# ------------------------------------------------------------------------------------------ judge-free metric


def test_judge_free_rows_show_guidance_kept_and_no_concept_pixel_change(tiny):
    from backends.diffusion.evaluation import evaluate_edit

    free = dataclasses.replace(tiny, judge=None, _cache={})
    rows = {r.name: r for r in evaluate_edit(free, free.clone(), "glasses", per_group=1, seeds=1)}
    assert rows["Guidance kept: concept prompts"].after == pytest.approx(1.0, abs=1e-4)
    assert rows["Guidance kept: concept prompts"].better == "lower"
    assert not any(name.startswith("Guidance strength") or name == "Pixel change: concept prompts" for name in rows)


def test_esd_at_its_default_eta_drives_the_guidance_projection_well_below_the_base(tiny, backend):
    from backends.diffusion.common import training_prompts
    from backends.diffusion.esd import ESDConfig, run_esd_x
    from backends.diffusion.judging import guidance_projection

    from tests.diffusion_fixtures import text_steered

    # A random tiny model's prompt states are mostly padding: fewer token positions make the prompt steer too.
    base = text_steered(tiny, max_tokens=10)
    # A random model's sampling trajectory diverges, so ESD and the metric both take x_t at the first step.
    config = ESDConfig(iterations=8, batch=2, lr=3e-3, sampler_steps=1, reuse=1)
    assert config.eta == ESDConfig().eta
    edited = backend.clone(base)
    run_esd_x(MethodCall(backend, base, edited, config, _ctx()))
    prompts, seeds = training_prompts(base, "glasses"), prompt_sets.measure_seeds(2)
    kept_by_base = guidance_projection(base, base, prompts, seeds, steps=1)
    kept_by_esd = guidance_projection(base, edited, prompts, seeds, steps=1)
    assert torch.allclose(kept_by_base, torch.ones_like(kept_by_base), atol=1e-4)
    assert float(kept_by_esd.mean()) < 0.5


# ------------------------------------------------------------------------------------------ tuning rule


def _tuner():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "tune_diffusion.py"
    spec = importlib.util.spec_from_file_location("tune_diffusion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _candidate(name: str, *rows: tuple[float, float, float, float]) -> dict:
    keys = ("presence", "base_presence", "collateral_prompt", "collateral_attr")
    return {"overrides": {"name": name}, "rows": [dict(zip(keys, r)) for r in rows]}


def test_tuning_rule_prefers_least_collateral_among_erasing_candidates_else_least_presence():
    tuner = _tuner()
    # "gentle" erases on both concepts (hat by the relative bar: 0.06 <= 0.12 * 0.6) with less collateral.
    strong = _candidate("strong", (0.00, 1.0, 40.0, 10.0), (0.00, 0.6, 30.0, 10.0))
    gentle = _candidate("gentle", (0.09, 1.0, 10.0, 30.0), (0.06, 0.6, 20.0, 10.0))
    weak = _candidate("weak", (0.50, 1.0, 0.0, 0.0), (0.30, 0.6, 0.0, 0.0))
    assert tuner.choose([weak, strong, gentle])["overrides"]["name"] == "gentle"
    # Nobody erases on both concepts: the smallest worst-concept presence wins, whatever its collateral.
    half = _candidate("half", (0.05, 1.0, 90.0, 90.0), (0.20, 0.6, 90.0, 90.0))
    assert tuner.choose([weak, half])["overrides"]["name"] == "half"
    assert set(tuner.CANDIDATES) <= set(registry.methods("diffusion"))
    assert all(c[0] == {} for c in tuner.CANDIDATES.values())  # the current defaults are always a candidate
