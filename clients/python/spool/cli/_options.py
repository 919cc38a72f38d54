"""Option types and the filter options shared by ls, dead and requeue."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from spool._convert import Filter, RateLimit

F = TypeVar("F", bound=Callable[..., Any])

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# What --state takes: the job states, and PENDING's three derived statuses.
STATES = (
    "pending",
    "ready",
    "throttled",
    "scheduled",
    "retrying",
    "running",
    "succeeded",
    "dead",
    "cancelled",
    "waiting",
)
_PENDING = ("ready", "throttled", "scheduled", "retrying")


def parse_duration(text: str) -> timedelta | None:
    """ "90s", "15m", "2h", "1d", "1w", or plain seconds; None if it is none of these."""
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        return None


class Duration(click.ParamType[timedelta, Any]):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        found = parse_duration(str(value))
        if found is None or found < timedelta(0):
            self.fail(f"not a duration: {value!r} (e.g. 30s, 15m, 2h, 1d)", param, ctx)
        return found


class Rate(click.ParamType[RateLimit, Any]):
    """ "10/s", "100/m", "5/30s": at most N jobs started per interval."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> RateLimit:
        if isinstance(value, RateLimit):
            return value
        try:
            return RateLimit.parse(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


class Moment(click.ParamType[datetime, Any]):
    """An ISO 8601 time (UTC unless it says otherwise); with `ago`, a duration too, meaning that long ago."""

    name = "time"

    def __init__(self, ago: bool = True) -> None:
        self.ago = ago

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        back = parse_duration(text) if self.ago else None
        if back is not None:
            return datetime.now(UTC) - back
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            hint = "ISO 8601, or e.g. 2h for two hours ago" if self.ago else "ISO 8601, e.g. 2026-12-01T09:00:00+01:00"
            self.fail(f"not a time: {text!r} ({hint})", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StateList(click.ParamType[tuple[str, ...], Any]):
    """One or more states, comma-separated: pending, ready, scheduled, retrying, running, ..."""

    name = "state"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        names = tuple(v.strip().lower().removeprefix("state_").removeprefix("status_") for v in str(value).split(","))
        for n in names:
            if n not in STATES:
                self.fail(f"unknown state {n!r}; valid: {', '.join(STATES)}", param, ctx)
        return names

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(s) for s in STATES if s.startswith(incomplete.lower())]


def statuses(chosen: Sequence[tuple[str, ...]]) -> list[str]:
    """--state values as ListJobs statuses: PENDING is its three derived statuses."""
    out: list[str] = []
    for group in chosen:
        for name in group:
            out += _PENDING if name == "pending" else (name,)
    return list(dict.fromkeys(out))


def complete_queue(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Queue names from the server, for shell completion; nothing when it cannot be asked quickly."""
    from spool.client import Client

    try:
        with Client(timeout=1.0) as client:
            names = [q.name for q in client.queues()]
    except Exception:  # completion must never fail the shell: no server, no names
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def filter_options(*, states: bool = True) -> Callable[[F], F]:
    """The ListJobs filter as options."""
    options = [
        click.option(
            "--queue",
            "-q",
            "queues",
            multiple=True,
            metavar="NAME",
            shell_complete=complete_queue,
            help="This queue (repeat for several).",
        ),
    ]
    if states:
        options.append(
            click.option(
                "--state",
                "-s",
                "states",
                multiple=True,
                type=StateList(),
                help=f"This state (repeat, or comma-separate, for several): {', '.join(STATES)}.",
            )
        )
    options += [
        click.option("--created-after", type=Moment(), metavar="TIME", help="ISO 8601, or e.g. 2h for 2 hours ago."),
        click.option("--created-before", type=Moment(), metavar="TIME", help="As --created-after."),
        click.option("--finished-after", type=Moment(), metavar="TIME", help="As --created-after."),
        click.option("--finished-before", type=Moment(), metavar="TIME", help="As --created-after."),
        click.option(
            "--error", metavar="TEXT", default="", help="The last error's type or message contains TEXT (any case)."
        ),
        click.option(
            "--payload", metavar="JSON", help="The payload contains this JSON document, e.g. '{\"customer\": 7}'."
        ),
        click.option("--idempotency-key", metavar="KEY", default="", help="Jobs enqueued with this key."),
        click.option("--concurrency-key", metavar="KEY", default="", help="Jobs with this concurrency key."),
        click.option("--pipeline", metavar="ID", default="", help="The steps of this pipeline."),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


FILTER_NAMES = (
    "queues",
    "states",
    "created_after",
    "created_before",
    "finished_after",
    "finished_before",
    "error",
    "payload",
    "idempotency_key",
    "concurrency_key",
    "pipeline",
)


def pop_filter(kwargs: dict[str, Any], extra_statuses: Sequence[str] = ()) -> Filter:
    """The Filter from the filter options in a command's keyword arguments (removed from them)."""
    v = {name: kwargs.pop(name, None) for name in FILTER_NAMES}
    return Filter(
        queues=v["queues"] or (),
        statuses=[*statuses(v["states"] or ()), *extra_statuses],
        created_after=v["created_after"],
        created_before=v["created_before"],
        finished_after=v["finished_after"],
        finished_before=v["finished_before"],
        error_contains=v["error"] or "",
        payload_contains=v["payload"],
        idempotency_key=v["idempotency_key"] or "",
        concurrency_key=v["concurrency_key"] or "",
        pipeline_id=v["pipeline"] or "",
    )


def is_empty(f: Filter) -> bool:
    return f.to_proto() == Filter().to_proto()
