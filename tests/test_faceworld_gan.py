"""FaceWorld style-based GAN: tiny seeded networks, seeding, W+ control, layer groups, assets, training smoke."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.faceworld import gan as gan_module
from backends.faceworld.gan import load_gan, random_gan
from backends.faceworld.latent_code import LatentCode

REPO = Path(__file__).resolve().parents[1]
TINY = {"z_dim": 64, "w_dim": 16, "mapping_layers": 2, "channels": (16, 16, 8, 8), "d_channels": (16, 16, 8, 8)}


@pytest.fixture(scope="module")
def tiny_gan():
    return random_gan(TINY, seed=0, device="cpu")


def _load_train_script():
    spec = importlib.util.spec_from_file_location("train_gan", REPO / "scripts" / "train_gan.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gan"] = module
    spec.loader.exec_module(module)
    return module


def test_module_import_does_not_import_torch():
    import subprocess

    code = "import sys, backends.faceworld.gan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shapes_and_range(tiny_gan):
    z = tiny_gan.z_from_seeds([0, 1, 2])
    assert z.shape == (3, tiny_gan.z_dim)
    w = tiny_gan.mapping(z)
    assert w.shape == (3, tiny_gan.w_dim)
    ws = tiny_gan.broadcast_ws(w)
    assert ws.shape == (3, tiny_gan.num_ws, tiny_gan.w_dim)
    assert tiny_gan.num_ws == 8  # 4px: conv + toRGB; 8..32px: two convs each, toRGB shares the next w
    images = tiny_gan.synthesis(ws)
    assert images.shape == (3, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0  # not a constant image
    out = tiny_gan.generate([0, 1])
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8


def test_same_seed_same_image_in_any_batch(tiny_gan):
    alone = tiny_gan.generate([7])
    mixed = tiny_gan.generate([3, 7, 11, 7])
    np.testing.assert_array_equal(alone[0], mixed[1])
    np.testing.assert_array_equal(mixed[1], mixed[3])
    assert not np.array_equal(mixed[0], mixed[1])


def test_truncation_pulls_towards_w_avg(tiny_gan):
    z = tiny_gan.z_from_seeds([5])
    w_avg = tiny_gan.generator.mapping.w_avg
    w_full = tiny_gan.mapping(z, 1.0)
    w_half = tiny_gan.mapping(z, 0.5)
    torch.testing.assert_close(w_half, w_avg + 0.5 * (w_full - w_avg))
    torch.testing.assert_close(tiny_gan.mapping(z, 0.0), w_avg.expand_as(w_full))


def test_w_plus_per_layer_control(tiny_gan):
    w_a, w_b = tiny_gan.mapping(tiny_gan.z_from_seeds([1, 2])).chunk(2)
    base = tiny_gan.broadcast_ws(w_a).clone()
    changed = base.clone()
    changed[:, -1] = w_b  # only the last (toRGB at 32 px) style
    with torch.no_grad():
        img_base, img_changed = tiny_gan.synthesis(base), tiny_gan.synthesis(changed)
    assert not torch.allclose(img_base, img_changed)
    # each layer's w matters
    for index in range(tiny_gan.num_ws):
        edited = base.clone()
        edited[:, index] = w_b
        with torch.no_grad():
            assert not torch.allclose(tiny_gan.synthesis(edited), img_base), f"ws[{index}] has no effect"


def test_layer_groups_partition_generator_params(tiny_gan):
    groups = tiny_gan.layer_groups()
    assert set(groups) == {"mapping", "coarse", "middle", "fine", "torgb"}
    names = [name for name, _ in tiny_gan.generator.named_parameters()]
    for name in names:
        owners = [g for g, prefixes in groups.items() if any(name.startswith(p) for p in prefixes)]
        assert len(owners) == 1, f"{name} is in groups {owners}"
    conv_names = [name for name, _ in tiny_gan.conv_layers()]
    assert conv_names[0] == "synthesis.b4.conv1" and conv_names[-1] == "synthesis.b32.conv1"
    assert len(conv_names) == 7
    fine = tiny_gan.parameters_of(groups=["fine"])
    assert fine and all(name.startswith("synthesis.b32.conv") for name, _ in fine)
    one = tiny_gan.parameters_of(layers=["synthesis.b16.conv0"])
    assert {name for name, _ in one} >= {"synthesis.b16.conv0.weight", "synthesis.b16.conv0.affine.weight"}
    with pytest.raises(ValueError, match="valid"):
        tiny_gan.parameters_of(groups=["nope"])


def test_clone_is_independent_and_trainable(tiny_gan):
    twin = tiny_gan.clone()
    params = dict(twin.parameters_of(groups=["fine"]))
    assert all(p.requires_grad for p in params.values())
    loss = twin.synthesis(twin.mapping(twin.z_from_seeds([0]))).mean()
    loss.backward()
    with torch.no_grad():
        for p in params.values():
            p.add_(1.0)
    original = dict(tiny_gan.generator.named_parameters())
    name = next(iter(params))
    assert not torch.equal(original[name], params[name])


def test_bad_inputs_raise_value_error(tiny_gan):
    with pytest.raises(ValueError, match="list"):
        tiny_gan.generate(3)
    with pytest.raises(ValueError):
        tiny_gan.generate([])
    with pytest.raises(ValueError):
        tiny_gan.generate([-1])
    with pytest.raises(ValueError, match="truncation_psi"):
        tiny_gan.generate([0], truncation_psi=float("nan"))
    with pytest.raises(ValueError, match="ws"):
        tiny_gan.synthesis(torch.zeros(1, 3, tiny_gan.w_dim))
    with pytest.raises(ValueError, match="valid"):
        load_gan("imaginary")
    with pytest.raises(ValueError, match="unknown GAN config"):
        random_gan({"nonsense": 1})


@pytest.mark.parametrize("variant", ["base", "no_glasses"])
def test_shipped_asset_loads(variant):
    path = gan_module.ASSET_DIR / gan_module.VARIANTS[variant]
    if not path.exists():
        pytest.skip(f"{path} not trained yet (python scripts/train_gan.py)")
    gan = load_gan(variant, device="cpu")
    assert load_gan(variant, device="cpu") is gan  # cached
    images = gan.generate([0, 1, 2, 3])
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 10  # not blank
    assert path.stat().st_size < 10 * 2**20
    counts = gan.num_parameters()
    assert counts["generator"] * 4 < 5 * 2**20 and counts["discriminator"] * 4 < 5 * 2**20
    assert not any(p.requires_grad for p in gan.generator.parameters())


def test_training_smoke_and_resume(tmp_path):
    train_gan = _load_train_script()
    config = train_gan.TrainConfig(
        steps=2, batch=4, pool_size=8, gan=dict(TINY), r1_interval=2, log_every=1, progress=False,
        work_dir=str(tmp_path / "work"), asset_dir=str(tmp_path / "assets"))
    trainer = train_gan.train(config)
    assert trainer.step_index == 2
    code = LatentCode(train_gan.world.sample_faces(8, config.data_seed), TINY["z_dim"])
    assert trainer.G_ema.config.code_groups == tuple(code.groups())
    assert torch.equal(trainer.G_ema.mapping.code_bias, code.bias_vector())  # z ~ N(0, I) keeps the pool's frequencies
    assert all(np.isfinite(h["loss_D"]) and np.isfinite(h["loss_G"]) for h in trainer.history)
    asset = tmp_path / "assets" / "gan_base.safetensors"
    assert asset.exists() and (tmp_path / "assets" / "GAN.md").exists()
    assert (tmp_path / "work" / "base" / "grid.png").exists() and (tmp_path / "work" / "base" / "last.pt").exists()
    assert list((tmp_path / "work" / "data").glob("pool_*.npy"))  # the render pool is cached in the work folder
    first = gan_module.load_gan_file(asset, device="cpu").generate([0])
    assert train_gan.main(["--asset-dir", str(tmp_path / "assets"), "--card-metrics", '{"err_pts": 1.5}']) is None

    config.steps = 3
    resumed = train_gan.train(config)
    assert resumed.step_index == 3  # continued from the checkpoint, not from zero
    assert "resumed from" in (tmp_path / "work" / "train.log").read_text()
    second = gan_module.load_gan_file(asset, device="cpu").generate([0])
    assert not np.array_equal(first, second)  # the extra step changed the shipped EMA weights
    card = (tmp_path / "assets" / "GAN.md").read_text()
    assert card.count("<!-- variant:base -->") == 1 and "Steps: 3 of 3" in card
    assert '"err_pts": 1.5' in card  # metrics recorded between runs survive later checkpoints


def test_feature_boxes_hold_every_pixel_an_expression_changes():
    """The fine-tuning term's boxes (mouth and brows) contain all of the difference between a face's
    expressions, and stay a small part of the image."""
    import dataclasses

    from backends.faceworld import world

    train_gan = _load_train_script()
    faces = world.sample_faces(60, 11)
    inside = train_gan.box_masks(train_gan.feature_boxes(faces, 32), 32)[:, 0].numpy() > 0  # (N, 32, 32)
    renders = {e: world.render_small([dataclasses.replace(f, attrs=world.Attrs({**dict(f.attrs), "expression": e}))
                                      for f in faces]).astype(int) for e in world.ATTRIBUTES["expression"]}
    for a, b in (("neutral", "frowning"), ("neutral", "smiling"), ("smiling", "frowning")):
        changed = np.abs(renders[a] - renders[b]).sum(-1) > 0  # (N, 32, 32)
        assert changed.any(axis=(1, 2)).all() and not (changed & ~inside).any()
    assert inside.mean() < 0.15


def test_fine_tuning_starts_from_the_asset_and_pays_the_feature_term(tmp_path):
    train_gan = _load_train_script()
    common = dict(batch=4, pool_size=8, gan=dict(TINY), r1_interval=2, log_every=1, progress=False,
                  asset_dir=str(tmp_path / "assets"))
    train_gan.train(train_gan.TrainConfig(steps=1, work_dir=str(tmp_path / "pretrain"), **common))
    asset = tmp_path / "assets" / "gan_base.safetensors"
    shipped = gan_module.load_gan_file(asset, device="cpu")
    config = train_gan.TrainConfig(steps=1, work_dir=str(tmp_path / "finetune"), init_from=str(asset),
                                   feature_weight=1.0, **common)
    trainer = train_gan.Trainer(config, code=LatentCode(train_gan.world.sample_faces(8, config.data_seed),
                                                        TINY["z_dim"]))
    train_gan.start_from_asset(trainer, asset)
    for name, value in shipped.generator.state_dict().items():
        assert torch.equal(trainer.G.state_dict()[name], value) and torch.equal(trainer.G_ema.state_dict()[name], value)
    assert all(torch.equal(trainer.D.state_dict()[k], v) for k, v in shipped.discriminator.state_dict().items())
    tuned = train_gan.train(config)
    assert tuned.step_index == 1 and "fine-tuning from" in (tmp_path / "finetune" / "train.log").read_text()
    assert tuned.history[-1]["recon_features"] > 0
    other = train_gan.TrainConfig(steps=1, work_dir=str(tmp_path / "other"), init_from=str(asset),
                                  **{**common, "gan": {**TINY, "w_dim": 32}})
    with pytest.raises(ValueError, match="architecture"):
        train_gan.train(other)


def test_exclude_pool_has_no_glasses(tmp_path):
    train_gan = _load_train_script()
    with pytest.raises(ValueError, match="valid"):
        train_gan.TrainConfig(exclude="hats")
    faces_pool = train_gan.render_pool(6, seed=0, exclude="glasses", render_size=64, image_size=32)
    assert faces_pool.shape == (6, 32, 32, 3) and faces_pool.dtype == np.uint8
    from backends.faceworld import world

    faces = world.sample_faces(200, 0, exclude=train_gan.EXCLUDE_PRESETS["glasses"])
    assert all(face.attrs["glasses"] == "none" for face in faces)


def test_latent_code_matches_data_marginals():
    from backends.faceworld import world

    faces = world.sample_faces(400, 3)
    code = LatentCode(faces, z_dim=64)
    z = code.sample(np.arange(len(faces)), torch.Generator().manual_seed(0)).numpy()  # (400, 64)
    assert z.shape == (400, 64) and np.isfinite(z).all()
    free = np.random.default_rng(0).standard_normal((20_000, 64))
    for offset, biases, values in code.categorical:
        width = len(biases)
        # every face's z decodes to its own value ...
        np.testing.assert_array_equal((z[:, offset:offset + width] + biases).argmax(1), values)
        # ... and z ~ N(0, I) decodes to the data's frequencies
        decoded = np.bincount((free[:, offset:offset + width] + biases).argmax(1), minlength=width) / len(free)
        np.testing.assert_allclose(decoded, np.bincount(values, minlength=width) / len(values), atol=0.03)
    # ... and attribute_values names each face's own attribute values, read through a generator's code_bias
    decoded = code.attribute_values(z, code.bias_vector().numpy())
    for attribute, values in world.ATTRIBUTES.items():
        np.testing.assert_array_equal(decoded[attribute], [values.index(f.attrs[attribute]) for f in faces])
    without = [f for f in faces if f.attrs["glasses"] == "none"]  # a pool where glasses has one value (no z slot)
    code_without = LatentCode(without, z_dim=64)
    z_without = code_without.sample(np.arange(len(without)), torch.Generator().manual_seed(1)).numpy()
    decoded = code_without.attribute_values(z_without, code_without.bias_vector().numpy())
    assert set(decoded["glasses"]) == {0}
    np.testing.assert_array_equal(decoded["hat"], [world.ATTRIBUTES["hat"].index(f.attrs["hat"]) for f in without])
    with pytest.raises(ValueError, match="z_dim"):
        LatentCode(faces, z_dim=16)


def test_shipped_gan_code_layout_is_latent_code():
    """The shipped base GAN's decoded slices and their biases are LatentCode's for its training data (seed and
    exclusion from the asset's metadata): a change to LatentCode that moves what z means fails here."""
    import json

    from safetensors import safe_open

    from backends.faceworld import world

    path = gan_module.ASSET_DIR / gan_module.VARIANTS["base"]
    if not path.exists():
        pytest.skip(f"{path} not trained yet (python scripts/train_gan.py)")
    with safe_open(str(path), framework="pt") as handle:
        trained = json.loads(handle.metadata()["train_config"])
    assert trained["exclude"] == "" and trained["decode_code"]
    generator = load_gan("base", device="cpu").generator
    # 3,000 of the 50,000 training faces: the same factors and values, frequencies within sampling error
    code = LatentCode(world.sample_faces(3000, trained["data_seed"]), generator.config.z_dim)
    assert tuple(code.groups()) == generator.config.code_groups
    np.testing.assert_allclose(code.bias_vector().numpy(), generator.mapping.code_bias.numpy(), atol=0.15)


def test_categorical_code_decodes_argmax_and_round_trips(tmp_path):
    gan = random_gan({**TINY, "code_groups": [(0, 3), (3, 2)]}, seed=0, device="cpu")
    mapping = gan.generator.mapping
    mapping.code_bias[:3] = torch.tensor([0.0, 5.0, 0.0])  # value 1 of the first factor almost always wins
    z = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
    decoded = mapping.decode_code(z)
    assert torch.equal(decoded[:, 0:3], torch.tensor([[0.0, 2.0, 0.0]]).expand(6, 3))
    assert torch.equal(decoded[:, 3:5].argmax(1), z[:, 3:5].argmax(1)) and torch.equal(decoded[:, 5:], z[:, 5:])
    moved = z.clone()
    moved[:, 0] += 0.1  # stays inside the same argmax cone: same w
    assert torch.equal(gan.mapping(moved), gan.mapping(z))
    flipped = z.clone()
    flipped[:, 0] += 100.0  # another value of the factor: another w
    assert not torch.allclose(gan.mapping(flipped), gan.mapping(z))
    gan_module.save_gan(tmp_path / "coded.safetensors", gan.generator, gan.discriminator)
    loaded = gan_module.load_gan_file(tmp_path / "coded.safetensors", device="cpu")
    assert loaded.generator.config.code_groups == ((0, 3), (3, 2))
    assert torch.equal(loaded.generator.mapping.code_bias, mapping.code_bias)
    np.testing.assert_array_equal(loaded.generate([0, 1]), gan.generate([0, 1]))
    with pytest.raises(ValueError, match="code_groups"):
        random_gan({**TINY, "code_groups": [(62, 4)]}, device="cpu")


def test_missing_weights_file_names_its_trainer(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/train_gan.py"):
        gan_module.load_gan_file(tmp_path / "never_trained.safetensors", device="cpu")
