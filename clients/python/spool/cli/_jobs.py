"""The job commands: enqueue, get, watch, ls, dead, requeue, cancel."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from itertools import islice
from typing import Any

import click
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spool._convert import Backoff, EnqueueOptions, Filter
from spool.cli import _render as render
from spool.cli._base import JOB_FAILED, NOT_FOUND, OK, Cli, command, pass_cli
from spool.cli._connect import describe
from spool.cli._options import Duration, Moment, Rate, complete_queue, filter_options, is_empty, pop_filter
from spool.client import Job, is_terminal
from spool.errors import NotFound, SpoolError


@command(
    "enqueue",
    short_help="Create a job; prints its id.",
    example=(
        'spool enqueue emails \'{"to": "ada@example.com"}\' --max-attempts 5',
        "echo '{\"n\": 1}' | spool enqueue reports - --delay 10m",
        "spool enqueue reports '{}' --run-at 2026-12-01T09:00:00+01:00 --priority 10",
        "spool enqueue emails '{}' -H traceparent=00-abc-def-01 --idempotency-key welcome-ada",
    ),
)
@click.argument("queue", shell_complete=complete_queue)
@click.argument("payload", default="{}", required=False)
@click.option("--content-type", help="Default application/json; with any other, PAYLOAD is sent as bytes.")
@click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    metavar="KEY=VALUE",
    help="A header for the job (repeat for several); trace context travels here.",
)
@click.option(
    "--priority",
    type=click.IntRange(-32768, 32767),
    default=0,
    show_default=True,
    help="Higher runs first; jobs of equal priority run oldest first.",
)
@click.option(
    "--delay", type=Duration(), metavar="DURATION", help="Run no sooner than this from now, e.g. 30s, 10m, 2h."
)
@click.option(
    "--run-at",
    type=Moment(ago=False),
    metavar="TIME",
    help="Run no sooner than this ISO 8601 time (UTC unless it has an offset).",
)
@click.option("--max-attempts", type=click.IntRange(1, 100), help="1 to 100; default the queue's (1: no retry).")
@click.option(
    "--backoff", type=click.Choice(["exponential", "linear", "fixed"]), help="Default the queue's (exponential)."
)
@click.option("--backoff-initial", type=Duration(), metavar="DURATION", help="The first retry's delay (default 1s).")
@click.option("--lease-duration", type=Duration(), metavar="DURATION", help="Lease per claim; heartbeats extend it.")
@click.option("--attempt-timeout", type=Duration(), metavar="DURATION", help="Longest one attempt may run.")
@click.option("--idempotency-key", help="A second enqueue with this key on this queue returns the first job.")
@click.option("--concurrency-key", help="At most --concurrency-limit jobs with this key run at once.")
@click.option("--concurrency-limit", type=click.IntRange(1, 1_000_000), help="Default 1 with a --concurrency-key.")
@click.option("--rate-key", help="At most --rate of the jobs with this key start, in any queue.")
@click.option("--rate", type=Rate(), help="With --rate-key: e.g. 100/m, 10/s, 5/30s.")
@click.option("--burst", type=click.IntRange(1, 1_000_000), help="With --rate: how many may start at once (default 1).")
@pass_cli
def enqueue(cli: Cli, /, queue: str, payload: str, **opts: Any) -> int:
    """Create a job in QUEUE; prints its id. PAYLOAD is JSON (default {}), or - to read it from stdin."""
    if opts["delay"] is not None and opts["run_at"] is not None:
        raise click.UsageError("give --delay or --run-at, not both")
    job = cli.client.enqueue(queue, _payload(payload, opts["content_type"]), **_enqueue_options(opts))
    cli.out.emit(job.id, job)
    return OK


def _payload(text: str, content_type: str | None) -> Any:
    raw = sys.stdin.read() if text == "-" else text
    if content_type and content_type != "application/json":
        return raw.encode()
    try:
        return json.loads(raw)
    except ValueError:
        raise click.BadParameter(
            f"not JSON: {raw[:60]!r} (use --content-type for other kinds)", param_hint="PAYLOAD"
        ) from None


def _enqueue_options(o: dict[str, Any]) -> EnqueueOptions:
    opts: EnqueueOptions = {"priority": o["priority"]}
    if o["headers"]:
        opts["headers"] = dict(_header(h) for h in o["headers"])
    if o["backoff"] is not None or o["backoff_initial"] is not None:
        opts["backoff"] = Backoff(kind=o["backoff"] or "exponential", initial=o["backoff_initial"])
    plain = (
        "content_type",
        "delay",
        "run_at",
        "max_attempts",
        "lease_duration",
        "attempt_timeout",
        "idempotency_key",
        "concurrency_key",
        "concurrency_limit",
    )
    for name in plain:
        if o[name] is not None:
            opts[name] = o[name]  # type: ignore[literal-required]
    if (o["rate_key"] is None) != (o["rate"] is None):
        raise click.UsageError("--rate-key and --rate go together, e.g. --rate-key stripe --rate 100/m")
    if o["rate_key"] is not None:
        opts["rate_limit_key"] = o["rate_key"]
        opts["rate_limit"] = replace(o["rate"], burst=o["burst"])
    return opts


def _header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"needs KEY=VALUE, got {text!r}", param_hint="--header")
    return key, value


@command(
    "get",
    short_help="A job and its attempts.",
    example=("spool get 42", "spool get 42 --verbose --logs", "spool get 42 -o json | jq .attempts"),
)
@click.argument("job_id")
@click.option("--verbose", "-v", is_flag=True, help="Also settings, headers, the checkpoint and every traceback.")
@click.option("--logs", "-l", is_flag=True, help="Also each attempt's log lines (spool logs: only those).")
@pass_cli
def get(cli: Cli, /, job_id: str, verbose: bool, logs: bool) -> int:
    """A job and its attempts as a timeline (requeues marked)."""
    job = cli.client.get(job_id, include_logs=logs)
    cli.out.emit(render.job_detail(job, verbose, logs), job)
    return OK


@command(
    "watch",
    short_help="Follow a job until it finishes.",
    example=("spool watch 42", "spool watch 42 -o json | jq -c '{state, attempt}'"),
)
@click.argument("job_id")
@pass_cli
def watch(cli: Cli, /, job_id: str) -> int:
    """Follow a job until it finishes: a line per change. Exits 0 if it SUCCEEDED, 4 if DEAD or CANCELLED."""
    last: Job | None = None
    for job in cli.client.watch(job_id):
        last = job
        if cli.out.json:
            cli.out.data(job, indent=None)
        else:
            cli.out.show(render.watch_line(job))
    if last is None or not is_terminal(last):
        cli.out.note("the watch ended before the job finished")
        return 1
    return OK if last.state == Job.STATE_SUCCEEDED else JOB_FAILED


def _listing(f: Any) -> Any:
    f = click.option(
        "--limit", "-n", type=click.IntRange(1), default=50, show_default=True, help="At most this many jobs."
    )(f)
    return click.option("--oldest", is_flag=True, help="Oldest first (default newest first).")(f)


def _list(cli: Cli, where: Filter, limit: int, oldest: bool) -> int:
    order = "oldest" if oldest else "newest"
    jobs = list(islice(cli.client.list(where, order=order, page_size=min(limit, 1000)), limit))
    cli.out.emit(render.job_rows(jobs) if jobs else "no jobs", jobs)
    return OK


@command(
    "ls",
    short_help="Search jobs: by state, queue, time, error, payload.",
    example=(
        "spool ls --queue emails --state running --created-after 2h",
        "spool ls -s retrying,scheduled",
        "spool ls --error timeout --payload '{\"customer\": 7}' -o json",
        "spool ls -s dead -o json | jq -r '.[].id'",
    ),
)
@filter_options()
@_listing
@pass_cli
def ls(cli: Cli, /, limit: int, oldest: bool, **filters: Any) -> int:
    """Search jobs, newest first. Every option given must match; a repeated one matches any of its values.

    States are the job states and PENDING's three parts: ready (due now), scheduled (due later)
    and retrying (after a failed attempt), the columns of `spool queues`.
    """
    return _list(cli, pop_filter(filters), limit, oldest)


@command(
    "dead", short_help="The dead-letter list.", example=("spool dead", "spool dead --queue emails --error timeout")
)
@filter_options(states=False)
@_listing
@pass_cli
def dead(cli: Cli, /, limit: int, oldest: bool, **filters: Any) -> int:
    """The dead-letter list: spool ls --state dead."""
    return _list(cli, pop_filter(filters, ["dead"]), limit, oldest)


@command(
    "cancel",
    short_help="Cancel jobs (a running one: cancel requested).",
    example=("spool cancel 42", "spool cancel 42 43 44"),
)
@click.argument("job_ids", nargs=-1, required=True)
@pass_cli
def cancel(cli: Cli, /, job_ids: tuple[str, ...]) -> int:
    """Cancel jobs: a PENDING one ends CANCELLED; a RUNNING one is asked to stop, which its worker
    hears at once (WatchCancels), or at its next heartbeat at the latest."""
    done, code = [], OK
    for job_id in job_ids:
        try:
            job = cli.client.cancel(job_id)
        except SpoolError as err:
            code = _failed(cli, job_id, err, code)
            continue
        done.append(job)
        if not cli.out.json:
            cli.out.show(render.job_line(job, "cancelled"))
    if cli.out.json:
        cli.out.data(done)
    return code


def _failed(cli: Cli, job_id: str, err: SpoolError, code: int) -> int:
    """Reports one job's failure and goes on with the others; the exit code is the first failure's."""
    cli.out.note(f"spool: job {job_id}: {describe(err, cli.address)}", style="red")
    return code or (NOT_FOUND if isinstance(err, NotFound) else 1)


@command(
    "requeue",
    short_help="Put DEAD or CANCELLED jobs back, by id or filter.",
    example=(
        "spool requeue 42 43",
        "spool requeue --queue emails --state dead --error timeout",
        "spool requeue --queue reports --state succeeded --include-succeeded --yes",
    ),
)
@click.argument("job_ids", nargs=-1)
@filter_options()
@click.option("--include-succeeded", is_flag=True, help="Requeue SUCCEEDED jobs too (they run again).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def requeue(cli: Cli, /, job_ids: tuple[str, ...], include_succeeded: bool, yes: bool, **filters: Any) -> int:
    """Put DEAD or CANCELLED jobs back to PENDING with a fresh attempt budget, by id or by filter
    (a filter asks first, then shows its progress)."""
    where = pop_filter(filters)
    if job_ids and not is_empty(where):
        raise click.UsageError("give job ids or filter options, not both")
    if job_ids:
        jobs = cli.client.requeue(*job_ids, include_succeeded=include_succeeded)
        cli.out.emit(Group(*(render.job_line(j, "requeued") for j in jobs)), jobs)
        return OK
    if is_empty(where):
        raise click.UsageError("give job ids, or filter options (e.g. --queue emails --state dead)")
    return _requeue_matching(cli, where, include_succeeded, yes)


def _requeue_matching(cli: Cli, where: Filter, include_succeeded: bool, yes: bool) -> int:
    allowed = {Job.STATE_DEAD, Job.STATE_CANCELLED} | ({Job.STATE_SUCCEEDED} if include_succeeded else set())
    total = sum(1 for j in cli.client.list(where, page_size=1000) if j.state in allowed)
    if total == 0:
        cli.out.emit("no matching job to requeue", [])
        return OK
    if not yes and not click.confirm(f"Requeue {total} job(s)?", err=True):
        cli.out.note("aborted")
        return 1
    done: list[Job] = []
    columns = (TextColumn("requeued"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=cli.out.errors) as progress:
        task = progress.add_task("requeue", total=total)
        # Capped at the count confirmed: a requeued job that fails again must not be taken twice.
        while len(done) < total:
            batch = cli.client.requeue_matching(
                where, include_succeeded=include_succeeded, limit=min(1000, total - len(done))
            )
            if not batch:
                break
            done += batch
            progress.update(task, completed=len(done))
    cli.out.emit(f"requeued {len(done)} job(s)", done)
    return OK


COMMANDS = (enqueue, get, watch, ls, dead, requeue, cancel)
