from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from backends.config import build_config, config_to_dict, field_specs, param


@dataclass(frozen=True)
class Example:
    concept: str = param("glasses", help="what to forget", max_length=20)
    steps: int = param(10, help="steps", min=1, max=100)
    lr: float = param(0.01, help="learning rate", min=0.0, max=1.0)
    variant: str = param("l2", help="variant", choices=("l2", "exp", "reci"))
    enabled: bool = param(True, help="on/off")
    prompts: tuple[str, ...] = param(("a", "b"), help="one per line", max_items=3, max_length=10)
    picked: tuple[int, ...] = param((), help="gallery picks", widget="picked", max_items=4)
    extra: float = param(1.0, help="advanced knob", advanced=True)

    def __post_init__(self):
        if self.variant == "exp" and self.steps > 50:
            raise ValueError("exp allows at most 50 steps")


def test_field_specs_infer_widgets_and_labels():
    specs = {s.name: s for s in field_specs(Example)}
    assert [s.widget for s in specs.values()] == ["text", "int", "float", "choice", "bool", "lines", "picked", "float"]
    assert specs["lr"].label == "Lr" and specs["lr"].help == "learning rate"
    assert specs["extra"].advanced and not specs["lr"].advanced


def test_defaults_and_coercion():
    cfg = build_config(Example, {"steps": "12", "lr": 0.5, "prompts": "x\n\n y \n", "picked": [3, 1, 3]})
    assert cfg.steps == 12 and isinstance(cfg.steps, int)
    assert cfg.prompts == ("x", "y")
    assert cfg.picked == (1, 3)
    assert config_to_dict(cfg)["prompts"] == ["x", "y"]


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "below the minimum"),
    ({"steps": 101}, "above the maximum"),
    ({"steps": 2.5}, "whole number"),
    ({"lr": "fast"}, "expected a number"),
    ({"lr": float("nan")}, "finite"),
    ({"variant": "cubic"}, "not one of"),
    ({"concept": "x" * 21}, "over the limit"),
    ({"prompts": "a\nb\nc\nd"}, "4 lines"),
    ({"prompts": "a" * 11}, "characters is over"),
    ({"picked": [1, 2, 3, 4, 5]}, "limit is 4"),
    ({"picked": ["a"]}, "list of sample seeds"),
    ({"nope": 1}, "unknown setting"),
    ({"variant": "exp", "steps": 60}, "at most 50"),
])
def test_bad_values_raise_clear_value_errors(values, message):
    with pytest.raises(ValueError, match=message):
        build_config(Example, values)


def test_fields_must_use_param_and_defaults_must_be_immutable():
    @dataclass(frozen=True)
    class Bare:
        x: int = 1

    with pytest.raises(TypeError, match="param"):
        field_specs(Bare)
    with pytest.raises(TypeError, match="tuple"):
        param([1], help="a list default")


@given(st.integers(min_value=-1000, max_value=1000))
def test_int_range_is_enforced_exactly(steps):
    if 1 <= steps <= 100:
        assert build_config(Example, {"steps": steps}).steps == steps
    else:
        with pytest.raises(ValueError):
            build_config(Example, {"steps": steps})
