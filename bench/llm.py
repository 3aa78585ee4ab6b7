"""LLM skill unlearning on the embedded SmolLM2-135M-Instruct (CPU).

For each method in neuron_adjust, key_space_detection, grad_ascent, npo and each forget skill in
python_coding and antonyms, with the method's default config:
- ``llm.<method>.<skill>.forget_rel_drop``: relative drop of the forget skill's behavioural score
  on its test half; ``.retain_max_rel_drop``: the largest relative drop over the other skills;
- ``.seconds``: the method's wall time, probing included (evaluation excluded);
- ``.relearn_steps``: fine-tuning steps (4 forget examples, lr 5e-5) until the forget skill's
  abstention-aware reference NLL on 4 test prompts closes half its gap to the base (-1: not within
  the 6 steps; 0: no gap);
- ``.knowledge_probe_above_control_max``: the knowledge probe's best per-layer accuracy points over a
  random model of the same architecture, on the edited model (``llm.base.<skill>...`` for the base).
Also ``llm.base.<skill>.score`` (base behavioural score per skill) and ``llm.load_s``.

The base model's answers are computed once and reused. ``LLM_BENCH_ITEMS`` (default 16; 0: the whole
test half, ~67 prompts) caps the test prompts per skill; ``LLM_BENCH_THREADS`` sets torch's threads (default 1,
the machine is shared). Progress goes to stderr.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

METHODS = ("key_space_detection", "neuron_adjust", "grad_ascent", "npo")
FORGET_SKILLS = ("python_coding", "antonyms")


def _log(message: str) -> None:
    print(f"[bench.llm {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ctx() -> Any:
    from backends.jobs import JobContext

    return JobContext.standalone()


def run() -> Iterator[dict]:
    import dataclasses

    import torch

    import backends.llm  # noqa: F401  (registers the backend)
    from backends import registry
    from backends.contract import AttackCall, MethodCall
    from backends.llm.attacks import RelearnConfig, steps_to_recover_half
    from backends.llm.probes import KnowledgeProbeConfig
    from backends.llm.backend import base_skill_results, relative_drop, skill_results
    from backends.llm.skills import SKILLS

    torch.set_num_threads(int(os.environ.get("LLM_BENCH_THREADS", "1")))
    items = int(os.environ.get("LLM_BENCH_ITEMS", "16"))
    methods = tuple(os.environ.get("LLM_BENCH_METHODS", ",".join(METHODS)).split(","))
    forget_skills = tuple(os.environ.get("LLM_BENCH_SKILLS", ",".join(FORGET_SKILLS)).split(","))
    be = registry.backend("llm")

    start = time.time()
    base = registry.preset("llm", "smollm2_embedded").load("cpu")
    yield {"name": "llm.load_s", "value": round(time.time() - start, 2), "unit": "s"}

    def config_of(method: str, skill: str) -> Any:
        cls = registry.method("llm", method).config
        return cls(forget_skill=skill, eval_items=items)

    max_new = config_of(METHODS[0], FORGET_SKILLS[0]).eval_max_new_tokens
    base_scores = {}
    for skill in SKILLS:
        t = time.time()
        base_scores[skill] = base_skill_results(base, skill, items, max_new)["score"]
        _log(f"base {skill}: score {base_scores[skill]:.3f} ({time.time() - t:.0f} s)")
        yield {"name": f"llm.base.{skill}.score", "value": round(base_scores[skill], 4), "unit": "fraction"}

    relearn_cfg = RelearnConfig(eval_items=4)
    probe_cfg = KnowledgeProbeConfig()
    probe = registry.attack("llm", "knowledge_probe")
    relearn = registry.attack("llm", "relearning")
    # Method-major order: the training-free methods (with targets) first.
    for method in methods:
        for skill in forget_skills:
            prefix = f"llm.{method}.{skill}"
            if method == methods[0]:
                result = probe.run(AttackCall(be, base, base, False, dataclasses.replace(probe_cfg, skill=skill),
                                              _ctx()))
                yield {"name": f"llm.base.{skill}.knowledge_probe_above_control_max",
                       "value": round(result.summary[0].before, 1), "unit": "pts"}
            cfg = config_of(method, skill)
            edited = be.clone(base)
            t = time.time()
            registry.method("llm", method).run(MethodCall(be, base, edited, cfg, _ctx()))
            seconds = time.time() - t
            _log(f"{prefix}: method {seconds:.0f} s")
            drops = {}
            for s in SKILLS:
                after = skill_results(edited, s, items, max_new)["score"]
                drops[s] = relative_drop(base_scores[s], after)
                _log(f"{prefix}: {s} {base_scores[s]:.3f} -> {after:.3f}")
            retain = [d for s, d in drops.items() if s != skill and d is not None]
            yield {"name": f"{prefix}.forget_rel_drop", "value": round(drops[skill] or 0.0, 4), "unit": "fraction"}
            yield {"name": f"{prefix}.retain_max_rel_drop", "value": round(max(retain), 4), "unit": "fraction"}
            yield {"name": f"{prefix}.seconds", "value": round(seconds, 1), "unit": "s"}

            rcfg = dataclasses.replace(relearn_cfg, forget_skill=skill)
            result = relearn.run(AttackCall(be, base, edited, True, rcfg, _ctx()))
            curve = [row["edited"] for row in result.table]
            base_curve = [row["base"] for row in result.table]
            recovered = steps_to_recover_half(base_curve, curve)
            _log(f"{prefix}: relearn curve {[round(v, 2) for v in curve]} (base {[round(v, 2) for v in base_curve]})")
            yield {"name": f"{prefix}.relearn_steps", "value": -1 if recovered is None else recovered, "unit": "steps"}

            result = probe.run(AttackCall(be, base, edited, True, dataclasses.replace(probe_cfg, skill=skill),
                                          _ctx()))
            yield {"name": f"{prefix}.knowledge_probe_above_control_max", "value": round(result.summary[0].after, 1),
                   "unit": "pts"}
            _log(f"{prefix}: done")

if __name__ == "__main__":
    import json

    for metric in run():
        print(json.dumps(metric), flush=True)
