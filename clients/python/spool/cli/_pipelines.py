"""The pipeline commands: pipeline ls, get, watch, pause, resume, cancel; a pipeline drawn as a table of
its steps, parents first, with their states."""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from spool._convert import job_status
from spool.cli import _render as render
from spool.cli._base import JOB_FAILED, OK, Cli, SpoolGroup, examples, pass_cli
from spool.cli._text import clean, clock, took, when
from spool.pipelines import KEEP_PAYLOAD, Pipeline

_STATES = {v: k.removeprefix("STATE_").lower() for k, v in Pipeline.State.items()}
_PIPELINE_STYLES = {"running": "magenta", "succeeded": "green", "failed": "bold red", "cancelled": "dim"}


def pipeline_state(p: Pipeline) -> Text:
    state = _STATES.get(p.state, "?")
    text = Text(state, style=_PIPELINE_STYLES.get(state, ""))
    if p.paused:
        text.append(" (paused)", style="yellow")
    return text


def pipeline_detail(p: Pipeline) -> RenderableType:
    head = Text(f"pipeline {p.id} {clean(p.name)}  ")
    head.append_text(pipeline_state(p))
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in ("STEP", "AFTER", "JOB", "QUEUE", "STATUS", "ATTEMPTS", "TOOK", "LAST ERROR"):
        table.add_column(h, no_wrap=True, overflow="ellipsis")
    for s in p.steps:
        job = s.job
        status = job_status(job)
        finished = [a for a in job.attempts if a.HasField("duration")]
        table.add_row(
            render.cell(s.name + (" (on failure)" if s.on_failure else ""), width=40),
            render.cell(", ".join(s.depends_on) or "-", width=40),
            job.id,
            render.cell(job.queue, width=30),
            Text(status, style=render.STYLES.get(status, "")),
            str(len(job.attempts)),
            took(finished[-1].duration) if finished else "-",
            render.cell(render.error_text(job.last_error) if job.HasField("last_error") else "", "red"),
        )
    return Group(head, Text(""), table)


@click.group(
    "pipeline",
    short_help="Pipelines: ls, get, watch, retry, pause, resume, cancel.",
    cls=SpoolGroup,
    epilog=examples(
        "spool pipeline ls -s failed",
        "spool pipeline get 7",
        "spool pipeline watch 7",
        "spool pipeline retry 42 --downstream",
    ),
)
def pipeline() -> None:
    """A pipeline and its steps (docs/pipelines.md)."""


@pipeline.command("get", short_help="The steps with their states.", epilog=examples("spool pipeline get 7"))
@click.argument("pipeline_id")
@pass_cli
def get(cli: Cli, /, pipeline_id: str) -> int:
    """The pipeline's state and every step: its parents, job, status, attempts and last error."""
    p = cli.client.pipelines.get(pipeline_id)
    cli.out.emit(pipeline_detail(p), p)
    return OK


@pipeline.command(
    "ls",
    short_help="Pipelines, newest first.",
    epilog=examples(
        "spool pipeline ls", "spool pipeline ls -s failed,cancelled", "spool pipeline ls --name export- -o json"
    ),
)
@click.option(
    "--state", "-s", "states", multiple=True, help="running, succeeded, failed or cancelled (repeat, or a,b)."
)
@click.option("--name", "name_prefix", default="", help="Only pipelines whose name starts with this.")
@click.option("--paused/--not-paused", default=None, help="Only paused (or only unpaused) pipelines.")
@click.option("--limit", "-n", type=click.IntRange(1), default=50, show_default=True, help="At most this many.")
@pass_cli
def ls(cli: Cli, /, states: tuple[str, ...], name_prefix: str, paused: bool | None, limit: int) -> int:
    """The pipelines, newest first, with their state and how many steps succeeded."""
    wanted = [s.strip() for v in states for s in v.split(",") if s.strip()]
    try:
        found = cli.client.pipelines.list(wanted, name_prefix=name_prefix, paused=paused, page_size=min(limit, 1000))
        pipelines = list(islice(found, limit))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from None
    cli.out.emit(pipeline_rows(pipelines) if pipelines else "no pipelines", pipelines)
    return OK


