"""Neuron Adjust (Li et al., "Effective Skill Unlearning through Intervention and Abstention",
NAACL 2025; Trustworthy-ML-Lab/effective_skill_unlearning): training-free, through forward hooks.

1. Probe: forward the forget and retain prompts with their reference answers; for every MLP
   neuron (the output of ``mlp.gate_proj``, i.e. the pre-activation, in every layer) record the
   mean and standard deviation over token positions. Positions: the user message and the answer
   tokens (the shared system-prompt prefix is left out; pasted prompts have no answer).
2. Select: delta = mu_forget - mu_retain (signed, not absolute: neurons that fire *more* on the
   forget skill), pooled over all layers; keep the top ``neuron_percent`` % of all neurons.
3. Intervene at every token: for a selected neuron with value x, if N(x; mu_r, s_r) <= N(x; mu_f,
   s_f) then with probability p_f / (p_r + p_f) (p = those Gaussian densities) replace x by
   mu_r - s_r * (x - mu_f) / s_f. The coin of each (neuron, token) is a hash of the seed, the layer, the
   neuron, the token's position in its own sequence and its id (:func:`backends.llm.hooks.token_uniforms`):
   a prompt gets the same answer alone or in any batch (a generator drawing (B, T, K) coins per batch
   made the answer depend on the batch's shape).
"""
from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from backends.config import param
from backends.llm.skill_config import SkillConfig, resolve_skill_sets
from backends.llm.hooks import Activation, HookEdit, token_uniforms
from backends.registry import register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from backends.contract import MethodCall
    from backends.llm.bundles import LLMBundle

MIN_STD = 1e-3


@dataclass(frozen=True)
class NeuronAdjustConfig(SkillConfig):
    """Neuron Adjust. Authors' range for the selected share: 0.5-3 % of the MLP neurons."""

    neuron_percent: float = param(1.0, min=0.01, max=10.0, step=0.1, label="Neurons adjusted (%)",
                                  help="Share of all MLP neurons (pooled over layers) with the largest "
                                       "forget-minus-retain mean pre-activation that get adjusted.")
    seed: int = param(0, min=0, max=2**31 - 1, advanced=True,
                      help="Seed of the random replacement decisions.")

    @classmethod
    def smoke(cls) -> "NeuronAdjustConfig":
        return cls(forget_skill="factual_qa", retain_skills=("antonyms",), probe_items=6, eval_items=2,
                   eval_max_new_tokens=8, neuron_percent=5.0)


class NeuronAdjustEdit(HookEdit):
    """Selected neurons (per layer) with their forget/retain Gaussian statistics."""

    kind = "neuron_adjust"

    def __init__(self, layer: "torch.Tensor", neuron: "torch.Tensor", mu_f: "torch.Tensor", s_f: "torch.Tensor",
                 mu_r: "torch.Tensor", s_r: "torch.Tensor"):
        self.layer, self.neuron = layer.long(), neuron.long()  # (K,) each
        self.mu_f, self.s_f, self.mu_r, self.s_r = mu_f.float(), s_f.float(), mu_r.float(), s_r.float()  # (K,)

    def hooks(self, model: "nn.Module") -> list[tuple["nn.Module", str, Callable[..., Any]]]:
        from backends.llm.bundles import mlp_modules

        mlps = mlp_modules(model)
        out: list[tuple[Any, str, Callable[..., Any]]] = [(model.model, "forward_pre_kwargs", Activation.record_tokens)]
        for layer in sorted(set(self.layer.tolist())):
            sel = self.layer == layer
            stats = (self.neuron[sel], self.mu_f[sel], self.s_f[sel], self.mu_r[sel], self.s_r[sel])
            out.append((mlps[layer].gate_proj, "forward", self._make_hook(layer, *stats)))
        return out

    @staticmethod
    def _make_hook(layer: int, idx: "torch.Tensor", mu_f: "torch.Tensor", s_f: "torch.Tensor",
                   mu_r: "torch.Tensor", s_r: "torch.Tensor") -> Callable[..., Any]:
        def hook(act: Activation, module: Any, args: Any, output: "torch.Tensor") -> "torch.Tensor":
            coin = token_uniforms(act.seed, layer, idx, act.positions, act.token_ids)  # (B, T, K)
            return adjust(output, idx, mu_f, s_f, mu_r, s_r, coin)
        return hook

    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        return {"layer": self.layer, "neuron": self.neuron, "mu_forget": self.mu_f, "std_forget": self.s_f,
                "mu_retain": self.mu_r, "std_retain": self.s_r}


