"""Score LLM method settings on the skill sets' tune split (never trained on, never reported by the app).

For each trial (comma-separated ``field=value`` overrides of the method's config), run the method on a
clone of the embedded SmolLM2 and print the behavioural score of every skill on its whole tune split, the
ratio to the base's, and the rise of each skill's answer-only NLL (nats per token; on 14-18 items a score
moves by whole items, the NLL shows damage the scores miss), as JSON lines. Pick defaults that keep every
retain skill at >= 0.9 of its base.
Usage: python scripts/tune_llm.py npo --forget python_coding --trial lr=1e-5 --trial lr=2e-5
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def parse_trial(text: str, config_type: type) -> dict:
    """``"lr=1e-5,steps=10"`` -> {"lr": 1e-05, "steps": 10}, typed by the config's defaults."""
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    overrides = {}
    for pair in filter(None, text.split(",")):
        name, _, value = pair.partition("=")
        if name not in fields:
            raise ValueError(f"{config_type.__name__} has no field {name!r}")
        overrides[name] = type(fields[name].default)(value)
    return overrides


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    import backends.llm  # noqa: F401  (registers the backend)
    from backends import registry
    from backends.contract import MethodCall
    from backends.jobs import JobContext
    from backends.llm.backend import skills_results
    from backends.llm.skills import SKILLS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=sorted(registry.methods("llm")))
    parser.add_argument("--forget", default="python_coding", choices=SKILLS)
    parser.add_argument("--trial", action="append", default=[], help="field=value,... (repeatable; none: defaults)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = registry.method("llm", args.method)
    trials = [parse_trial(t, spec.config) for t in args.trial] or [{}]
    be = registry.backend("llm")
    base = registry.preset("llm", "smollm2_embedded").load("cpu")

    def scores(bundle) -> tuple[dict[str, float], dict[str, float]]:
        """Behavioural score and mean answer-only NLL of every skill on its whole tune split."""
        results = skills_results(bundle, [(s, "tune") for s in SKILLS], 0, 160)
        return {s: r["score"] for (s, _), r in results.items()}, {s: r["mean_nll"] for (s, _), r in results.items()}

    base_scores, base_nll = scores(base)
    print(json.dumps({"base": base_scores, "base_nll": base_nll}), flush=True)
    for overrides in trials:
        edited = be.clone(base)
        start = time.time()
        spec.run(MethodCall(be, base, edited, spec.config(forget_skill=args.forget, **overrides),
                            JobContext.standalone()))
        after, after_nll = scores(edited)
        ratio = {s: round(after[s] / base_scores[s], 3) if base_scores[s] else None for s in SKILLS}
        retain = [r for s, r in ratio.items() if s != args.forget and r is not None]
        nll_rise = {s: round(after_nll[s] - base_nll[s], 3) for s in SKILLS}  # nats per answer token
        print(json.dumps({"method": args.method, "forget": args.forget, "overrides": overrides, "after": after,
                          "ratio": ratio, "retain_min_ratio": min(retain) if retain else None,
                          "nll_rise": nll_rise,
                          "retain_max_nll_rise": max(v for s, v in nll_rise.items() if s != args.forget),
                          "method_s": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main()