def pipeline_rows(pipelines: list[Pipeline]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in ("ID", "NAME", "STATE", "STEPS", "CREATED"):
        table.add_column(h, justify="right" if h == "STEPS" else "left", no_wrap=True, overflow="ellipsis")
    for p in pipelines:
        table.add_row(
            p.id,
            render.cell(p.name, width=40),
            pipeline_state(p),
            f"{p.succeeded_steps}/{p.step_count}",
            when(p.created_at),
        )
    return table


@pipeline.command("watch", short_help="Live, until it ends.", epilog=examples("spool pipeline watch 7"))
@click.argument("pipeline_id")
@pass_cli
def watch(cli: Cli, /, pipeline_id: str) -> int:
    """The pipeline's steps, redrawn as they change (WatchPipeline), until the pipeline is finished.
    Off a terminal (or with -o json), a line for every step that changes instead. Exit status 4 when
    it ends FAILED or CANCELLED."""
    stream = cli.client.pipelines.watch(pipeline_id)
    if cli.out.json or not cli.out.console.is_terminal:
        last = _lines(cli, stream)
    else:
        last = None
        with Live(console=cli.out.console, auto_refresh=False) as live:
            for last in stream:
                live.update(pipeline_detail(last), refresh=True)
    return JOB_FAILED if last is not None and last.state in _ENDED_BADLY else OK


_ENDED_BADLY = (Pipeline.STATE_FAILED, Pipeline.STATE_CANCELLED)


def _lines(cli: Cli, stream: Iterable[Pipeline]) -> Pipeline | None:
    seen: dict[str, str] = {}
    last: Pipeline | None = None
    for p in stream:
        last = p
        for s in p.steps:
            status = job_status(s.job)
            if seen.get(s.name) != status:
                seen[s.name] = status
                line = Text(f"{clock()}  {clean(s.name)}  ")
                line.append(status, style=render.STYLES.get(status, ""))
                cli.out.emit(line, {"step": s.name, "job_id": s.job.id, "status": status})
    if last is not None:
        cli.out.emit(Text(f"{clock()}  pipeline ").append_text(pipeline_state(last)), last)
    return last


@pipeline.command(
    "retry",
    short_help="Fix and resume a failed step.",
    epilog=examples("spool pipeline retry 42", "spool pipeline retry 42 '{\"rows\": 10}' --downstream"),
)
@click.argument("job_id")
@click.argument("payload", required=False)
@click.option("--downstream", is_flag=True, help="The steps after it run again too.")
@pass_cli
def retry(cli: Cli, /, job_id: str, payload: str | None, downstream: bool) -> int:
    """Run step JOB_ID again (with PAYLOAD, JSON, if given), keeping every finished step's result."""
    value = json.loads(payload) if payload is not None else KEEP_PAYLOAD
    p = cli.client.pipelines.retry(job_id, value, downstream=downstream)
    cli.out.emit(pipeline_detail(p), p)
    return OK


def _action(name: str, verb: str) -> None:
    @pipeline.command(
        name, short_help=f"{verb.capitalize()} the pipeline.", epilog=examples(f"spool pipeline {name} 7")
    )
    @click.argument("pipeline_id")
    @pass_cli
    def act(cli: Cli, /, pipeline_id: str) -> int:
        p = getattr(cli.client.pipelines, name)(pipeline_id)
        cli.out.emit(pipeline_detail(p), p)
        return OK

    act.__doc__ = f"{verb.capitalize()} the pipeline, then show it."


for _name, _verb in (("pause", "pause"), ("resume", "resume"), ("cancel", "cancel")):
    _action(_name, _verb)

COMMANDS = (pipeline,)
