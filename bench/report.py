"""Printing figures as aligned tables, and recording the issue's targets for the closing summary."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# `python -m bench` sets this so each benchmark (a subprocess) can hand its target checks back.
_RESULTS_ENV = "SPOOL_BENCH_RESULTS"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n== {title}")
    for n, row in enumerate(cells):
        first, *rest = row
        print("  " + first.ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(flush=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{100 * value / reference:.0f}%"


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    met: bool


def target(name: str, measured: str, goal: str, met: bool) -> Target:
    """Prints one target check and records it for the summary of `python -m bench`."""
    t = Target(name, measured, goal, met)
    print(f"  target: {name}: {measured} (goal {goal}) -> {'MET' if met else 'MISSED'}", flush=True)
    path = os.environ.get(_RESULTS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(asdict(t)) + "\n")
    return t


def read_targets(path: str) -> list[Target]:
    try:
        with open(path) as f:
            return [Target(**json.loads(line)) for line in f if line.strip()]
    except FileNotFoundError:
        return []
