"""The LLM backend: skill unlearning in chat models (SmolLM2 embedded, Qwen2.5 from the hub).

Model bundles are :class:`backends.llm.bundles.LLMBundle`. Every method config derives from
:class:`backends.llm.skill_config.SkillConfig` (forget skill, retain skills, pasted prompts, evaluation
size); the methods import that module, never this one, so no method and the backend import each other.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from backends.config import param
from backends.contract import Backend, MapData, MetricRow, Sample
from backends.evaluation_cache import EvaluationCache
from backends.llm.skill_config import CUSTOM, parse_pasted, retain_skill_names
from backends.llm.skills import SKILLS
from backends.registry import register_backend

if TYPE_CHECKING:
    import torch

    from backends.jobs import JobContext
    from backends.llm.bundles import LLMBundle
    from backends.llm.skill_config import SkillConfig
    from backends.llm.skills import SkillItem

#: Answer length caps per skill while evaluating (a function, a short story, a sentence, a word);
#: every answer ends earlier at the end-of-turn token. Capped again by ``eval_max_new_tokens``.
SKILL_MAX_NEW_TOKENS: dict[str, int] = {"python_coding": 160, "story_writing": 96, "factual_qa": 40,
                                        "antonyms": 24}


@dataclass(frozen=True)
class LLMGenerateConfig:
    """What the gallery and the chat box show: your prompts, or a few test prompts of every skill."""

    prompts: str = param("", widget="textarea", max_length=8000, label="Your prompts",
                         help="One prompt per line. "
                              "Empty: a few held-out test prompts of every skill.")
    per_skill: int = param(2, min=1, max=10, label="Prompts per skill",
                           help="Test prompts per skill when 'Your prompts' is empty.")
    max_new_tokens: int = param(64, min=8, max=256, label="Max new tokens",
                                help="Greedy decoding stops at the end-of-turn token or after this many tokens.")


# --------------------------------------------------------------------------------------------
# Evaluation (base results cached per process: the base never changes)
# --------------------------------------------------------------------------------------------
#: Evaluation splits and how the metrics table names them.
EVAL_SPLITS: dict[str, str] = {"test": "test prompts", "test_paraphrase": "unseen phrasings"}
#: The split whose answer NLLs the metrics table shows (the only one an evaluation computes them for).
NLL_SPLIT = "test"
#: Answers decoded together (about 0.75 GB of KV cache for the embedded SmolLM2 at 64 rows of 250 tokens).
EVAL_BATCH = 64
NLL_BATCH = 16
#: The decoding rule, in the base cache's keys: 2 = rows end once their score is settled.
DECODING = 2

#: Base-model skill results, shared by every visitor and kept between server starts.
BASE_RESULTS = EvaluationCache("llm", capacity=64)


def eval_items_of(skill: str, n: int, split: str = "test") -> list["SkillItem"]:
    from backends.llm.skills import load_skill_set

    items = load_skill_set(skill, split)  # type: ignore[arg-type]
    return items[:n] if n else items


def effective_answer_nll(bundle: "LLMBundle", items: list["SkillItem"], batch_size: int = 8) -> "torch.Tensor":
    """Mean token NLL of each item's answer, the reference's template excluded (N,), abstention-aware.

    Only the answer's tokens are scored (:func:`backends.llm.skills.answer_span`: "small" in 'The
    opposite of "big" is "small".', a function's body; a story's whole text), given the prompt and the
    reference's words before the answer. A prompt that Key Space Detection answers with its refusal gets
    no probability mass on the answer: we charge it log |V| nats per token (the NLL of a uniform guess,
    a finite stand-in for infinity).
    """

    from backends.llm.abstention import abstain_mask
    from backends.llm.likelihood import continuation_nll
    from backends.llm.skills import answer_span

    spans = [answer_span(it) for it in items]
    prompts = [it.prompt for it in items]
    nll = continuation_nll(bundle, prompts, [it.reference[:a] for it, (a, _) in zip(items, spans)],
                           [it.reference[a:b] for it, (a, b) in zip(items, spans)], batch_size=batch_size)
    flags = abstain_mask(bundle, prompts).to(nll.device)
    return nll.masked_fill(flags, math.log(len(bundle.tokenizer)))


def skills_results(bundle: "LLMBundle", pairs: list[tuple[str, str]], n: int, max_new_tokens: int,
                   ctx: "JobContext | None" = None, nll_pairs: list[tuple[str, str]] | None = None,
                   on_answered: Callable[[dict[tuple[str, str], dict[str, Any]]], None] | None = None,
                   ) -> dict[tuple[str, str], dict[str, Any]]:
    """Greedy answers, behavioural scores, refusals and answer-only NLLs of each (skill, split) pair's items
    (the first ``n``; 0: all), the answers of every pair decoded together: batches of
    :data:`EVAL_BATCH` rows grouped by each skill's cap, each row ending once its score is settled
    (:func:`~backends.llm.scoring.answer_settled`: the scores are those of the whole answer; the answers
    kept end there). Answer NLLs ("nll", "mean_nll") only for ``nll_pairs`` (None: every pair), once every
    answer is in. ``on_answered`` hears the results of the pairs answered so far (no NLLs) after each batch
    that completes one."""
    from backends.llm.decoding import generate_greedy
    from backends.llm.scoring import answer_settled, behaviour_score, is_refusal

    items = {pair: eval_items_of(pair[0], n, pair[1]) for pair in pairs}
    every = [it for pair in pairs for it in items[pair]]
    starts = itertools.accumulate((len(items[p]) for p in pairs), initial=0)
    spans = {p: slice(start, start + len(items[p])) for p, start in zip(pairs, starts)}  # rows of `every`
    caps = [min(max_new_tokens, SKILL_MAX_NEW_TOKENS.get(it.skill, max_new_tokens)) for it in every]
    answers: list[str | None] = [None] * len(every)
    results: dict[tuple[str, str], dict[str, Any]] = {}

    def answered(indices: list[int], batch_answers: list[str]) -> None:
        for i, answer in zip(indices, batch_answers):
            answers[i] = answer
        fresh = [p for p in pairs if p not in results and all(a is not None for a in answers[spans[p]])]
        for pair in fresh:
            pair_answers = answers[spans[pair]]
            scores = [behaviour_score(it, a) for it, a in zip(items[pair], pair_answers)]
            refusals = [is_refusal(a) for a in pair_answers]
            results[pair] = {"answers": pair_answers, "scores": scores, "refusals": refusals,
                             "score": sum(scores) / len(scores), "refusal_rate": sum(refusals) / len(refusals)}
        if fresh and on_answered is not None:
            on_answered(dict(results))

    if ctx is not None:
        ctx.phase(f"answering {len(every)} prompts", total=len(every))
    generate_greedy(bundle, [it.prompt for it in every], max_new_tokens=caps, batch_size=EVAL_BATCH,
                    should_stop=ctx.check if ctx is not None else None,
                    settled=lambda i, text: answer_settled(every[i], text),
                    progress=ctx.step if ctx is not None else None, on_batch=answered)
    nll_pairs = pairs if nll_pairs is None else nll_pairs
    if ctx is not None and nll_pairs:
        ctx.phase("answer likelihoods")
    for pair in nll_pairs:  # one skill at a time: its answers have similar lengths
        nll = effective_answer_nll(bundle, items[pair], batch_size=NLL_BATCH).tolist()
        results[pair].update(nll=nll, mean_nll=sum(nll) / len(nll))
    return {pair: results[pair] for pair in pairs}


def base_skills_results(base: "LLMBundle", pairs: list[tuple[str, str]], n: int, max_new_tokens: int,
                        ctx: "JobContext | None" = None) -> dict[tuple[str, str], dict[str, Any]]:
    """:func:`skills_results` of a base bundle (answer NLLs on :data:`NLL_SPLIT` only), computed once per server
    (the pairs not cached yet, together) and kept on disk between starts (:mod:`backends.evaluation_cache`),
    keyed by the weights' fingerprint, the items asked, the settings and the decoding rule."""
    from backends.evaluation_cache import fingerprint

    if "fingerprint" not in base.info:  # once per loaded base (a second for 135 M parameters)
        base.info["fingerprint"] = fingerprint(base.model.state_dict().items())
    keys = [(base.preset, base.info["fingerprint"], skill, split, max_new_tokens, DECODING,
             tuple((it.prompt, it.reference) for it in eval_items_of(skill, n, split))) for skill, split in pairs]

    def compute(missing: list[int]) -> list[dict[str, Any]]:
        asked = [pairs[i] for i in missing]
        results = skills_results(base, asked, n, max_new_tokens, ctx, nll_pairs=[p for p in asked if p[1] == NLL_SPLIT])
        return [results[p] for p in asked]

    return dict(zip(pairs, BASE_RESULTS.get_many(keys, compute, _results_to_arrays, _results_from_arrays)))


