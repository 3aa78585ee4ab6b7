"""UCE, Unified Concept Editing (Gandikota et al., 2024, rohitgandikota/unified-concept-editing).

A closed-form edit of every cross-attention ``to_k`` / ``to_v`` weight W (out x in):

    W_new = [lam*W + s_e * sum_i v_i c_i^T + s_p * sum_j (W c_j) c_j^T]
            @ [lam*I + s_e * sum_i c_i c_i^T + s_p * sum_j c_j c_j^T]^-1

which minimises lam*||W_new - W||^2 + s_e*sum_i ||W_new c_i - v_i||^2 + s_p*sum_j ||W_new c_j - W c_j||^2:
the erased concepts' text states c_i now project where the guide's do (v_i = W c_guide), the
preserved concepts' states keep their projections. No gradients, float32, about a second.

Text states: the method reference takes c at the concept's last real (non-special) token
("last"); the official code takes every state from that token to the end of the sequence (end
token and padding), paired with the guide's ("to_end"), our default. FaceWorld's text encoder
(MiniLM) is bidirectional, so every position carries the concept and "all" pairs every position of
each concept prompt with the same position of its guide prompt, the prompt with the concept's
wording removed ("a face wearing glasses" -> "a face"); on the latent FaceWorld model "all" left
glasses in a third of the images, "last" moved the neighbours, "to_end" did neither. Otherwise the
authors' defaults (s_p = 1, guide "": the concept's prompts without the concept) except s_e = 2 (at 1,
glasses stayed in 29% of the concept images; 2: 4%; hats 0% either way) and lam 5 (authors: 0.5), chosen
on the tune split by scripts/tune_diffusion.py: no setting tried erases there; lam 5 left the least
(0.59 of glasses, 0.34 of hats on 32 images each, against 0.69 / 0.28 at 0.5: within noise).

UCE erases the wordings it is given, by construction, and its paper erases many concepts at once; so
by default each erased concept brings its other wordings from the train split (synonyms and paraphrases
of FaceWorld's training captions, :func:`backends.diffusion.prompt_sets.paraphrase_prompts`), never a
tune or eval prompt; the log lists every wording erased. With them, the guide prompts ("a face") are
preserved too: without that, thirty wordings mapped onto "a face" moved "a face" itself, which then drew
glasses in every image (tune set, FaceWorld judge); preserved, it draws none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import MethodCall
from backends.diffusion.common import (
    check_concept_drawn, check_lists_disjoint, reworded_prompts, split_lines, training_prompts,
)
from backends.diffusion.erasure_config import ErasureConfig
from backends.diffusion.prompt_sets import retain_prompts
from backends.faceworld.concepts import MAX_CONCEPT_CHARS
from backends.registry import register_method

if TYPE_CHECKING:
    import torch

    from backends.diffusion.pipeline import DiffusionModel

TOKEN_SCOPES = ("all", "to_end", "last")


@dataclass(frozen=True)
class UCEConfig(ErasureConfig):
    """UCE settings (authors' defaults: lam 0.5, erase scale 1, preserve scale 1, guide "", states from the
    concept's last token to the end); ours erase at scale 2 with lam 5 (see the module docstring)."""

    also_erase: tuple[str, ...] = param((), max_items=8, max_length=MAX_CONCEPT_CHARS,
                                        help="More concepts to erase at once, one per line (optional).")
    paraphrases: bool = param(True, help="Also erase each concept's other wordings from the training captions "
                                         "(synonyms, paraphrases; never the evaluation's prompts).")
    preserve: tuple[str, ...] = param((), max_items=12, max_length=MAX_CONCEPT_CHARS,
                                      help="Concepts to keep exactly as they are, one per line.")
    preserve_neighbours: bool = param(True, help="Also preserve the concept's neighbours (FaceWorld: the other "
                                                 "values of its attribute and the other accessories, worded "
                                                 "apart from the evaluation's prompts).")
    guide: str = param("", max_length=MAX_CONCEPT_CHARS,
                       help="Where the erased concept should land; empty = its prompts without the concept "
                            "(e.g. 'a face').")
    lam: float = param(5.0, min=0.0, max=100.0,
                       help="Weight of staying close to the original W (authors: 0.5; 5 chosen on the tune split).")
    erase_scale: float = param(2.0, min=0.0, max=100.0, advanced=True,
                               help="s_e (authors: 1; FaceWorld's glasses need 2).")
    preserve_scale: float = param(1.0, min=0.0, max=100.0, advanced=True, help="s_p (authors: 1).")
    tokens: str = param("to_end", choices=TOKEN_SCOPES, advanced=True,
                        help="Text states to edit: every position (bidirectional encoders), from the concept's "
                             "last real token to the end (official code), or that token only (paper).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_lists_disjoint((self.concept,) + split_lines(self.also_erase), split_lines(self.preserve))

    @classmethod
    def smoke(cls) -> "UCEConfig":
        return cls(eval_prompts=1, eval_seeds=1)


def uce_closed_form(weight: "torch.Tensor", erase_inputs: "torch.Tensor", erase_targets: "torch.Tensor",
                    preserve_inputs: "torch.Tensor", lam: float, erase_scale: float = 1.0,
                    preserve_scale: float = 1.0) -> "torch.Tensor":
    """UCE's closed form for one projection.

    weight (out, d); erase_inputs (n_e, d) = c_i; erase_targets (n_e, out) = v_i;
    preserve_inputs (n_p, d) = c_j (targets W c_j). Returns W_new (out, d).
    """
    import torch

    w = weight.float()
    c_e, v_e, c_p = erase_inputs.float(), erase_targets.float(), preserve_inputs.float()
    v_p = c_p @ w.T  # (n_p, out)
    eye = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    lhs = lam * w + erase_scale * v_e.T @ c_e + preserve_scale * v_p.T @ c_p  # (out, d)
    gram = lam * eye + erase_scale * c_e.T @ c_e + preserve_scale * c_p.T @ c_p  # (d, d), symmetric
    return torch.linalg.solve(gram, lhs.T).T  # lhs @ gram^-1


def concept_states(model: "DiffusionModel", prompts: list[str], scope: str,
                   align_to: list[str] | None = None) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """Text states of ``prompts`` to edit, stacked ``(n, D)``, and the guide's paired states.

    scope "last": each prompt's last real token; "to_end": that token and every later one (end
    token, padding); "all": every position. With ``align_to`` (one guide prompt per prompt) the
    guide's states at the matching positions come too (its last real token onwards, or the same
    positions for "all"), so row r of both tensors are paired.
    """
    import torch

    if scope not in TOKEN_SCOPES:
        raise ValueError(f"token scope must be one of {', '.join(TOKEN_SCOPES)}, not {scope!r}")
    with torch.no_grad():
        states = model.encode(prompts)  # (N, T, D)
        last = model.last_real_token(prompts)  # (N,)
        guide_states = model.encode(align_to) if align_to is not None else None  # (N, T, D)
        guide_last = model.last_real_token(align_to) if align_to is not None else last
    if scope == "all":
        flat = states.reshape(-1, states.shape[-1])  # (N * T, D)
        return flat, (guide_states.reshape(-1, states.shape[-1]) if guide_states is not None else None)
    rows, guide_rows = [], []
    for i in range(len(prompts)):
        start, g = int(last[i]), int(guide_last[i])
        span = 1 if scope == "last" else states.shape[1] - max(start, g)
        rows.append(states[i, start:start + span])
        if guide_states is not None:
            guide_rows.append(guide_states[i, g:g + span])
    return torch.cat(rows), (torch.cat(guide_rows) if guide_rows else None)


def guide_prompts(model: "DiffusionModel", prompts: list[str], concept: str, guide: str) -> list[str]:
    """One guide prompt per erased prompt: the guide concept's prompts, or (guide "") the prompt
    with the concept's wording removed ("a face wearing glasses" -> "a face"), else the neutral prompt."""
    if guide.strip():
        wanted = training_prompts(model, guide)
        return [wanted[i % len(wanted)] for i in range(len(prompts))]
    return reworded_prompts(model, prompts, concept)


def erase_wordings(model: "DiffusionModel", concept: str) -> list[str]:
    """The concept's other wordings from the train split (FaceWorld's caption vocabulary), checked to fit."""
    from backends.diffusion.common import check_fits
    from backends.diffusion.prompt_sets import resolve_concept
    from backends.diffusion.prompt_sets import paraphrase_prompts

    prompts = paraphrase_prompts(resolve_concept(concept), model.faceworld)
    if prompts:
        check_fits(model, prompts)
    return prompts


@register_method("diffusion", "uce", title="UCE (closed-form K/V edit)", config=UCEConfig,
                 paper="Gandikota et al., Unified Concept Editing in Diffusion Models, WACV 2024")
def run(call: MethodCall) -> None:
    """Closed-form edit of every cross-attention to_k / to_v: the concept's text states map where the
    guide's do, the preserved concepts' states keep their keys and values."""
    import torch

    cfg: UCEConfig = call.config
    model: DiffusionModel = call.model
    erase = [cfg.concept] + list(split_lines(cfg.also_erase))
    preserve = list(split_lines(cfg.preserve))
    erase_prompts, guides = [], []
    for concept in erase:
        prompts = training_prompts(model, concept)
        if cfg.paraphrases:
            prompts += erase_wordings(model, concept)
        erase_prompts += prompts
        guides += guide_prompts(model, prompts, concept, cfg.guide)
    preserve_prompts = [p for concept in preserve for p in training_prompts(model, concept)]
    if cfg.preserve_neighbours and model.faceworld:  # free-text concepts on SD have no known neighbours
        preserve_prompts += retain_prompts(cfg.concept, True, groups=("neighbour",))
    if cfg.paraphrases and not cfg.guide.strip():  # keep the guides where they are: they are the targets
        preserve_prompts += sorted(set(guides))
    check_concept_drawn(call.base, cfg.concept, call.ctx, cfg.eval_seeds, cfg.eval_prompts)

    call.ctx.log(f"erasing {len(erase_prompts)} wordings: " + "; ".join(erase_prompts))
    call.ctx.phase("editing cross-attention K/V")
    c_erase, c_guide = concept_states(model, erase_prompts, cfg.tokens, align_to=guides)  # (n_e, D) x2
    if preserve_prompts:
        c_preserve, _ = concept_states(model, preserve_prompts, cfg.tokens)  # (n_p, D)
    else:
        c_preserve = c_erase.new_zeros((0, c_erase.shape[1]))
    originals = {(name, proj): getattr(attn, proj).weight.detach().clone()
                 for name, attn in model.cross_attention_layers().items() for proj in ("to_k", "to_v")}
    model.editable_unet()
    edited_layers = model.cross_attention_layers()
    total = len(originals)
    with torch.no_grad():
        for step, ((name, proj), weight) in enumerate(originals.items(), start=1):
            targets = c_guide.to(weight.dtype) @ weight.T  # (n_e, out): v_i = W c_guide
            new = uce_closed_form(weight, c_erase, targets, c_preserve, cfg.lam, cfg.erase_scale, cfg.preserve_scale)
            getattr(edited_layers[name], proj).weight.copy_(new.to(weight.dtype))
            call.ctx.step(step, total, change=float((new - weight.float()).norm() / weight.float().norm()))
