"""The pipeline commands: pipeline get, watch, pause, resume, cancel; a pipeline drawn as a table of
its steps, parents first, with their states."""

from __future__ import annotations

import json
import time

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from spool._convert import job_status
from spool.cli import _render as render
from spool.cli._base import OK, Cli, SpoolGroup, examples, pass_cli
from spool.cli._text import clean, clock, took
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
    short_help="Pipelines: get, watch, retry, pause, resume, cancel.",
    cls=SpoolGroup,
    epilog=examples("spool pipeline get 7", "spool pipeline watch 7", "spool pipeline retry 42 --downstream"),
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


@pipeline.command("watch", short_help="Live, until it ends.", epilog=examples("spool pipeline watch 7"))
@click.argument("pipeline_id")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between looks.")
@pass_cli
def watch(cli: Cli, /, pipeline_id: str, interval: float) -> int:
    """A line for every step that changes, until the pipeline succeeds, fails or is cancelled."""
    seen: dict[str, str] = {}
    while True:
        p = cli.client.pipelines.get(pipeline_id)
        for s in p.steps:
            status = job_status(s.job)
            if seen.get(s.name) != status:
                seen[s.name] = status
                line = Text(f"{clock()}  {clean(s.name)}  ")
                line.append(status, style=render.STYLES.get(status, ""))
                cli.out.emit(line, {"step": s.name, "job_id": s.job.id, "status": status})
        if p.state != Pipeline.STATE_RUNNING:
            cli.out.emit(Text(f"{clock()}  pipeline ").append_text(pipeline_state(p)), p)
            return OK
        time.sleep(interval)


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
