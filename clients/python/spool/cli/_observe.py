"""The observing commands: logs (an attempt's log lines) and tail (job events as they happen)."""

from __future__ import annotations

import click
from rich.console import Group

from spool.cli import _render as render
from spool.cli._base import NOT_FOUND, OK, Cli, command, pass_cli


@command(
    "logs",
    short_help="The log lines a job's handler wrote, per attempt.",
    example=("spool logs 42", "spool logs 42 --attempt 2", "spool logs 42 -o json | jq -r '.[].logs'"),
)
@click.argument("job_id")
@click.option("--attempt", "-a", "number", type=click.IntRange(min=1), help="Only this attempt's lines.")
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


COMMANDS = (logs,)
