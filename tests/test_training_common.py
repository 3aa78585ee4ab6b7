"""scripts/training_common.py (what the FaceWorld trainers share) and the judge trainer's paths and resume."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from scripts import training_common

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]


def test_default_work_dir_follows_the_cache_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARNING_LAB_CACHE", str(tmp_path / "cache"))
    assert training_common.default_work_dir("gan") == tmp_path / "cache" / "training" / "gan"
    monkeypatch.delenv("UNLEARNING_LAB_CACHE")
    monkeypatch.setattr(training_common.tempfile, "gettempdir", lambda: str(tmp_path / "temp"))
    assert training_common.default_work_dir("clip") == tmp_path / "temp" / "unlearning-lab" / "training" / "clip"


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "data.npy"
    with training_common.atomic_path(target) as tmp:
        assert tmp.suffix == ".npy" and tmp.parent == target.parent
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), training_common.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"  # the old file survives a failed write
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.npy"]  # no temporary left behind


def test_checkpoint_round_trip_and_missing(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    assert training_common.load_checkpoint(path) is None
    training_common.save_checkpoint(path, {"w": torch.arange(3.0), "step": 7, "note": "x"})
    state = training_common.load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(3.0)) and state["step"] == 7 and state["note"] == "x"


def test_run_log_writes_tagged_lines(tmp_path, capsys):
    log = training_common.RunLog(tmp_path / "logs" / "train.log", "clip")
    log("step 1")
    quiet = training_common.RunLog(tmp_path / "logs" / "train.log", "base", echo=False)
    quiet("step 2")
    lines = (tmp_path / "logs" / "train.log").read_text().splitlines()
    assert lines[0].endswith("[clip] step 1") and lines[1].endswith("[base] step 2")
    assert capsys.readouterr().out.strip().endswith("[clip] step 1")  # only the echoing log printed


def test_judge_trainer_writes_where_told_and_resumes(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_judge", REPO / "scripts" / "train_judge.py")
    train_judge = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = train_judge  # dataclasses need the module registered
    spec.loader.exec_module(train_judge)
    args = ["--out", str(tmp_path / "judge.safetensors"), "--work-dir", str(tmp_path / "work"), "--n-train", "32",
            "--n-heldout", "8", "--batch-size", "4", "--eval-every", "1", "--threads", "1"]
    assert train_judge.main([*args, "--steps", "1"])["steps"] == 1
    assert (tmp_path / "judge.safetensors").is_file() and (tmp_path / "work" / "last.pt").is_file()
    report = train_judge.main([*args, "--steps", "2"])
    assert report["steps"] == 2 and "resumed at step 1" in capsys.readouterr().out
