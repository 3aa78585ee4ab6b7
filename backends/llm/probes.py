"""Linear probes on hidden states, after Zhang et al., "Unforgettable Generalization in Language Models" (2024).

- Knowledge probe: can a logistic-regression read-out still predict the *answer's label* from the
  hidden state at the answer position (the last chat-prompt token, where the answer is generated),
  layer by layer? Antonyms and factual QA are asked as two-option questions (label: which option is
  right, A or B, balanced); Python tasks are labelled by their return value's type (bool, number,
  str, list). Two controls: the same probe on a randomly initialised model of the same architecture
  (what structure and surface cues alone give) and on shuffled labels (chance). The reading is
  "decodable above control": accuracy points over the random-model control, per layer.
- Request probe: can a read-out tell the forget skill's prompts from other skills' prompts? Any model
  that reads text can (a random one nearly too), so it only says whether the model still recognises
  the request, not whether it still knows the answer.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.config import param
from backends.contract import AttackResult, Chart, MetricRow
from backends.llm.skills import SKILLS
from backends.registry import register_attack

if TYPE_CHECKING:
    import numpy as np
    import torch

    from backends.contract import AttackCall
    from backends.llm.bundles import LLMBundle
    from backends.llm.skills import SkillItem

#: Skills whose answers carry a checkable label (stories have none).
KNOWLEDGE_SKILLS: tuple[str, ...] = ("python_coding", "factual_qa", "antonyms")
RANDOM_TWIN_SEED = 0
SHUFFLE_SEED = 1


# --------------------------------------------------------------------------------------------
# Shared pieces: hidden states, cross-validated per-layer probes
# --------------------------------------------------------------------------------------------
def last_token_states(bundle: "LLMBundle", prompts: list[str], batch_size: int = 16) -> "torch.Tensor":
    """Hidden state of the last chat-prompt token after every layer: (L, N, D), hooks active."""
    import torch

    from backends.llm.chat import encode_chat, left_pad, positions

    encoded = encode_chat(bundle, prompts)
    states = []
    with torch.no_grad(), bundle.active():
        for start in range(0, len(prompts), batch_size):
            ids, mask, _ = left_pad(bundle, encoded.ids[start:start + batch_size])
            out = bundle.model.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask),
                                     output_hidden_states=True, use_cache=False)
            states.append(torch.stack([h[:, -1] for h in out.hidden_states[1:]]).float().cpu())  # (L, B, D)
    return torch.cat(states, dim=1)


def probe_accuracies(states: "torch.Tensor | np.ndarray", labels: "np.ndarray", folds: int,
                     seed: int = 0) -> list[float]:
    """Cross-validated accuracy of a standardised logistic regression per layer of (L, N, D) states."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs = []
    for layer_states in states:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
        accs.append(float(cross_val_score(clf, np.asarray(layer_states), labels, cv=splitter).mean()))
    return accs


def random_twin(bundle: "LLMBundle") -> "LLMBundle":
    """A randomly initialised model of the bundle's architecture (its config, seed RANDOM_TWIN_SEED, no
    download), same tokenizer and chat template; built once and cached on the bundle."""
    import torch
    from transformers import AutoModelForCausalLM

    from backends.llm.bundles import LLMBundle

    cached = bundle.info.get("random_twin")
    if cached is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_TWIN_SEED)
            model = AutoModelForCausalLM.from_config(bundle.model.config)
        model.to(device=bundle.device, dtype=next(bundle.model.parameters()).dtype).eval().requires_grad_(False)
        cached = bundle.info["random_twin"] = LLMBundle(model, bundle.tokenizer, bundle.preset, bundle.system_prompt)
    return cached


# --------------------------------------------------------------------------------------------
# Knowledge probe: the answer's label at the answer position
# --------------------------------------------------------------------------------------------
def return_type(item: "SkillItem") -> str:
    """The return value's type of a Python task, read from its first assert: bool, list, str or number."""
    expected = item.check.splitlines()[0]
    if re.search(r"\bis (True|False)$", expected):
        return "bool"
    right = expected.split("==", 1)[1].strip() if "==" in expected else ""
    if right.startswith("["):
        return "list"
    if right[:1] in "'\"" and right:
        return "str"
    return "number"


def two_option_question(item: "SkillItem") -> str:
    """The item's question without its answer-format instruction."""
    if item.skill == "antonyms":
        word = re.findall(r'"([^"]+)"', item.reference)[0]
        return f'What is the opposite of "{word}"?'
    return item.prompt