def _results_to_arrays(results: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    return {name: np.asarray(value) for name, value in results.items()}


def _results_from_arrays(arrays: dict[str, Any]) -> dict[str, Any]:
    return {name: value.tolist() for name, value in arrays.items()}


def evaluated_skills(method_config: "SkillConfig", forgotten: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """(earlier, forget, retain) skills an evaluation of ``method_config`` scores on a model whose earlier
    requests unlearned ``forgotten``: those earlier forget skills, the forget skill (none for pasted prompts
    only) and the retain skills (the earlier ones left out)."""
    forget = method_config.forget_skill
    earlier = tuple(s for s in forgotten if s != forget)  # continual requests: unlearned before
    retain = tuple(s for s in retain_skill_names(forget, method_config.retain_skills, earlier)
                   if s not in earlier)
    return earlier, (forget,) if forget != CUSTOM else (), retain


def evaluation_size(method_config: "SkillConfig") -> tuple[int, int]:
    """(items per skill and split, answer-length cap) of an evaluation."""
    return method_config.eval_items, method_config.eval_max_new_tokens


def skill_rows(roles: dict[str, str], before: dict[tuple[str, str], dict[str, Any]],
               after: dict[tuple[str, str], dict[str, Any]]) -> list[MetricRow]:
    """Metrics-table rows of the skills (name -> "forget", "forget, earlier request" or "retain") whose
    (skill, split) results ``after`` holds, then the relative drops those allow."""
    rows: list[MetricRow] = []
    drops: dict[tuple[str, str], float | None] = {}
    for skill, role in roles.items():
        for split, wording in EVAL_SPLITS.items():
            if (skill, split) not in after:
                continue
            was, now = before[(skill, split)], after[(skill, split)]
            rows.append(rate_row(
                f"{skill} score, {wording} ({role})", [v >= 1 for v in was["scores"]],
                [v >= 1 for v in now["scores"]], better="higher" if role == "retain" else "lower",
                help=f"Share of held-out {wording} answered correctly (greedy answers; abstention fails)."))
            rows.append(rate_row(
                f"{skill} refusal rate, {wording} ({role})", was["refusals"], now["refusals"],
                better="lower" if role == "retain" else "higher",
                help=f"Share of {wording} answered with a refusal or abstention."))
            if split == NLL_SPLIT and "mean_nll" in now:
                rows.append(MetricRow(
                    f"{skill} answer NLL ({role})", was["mean_nll"], now["mean_nll"], unit="nats/token",
                    better="lower" if role == "retain" else "higher", n=len(was["nll"]),
                    help="Mean token negative log-likelihood of the answers alone (the antonym, the fact, the "
                         "function body; a story's whole text), not the reference's template; log |V| per "
                         "token where the model abstains."))
            drops[(skill, split)] = relative_drop(was["score"], now["score"])
    for split, wording in EVAL_SPLITS.items():
        for skill, role in roles.items():
            if role == "forget" and (skill, split) in drops:
                rows.append(MetricRow(f"forget skill relative drop, {wording}", None, drops[(skill, split)],
                                      better="higher", help="(before - after) / before of the forget skill's score."))
        for skill, role in roles.items():
            if role == "forget, earlier request" and (skill, split) in drops:
                rows.append(MetricRow(f"earlier forget skill relative drop, {wording} ({skill})", None,
                                      drops[(skill, split)], better="higher",
                                      help="The same for a skill an earlier request on this edit unlearned: "
                                           "does it stay forgotten?"))
        retain_drops = [d for (s, sp), d in drops.items() if roles[s] == "retain" and sp == split and d is not None]
        if retain_drops:
            rows.append(MetricRow(f"retain max relative drop, {wording}", None, max(retain_drops), better="lower",
                                  help="Largest relative score drop over the retain skills."))
    return rows


def rate_row(name: str, before: list[bool], after: list[bool], help: str, better: str | None) -> MetricRow:
    """A rate row (%) with 95 % Wilson intervals and its sample count."""
    from backends import stats

    rate_b, ci_b, n = stats.percent_with_interval(before)
    rate_a, ci_a, _ = stats.percent_with_interval(after)
    return MetricRow(name, rate_b, rate_a, unit="%", better=better, help=help, before_ci=ci_b, after_ci=ci_a, n=n)


def relative_drop(before: float, after: float) -> float | None:
    """(before - after) / before; None when the base has no skill to lose."""
    return (before - after) / before if before > 0 else None


@register_backend
class LLMBackend(Backend):
    name = "llm"
    title = "Language model"
    description = ("Remove a skill (Python coding, story writing, ...) from a small chat model and check "
                   "whether it is really gone: behaviour, likelihood, linear probes and relearning.")
    output = "text"
    generate_config = LLMGenerateConfig

    def clone(self, model: "LLMBundle") -> "LLMBundle":
        from backends.llm.bundles import clone_bundle

        return clone_bundle(model)

    def _gallery_prompts(self, config: LLMGenerateConfig) -> list[tuple[str, str, "SkillItem | None"]]:
        """(key, prompt, item) triples: the user's prompts, else test prompts of every skill."""
        pasted = parse_pasted(config.prompts, "your prompts")
        if pasted:
            return [(f"prompt {i + 1}", p, None) for i, p in enumerate(pasted)]
        rows = []
        for skill in SKILLS:
            for i, item in enumerate(eval_items_of(skill, config.per_skill)):
                rows.append((f"{skill} #{i + 1}", item.prompt, item))
        return rows

    def generate(self, model: "LLMBundle", config: LLMGenerateConfig) -> list[Sample]:
        from backends.llm.decoding import generate_greedy
        from backends.llm.scoring import behaviour_score, is_refusal

        rows = self._gallery_prompts(config)
        answers = generate_greedy(model, [p for _, p, _ in rows], max_new_tokens=config.max_new_tokens)
        samples = []
        for seed, ((key, prompt, item), answer) in enumerate(zip(rows, answers)):
            labels = {"refused": "yes" if is_refusal(answer) else "no"}
            if item is not None:
                labels["skill"] = item.skill
                labels["score"] = f"{behaviour_score(item, answer):.2f}"
            samples.append(Sample(key=key, seed=seed, prompt=prompt, text=answer, labels=labels,
                                  group=item.skill if item is not None else "yours"))
        return samples

    def chat(self, model: "LLMBundle", message: str, max_new_tokens: int = 128) -> str:
        """One greedy answer to a chat message (the tab asks the base and the edit at once)."""
        from backends.llm.decoding import generate_greedy
        from backends.llm.skills import parse_user_prompts

        (prompt,) = parse_user_prompts(" ".join(message.split()))  # one line; length-checked
        return generate_greedy(model, [prompt], max_new_tokens=max_new_tokens)[0]

    def warm_up(self, base: "LLMBundle", method_config: "SkillConfig", ctx: "JobContext") -> None:
        _, forget, retain = evaluated_skills(method_config, base.forgotten)
        n, max_new = evaluation_size(method_config)
        base_skills_results(base, [(skill, split) for skill in forget + retain for split in EVAL_SPLITS], n, max_new, ctx)

    def evaluate(self, base: "LLMBundle", edited: "LLMBundle", method_config: "SkillConfig",
                 ctx: "JobContext") -> list[MetricRow]:
        """Scores and refusals of every evaluated skill on test prompts and unseen phrasings, answer NLLs on
        test prompts, relative drops. While the answers are decoded, the skills already answered show as an
        estimate (their answer NLLs and the other skills still to come)."""
        earlier, forget_skills, retain = evaluated_skills(method_config, edited.forgotten)
        if forget_skills:
            edited.forgotten = earlier + forget_skills
        n, max_new = evaluation_size(method_config)
        roles = {**{s: "forget, earlier request" for s in earlier}, **{s: "forget" for s in forget_skills},
                 **{s: "retain" for s in retain}}
        pairs = [(skill, split) for skill in roles for split in EVAL_SPLITS]
        base_results = base_skills_results(base, pairs, n, max_new, ctx)
        edited_results = skills_results(
            edited, pairs, n, max_new, ctx, nll_pairs=[p for p in pairs if p[1] == NLL_SPLIT],
            on_answered=lambda done: ctx.preview(skill_rows(roles, base_results, done)))
        rows = skill_rows(roles, base_results, edited_results)
        pasted = parse_pasted(method_config.forget_prompts, "forget prompts")
        if pasted:
            from backends.llm.decoding import generate_greedy
            from backends.llm.scoring import is_refusal

            before_ans = generate_greedy(base, pasted, max_new_tokens=max_new, should_stop=ctx.check)
            after_ans = generate_greedy(edited, pasted, max_new_tokens=max_new, should_stop=ctx.check)
            rows.append(MetricRow("your forget prompts: refusal rate",
                                  sum(map(is_refusal, before_ans)) / len(pasted),
                                  sum(map(is_refusal, after_ans)) / len(pasted), better="higher"))
            rows.append(MetricRow("your forget prompts: answers changed", None,
                                  sum(a != b for a, b in zip(before_ans, after_ans)) / len(pasted), better="higher"))
        return rows

    def embed(self, base: "LLMBundle", edited: "LLMBundle | None", config: LLMGenerateConfig) -> MapData:
        import numpy as np

        from backends.llm.key_space_detection import KSDEdit
        from backends.llm.abstention import last_mlp_keys

        rows = self._gallery_prompts(config)
        prompts = [p for _, p, _ in rows]
        skills = [item.skill if item is not None else "yours" for _, _, item in rows]
        points = [last_mlp_keys(base, prompts)]
        labels, groups = list(skills), ["before"] * len(rows)
        names = [f"{key} (before)" for key, _, _ in rows]
        anchors: list[np.ndarray] = []
        if edited is not None:
            after = last_mlp_keys(edited, prompts)
            points.append(after)
            ksd = [e for e in edited.edits if isinstance(e, KSDEdit)]
            inside = ksd[-1].contains(after).tolist() if ksd else None
            for (key, _, _), skill, i in zip(rows, skills, range(len(rows))):
                tag = "" if inside is None else (" · in KSD box" if inside[i] else " · outside box")
                labels.append(skill + tag)
                groups.append("after")
                names.append(f"{key} (after){tag}")
            if ksd:
                anchors.append(ksd[-1].mu.detach().cpu().numpy()[None])
                labels.append("KSD box centre")
                groups.append("anchor")
                names.append("KSD hypercube centre (mean forget key)")
        data = np.concatenate([p.detach().cpu().float().numpy() for p in points] + anchors, axis=0)
        return MapData(points=data, labels=labels, groups=groups, names=names,
                       title="Key space: input of the last layer's down_proj (mean over query tokens)")

    def state_tensors(self, model: "LLMBundle") -> dict[str, "torch.Tensor"]:
        tensors = {name: t.detach() for name, t in model.model.state_dict().items()}
        for i, edit in enumerate(model.edits):
            for name, t in edit.state_tensors().items():
                tensors[f"edit{i}.{edit.kind}.{name}"] = t.detach()
        return tensors

    def nbytes(self, model: "LLMBundle") -> int:
        """Own weights count only when not shared with the base (hook edits cost their statistics)."""
        total = sum(int(t.numel()) * t.element_size() for e in model.edits for t in e.state_tensors().values())
        if model.private_weights:
            total += sum(int(p.numel()) * p.element_size() for p in model.model.parameters())
        return total
