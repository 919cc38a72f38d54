"""What a new API key may be: the one set of rules for CreateApiKey and `spoold keys create`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from spoold.auth import scopes
from spoold.auth.principal import ALL_QUEUES
from spoold.auth.scopes import Scope
from spoold.errors import InvalidArgument

MAX_NAME = 128
MAX_PATTERNS = 100
MAX_PATTERN = 128
MAX_LIFETIME = timedelta(days=3650)
# A queue name (printable, no spaces), in which * stands for any characters.
_PATTERN = re.compile(r"[^\x00-\x20\x7f]+")


@dataclass(frozen=True)
class KeySpec:
    name: str
    scopes: tuple[str, ...]
    queues: tuple[str, ...]
    expires_at: datetime | None


def _name(value: str) -> str:
    if not value.strip():
        raise InvalidArgument("name", "required")
    if len(value) > MAX_NAME or any(c < " " or c == "\x7f" for c in value):
        raise InvalidArgument("name", f"must be 1 to {MAX_NAME} printable characters")
    return value


def _scopes(values: Sequence[str]) -> frozenset[Scope]:
    if not values:
        raise InvalidArgument("scopes", "at least one of enqueue, work, read, admin is required")
    try:
        return scopes.parse(tuple(values))
    except ValueError as exc:
        raise InvalidArgument("scopes", str(exc)) from exc


def _queues(values: Sequence[str], admin: bool) -> tuple[str, ...]:
    if len(values) > MAX_PATTERNS:
        raise InvalidArgument("queues", f"more than {MAX_PATTERNS} patterns")
    for i, p in enumerate(values):
        if len(p) > MAX_PATTERN or not _PATTERN.fullmatch(p):
            raise InvalidArgument(f"queues[{i}]", f"must be 1 to {MAX_PATTERN} printable characters without spaces")
        if set(p) == {"*"} and not admin:
            raise InvalidArgument(f"queues[{i}]", "'*' alone (every queue) is for admin keys only")
    if admin:
        if any(set(p) != {"*"} for p in values):
            raise InvalidArgument("queues", "an admin key reaches every queue; leave queues empty")
        return (ALL_QUEUES,)
    if not values:
        raise InvalidArgument("queues", "required: name the queues the key may use (emails, reports-*)")
    return tuple(dict.fromkeys(values))


def key_spec(
    name: str, scope_names: Sequence[str], queues: Sequence[str], expires_at: datetime | None, now: datetime
) -> KeySpec:
    found = _scopes(scope_names)
    if expires_at is not None and not now < expires_at <= now + MAX_LIFETIME:
        raise InvalidArgument("expires_at", f"must be in the future, at most {MAX_LIFETIME.days} days ahead")
    return KeySpec(
        name=_name(name),
        scopes=tuple(s.value for s in Scope if s in found),
        queues=_queues(queues, Scope.ADMIN in found),
        expires_at=expires_at,
    )