def knowledge_probe_data(skill: str, n: int, seed: int = 0) -> tuple[list[str], "np.ndarray", list[str]]:
    """Prompts, integer labels and class names of ``skill``'s knowledge probe on its test half.

    python_coding: the task's prompt, labelled by the return value's type. factual_qa / antonyms: the
    question with the right answer and another item's answer as options (A) and (B), labelled by the
    right option; the right one is A for a seeded half of the items.
    """
    import numpy as np

    from backends.llm.scoring import normalise
    from backends.llm.skills import load_skill_set

    if skill not in KNOWLEDGE_SKILLS:
        raise ValueError(f"no answer labels for {skill!r}; knowledge probes exist for {', '.join(KNOWLEDGE_SKILLS)}")
    items = load_skill_set(skill, "test")[:n or None]
    if skill == "python_coding":
        names = [return_type(it) for it in items]
        classes = sorted(set(names))
        return [it.prompt for it in items], np.array([classes.index(c) for c in names]), classes
    rng = random.Random(f"{seed}-{skill}")
    answers = [it.check.split("|")[0] for it in items]
    right_first = [i % 2 == 0 for i in range(len(items))]
    rng.shuffle(right_first)
    prompts, labels = [], []
    for i, item in enumerate(items):
        accepted = {normalise(a) for a in item.check.split("|")}
        wrong = rng.choice([a for a in answers if normalise(a) not in accepted])
        a, b = (answers[i], wrong) if right_first[i] else (wrong, answers[i])
        prompts.append(f"{two_option_question(item)} Is the answer (A) {a} or (B) {b}? Reply with A or B.")
        labels.append(0 if right_first[i] else 1)
    return prompts, np.array(labels), ["A", "B"]


@dataclass(frozen=True)
class KnowledgeProbeConfig:
    """Per-layer read-out of the answer's label, against a random-model and a shuffled-label control."""

    skill: str = param("python_coding", choices=KNOWLEDGE_SKILLS,
                       help="Skill whose answers are probed (test half): Python return types, or the right "
                            "option of two-option QA / antonym questions.")
    items: int = param(64, min=8, max=200, help="Test items probed (the first ones of the test half).")
    folds: int = param(4, min=2, max=10, advanced=True, help="Cross-validation folds.")

    @classmethod
    def smoke(cls) -> "KnowledgeProbeConfig":
        return cls(skill="factual_qa", items=8, folds=2)


def usable_classes(labels: "np.ndarray", folds: int) -> "np.ndarray":
    """Mask of the rows whose class has at least ``folds`` members (stratified folds need them)."""
    import numpy as np

    counts = np.bincount(labels)
    return counts[labels] >= folds


@register_attack("llm", "knowledge_probe", title="Knowledge probe: is the answer still decodable?",
                 config=KnowledgeProbeConfig,
                 paper="Zhang et al., Unforgettable Generalization in Language Models, 2024")
def run_knowledge_probe(call: "AttackCall") -> AttackResult:
    """Logistic regression per layer predicting the answer's label from the answer-position hidden state,
    on base and edit, against a random model of the same architecture and against shuffled labels.
    High accuracy above the random model after unlearning, with low behaviour, means the knowledge is
    hidden, not removed."""
    import numpy as np

    cfg: KnowledgeProbeConfig = call.config
    prompts, labels, classes = knowledge_probe_data(cfg.skill, cfg.items)
    keep = usable_classes(labels, cfg.folds)
    prompts = [p for p, k in zip(prompts, keep) if k]
    labels = np.unique(labels[keep], return_inverse=True)[1]
    if len(set(labels.tolist())) < 2:
        raise ValueError("too few items per label for cross-validated probes: raise 'items' or lower 'folds'")
    call.ctx.phase("hidden states and probes", total=4)
    base_acc = probe_accuracies(last_token_states(call.base, prompts), labels, cfg.folds)
    call.ctx.step(1)
    edit_acc = probe_accuracies(last_token_states(call.edited, prompts), labels, cfg.folds) \
        if call.has_edit else base_acc
    call.ctx.step(2)
    random_acc = probe_accuracies(last_token_states(random_twin(call.base), prompts), labels, cfg.folds)
    call.ctx.step(3)
    shuffled = np.random.default_rng(SHUFFLE_SEED).permutation(labels)
    shuffled_acc = probe_accuracies(last_token_states(call.base, prompts), shuffled, cfg.folds)
    call.ctx.step(4)
    above_base = [100 * (a - r) for a, r in zip(base_acc, random_acc)]
    above_edit = [100 * (a - r) for a, r in zip(edit_acc, random_acc)]
    majority = float(np.bincount(labels).max() / len(labels))
    layers = list(range(1, len(base_acc) + 1))
    n = len(labels)
    summary = [
        MetricRow("answer decodable above control (best layer)", max(above_base), max(above_edit), unit="pts",
                  better="lower", n=n,
                  help="Largest per-layer probe accuracy minus the same probe's accuracy on a randomly "
                       "initialised model of the same architecture, in accuracy points."),
        MetricRow("probe accuracy (best layer)", max(base_acc), max(edit_acc), better="lower", n=n,
                  help=f"Cross-validated accuracy predicting {' / '.join(classes)}; majority class {majority:.2f}."),
        MetricRow("control: random model of the same architecture (best layer)", max(random_acc), max(random_acc), n=n,
                  help="What structure and surface cues of the prompts give, with no trained knowledge."),
        MetricRow("control: shuffled labels (best layer)", max(shuffled_acc), max(shuffled_acc), n=n,
                  help="The probe on the base with labels permuted: chance, plus the best-of-layers optimism."),
    ]
    table = [{"layer": l, "base": round(b, 4), "edited": round(e, 4), "random model": round(r, 4),
              "shuffled labels": round(s, 4), "base above control (pts)": round(ab, 1),
              "edited above control (pts)": round(ae, 1)}
             for l, b, e, r, s, ab, ae in zip(layers, base_acc, edit_acc, random_acc, shuffled_acc,
                                              above_base, above_edit)]
    chart = Chart("line", layers, {"base": base_acc, "edited": edit_acc, "random model (control)": random_acc,
                                   "shuffled labels (chance)": shuffled_acc},
                  title=f"Knowledge probe on {cfg.skill}: answer label read from hidden states", x_title="layer",
                  y_title="accuracy")
    kept, which = max(above_edit), "edited" if call.has_edit else "base"
    if kept >= 10:
        sentence = (f"A linear read-out still finds the answer in the {which} model, {kept:.0f} points above a random "
                    "model: the knowledge is there even where the behaviour is gone.")
    else:
        sentence = (f"The answer is at most {kept:.0f} points more readable from the {which} model than from a random "
                    "model of the same shape: the probe finds no hidden knowledge.")
    return AttackResult(summary, table, chart, explanation=sentence)