def gaussian_log_density(x: "torch.Tensor", mu: "torch.Tensor", std: "torch.Tensor") -> "torch.Tensor":
    return -0.5 * ((x - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)


def adjust(output: "torch.Tensor", idx: "torch.Tensor", mu_f: "torch.Tensor", s_f: "torch.Tensor",
           mu_r: "torch.Tensor", s_r: "torch.Tensor", coin: "torch.Tensor") -> "torch.Tensor":
    """Neuron Adjust on (..., I) pre-activations for the neurons ``idx`` (K,), with one uniform ``coin``
    (..., K) per selected value: a new tensor."""
    import torch

    dev = output.device
    idx = idx.to(dev)
    x = output[..., idx].float()  # (..., K)
    mu_f, s_f, mu_r, s_r = (t.to(dev) for t in (mu_f, s_f, mu_r, s_r))
    log_f = gaussian_log_density(x, mu_f, s_f)
    log_r = gaussian_log_density(x, mu_r, s_r)
    p_forget = torch.sigmoid(log_f - log_r)  # p_f / (p_r + p_f)
    replace = (log_r <= log_f) & (coin.to(dev) < p_forget)
    shifted = mu_r - s_r * (x - mu_f) / s_f
    new = output.clone()
    new[..., idx] = torch.where(replace, shifted, x).to(output.dtype)
    return new


def gate_statistics(bundle: "LLMBundle", prompts: list[str], answers: list[str | None],
                    batch_size: int = 8,
                    step: Callable[[], None] | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-neuron mean and std of ``gate_proj`` outputs over query and answer tokens: (L, I) each."""
    import torch

    from backends.llm.hooks import capture
    from backends.llm.bundles import mlp_modules
    from backends.llm.chat import encode_chat, left_pad, positions, span_mask

    mlps = mlp_modules(bundle.model)
    encoded = encode_chat(bundle, prompts, [a or "" for a in answers])
    spans = [(q[0], a[1] if ans else q[1]) for q, a, ans in zip(encoded.query_spans, encoded.answer_spans, answers)]
    total = torch.zeros(len(mlps), mlps[0].gate_proj.out_features, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    with torch.no_grad(), bundle.active():
        for start in range(0, len(prompts), batch_size):
            if step is not None:
                step()
            rows = encoded.ids[start:start + batch_size]
            ids, mask, width = left_pad(bundle, rows)
            keep = span_mask(spans[start:start + batch_size], [len(r) for r in rows], width).to(ids.device)
            with ExitStack() as stack:
                got = [stack.enter_context(capture(m.gate_proj, "output")) for m in mlps]
                bundle.model.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=False)
            for layer, captured in enumerate(got):
                values = captured.tensors[0][keep].double()  # (tokens, I)
                total[layer] += values.sum(0)
                total_sq[layer] += (values ** 2).sum(0)
            count += int(keep.sum())
    mean = total / max(count, 1)
    std = (total_sq / max(count, 1) - mean ** 2).clamp(min=0).sqrt()
    return mean.float(), std.float().clamp(min=MIN_STD)


def select_neurons(mu_f: "torch.Tensor", mu_r: "torch.Tensor", percent: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(layer, neuron) indices of the top ``percent`` % by signed mu_f - mu_r, pooled over layers."""
    import torch

    delta = (mu_f - mu_r).flatten()  # (L*I,)
    k = max(1, int(round(delta.numel() * percent / 100)))
    top = torch.topk(delta, k).indices
    width = mu_f.shape[1]
    return top // width, top % width


def build_edit(bundle: "LLMBundle", forget: tuple[list[str], list[str | None]],
               retain: tuple[list[str], list[str | None]], percent: float,
               step: Callable[[], None] | None = None) -> NeuronAdjustEdit:
    mu_f, s_f = gate_statistics(bundle, *forget, step=step)
    mu_r, s_r = gate_statistics(bundle, *retain, step=step)
    layer, neuron = select_neurons(mu_f, mu_r, percent)
    return NeuronAdjustEdit(layer, neuron, mu_f[layer, neuron], s_f[layer, neuron],
                            mu_r[layer, neuron], s_r[layer, neuron])


@register_method("llm", "neuron_adjust", title="Neuron Adjust (training-free)", config=NeuronAdjustConfig,
                 paper="Li et al., Effective Skill Unlearning through Intervention and Abstention, NAACL 2025")
def run(call: "MethodCall") -> None:
    """Shift the MLP neurons most specific to the forget skill from its activation distribution to
    the retain skills' one, with removable hooks (the weights are not changed)."""
    cfg: NeuronAdjustConfig = call.config
    sets = resolve_skill_sets(cfg, call.model)
    batches = math.ceil(len(sets.forget_prompts) / 8) + math.ceil(len(sets.retain_prompts) / 8)
    done = [0]

    def step() -> None:
        done[0] += 1
        call.ctx.step(done[0], batches)

    call.ctx.phase("probing neuron statistics", total=batches)
    edit = build_edit(call.model, (sets.forget_prompts, sets.forget_answers),
                      (sets.retain_prompts, sets.retain_answers), cfg.neuron_percent, step=step)
    edit.seed = cfg.seed
    call.model.edits = tuple(call.model.edits) + (edit,)
    call.ctx.log(f"Neuron Adjust: {len(edit.neuron)} neurons in {len(set(edit.layer.tolist()))} layers")
