"""The observing commands: logs (an attempt's log lines) and tail (job events as they happen)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from itertools import islice

import click
from rich.console import Group
from rich.text import Text

from spool.cli import _render as render
from spool.cli._base import NOT_FOUND, OK, Cli, command, pass_cli
from spool.cli._options import complete_queue
from spool.cli._text import clean, clock
from spool.client import tail_request
from spool.v1 import queue_service_pb2 as qs

KINDS = ("enqueued", "started", "succeeded", "failed", "dead", "cancelled", "pending", "waiting")
_ALIASES = {"running": "started", "retrying": "failed"}
_STYLES = {"failed": "yellow", "dead": "bold red", "succeeded": "green", "started": "magenta", "cancelled": "dim"}


@command(
    "logs",
    short_help="The log lines a job's handler wrote, per attempt.",
    example=("spool logs 42", "spool logs 42 --attempt 2", "spool logs 42 -o json | jq -r '.[].logs'"),
)
@click.argument("job_id")
@click.option("--attempt", "number", type=click.IntRange(min=1), help="Only this attempt's lines.")
@pass_cli
def logs(cli: Cli, /, job_id: str, number: int | None) -> int:
    """The log lines JOB_ID's handler wrote (job.log and Python logging), attempt by attempt. A
    running attempt shows what its worker sent so far (with each heartbeat)."""
    job = cli.client.get(job_id, include_logs=True)
    chosen = [a for a in job.attempts if number is None or a.number == number]
    if number is not None and not chosen:
        cli.out.note(f"spool: job {job_id} has no attempt #{number}")
        return NOT_FOUND
    cli.out.emit(Group(*render.attempt_logs(job, number)), chosen)
    return OK


def _kinds(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[str]:
    kinds = []
    for value in values:
        for name in filter(None, (v.strip().lower() for v in value.split(","))):
            name = _ALIASES.get(name, name)
            if name not in KINDS:
                raise click.BadParameter(f"{name!r} is not an event kind ({', '.join(KINDS)})", ctx, param)
            kinds.append(name)
    return kinds


def _line(resp: qs.TailJobsResponse) -> Text:
    e = resp.event
    kind = qs.JobEvent.Kind.Name(e.kind).removeprefix("KIND_").lower()
    line = Text()
    if resp.missed:
        line.append(f"... {resp.missed} events missed (reading too slowly)\n", style="yellow")
    line.append(f"{clock(e.at.ToDatetime(tzinfo=UTC))}  {clean(e.queue, width=40)}  {e.job_id}  ")
    line.append(kind, style=_STYLES.get(kind, ""))
    line.append(f"  attempt {e.attempt}/{e.max_attempts}")
    if e.worker_id:
        line.append(f"  {clean(e.worker_id, width=40)}")
    if e.HasField("error") and kind in ("failed", "dead", "cancelled"):
        line.append(f"  {clean(render.error_text(e.error), width=200)}", style="red")
    return line


@command(
    "tail",
    short_help="Job events as they happen, on every replica.",
    example=(
        "spool tail --queue emails --state dead,failed",
        "spool tail --error timeout",
        "spool tail -q emails -o json | jq -c '{job: .event.job_id, kind: .event.kind}'",
    ),
)
@click.option(
    "--queue", "-q", "queues", multiple=True, shell_complete=complete_queue, help="Only these queues (repeat)."
)
@click.option(
    "--state",
    "-s",
    "kinds",
    multiple=True,
    callback=_kinds,
    help=f"Only these events, comma-separated: {', '.join(KINDS)} (running = started).",
)
@click.option("--error", "error_contains", default="", help="Only events whose error contains TEXT (any case).")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after this many events.")
@pass_cli
def tail(cli: Cli, /, queues: tuple[str, ...], kinds: list[str], error_contains: str, count: int | None) -> int:
    """Print a line per job event as it happens, made through any replica: enqueued, started,
    succeeded, failed (an attempt failed; the job will retry), dead, cancelled, pending (requeued
    or released), waiting. Runs until interrupted (or --count events)."""
    tail_request(queues, kinds, error_contains)  # a bad kind fails here, before connecting
    for resp in islice(cli.client.tail(queues, kinds, error_contains=error_contains), count):
        if cli.out.json:
            cli.out.data(resp, indent=None)
        else:
            cli.out.show(_line(resp))
    return OK


COMMANDS = (logs, tail)
