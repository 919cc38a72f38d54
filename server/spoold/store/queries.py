"""Loads the named SQL blocks of sql/*.sql (`-- name: x` starts a block)."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load(filename: str) -> dict[str, str]:
    text = resources.files("spoold.store").joinpath("sql", filename).read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query {name} defined twice")
        queries[name] = body.strip()
    return queries


def all_queries() -> dict[str, str]:
    """Every named query of every file, for the test that prepares each one."""
    found: dict[str, str] = {}
    for entry in resources.files("spoold.store").joinpath("sql").iterdir():
        if entry.name.endswith(".sql"):
            found.update({f"{entry.name}:{k}": v for k, v in load(entry.name).items()})
    return found
