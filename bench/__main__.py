"""Run the benchmarks: one JSON object per line, ``{"name": ..., "value": ..., "unit": ...}``.

Each area is a module ``bench.<area>`` whose ``run()`` yields metric dicts; :data:`AREAS`
names the start of its metric names. ``--only PREFIX`` runs the areas whose metrics can match and
prints only the metrics whose names start with PREFIX.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

#: (module, metric-name prefix) of every benchmark area, cheapest first.
AREAS: tuple[tuple[str, str], ...] = (
    ("bench.app", "app."),
    ("bench.faceworld_clip", "faceworld.clip"),
    ("bench.faceworld_judge", "faceworld.judge"),
    ("bench.faceworld_gan", "faceworld.gan"),
    ("bench.faceworld_diffusion", "faceworld.diffusion"),
    ("bench.gan", "gan."),
    ("bench.diffusion", "diffusion."),
    ("bench.llm", "llm."),
    ("bench.flow", "flow."),
    ("bench.reliability", "reliability."),
)


def selected(only: str | None) -> list[tuple[str, str]]:
    if not only:
        return list(AREAS)
    return [(m, p) for m, p in AREAS if p.startswith(only) or only.startswith(p)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="PREFIX", help="only metrics whose names start with PREFIX")
    args = parser.parse_args(argv)
    areas = selected(args.only)
    if not areas:
        print(f"no benchmark area matches {args.only!r}; areas: {', '.join(p for _, p in AREAS)}", file=sys.stderr)
        return 2
    failed = 0
    for module, _ in areas:
        try:
            for metric in importlib.import_module(module).run():
                if args.only and not metric["name"].startswith(args.only):
                    continue
                print(json.dumps({"name": metric["name"], "value": metric["value"], "unit": metric["unit"]}),
                      flush=True)
        except Exception:  # noqa: BLE001 - report the area and go on with the others
            failed += 1
            print(f"benchmark area {module} failed:\n{traceback.format_exc()}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