# --------------------------------------------------------------------------------------------
# Request probe: does the model still recognise the request?
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestProbeConfig:
    """Per-layer probes: forget skill's prompts vs the other skills' prompts."""

    forget_skill: str = param("python_coding", choices=SKILLS, help="The skill whose requests the probe must detect.")
    per_skill: int = param(24, min=4, max=200, help="Held-out test prompts per skill (the probe's data).")
    folds: int = param(4, min=2, max=10, advanced=True, help="Cross-validation folds.")

    @classmethod
    def smoke(cls) -> "RequestProbeConfig":
        return cls(forget_skill="factual_qa", per_skill=4, folds=2)


def request_probe_data(forget_skill: str, per_skill: int) -> tuple[list[str], "np.ndarray"]:
    """Balanced prompts: ``per_skill`` of the forget skill (label 1) and as many from the others (0)."""
    import numpy as np

    from backends.llm.skills import load_skill_set

    positives = [it.prompt for it in load_skill_set(forget_skill, "test")[:per_skill]]
    others = [s for s in SKILLS if s != forget_skill]
    negatives: list[str] = []
    for i in range(len(positives)):
        items = load_skill_set(others[i % len(others)], "test")
        negatives.append(items[(i // len(others)) % len(items)].prompt)
    return positives + negatives, np.array([1] * len(positives) + [0] * len(negatives))


@register_attack("llm", "request_probe", title="Request probe: does the model still recognise the request?",
                 config=RequestProbeConfig)
def run_request_probe(call: "AttackCall") -> AttackResult:
    """Can a linear read-out of the last prompt token tell the forget skill's requests from others?
    It measures recognition of the request's type, not knowledge of the answer: see the knowledge probe."""
    cfg: RequestProbeConfig = call.config
    prompts, labels = request_probe_data(cfg.forget_skill, cfg.per_skill)
    folds = min(cfg.folds, int(labels.sum()))
    if folds < 2:
        raise ValueError("too few prompts for cross-validated probes: raise 'per skill'")
    call.ctx.phase("hidden states", total=2)
    base_acc = probe_accuracies(last_token_states(call.base, prompts), labels, folds)
    call.ctx.step(1)
    edit_acc = probe_accuracies(last_token_states(call.edited, prompts), labels, folds) if call.has_edit else base_acc
    call.ctx.step(2)
    layers = list(range(1, len(base_acc) + 1))
    summary = [
        MetricRow("request recognised: probe accuracy (best layer)", max(base_acc), max(edit_acc), n=len(labels),
                  help="Highest cross-validated accuracy over layers (chance = 0.5). Any model that reads text "
                       "separates the requests: high values say nothing about the answer."),
        MetricRow("best layer", float(layers[base_acc.index(max(base_acc))]),
                  float(layers[edit_acc.index(max(edit_acc))])),
    ]
    table = [{"layer": l, "base": round(b, 4), "edited": round(e, 4)} for l, b, e in zip(layers, base_acc, edit_acc)]
    chart = Chart("line", layers, {"base": base_acc, "edited": edit_acc},
                  title=f"Request probe: {cfg.forget_skill} prompts vs other skills' prompts", x_title="layer",
                  y_title="accuracy")
    return AttackResult(summary, table, chart,
                        explanation="This probe only tells whether the model still recognises the kind of request; "
                                    "whether it still knows the answer is the knowledge probe's question.")
