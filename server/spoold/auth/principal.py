"""The caller of the current request: its scopes and the queues it may touch.

The door that admitted the request sets `current`; service code reads it with `principal()`. It
has no default, so code reached without a door's check fails closed instead of running as anyone.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field

from spoold.auth.scopes import Scope

ALL_QUEUES = "*"


@dataclass(frozen=True)
class QueuePatterns:
    """Queue names with `*` standing for any run of characters (`emails`, `reports-*`)."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alternatives = "|".join(".*".join(re.escape(part) for part in p.split("*")) for p in self.patterns)
        object.__setattr__(self, "_regex", re.compile(f"(?:{alternatives})", re.DOTALL))

    @property
    def unrestricted(self) -> bool:
        return any(set(p) == {"*"} for p in self.patterns)

    def allows(self, queue: str) -> bool:
        return self._regex.fullmatch(queue) is not None

    def like(self) -> list[str]:
        """The patterns for SQL's LIKE: `*` becomes `%`, and a queue name's own % _ \\ match literally."""
        escaped = (p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in self.patterns)
        return [p.replace("*", "%") for p in escaped]


@dataclass(frozen=True)
class Principal:
    """key_id None: a caller admitted without a key (auth off, or loopback under auth auto)."""

    key_id: str | None
    scopes: frozenset[Scope]
    queues: QueuePatterns

    def has(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def every_queue(self) -> bool:
        return Scope.ADMIN in self.scopes or self.queues.unrestricted

    def allows(self, queue: str) -> bool:
        return self.every_queue or self.queues.allows(queue)

    @property
    def label(self) -> str:
        """How logs name the caller: the key id, never its secret."""
        return f"key {self.key_id}" if self.key_id else "no key"


ANONYMOUS = Principal(None, frozenset({Scope.ADMIN}), QueuePatterns((ALL_QUEUES,)))

current: ContextVar[Principal] = ContextVar("spool_principal")


def principal() -> Principal:
    """The current request's caller; LookupError when no door admitted one."""
    return current.get()
