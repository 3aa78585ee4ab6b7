"""Parametric-trace probe, in the spirit of ConceptVectors (Hong et al., "Intrinsic Evaluation of Unlearning
Using Parametric Knowledge Traces", 2024): did the method change the weights that write the skill?

- Value vectors: column i of a layer's ``mlp.down_proj.weight`` (D, I) is what neuron i adds to the
  residual stream, v_i (D,). Projected on the vocabulary through the final norm and the unembedding
  (the logit lens), it says which tokens that neuron promotes.
- Trace of a skill: the ``vectors`` value vectors of the base model whose projection most favours the
  skill's answer tokens (tokens of the probe half's answers that no other skill's answers use) over the
  vocabulary's average token, score = mean logit of those tokens - mean logit of all tokens.
- Change: relative norm change ||v_edit - v_base|| / ||v_base|| of the trace vectors, against the same
  for ``random_vectors`` value vectors drawn with a fixed seed (how much the method moved weights in
  general). Unlearning that only suppresses the output (a hook, an abstention, or a fine-tune that moves
  other weights) leaves the trace intact: a change near 0, or no larger than the random vectors'.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import AttackResult, Chart, MetricRow
from backends.llm.skills import SKILLS
from backends.registry import register_attack

if TYPE_CHECKING:
    import torch

    from backends.contract import AttackCall
    from backends.llm.bundles import LLMBundle

RANDOM_VECTORS_SEED = 0


@dataclass(frozen=True)
class TraceConfig:
    """The forget skill's value vectors (by logit lens) and how much the edit moved them."""

    forget_skill: str = param("python_coding", choices=SKILLS, help="The skill whose trace is located.")
    vectors: int = param(20, min=1, max=500, help="Value vectors in the trace (highest scores first).")
    random_vectors: int = param(200, min=1, max=5000, advanced=True,
                                help="Randomly drawn value vectors, the control for how much the edit moved weights.")

    @classmethod
    def smoke(cls) -> "TraceConfig":
        return cls(forget_skill="factual_qa", vectors=4, random_vectors=8)


def skill_tokens(bundle: "LLMBundle", skill: str) -> list[int]:
    """Token ids in the answers of ``skill``'s probe half that no other skill's probe answers contain."""
    from backends.llm.skills import answer_span, load_skill_set

    def tokens(name: str) -> set[int]:
        found: set[int] = set()
        for item in load_skill_set(name, "probe"):
            start, end = answer_span(item)
            found.update(bundle.tokenizer(item.reference[start:end], add_special_tokens=False)["input_ids"])
        return found

    others = set().union(*(tokens(s) for s in SKILLS if s != skill))
    own = sorted(tokens(skill) - others)
    if not own:
        raise ValueError(f"{skill}'s answers share every token with the other skills: no trace to locate")
    return own


def value_vectors(bundle: "LLMBundle") -> "torch.Tensor":
    """Every MLP value vector of the model, layer by layer: (L * I, D) (rows = down_proj columns)."""
    import torch

    from backends.llm.bundles import mlp_modules

    return torch.cat([m.down_proj.weight.detach().float().T for m in mlp_modules(bundle.model)])


def trace_scores(bundle: "LLMBundle", vectors: "torch.Tensor", token_ids: list[int]) -> "torch.Tensor":
    """Logit-lens score of each (N, D) value vector: mean logit of ``token_ids`` minus the mean logit
    over the vocabulary, after the final norm's scale: (N,)."""
    unembed = bundle.model.get_output_embeddings().weight.detach().float()  # (V, D)
    norm = getattr(bundle.model.model, "norm", None)
    scale = norm.weight.detach().float() if norm is not None and hasattr(norm, "weight") else 1.0
    scaled = vectors * scale                                      # (N, D)
    own = scaled @ unembed[token_ids].mean(0)                     # (N,)
    average = scaled @ unembed.mean(0)                            # (N,)
    return own - average


