"""Adding a method is one file (the method contract in backends/contract.py): a throwaway GAN method registered
the way a method file registers itself shows up in the registry, the tab's method dropdown and form and the GAN
benchmark's method list, and passes the contract smoke run; unregistered, it is gone from the registry."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from backends import registry
from backends.config import build_config, field_specs, param
from backends.contract import MethodCall
from backends.diffusion.erasure_config import ErasureConfig
from backends.gan.concept_config import GanConceptConfig
from backends.llm.skill_config import SkillConfig
from tests.cancel_anywhere import smoke_values

NAME = "throwaway_nudge"
TITLE = "Throwaway nudge (test only)"


#: Each backend's base method config (the contract's concept or skill, evaluation fields and ``smoke()``).
BASE_CONFIGS = {"gan": GanConceptConfig, "diffusion": ErasureConfig, "llm": SkillConfig}


@dataclass(frozen=True)
class NudgeConfig(GanConceptConfig):
    """The GAN method config contract (concept, eval_samples) plus the method's own fields."""

    strength: float = param(0.05, help="Size of the nudge", min=0.0, max=1.0)
    seed: int = param(0, help="Seed of the nudge", min=0, max=2**31 - 1, advanced=True)


def nudge(call: MethodCall) -> None:
    """Adds seeded noise to the synthesis weights: an edit that changes the model and nothing else."""
    import torch

    cfg: NudgeConfig = call.config
    rng = torch.Generator().manual_seed(cfg.seed)
    params = list(call.model.generator.generator.synthesis.parameters())
    with torch.no_grad():
        for step, weight in enumerate(params, start=1):
            call.ctx.check()
            weight.add_(cfg.strength * torch.randn(weight.shape, generator=rng))
            call.ctx.step(step, len(params))


@pytest.fixture
def throwaway():
    """The method registered for one test only, as a method file's decorator would register it."""
    registry.register_method("gan", NAME, title=TITLE, config=NudgeConfig, paper="none (a test)")(nudge)
    try:
        yield registry.method("gan", NAME)
    finally:
        registry.unregister_method("gan", NAME)
    assert NAME not in registry.methods("gan")


def test_unregistering_an_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown gan method 'nope'"):
        registry.unregister_method("gan", "nope")


def test_registry_lists_it_and_its_form_builds(throwaway):
    assert list(registry.methods("gan"))[-1] == NAME  # after the shipped methods, in registration order
    assert throwaway.description.startswith("Adds seeded noise")  # the docstring describes it in the UI
    assert build_config(throwaway.config, {}) == NudgeConfig()
    with pytest.raises(ValueError, match="Strength"):
        build_config(throwaway.config, {"strength": 2.0})


def test_its_form_lists_the_method_fields_then_the_evaluation_fields(throwaway):
    assert [spec.name for spec in field_specs(throwaway.config)] == ["concept", "strength", "seed", "eval_samples"]
    assert NudgeConfig.smoke() == NudgeConfig(eval_samples=40)  # the base config's cheap settings


@pytest.mark.parametrize("backend", sorted(BASE_CONFIGS))
def test_every_shipped_method_config_extends_its_backends_base_config(backend):
    base = BASE_CONFIGS[backend]
    methods = registry.methods(backend)
    assert methods
    for method in methods:
        config = registry.method(backend, method).config
        assert issubclass(config, base), f"{backend}.{method}: {config.__name__} does not extend {base.__name__}"
        assert callable(getattr(config, "smoke", None)), f"{backend}.{method} has no smoke()"
        specs = field_specs(config)
        evaluation = [spec.evaluation for spec in specs]
        assert evaluation == sorted(evaluation), f"{backend}.{method}: an evaluation field before a method field"


def test_the_tab_offers_it_with_its_form(lab, throwaway):
    import app

    demo = app.build_app(lab=lab, backends=["gan"])
    blocks = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert (TITLE, NAME) in [tuple(choice) for choice in blocks["gan-method"].choices]
    assert {f"gan-{NAME}-concept", f"gan-{NAME}-strength", f"gan-{NAME}-eval_samples"} <= set(blocks)


def test_the_benchmark_iterates_it(throwaway):
    from bench import gan as bench_gan

    assert NAME in bench_gan.methods() and not bench_gan.takes_picks(throwaway.config)
    shipped = [registry.method("gan", name).config for name in bench_gan.methods() if name != NAME]
    assert any(bench_gan.takes_picks(config) for config in shipped)  # Adapt-then-Unlearn gets auto picks


def test_it_passes_the_contract_smoke_run(lab, throwaway):
    import torch

    backend = registry.backend("gan")
    lab.generate("s", "gan", "tiny", smoke_values(backend.generate_config))
    base = lab.store.base("gan", "tiny")
    before = {k: v.clone() for k, v in backend.state_tensors(base).items()}
    state = lab.start_unlearning("s", "gan", "tiny", NAME, smoke_values(NudgeConfig)).wait(120)
    assert state.status == "done", state.error
    assert state.edit_ready and state.result.metrics
    assert all(torch.equal(before[k], v) for k, v in backend.state_tensors(base).items()), "the base changed"
    edited = backend.state_tensors(lab.store.edit("s", "gan", "tiny").model)
    assert any(not torch.equal(before[k], edited[k]) for k in before), "the edit changed nothing"
    assert lab.runs("s", "gan", "tiny")[-1]["method"] == NAME
