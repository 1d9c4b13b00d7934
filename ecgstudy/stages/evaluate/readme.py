"""The README's results section: the claims table generated from ``reports/metrics/evaluate.json``.

The table sits between two markers in README.md and is never edited by hand:
``python -m ecgstudy.stages.evaluate.readme`` (``make readme``) rewrites it from the metrics file;
``--check`` exits 1 when README.md does not match it (a test runs the same check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgstudy.paths import repo_root
from ecgstudy.stages import artifacts
from ecgstudy.stages.evaluate import claims

START = "<!-- results:start (generated from reports/metrics/evaluate.json by `make readme`; do not edit) -->"
END = "<!-- results:end -->"
NOT_RUN = ("No results yet: `reports/metrics/evaluate.json` does not exist. Run the study (`make study`), then "
           "`make readme`.\n")


def block(metrics: dict | None) -> str:
    """The text between the markers for ``metrics`` (the evaluate stage's metrics dict, or None)."""
    return claims.markdown(metrics) if metrics and metrics.get("claims") else NOT_RUN


def load_metrics(root: Path) -> dict | None:
    path = artifacts.stage_metrics("evaluate", root)
    return json.loads(path.read_text()) if path.is_file() else None


def current(readme: str) -> str:
    """The text between the markers of ``readme``; ValueError naming the marker when one is missing."""
    for marker in (START, END):
        if marker not in readme:
            raise ValueError(f"README.md has no marker {marker!r}")
    return readme.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def render(readme: str, metrics: dict | None) -> str:
    """``readme`` with the text between the markers replaced by :func:`block`."""
    current(readme)
    head, rest = readme.split(START, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{START}\n{block(metrics)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is out of date")
    args = parser.parse_args(argv)
    root = repo_root()
    path = root / "README.md"
    text = path.read_text()
    wanted = render(text, load_metrics(root))
    if args.check:
        if wanted != text:
            print("README.md results section differs from reports/metrics/evaluate.json: run `make readme`",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != text:
        path.write_text(wanted)
        print("README.md results section updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
