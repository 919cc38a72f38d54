"""The web console: pages served by spoold on the HTTP port at `/`, calling the same services
through the Connect and REST routes (docs/console.md, docs/decisions.md)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from spoold.auth.gate import Gate
from spoold.config import Settings
from spoold.console import pages, session
from spoold.console.feed import QueueFeed


def routes(gate: Gate, settings: Settings, feed: QueueFeed) -> list[BaseRoute]:
    return [*session.routes(gate, settings), *pages.routes(gate, feed)]


__all__ = ["QueueFeed", "routes"]
