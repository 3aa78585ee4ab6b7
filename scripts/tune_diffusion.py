"""Choose the diffusion methods' defaults on the *tune* split only (issue 11).

Each method runs with a few candidate settings (its current defaults first) on glasses and hat (ESD-u,
made for global concepts, on its background colour), and every edit is judged by FaceWorld's
attribute judge on the ``tune`` prompts and seeds of :mod:`backends.diffusion.prompt_sets`, never the
``eval`` ones the benchmark reports: presence on the concept's tune prompts, per-prompt collateral (the
largest adherence drop of any tune-side neighbouring or unrelated prompt) and per-attribute collateral.

The rule, fixed before any run: a candidate *erases* when on every concept its tune presence is at most
0.10 or at most 0.12 of the base's (issue 11's bar). Among erasing candidates the one with the smallest
per-prompt collateral (worst concept) wins; when none erases, the one with the smallest presence (worst
concept); ties go to the smaller per-attribute collateral, then to the earlier candidate (the defaults).

    OMP_NUM_THREADS=1 python scripts/tune_diffusion.py [method ...] [--prompts 4] [--seeds 8]

prints a markdown table, each method's rows (winner marked) once its candidates are done, and one JSON
line per (method, candidate, concept) on stderr as it goes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Candidate settings per method: overrides of the config's defaults ({} = the defaults themselves), gentler
# and stronger than the defaults where the method's cost allows.
CANDIDATES: dict[str, list[dict]] = {
    "uce": [{}, {"erase_scale": 1.0}, {"paraphrases": False}, {"lam": 5.0}],
    "esd_x": [{}, {"lr": 3e-4}, {"iterations": 240}, {"eta": 4.0}],
    "esd_kv": [{}, {"iterations": 240}],
    "esd_u": [{}, {"lr": 2e-4}],
    "salun": [{}, {"mask_ratio": 0.1}, {"steps": 160}],
    "advunlearn": [{}, {"gamma": 1.0}],
    "fewshot_te": [{}, {"lr": 2e-4}, {"epochs": 15}],
}
ERASED_MAX = 0.10
ERASED_RELATIVE = 0.12


def erases(presence: float, base_presence: float) -> bool:
    return presence <= ERASED_MAX or presence <= ERASED_RELATIVE * base_presence


def choose(results: list[dict]) -> dict:
    """The winning candidate of one method by the rule above; ``results`` hold, per candidate, its
    ``rows`` (one per concept, with presence, base_presence, collateral_prompt, collateral_attr)."""
    def worst(result: dict, key: str) -> float:
        return max(r[key] for r in result["rows"])

    erasing = [r for r in results if all(erases(x["presence"], x["base_presence"]) for x in r["rows"])]
    if erasing:
        return min(erasing, key=lambda r: (worst(r, "collateral_prompt"), worst(r, "collateral_attr")))
    return min(results, key=lambda r: (worst(r, "presence"), worst(r, "collateral_attr")))


def main(argv: list[str] | None = None) -> None:
    import torch

    import backends.diffusion  # noqa: F401
    from backends import registry
    from backends.device import pick_device
    from backends.diffusion.evaluation import collateral_attr_pts, collateral_prompt_pts, score_models
    from backends.diffusion.prompt_sets import resolve_concept
    from bench.diffusion import CONCEPTS, GLOBAL_CONCEPTS, run_method

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("methods", nargs="*", default=list(CANDIDATES), help="methods to tune (default: all)")
    parser.add_argument("--prompts", type=int, default=4, help="tune prompts a group")
    parser.add_argument("--seeds", type=int, default=8, help="tune seeds a prompt")
    args = parser.parse_args(argv)
    unknown = set(args.methods) - set(CANDIDATES)
    if unknown:
        parser.error(f"no candidates for {', '.join(sorted(unknown))}; known: {', '.join(CANDIDATES)}")

    torch.manual_seed(0)
    torch.set_num_threads(1)
    be = registry.backend("diffusion")
    base = registry.preset("diffusion", "faceworld").load(pick_device())
    print("| method | setting (over the defaults) | concept | tune presence (base) | collateral / prompt | "
          "collateral / attribute | seconds | chosen |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for method in args.methods:
        results = []
        for overrides in CANDIDATES[method]:
            rows = []
            for concept in GLOBAL_CONCEPTS.get(method, CONCEPTS):
                edited, seconds = run_method(be, base, method, concept, overrides)
                _, before, (after,) = score_models(base, [edited], concept, args.prompts, args.seeds, split="tune")
                rows.append({"method": method, "overrides": overrides, "concept": concept,
                             "presence": round(after.presence, 4), "base_presence": round(before.presence, 4),
                             "collateral_prompt": round(collateral_prompt_pts(before, after), 2),
                             "collateral_attr": round(collateral_attr_pts(before, after,
                                                                          resolve_concept(concept).attr), 2),
                             "images": len(after.judged["concept"]), "seconds": round(seconds, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            results.append({"overrides": overrides, "rows": rows})
        winner = choose(results)
        for result in results:
            for row in result["rows"]:
                print(f"| {method} | `{json.dumps(result['overrides'])}` | {row['concept']} | {row['presence']:.2f} "
                      f"({row['base_presence']:.2f}) | {row['collateral_prompt']:.1f} | {row['collateral_attr']:.1f} | "
                      f"{row['seconds']:.0f} | {'**yes**' if result is winner else ''} |", flush=True)


if __name__ == "__main__":
    main()
