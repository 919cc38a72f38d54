"""The schedule commands: schedules (ls), get, create, rm, pause, resume, trigger; and how a
schedule looks to people."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from spool._convert import EnqueueOptions
from spool.cli import _render as render
from spool.cli._base import OK, Cli, SpoolGroup, examples, pass_cli
from spool.cli._jobs import _header, _payload
from spool.cli._options import Duration, complete_queue
from spool.cli._text import clean, relative, took, when
from spool.schedules import Schedule, ScheduleSpec
from spool.v1 import job_pb2
from spool.v1 import schedule_pb2 as sp

_OUTCOMES = {v: k.removeprefix("OUTCOME_").lower() for k, v in sp.ScheduleFire.Outcome.items()}


def _enum(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _timing(s: Schedule) -> str:
    if s.HasField("interval"):
        return f"every {took(s.interval)}"
    return f"{s.cron} ({s.time_zone})" if s.time_zone != "UTC" else s.cron


def _last_fire(s: Schedule) -> Text:
    if not s.HasField("last_fire"):
        return Text("never", style="dim")
    f = s.last_fire
    outcome = _OUTCOMES.get(f.outcome, "?")
    text = Text(relative(f.fire_time))
    if outcome == "enqueued":
        state = job_pb2.Job.State.Name(f.job_state).removeprefix("STATE_").lower() if f.job_state else "gone"
        text.append(f"  job {f.job_id} ")
        text.append(state, style=render.STYLES.get(state, "dim"))
    else:
        text.append(f"  {outcome}", style="yellow" if outcome == "skipped" else "red")
    if f.triggered:
        text.append("  (triggered)", style="dim")
    return text


def schedule_rows(found: Sequence[Schedule]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in ("SCHEDULE", "WHEN", "QUEUE", "NEXT FIRE", "LAST FIRE", "PAUSED"):
        table.add_column(h, no_wrap=True, overflow="ellipsis")
    for s in found:
        upcoming = relative(s.next_fire_times[0]) if s.next_fire_times and not s.paused else "-"
        paused = Text("paused", style="yellow") if s.paused else Text("no", style="dim")
        table.add_row(
            render.cell(s.name, width=40),
            render.cell(_timing(s), width=40),
            render.cell(s.template.queue, width=40),
            upcoming,
            _last_fire(s),
            paused,
        )
    return table


def schedule_detail(s: Schedule) -> RenderableType:
    policy = _enum(sp.Schedule.CatchUp, s.catch_up, "CATCH_UP_") or "latest"
    if policy == "all":
        policy += f" (at most {s.catch_up_limit})"
    rows: list[tuple[str, Text | str]] = [
        ("schedule", render.cell(s.name, width=None)),
        ("when", render.cell(_timing(s), width=None)),
        ("queue", render.cell(s.template.queue, width=None)),
        ("payload", render.cell(render.blob(s.template.payload, s.template.content_type), width=200)),
        ("paused", Text("yes", style="yellow") if s.paused else "no"),
        ("overlap", _enum(sp.Schedule.Overlap, s.overlap, "OVERLAP_")),
        ("catch-up", policy),
        ("jitter", took(s.jitter) if s.HasField("jitter") else "-"),
        ("last fire", _last_fire(s)),
    ]
    if s.HasField("last_fire") and s.last_fire.error:
        rows.append(("", render.cell(s.last_fire.error, "red", width=200)))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    label = "next fires (if resumed now)" if s.paused else "next fires"
    fires = [Text(f"  {when(t)}  ({relative(t)})") for t in s.next_fire_times]
    return Group(grid, Text(""), Text(label + ":", style="bold"), *fires)


@click.group(
    "schedules",
    short_help="Schedules: ls, get, create, rm, pause, resume, trigger.",
    cls=SpoolGroup,
    invoke_without_command=True,
    epilog=examples(
        "spool schedules",
        "spool schedules create nightly-sync '0 3 * * *' --queue sync --tz Europe/Berlin",
        "spool schedules create heartbeat 'every 30s' --queue pings '{\"from\": \"cron\"}'",
        "spool schedules get nightly-sync",
        "spool schedules trigger nightly-sync",
    ),
)
@pass_cli
@click.pass_context
def schedules(ctx: click.Context, cli: Cli) -> int | None:
    """Schedules with when they fire next and how their last fire went."""
    if ctx.invoked_subcommand is None:
        return _list(cli)
    return None


@schedules.command("ls", short_help="Every schedule.", epilog=examples("spool schedules ls -o json"))
@pass_cli
def ls(cli: Cli) -> int:
    """Every schedule, by name."""
    return _list(cli)


def _list(cli: Cli) -> int:
    found = list(cli.client.schedules.list())
    cli.out.emit(schedule_rows(found) if found else "no schedules", found)
    return OK


@schedules.command(
    "get",
    short_help="One schedule: next 5 fire times, last fire.",
    epilog=examples("spool schedules get nightly-sync", "spool schedules get nightly-sync -o json | jq .last_fire"),
)
@click.argument("name")
@pass_cli
def get(cli: Cli, /, name: str) -> int:
    """One schedule: its settings, its next 5 fire times, and its last fire with its job."""
    s = cli.client.schedules.get(name)
    cli.out.emit(schedule_detail(s), s)
    return OK


@schedules.command(
    "create",
    short_help="Create a schedule.",
    epilog=examples(
        "spool schedules create nightly-sync '0 3 * * *' --queue sync --tz Europe/Berlin --overlap skip",
        "spool schedules create every-5s '*/5 * * * * *' --queue pings",
        "spool schedules create reports 'every 1h' --queue reports '{\"kind\": \"hourly\"}' --catch-up all",
    ),
)
@click.argument("name")
@click.argument("when")
@click.argument("payload", default="{}", required=False)
@click.option("--queue", "-q", required=True, shell_complete=complete_queue, help="The queue of each job.")
@click.option("--tz", "time_zone", default="UTC", show_default=True, help="IANA time zone the cron is read in.")
@click.option("--overlap", type=click.Choice(["allow", "skip"]), default="allow", show_default=True)
@click.option("--catch-up", type=click.Choice(["latest", "all", "none"]), default="latest", show_default=True)
@click.option("--catch-up-limit", type=click.IntRange(1, 1000), help="With --catch-up all (default 100).")
@click.option("--jitter", type=Duration(), metavar="DURATION", help="Delay each job by up to this, at random.")
@click.option("--priority", type=click.IntRange(-32768, 32767), help="Each job's priority.")
@click.option("--max-attempts", type=click.IntRange(1, 100), help="Each job's attempts (default the queue's).")
@click.option("--header", "-H", "headers", multiple=True, metavar="KEY=VALUE", help="A header for each job.")
@click.option("--concurrency-key", help="At most --concurrency-limit of the jobs with this key run at once.")
@click.option("--concurrency-limit", type=click.IntRange(1, 1_000_000), help="Default 1 with a --concurrency-key.")
@pass_cli
def create(cli: Cli, /, name: str, when: str, payload: str, **opts: Any) -> int:
    """Create schedule NAME: at each fire time of WHEN, one job in --queue with PAYLOAD (JSON,
    default {}). WHEN is a cron expression (5 fields, 6 with seconds first, or @hourly, @daily...)
    or "every 30s" (ms, s, m, h, d)."""
    options: EnqueueOptions = {}
    for key in ("priority", "max_attempts", "concurrency_key", "concurrency_limit"):
        if opts[key] is not None:
            options[key] = opts[key]
    if opts["headers"]:
        options["headers"] = dict(_header(h) for h in opts["headers"])
    jitter: timedelta | None = opts["jitter"]
    spec = ScheduleSpec(
        name=name,
        when=when,
        queue=opts["queue"],
        payload=_payload(payload, None),
        time_zone=opts["time_zone"],
        overlap=opts["overlap"],
        catch_up=opts["catch_up"],
        catch_up_limit=opts["catch_up_limit"] or 0,
        jitter=jitter,
        options=options,
    )
    s = cli.client.schedules.create(spec)
    cli.out.emit(schedule_detail(s), s)
    return OK


@schedules.command(
    "rm", short_help="Delete a schedule (its jobs stay).", epilog=examples("spool schedules rm nightly-sync")
)
@click.argument("name")
@pass_cli
def rm(cli: Cli, /, name: str) -> int:
    """Delete schedule NAME and its fire history; the jobs it enqueued stay."""
    cli.client.schedules.delete(name)
    cli.out.emit(Text(f"deleted schedule {clean(name)}"), {"name": name, "deleted": True})
    return OK


@schedules.command("pause", short_help="Stop firing.", epilog=examples("spool schedules pause nightly-sync"))
@click.argument("name")
@pass_cli
def pause(cli: Cli, /, name: str) -> int:
    """Stop firing NAME until `spool schedules resume`."""
    s = cli.client.schedules.pause(name)
    cli.out.emit(Text(f"{clean(s.name)} paused"), s)
    return OK


@schedules.command(
    "resume",
    short_help="Fire again (missed fire times are not caught up).",
    epilog=examples("spool schedules resume nightly-sync"),
)
@click.argument("name")
@pass_cli
def resume(cli: Cli, /, name: str) -> int:
    """Fire NAME again from its next fire time on."""
    s = cli.client.schedules.resume(name)
    upcoming = f": next fire {relative(s.next_fire_times[0])}" if s.next_fire_times else ""
    cli.out.emit(Text(f"{clean(s.name)} resumed{upcoming}"), s)
    return OK


@schedules.command(
    "trigger",
    short_help="Fire now; prints the job's id.",
    epilog=examples("spool schedules trigger nightly-sync", "spool watch $(spool schedules trigger nightly-sync)"),
)
@click.argument("name")
@pass_cli
def trigger(cli: Cli, /, name: str) -> int:
    """Fire NAME now, paused or not: one job, whose id is printed."""
    s, job = cli.client.schedules.trigger(name)
    cli.out.emit(job.id, {"schedule": s.name, "job_id": job.id})
    return OK


COMMANDS = (schedules,)
