"""Tests for the FaceWorld CLIP (shipped weights) and its training script."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.faceworld import world

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from backends.faceworld import clip as fw_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return fw_clip.load_clip("cpu")


@pytest.fixture(scope="module")
def renders():
    faces = world.sample_faces(200, seed=987_654)   # disjoint from the training seeds (seed*1000 + 1..4)
    return faces, world.render_batch(faces, 32)


def test_load_is_cached_and_shipped_file_is_small(model):
    assert fw_clip.load_clip("cpu") is model
    assert fw_clip.ASSET_PATH.stat().st_size < 10 * 1024 * 1024
    assert model.image_size == 32


def test_shapes_and_normalisation(model, renders):
    _, images = renders
    feats = model.encode_images(images[:8])
    assert feats.shape == (8, model.embed_dim)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(8), atol=1e-4, rtol=0)
    text = model.encode_text(["a face wearing glasses", "a bearded person"])
    assert text.shape == (2, model.embed_dim)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2), atol=1e-4, rtol=0)
    states, mask = model.text_token_states(["a face", "a grinning person with spectacles"])
    assert states.shape[0] == 2 and states.shape[2] == 384 and mask.shape == states.shape[:2]
    assert mask[0].sum() < mask[1].sum()
    # any input size is resized; 64 px renders give nearly the same embedding as 32 px ones
    big = model.encode_images(world.render_batch(renders[0][:8], 64))
    assert (big * feats).sum(-1).min() > 0.8


def test_tensor_input_matches_uint8_and_is_differentiable(model, renders):
    _, images = renders
    x = torch.from_numpy(images[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1.0   # (4, 3, 32, 32)
    x.requires_grad_(True)
    feats = model.encode_images(x)
    torch.testing.assert_close(feats.detach(), model.encode_images(images[:4]), atol=1e-4, rtol=0)
    target = model.encode_text(["a face wearing sunglasses"])
    (feats @ target.T).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_zero_shot_accuracy_on_fresh_renders(model, renders):
    faces, images = renders
    for attr, values in world.ATTRIBUTES.items():
        truth = np.array([values.index(f.attrs[attr]) for f in faces])
        accuracy = float((model.zero_shot(images, attr) == truth).mean())
        assert accuracy >= 0.9, (attr, accuracy)


def test_presence_and_alignment(model, renders):
    faces, images = renders
    has_sunglasses = np.array([f.attrs["glasses"] == "sunglasses" for f in faces])
    predicted = model.presence(images, "glasses", "sunglasses")
    assert predicted.dtype == bool and (predicted == has_sunglasses).mean() > 0.9
    scores = model.alignment(images, "a face wearing sunglasses")
    assert scores.shape == (200,)
    assert scores[has_sunglasses].mean() > scores[~has_sunglasses].mean() + 0.05


def test_bad_inputs_raise_value_error(model):
    with pytest.raises(ValueError):
        model.encode_images(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        model.encode_images(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError):
        model.zero_shot(np.zeros((1, 32, 32, 3), dtype=np.uint8), "mood")
    with pytest.raises(ValueError):
        model.encode_text("not a list")


def test_train_script_runs_two_steps(tmp_path):
    spec = importlib.util.spec_from_file_location("train_clip", REPO / "scripts" / "train_clip.py")
    train_clip = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = train_clip          # dataclasses need the module registered
    spec.loader.exec_module(train_clip)
    out = tmp_path / "clip.safetensors"
    metrics = train_clip.main([
        "--out", str(out), "--work-dir", str(tmp_path / "work"), "--log", str(tmp_path / "log.txt"),
        "--n-images", "64", "--n-caption-pool", "64", "--steps", "2", "--batch-size", "8", "--extra-captions", "4",
        "--eval-images", "0",
        "--arch", '{"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, '
                  '"head_width": 8}, "context_length": 48}',
    ])
    assert out.is_file() and metrics["steps"] == 2
    assert (tmp_path / "work" / "ckpt_0.pt").is_file()
    assert "[clip] done at step 2" in (tmp_path / "log.txt").read_text()
    tiny = fw_clip.load_clip("cpu", path=out)
    assert tiny.embed_dim == 16
    assert tiny.encode_images(np.zeros((2, 32, 32, 3), dtype=np.uint8)).shape == (2, 16)


def test_zero_shot_names_the_characters(model):
    characters = world.sample_faces(24, seed=4242, character_rate=1.0)
    truth = np.array([list(world.CHARACTERS).index(f.character) for f in characters])
    predicted = model.zero_shot_characters(world.render_batch(characters, 32))
    assert (predicted == truth).mean() >= 0.9
