"""Run every benchmark area (or those named on the command line) and print one report."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from bench.report import Figure

# area name -> module under bench/, where they differ
MODULES = {"cluster": "control_plane"}
AREAS = ("cluster", "node", "memory", "tools", "chat", "operator", "twins")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("areas", nargs="*", metavar="AREA", help=f"any of {', '.join(AREAS)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    unknown = [area for area in args.areas if area not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(AREAS)}")
    args.areas = args.areas or list(AREAS)
    figures: list[Figure] = []
    failed: list[str] = []
    for area in args.areas:
        module_name = MODULES.get(area, area)
        module_path = Path(__file__).with_name(f"{module_name}.py")
        if not module_path.exists():
            print(f"{area:<12} (no benchmark in this checkout)", file=sys.stderr)
            continue
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{module_name}")
            area_figures: list[Figure] = module.run()
        except Exception as err:  # one broken area must not hide the others' figures
            failed.append(area)
            print(f"{area:<12} FAILED: {err!r}", file=sys.stderr)
            continue
        for figure in area_figures:
            print(figure.line(), flush=True)
        figures.extend(area_figures)
        print(f"{area:<12} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps([f.__dict__ | {"ratio": f.ratio} for f in figures], indent=2)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
