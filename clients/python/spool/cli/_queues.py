"""The queue commands: queues (list, show, set, delete), pause and resume."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import click
from rich.text import Text

from spool._convert import RateLimit, duration
from spool.cli import _render as render
from spool.cli._base import NOT_FOUND, OK, Cli, SpoolGroup, command, examples, pass_cli
from spool.cli._options import Duration, Rate, complete_queue
from spool.cli._text import clean
from spool.errors import QueueNotFound
from spool.v1 import admin_service_pb2 as adm
from spool.v1 import job_pb2

_KINDS = {
    "exponential": job_pb2.BackoffPolicy.KIND_EXPONENTIAL,
    "linear": job_pb2.BackoffPolicy.KIND_LINEAR,
    "fixed": job_pb2.BackoffPolicy.KIND_FIXED,
}


@click.group(
    "queues",
    short_help="Queues and their jobs by status; show, set, delete.",
    cls=SpoolGroup,
    invoke_without_command=True,
    epilog=examples(
        "spool queues",
        "spool queues -o json | jq '.[] | {name, ready: .stats.ready}'",
        "spool queues show emails",
        "spool queues set emails --max-attempts 5 --backoff-initial 2s",
        "spool queues set stripe-calls --rate 100/m --burst 10",
        "spool queues delete typo-queue",
    ),
)
@pass_cli
@click.pass_context
def queues(ctx: click.Context, cli: Cli) -> int | None:
    """Queues with their jobs by status: ready (due now), scheduled (due later), retrying,
    running, dead, succeeded, cancelled; LAG is how long the oldest ready job has waited."""
    if ctx.invoked_subcommand is not None:
        return None
    found = cli.client.queues()
    cli.out.emit(render.queue_rows(found) if found else "no queues", found)
    return OK


@queues.command(
    "show",
    short_help="One queue: stats and defaults.",
    epilog=examples("spool queues show emails", "spool queues show emails -o json"),
)
@click.argument("name", shell_complete=complete_queue)
@pass_cli
def show(cli: Cli, /, name: str) -> int:
    """One queue: its stats and the defaults its new jobs take."""
    q = cli.client.queue(name)
    cli.out.emit(render.queue_detail(q), q)
    return OK


@queues.command(
    "set",
    short_help="Set the defaults of a queue's new jobs.",
    epilog=examples(
        "spool queues set emails --max-attempts 5",
        "spool queues set emails --backoff fixed --backoff-initial 30s --lease-duration 2m",
        "spool queues set reports --keep-succeeded 1d",
    ),
)
@click.argument("name", shell_complete=complete_queue)
@click.option("--max-attempts", type=click.IntRange(1, 100), help="1 to 100 (the server's default is 1: no retry).")
@click.option("--backoff", type=click.Choice(list(_KINDS)), help="How retries are spaced.")
@click.option("--backoff-initial", type=Duration(), metavar="DURATION", help="The first retry's delay.")
@click.option("--backoff-max", type=Duration(), metavar="DURATION", help="The longest delay between retries.")
@click.option("--lease-duration", type=Duration(), metavar="DURATION", help="Lease per claim.")
@click.option("--attempt-timeout", type=Duration(), metavar="DURATION", help="Longest one attempt may run.")
@click.option("--keep-succeeded", type=Duration(), metavar="DURATION", help="How long SUCCEEDED jobs are kept.")
@click.option("--keep-cancelled", type=Duration(), metavar="DURATION", help="How long CANCELLED jobs are kept.")
@click.option("--keep-dead", type=Duration(), metavar="DURATION", help="How long DEAD jobs are kept.")
@click.option("--rate", type=Rate(), help="At most this many jobs start, e.g. 10/s, 100/m, 5/30s.")
@click.option("--burst", type=click.IntRange(1, 1_000_000), help="With --rate: how many may start at once (default 1).")
@click.option("--no-rate-limit", is_flag=True, help="Remove the queue's rate limit.")
@pass_cli
def set_defaults(cli: Cli, /, name: str, **opts: Any) -> int:
    """Set the defaults that NAME's new jobs take when their enqueue leaves them out, and its rate
    limit; the others are kept. A queue without jobs or settings is created (and says so)."""
    defaults, mask = _defaults(opts)
    rate: RateLimit | None = opts["rate"]
    if opts["burst"] is not None and rate is None:
        raise click.UsageError("--burst goes with --rate, e.g. --rate 10/s --burst 5")
    if rate is not None and opts["no_rate_limit"]:
        raise click.UsageError("give --rate or --no-rate-limit, not both")
    if rate is not None or opts["no_rate_limit"]:
        mask.append("rate_limit")
    if not mask:
        raise click.UsageError("give at least one setting, e.g. --max-attempts 5")
    existed = _exists(cli, name)
    limit = replace(rate, burst=opts["burst"]).to_proto() if rate is not None else None
    q = cli.client.update_queue(name, defaults, mask, rate_limit=limit)
    if not existed:
        cli.out.note(f"created queue {name} (it had no jobs or settings)", style="yellow")
    cli.out.emit(render.queue_detail(q), q)
    return OK


def _defaults(opts: dict[str, Any]) -> tuple[adm.QueueDefaults, list[str]]:
    d = adm.QueueDefaults()
    mask: list[str] = []
    if opts["max_attempts"] is not None:
        d.max_attempts = opts["max_attempts"]
        mask.append("max_attempts")
    if opts["backoff"] is not None:
        d.backoff.kind = _KINDS[opts["backoff"]]
        mask.append("backoff.kind")
    durations = {
        "backoff_initial": "backoff.initial_interval",
        "backoff_max": "backoff.max_interval",
        "lease_duration": "lease_duration",
        "attempt_timeout": "attempt_timeout",
        "keep_succeeded": "retention_succeeded",
        "keep_cancelled": "retention_cancelled",
        "keep_dead": "retention_dead",
    }
    for option, path in durations.items():
        value: timedelta | None = opts[option]
        if value is not None:
            target = d.backoff if path.startswith("backoff.") else d
            getattr(target, path.removeprefix("backoff.")).CopyFrom(duration(value))
            mask.append(path)
    return d, mask


def _exists(cli: Cli, name: str) -> bool:
    try:
        cli.client.queue(name)
    except QueueNotFound:
        return False
    return True


@queues.command(
    "delete",
    short_help="Delete a queue made by mistake.",
    epilog=examples("spool queues delete typo-queue", "spool queues delete old-reports --force --yes"),
)
@click.argument("name", shell_complete=complete_queue)
@click.option("--force", is_flag=True, help="Delete its finished jobs (SUCCEEDED, DEAD, CANCELLED) too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (with --force).")
@pass_cli
def delete(cli: Cli, /, name: str, force: bool, yes: bool) -> int:
    """Delete a queue: its settings and, with --force, its finished jobs. Refused while it has jobs
    (with --force: PENDING or RUNNING ones, which are never deleted: cancel them first)."""
    if force and not yes:
        stats = cli.client.queue(name).stats
        finished = stats.succeeded + stats.dead + stats.cancelled
        if finished and not click.confirm(f"Delete queue {clean(name)} and its {finished} finished job(s)?", err=True):
            cli.out.note("aborted")
            return 1
    deleted = cli.client.delete_queue(name, force=force)
    cli.out.emit(
        Text(f"deleted queue {clean(name)}" + (f" and {deleted} finished job(s)" if deleted else "")),
        {"name": name, "deleted_jobs": deleted},
    )
    return OK


@command(
    "pause",
    short_help="Stop leasing a queue's jobs.",
    example=("spool pause emails", "spool pause new-queue --create"),
)
@click.argument("name", shell_complete=complete_queue)
@click.option(
    "--create", is_flag=True, help="Pause a queue that has no jobs or settings yet (else refused as a likely typo)."
)
@pass_cli
def pause(cli: Cli, /, name: str, create: bool) -> int:
    """Stop leasing a queue's jobs: enqueue still works, running jobs finish, and `spool resume` starts it again."""
    if not create and not _exists(cli, name):
        cli.out.note(
            f"spool: no queue {clean(name)!r}: it has no jobs and no settings (a typo?); "
            "--create pauses it before its first job",
            style="red",
        )
        return NOT_FOUND
    q = cli.client.pause(name)
    waiting = q.stats.ready + q.stats.scheduled + q.stats.retrying
    cli.out.emit(Text(f"{clean(q.name)} paused: {waiting} pending job(s) wait until `spool resume {clean(q.name)}`"), q)
    return OK


@command("resume", short_help="Lease a paused queue's jobs again.", example=("spool resume emails",))
@click.argument("name", shell_complete=complete_queue)
@pass_cli
def resume(cli: Cli, /, name: str) -> int:
    """Lease a paused queue's jobs again."""
    cli.client.queue(name)  # an unknown queue is NOT_FOUND rather than created
    q = cli.client.resume(name)
    cli.out.emit(Text(f"{clean(q.name)} resumed: {q.stats.ready} job(s) ready"), q)
    return OK


COMMANDS = (queues, pause, resume)