def relative_change(before: "torch.Tensor", after: "torch.Tensor") -> "torch.Tensor":
    """||after - before|| / ||before|| per row of (N, D) tensors: (N,)."""
    return (after - before).norm(dim=-1) / before.norm(dim=-1).clamp(min=1e-12)


@register_attack("llm", "parametric_trace", title="Parametric trace: did the weights that write the skill change?",
                 config=TraceConfig,
                 paper="Hong et al., Intrinsic Evaluation of Unlearning Using Parametric Knowledge Traces, 2024")
def run_parametric_trace(call: "AttackCall") -> AttackResult:
    """Locate the forget skill's value vectors in the base (logit lens) and measure how much the edit
    changed them, against randomly drawn value vectors."""
    import torch

    cfg: TraceConfig = call.config
    call.ctx.phase("locating the trace", total=2)
    tokens = skill_tokens(call.base, cfg.forget_skill)
    base_vectors = value_vectors(call.base)                      # (L * I, D)
    edit_vectors = value_vectors(call.edited)                    # (L * I, D)
    per_layer = len(base_vectors) // call.base.n_layers
    scores = trace_scores(call.base, base_vectors, tokens)
    count = min(cfg.vectors, len(scores))
    top = scores.topk(count).indices
    generator = torch.Generator().manual_seed(RANDOM_VECTORS_SEED)
    drawn = torch.randperm(len(scores), generator=generator)[:min(cfg.random_vectors, len(scores))]
    call.ctx.step(1)
    trace_change = relative_change(base_vectors[top], edit_vectors[top])        # (count,)
    random_change = relative_change(base_vectors[drawn], edit_vectors[drawn])   # (R,)
    call.ctx.step(2)
    unembed = call.base.model.get_output_embeddings().weight.detach().float()
    table = []
    for rank, (index, change) in enumerate(zip(top.tolist(), trace_change.tolist()), start=1):
        promoted = (unembed @ base_vectors[index]).topk(5).indices.tolist()
        table.append({"rank": rank, "layer": index // per_layer + 1, "neuron": index % per_layer,
                      "score": round(float(scores[index]), 3),
                      "promotes": " ".join(repr(call.base.tokenizer.decode([t])) for t in promoted),
                      "relative change": round(change, 4)})
    trace_mean, random_mean = float(trace_change.mean()), float(random_change.mean())
    summary = [
        MetricRow("trace vectors: relative change (mean)", None, trace_mean, better="higher", n=count,
                  help="||v_edit - v_base|| / ||v_base|| over the value vectors that most write the skill's "
                       "answer tokens (logit lens of the base)."),
        MetricRow("random vectors: relative change (mean)", None, random_mean, n=len(drawn),
                  help="The same for randomly drawn value vectors: how much the method moved weights anywhere."),
        MetricRow("trace change / random change", None, trace_mean / random_mean if random_mean > 0 else None,
                  help="Above 1: the method changed the skill's vectors more than others."),
    ]
    chart = Chart("bar", [f"L{row['layer']}#{row['neuron']}" for row in table],
                  {"relative change": trace_change.tolist(), "random vectors (mean)": [random_mean] * count},
                  title=f"{cfg.forget_skill}: change of the value vectors that write it", x_title="value vector",
                  y_title="relative norm change")
    if trace_mean == 0:
        sentence = ("The value vectors that write the skill are exactly as they were: whatever the edit does, "
                    "it does at run time, and the skill's parametric trace is intact.")
    elif random_mean > 0 and trace_mean <= 1.5 * random_mean:
        sentence = (f"The skill's value vectors moved by {100 * trace_mean:.2f} %, about as much as random ones "
                    f"({100 * random_mean:.2f} %): the edit did not target the trace.")
    else:
        sentence = (f"The skill's value vectors moved by {100 * trace_mean:.2f} %, more than random ones "
                    f"({100 * random_mean:.2f} %): the edit reached the weights that write the skill.")
    return AttackResult(summary, table, chart, explanation=sentence)
