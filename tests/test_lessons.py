"""Workshop lessons: every lesson names real registered things, and its conclusion quotes the run's numbers."""
from __future__ import annotations

import pytest

from backends import lessons, registry
from backends.config import build_config
from backends.contract import MetricRow


@pytest.mark.parametrize("name", sorted(lessons.LESSONS))
def test_every_step_names_a_registered_preset_method_or_attack_with_valid_settings(name):
    lesson = lessons.LESSONS[name]
    assert lesson.preset in registry.presets(lesson.backend) and registry.presets(lesson.backend)[lesson.preset].offline
    be = registry.backend(lesson.backend)
    assert [s.action for s in lesson.steps] == ["generate", "unlearn", "attack"]
    for step in lesson.steps:
        spec = {"generate": None, "unlearn": registry.method, "attack": registry.attack}[step.action]
        config = be.generate_config if spec is None else spec(lesson.backend, step.name).config
        build_config(config, step.values)  # raises ValueError on a wrong field or value


def test_conclusion_quotes_the_measured_numbers_and_says_what_is_missing():
    lesson = lessons.LESSONS["gan"]
    assert "Run step 2 first" in lessons.conclusion(lesson, [], [])
    metrics = [MetricRow("concept presence (judge)", 40.0, 2.0, unit="%", before_ci=(35.0, 45.0),
                         after_ci=(1.0, 4.0), n=200),
               MetricRow("concept presence (CLIP, the guide's own opinion)", 41.0, 1.0, unit="%")]
    text = lessons.conclusion(lesson, metrics, [])
    assert "40 % (95 % interval 35-45) before, 2 % (95 % interval 1-4) after, on 200 samples" in text
    assert "Run step 3" in text
    attack = [MetricRow("attack success rate", 100.0, 62.5, unit="%")]
    text = lessons.conclusion(lesson, metrics, attack, "The judge sees glasses in 5 of 8.")
    assert "100 % on the base model, 62.5 % on your edit" in text and "5 of 8" in text
    assert "passed the plain check, and the attack still found glasses" in text
