"""The Stable Diffusion hub presets' loading code and every method, on a tiny random SD pipeline.

diffusers' own tests build tiny components of the real classes (UNet2DConditionModel,
CLIPTextModel, AutoencoderKL); the tokenizer they download (hf-internal-testing/tiny-random-clip)
is rebuilt here offline from a byte-level vocabulary. Everything is saved with save_pretrained
in the hub layout and loaded through the presets' own loader, so no download happens.
"""
from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")

from backends import registry  # noqa: E402
from backends.config import build_config  # noqa: E402
from backends.contract import AttackCall, MethodCall, Sample  # noqa: E402
from backends.jobs import JobContext  # noqa: E402


def _byte_level_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE (GPT-2, CLIP) maps bytes to."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [256 + i for i in range(256 - len(printable))]
    return [chr(c) for c in printable + extra]


def write_tiny_sd(folder) -> None:
    """A seeded tiny SD 1.x pipeline (8x8 latents, 16 px images) saved in the hub folder layout."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4)
    chars = _byte_level_alphabet()
    vocab = {token: i for i, token in enumerate(chars + [c + "</w>" for c in chars]
                                                + ["<|startoftext|>", "<|endoftext|>"])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=48)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=48, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"]))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000)
    for name, part in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder), ("tokenizer", tokenizer),
                       ("scheduler", scheduler)):
        part.save_pretrained(str(folder / name))


@pytest.fixture(scope="module")
def sd_model(tmp_path_factory):
    import backends.diffusion  # noqa: F401
    from backends.diffusion.presets import SD_1_4, load_stable_diffusion

    folder = tmp_path_factory.mktemp("tiny_sd")
    write_tiny_sd(folder)
    return load_stable_diffusion("cpu", SD_1_4, path=folder)


def _ctx() -> JobContext:
    return JobContext.standalone()


def test_hub_presets_are_allow_listed_and_online():
    import backends.diffusion  # noqa: F401

    presets = registry.presets("diffusion")
    for name in ("sd_1_4", "sd_1_5", "tiny_sd"):
        assert presets[name].offline is False
    assert presets["faceworld"].offline and presets["tiny"].offline


def test_loader_reads_every_component(sd_model):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    assert isinstance(sd_model.unet, UNet2DConditionModel)
    assert isinstance(sd_model.text_encoder, CLIPTextModel)
    assert isinstance(sd_model.vae, AutoencoderKL)
    assert sd_model.image_size == 16 and sd_model.max_tokens == 48 and not sd_model.use_attention_mask
    assert not any(p.requires_grad for p in sd_model.unet.parameters())


def test_latent_generation_is_seeded(sd_model):
    a = sd_model.generate(["a red car", "a dog"], [3, 4], steps=3)
    b = sd_model.generate(["a red car"], [3], steps=3)
    assert a.shape == (2, 16, 16, 3) and a.dtype.name == "uint8"
    assert (a[0] == b[0]).all()
    assert not (a[0] == a[1]).all()


def test_fewshot_trains_clip_fc_and_last_self_attention(sd_model):
    from backends.diffusion.fewshot_te import fewshot_trainable

    selected = fewshot_trainable(sd_model.text_encoder)
    names = [n for n, _ in sd_model.text_encoder.named_parameters() if selected(n)]
    assert any("layers.0.mlp.fc1" in n for n in names) and any("layers.1.mlp.fc2" in n for n in names)
    assert any("layers.1.self_attn.q_proj" in n for n in names)
    assert not any("layers.0.self_attn" in n for n in names)
    assert not any("embeddings" in n for n in names)


@pytest.mark.parametrize("method", ["uce", "esd_x", "esd_u", "esd_kv", "fewshot_te", "salun", "advunlearn"])
def test_every_method_runs_on_sd_components(sd_model, method):
    be = registry.backend("diffusion")
    spec = registry.method("diffusion", method)
    config = spec.config.smoke()
    before = {k: v.clone() for k, v in be.state_tensors(sd_model).items()}
    picked = [Sample(key=f"s{i}", seed=i, prompt="a photo of glasses",
                     image=sd_model.generate(["a photo of glasses"], [i], steps=2)[0]) for i in range(2)]
    edited = be.clone(sd_model)
    spec.run(MethodCall(be, sd_model, edited, config, _ctx(), picked))
    after_base = be.state_tensors(sd_model)
    assert all(torch.equal(before[k], after_base[k]) for k in before), "the base model changed"
    changed = be.state_tensors(edited)
    assert any(not torch.equal(before[k], changed[k]) for k in before), "the edit changed nothing"
    rows = be.evaluate(sd_model, edited, build_config(spec.config, {"eval_prompts": 1, "eval_seeds": 1}), _ctx())
    assert rows and all(r.name for r in rows)


def test_attacks_run_on_sd_components(sd_model):
    be = registry.backend("diffusion")
    for name, spec in registry.attacks("diffusion").items():
        result = spec.run(AttackCall(be, sd_model, sd_model, False, spec.config.smoke(), _ctx()))
        assert result.summary, name
