"""LLM skill unlearning on the embedded SmolLM2-135M-Instruct (CPU).

For each registered LLM method (the registry, in tab order) and each forget skill in python_coding and
antonyms, with the method's default config:
- ``llm.<method>.<skill>.forget_rel_drop``: relative drop of the forget skill's behavioural score on its
  test half; ``..._paraphrase`` the same on the hand-written unseen phrasings (``test_paraphrase``);
- ``.retain_max_rel_drop`` (and ``..._paraphrase``): the largest relative drop over the other skills;
- ``.n_items``: test items per skill and split the rates rest on;
- ``.seconds``: the method's wall time, probing included (evaluation excluded);
- ``.knowledge_probe_above_control_max``: the knowledge probe's best per-layer accuracy points over a
  random model of the same architecture, on the edited model (``llm.base.<skill>...`` for the base);
- ``.relearn_gap``: fine-tuning steps (4 forget examples, lr 5e-5, 6 steps) the edit needs to close half
  its answer-NLL gap to the base, minus the steps the control (the base fine-tuned the same way on a skill
  it never lost) needs to fall by as much; negative: the skill returns faster than fine-tuning moves any
  skill;
- ``.trace_change`` (and ``.trace_change_random``): the parametric-trace probe's mean relative norm change
  of the 20 MLP value vectors that most write the skill's answer tokens (and of 200 random ones).
Continual requests (when both python_coding and antonyms are forget skills): the python_coding edit, then the
same method with its defaults unlearning antonyms on top of it; ``llm.continual.<method>.<skill>.forget_rel_drop``
(and ``_paraphrase``) for both forget skills and ``llm.continual.<method>.retain_max_rel_drop`` (and
``_paraphrase``) over story_writing and factual_qa, after the second request; ``.seconds`` of the second.
Also ``llm.base.<skill>.score`` / ``.score_paraphrase`` (base behavioural scores) and ``llm.load_s``.

The base model's answers are computed once and reused. ``LLM_BENCH_ITEMS`` (default 24; 0: the whole
split) caps the items per skill and split; ``LLM_BENCH_METHODS`` / ``LLM_BENCH_SKILLS`` (comma-separated)
pick methods and forget skills; ``LLM_BENCH_CONTINUAL=0`` skips the continual requests;
``LLM_BENCH_PRESET`` picks the model (default smollm2_embedded; "tiny" checks the plumbing in seconds);
``LLM_BENCH_THREADS`` sets torch's threads (default 1, the machine is
shared). Progress goes to stderr.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

FORGET_SKILLS = ("python_coding", "antonyms")
SPLIT_SUFFIX = {"test": "", "test_paraphrase": "_paraphrase"}


def _log(message: str) -> None:
    print(f"[bench.llm {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ctx() -> Any:
    from backends.jobs import JobContext

    return JobContext.standalone()


def run() -> Iterator[dict]:
    import torch

    import backends.llm  # noqa: F401  (registers the backend)
    from backends import registry
    from backends.contract import AttackCall, MethodCall
    from backends.llm.attacks import RelearnConfig
    from backends.llm.backend import base_skills_results, eval_items_of, relative_drop, skills_results
    from backends.llm.probes import KNOWLEDGE_SKILLS, KnowledgeProbeConfig
    from backends.llm.skills import SKILLS
    from backends.llm.traces import TraceConfig

    torch.set_num_threads(int(os.environ.get("LLM_BENCH_THREADS", "1")))
    items = int(os.environ.get("LLM_BENCH_ITEMS", "24"))
    all_methods = tuple(registry.methods("llm"))
    methods = tuple(m for m in os.environ.get("LLM_BENCH_METHODS", ",".join(all_methods)).split(",") if m)
    unknown = [m for m in methods if m not in all_methods]
    if unknown:
        raise ValueError(f"unknown LLM method(s) {unknown}; registered: {', '.join(all_methods)}")
    forget_skills = tuple(os.environ.get("LLM_BENCH_SKILLS", ",".join(FORGET_SKILLS)).split(","))
    be = registry.backend("llm")

    start = time.time()
    base = registry.preset("llm", os.environ.get("LLM_BENCH_PRESET", "smollm2_embedded")).load("cpu")
    yield {"name": "llm.load_s", "value": round(time.time() - start, 2), "unit": "s"}

    def config_of(method: str, skill: str) -> Any:
        return registry.method("llm", method).config(forget_skill=skill, eval_items=items)

    max_new = config_of(methods[0], forget_skills[0]).eval_max_new_tokens
    pairs = [(skill, split) for skill in SKILLS for split in SPLIT_SUFFIX]
    t = time.time()
    base_scores = {pair: r["score"] for pair, r in base_skills_results(base, pairs, items, max_new).items()}
    _log(f"base evaluation: {time.time() - t:.0f} s")
    for (skill, split), score in base_scores.items():
        _log(f"base {skill} {split}: score {score:.3f}")
        yield {"name": f"llm.base.{skill}.score{SPLIT_SUFFIX[split]}", "value": round(score, 4), "unit": "fraction"}

    def drops_after(edited: Any) -> dict[tuple[str, str], float | None]:
        """Relative score drop of every skill and split after an edit."""
        out = {}
        for (s, split), after in skills_results(edited, pairs, items, max_new, nll_pairs=[]).items():
            out[(s, split)] = relative_drop(base_scores[(s, split)], after["score"])
            _log(f"{s} {split} {base_scores[(s, split)]:.3f} -> {after['score']:.3f}")
        return out

    probe = registry.attack("llm", "knowledge_probe")
    relearn = registry.attack("llm", "relearning")
    trace = registry.attack("llm", "parametric_trace")
    continual = os.environ.get("LLM_BENCH_CONTINUAL", "1") != "0" and {"python_coding", "antonyms"} <= set(forget_skills)
    for skill in forget_skills:
        if skill in KNOWLEDGE_SKILLS:
            result = probe.run(AttackCall(be, base, base, False, KnowledgeProbeConfig(skill=skill), _ctx()))
            yield {"name": f"llm.base.{skill}.knowledge_probe_above_control_max",
                   "value": round(result.summary[0].before, 1), "unit": "pts"}
    for method in methods:
        first_edit = None
        for skill in forget_skills:
            prefix = f"llm.{method}.{skill}"
            cfg = config_of(method, skill)
            edited = be.clone(base)
            t = time.time()
            registry.method("llm", method).run(MethodCall(be, base, edited, cfg, _ctx()))
            seconds = time.time() - t
            _log(f"{prefix}: method {seconds:.0f} s")
            drops = drops_after(edited)
            for split, suffix in SPLIT_SUFFIX.items():
                retain = [d for (s, sp), d in drops.items() if s != skill and sp == split and d is not None]
                yield {"name": f"{prefix}.forget_rel_drop{suffix}", "value": round(drops[(skill, split)] or 0.0, 4),
                       "unit": "fraction"}
                if retain:  # a retain skill the base cannot do has nothing to lose
                    yield {"name": f"{prefix}.retain_max_rel_drop{suffix}", "value": round(max(retain), 4),
                           "unit": "fraction"}
                yield {"name": f"{prefix}.n_items{suffix}", "value": len(eval_items_of(skill, items, split)),
                       "unit": "items"}
            yield {"name": f"{prefix}.seconds", "value": round(seconds, 1), "unit": "s"}
            if skill == "python_coding":
                first_edit = edited

            try:
                result = trace.run(AttackCall(be, base, edited, True, TraceConfig(forget_skill=skill), _ctx()))
                yield {"name": f"{prefix}.trace_change", "value": round(result.summary[0].after, 6),
                       "unit": "fraction"}
                yield {"name": f"{prefix}.trace_change_random", "value": round(result.summary[1].after, 6),
                       "unit": "fraction"}
            except ValueError as exc:  # e.g. a byte-level tokenizer: no token is the skill's own
                _log(f"{prefix}: no parametric trace: {exc}")

            result = relearn.run(AttackCall(be, base, edited, True, RelearnConfig(forget_skill=skill, eval_items=4),
                                            _ctx()))
            gap = next(row for row in result.summary if row.name.startswith("relearning gap"))
            _log(f"{prefix}: relearning {[round(row['edited'], 2) for row in result.table]} "
                 f"(base {[round(row['base'], 2) for row in result.table]}); {result.explanation}")
            yield {"name": f"{prefix}.relearn_gap", "value": int(gap.after), "unit": "steps"}

            if skill in KNOWLEDGE_SKILLS:
                result = probe.run(AttackCall(be, base, edited, True, KnowledgeProbeConfig(skill=skill), _ctx()))
                yield {"name": f"{prefix}.knowledge_probe_above_control_max",
                       "value": round(result.summary[0].after, 1), "unit": "pts"}
            _log(f"{prefix}: done")

        if continual and first_edit is not None:
            prefix = f"llm.continual.{method}"
            first_edit.forgotten = ("python_coding",)  # what the Lab's evaluation records after the first request
            edited = be.clone(first_edit)
            t = time.time()
            registry.method("llm", method).run(MethodCall(be, base, edited, config_of(method, "antonyms"), _ctx()))
            seconds = time.time() - t
            _log(f"{prefix}: second request (antonyms) {seconds:.0f} s")
            drops = drops_after(edited)
            for split, suffix in SPLIT_SUFFIX.items():
                for skill in ("python_coding", "antonyms"):
                    yield {"name": f"{prefix}.{skill}.forget_rel_drop{suffix}",
                           "value": round(drops[(skill, split)] or 0.0, 4), "unit": "fraction"}
                retain = [d for (s, sp), d in drops.items()
                          if s not in ("python_coding", "antonyms") and sp == split and d is not None]
                if retain:
                    yield {"name": f"{prefix}.retain_max_rel_drop{suffix}", "value": round(max(retain), 4),
                           "unit": "fraction"}
            yield {"name": f"{prefix}.seconds", "value": round(seconds, 1), "unit": "s"}


if __name__ == "__main__":
    import json

    for metric in run():
        print(json.dumps(metric), flush=True)
