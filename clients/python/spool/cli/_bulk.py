"""The bulk commands: requeue or cancel everything matching a filter as tracked work run by the
server (bulk requeue, bulk cancel), and its records (bulk ls, show, abort)."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from spool._convert import Filter
from spool.cli._base import OK, Cli, SpoolGroup, examples, pass_cli
from spool.cli._options import filter_options, is_empty, pop_filter
from spool.cli._text import clean, when
from spool.v1 import admin_service_pb2 as adm

Op = adm.BulkOperation
_ACTIONS = {"requeue": Op.ACTION_REQUEUE, "cancel": Op.ACTION_CANCEL}
# How often the progress of an operation started here is read.
POLL_SECONDS = 0.5


@click.group(
    "bulk",
    short_help="Requeue or cancel everything matching a filter, as tracked work.",
    cls=SpoolGroup,
    epilog=examples(
        "spool bulk requeue --queue emails --state dead --error timeout",
        "spool bulk cancel --queue reports --state pending --yes --no-wait",
        "spool bulk ls",
        "spool bulk abort 7",
    ),
)
def bulk() -> None:
    """Bulk operations: the server counts the matching jobs, then requeues or cancels them in
    batches in the background, and keeps a record (who, when, which filter, how many). They need
    an admin key; `bulk ls` and `bulk show` need read."""


def _name(value: int, enum: Any) -> str:
    return str(enum.Name(value)).split("_", 1)[1].lower()


def _line(op: adm.BulkOperation) -> str:
    action, state = _name(op.action, Op.Action), _name(op.state, Op.State)
    return f"bulk operation {op.id}: {action}, {state}, {op.done} of {op.expected} job(s), by {clean(op.created_by)}"


def _start(cli: Cli, action: str, where: Filter, include_succeeded: bool, yes: bool, wait: bool) -> int:
    if is_empty(where):
        raise click.UsageError("give filter options (e.g. --queue emails --state dead): bulk never means every job")
    count = cli.client.call(cli.client.admin.CountJobs, adm.CountJobsRequest(filter=where.to_proto()))
    shown = f"more than {count.count}" if count.more else str(count.count)
    if count.count == 0:
        cli.out.emit("no job matches", adm.CountJobsResponse())
        return OK
    if not yes and not click.confirm(f"{action.capitalize()} {shown} job(s) matching this filter?", err=True):
        cli.out.note("aborted")
        return 1
    request = adm.StartBulkOperationRequest(
        action=_ACTIONS[action], filter=where.to_proto(), include_succeeded=include_succeeded
    )
    op = cli.client.call(cli.client.admin.StartBulkOperation, request).operation
    if wait:
        op = _follow(cli, op)
    cli.out.emit(_line(op), op)
    return OK


def _follow(cli: Cli, op: adm.BulkOperation) -> adm.BulkOperation:
    """Shows the operation's progress until it ends; Ctrl-C stops watching (the server goes on)."""
    columns = (TextColumn(f"bulk {op.id}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=cli.out.errors) as progress:
            task = progress.add_task("bulk", total=max(op.expected, 1))
            while op.state == Op.STATE_RUNNING:
                time.sleep(POLL_SECONDS)
                op = cli.client.call(cli.client.admin.GetBulkOperation, adm.GetBulkOperationRequest(id=op.id)).operation
                progress.update(task, completed=op.done)
    except KeyboardInterrupt:
        cli.out.note(f"stopped watching; the server goes on (spool bulk abort {op.id} stops it)")
    return op


@bulk.command(
    "requeue",
    short_help="Requeue every DEAD or CANCELLED job matching a filter.",
    epilog=examples(
        "spool bulk requeue --queue emails --state dead --error timeout",
        "spool bulk requeue -q emails -s dead -y --no-wait",
    ),
)
@filter_options()
@click.option("--include-succeeded", is_flag=True, help="Requeue SUCCEEDED jobs too (they run again).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, help="Show progress until it ends (default), or return at once.")
@pass_cli
def requeue(cli: Cli, /, include_succeeded: bool, yes: bool, wait: bool, **filters: Any) -> int:
    """Count the matching jobs, ask, then have the server requeue them in batches."""
    return _start(cli, "requeue", pop_filter(filters), include_succeeded, yes, wait)


@bulk.command(
    "cancel",
    short_help="Cancel every PENDING or RUNNING job matching a filter.",
    epilog=examples(
        "spool bulk cancel --queue reports --state ready",
        "spool bulk cancel -q reports --payload '{\"batch\": 7}' --yes",
    ),
)
@filter_options()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, help="Show progress until it ends (default), or return at once.")
@pass_cli
def cancel(cli: Cli, /, yes: bool, wait: bool, **filters: Any) -> int:
    """Count the matching jobs, ask, then have the server cancel them in batches (RUNNING ones
    are asked to stop: their workers hear it at once, or at their next heartbeat)."""
    return _start(cli, "cancel", pop_filter(filters), False, yes, wait)


def _rows(found: list[adm.BulkOperation]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in ("ID", "ACTION", "STATE", "DONE", "EXPECTED", "BY", "STARTED", "FINISHED"):
        table.add_column(h, no_wrap=True, overflow="ellipsis")
    for op in found:
        cells = (op.id, _name(op.action, Op.Action), _name(op.state, Op.State), str(op.done), str(op.expected))
        rest = (clean(op.created_by, width=40), when(op.created_at), when(op.finished_at))
        table.add_row(*(Text(c) for c in (*cells, *rest)))
    return table


@bulk.command(
    "ls", short_help="The bulk operations, newest first.", epilog=examples("spool bulk ls", "spool bulk ls -o json")
)
@click.option("--limit", default=50, show_default=True, help="At most this many.")
@pass_cli
def ls(cli: Cli, /, limit: int) -> int:
    """The record of bulk operations: who started each, when, how many it handled."""
    found = list(
        cli.client.call(cli.client.admin.ListBulkOperations, adm.ListBulkOperationsRequest(page_size=limit)).operations
    )
    cli.out.emit(_rows(found) if found else "no bulk operations", found)
    return OK


@bulk.command(
    "show",
    short_help="One bulk operation, with its filter.",
    epilog=examples("spool bulk show 7", "spool bulk show 7 -o json"),
)
@click.argument("op_id", metavar="ID")
@pass_cli
def show(cli: Cli, /, op_id: str) -> int:
    op = cli.client.call(cli.client.admin.GetBulkOperation, adm.GetBulkOperationRequest(id=op_id)).operation
    cli.out.emit(_line(op), op)
    return OK


@bulk.command(
    "abort", short_help="Stop a running bulk operation after its current batch.", epilog=examples("spool bulk abort 7")
)
@click.argument("op_id", metavar="ID")
@pass_cli
def abort(cli: Cli, /, op_id: str) -> int:
    """What was done stays done; aborting a finished operation changes nothing."""
    op = cli.client.call(cli.client.admin.AbortBulkOperation, adm.AbortBulkOperationRequest(id=op_id)).operation
    cli.out.emit(_line(op), op)
    return OK


COMMANDS = (bulk,)
