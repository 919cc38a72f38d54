"""docs/configuration.md names every setting spoold reads, and docs/errors.md every ErrorInfo reason
spoold can answer with: a setting or an error added without its line in the docs fails here."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

from spoold import errors
from spoold.auth.scopes import REQUIRED, Scope
from spoold.config import Limits, Settings

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "spoold"


def test_every_setting_is_in_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    names = [f"SPOOL_{f.name.upper()}" for f in (*fields(Settings), *fields(Limits)) if f.name != "limits"]
    assert len(names) > 60
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"docs/configuration.md does not list {missing}"


def _error_classes() -> dict[str, type[errors.SpoolError]]:
    found: dict[str, type[errors.SpoolError]] = {}
    todo: list[type[errors.SpoolError]] = [errors.SpoolError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _raised_reasons() -> set[str]:
    """The reason of every SpoolError the server's code constructs (LimitReached: its first argument)."""
    classes = _error_classes()
    reasons: set[str] = set()
    for path in SERVER.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            t.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            cls = classes.get(name or "")
            if cls is None:
                continue
            if cls is errors.LimitReached:
                first = node.args[0]
                reason = first.value if isinstance(first, ast.Constant) else constants[getattr(first, "id", "")]
                reasons.add(str(reason))
            else:
                reasons.add(cls.reason)
    return reasons


def test_every_reason_the_server_raises_is_in_the_errors_page() -> None:
    page = (ROOT / "docs" / "errors.md").read_text()
    reasons = _raised_reasons()
    assert {"LEASE_LOST", "QUEUE_LIMIT_REACHED", "WATCHERS_LIMIT_REACHED", "INTERNAL"} <= reasons
    missing = sorted(r for r in reasons if f"`{r}`" not in page)
    assert not missing, f"docs/errors.md does not list the ErrorInfo reasons {missing}"


def test_every_method_is_in_its_scopes_row_of_the_scope_table() -> None:
    """docs/security.md's scope table names each method of auth/scopes.py in the row of its scope."""
    page = (ROOT / "docs" / "security.md").read_text()
    section = page[page.index("### Scopes") :]
    section = section[: section.index("\n#")]
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2] for line in section.splitlines() if line.startswith("| `")
    }
    assert set(rows) == {s.value for s in Scope}
    wrong = []
    for method, scope in REQUIRED.items():
        if method.startswith("/spool.console/"):
            continue  # the console's own calls: its sign-in, named in words
        name = method.rsplit("/", 1)[-1] if method.startswith("/spool.v1.") else method
        if not re.search(rf"(?<![\w/]){re.escape(name)}\b", rows[scope.value]):
            wrong.append(f"{name} ({scope.value})")
    assert not wrong, f"docs/security.md's scope table does not name {wrong} in their scope's row"
