"""What each `spool` subcommand does, over the blocking Client; cli.py parses and dispatches."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TextIO

from spool import _render as render
from spool._convert import Backoff, EnqueueOptions, Filter, state_name
from spool.client import Client, Job, is_terminal

# Exit codes, documented in `spool --help`.
OK, ERROR, USAGE, NOT_FOUND, JOB_FAILED = 0, 1, 2, 3, 4

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(Exception):
    """Bad input that argparse could not catch (exit code 2)."""


def parse_duration(text: str) -> timedelta:
    """ "90s", "15m", "2h", "1d", "1w" (or plain seconds)."""
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 15m, 2h, 1d)") from None


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration meaning that long ago ("2h")."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO 8601, or e.g. 2h for two hours ago)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def emit(args: argparse.Namespace, human: str, data: Any, out: TextIO = sys.stdout) -> None:
    print(render.as_json(data) if args.output == "json" else human, file=out)


def enqueue(client: Client, args: argparse.Namespace) -> int:
    job = client.enqueue(args.queue, _payload(args), **_enqueue_options(args))
    emit(args, job.id, job)
    return OK


def _payload(args: argparse.Namespace) -> Any:
    raw = sys.stdin.read() if args.payload == "-" else args.payload
    if args.content_type and args.content_type != "application/json":
        return raw.encode()
    try:
        return json.loads(raw)
    except ValueError:
        raise UsageError(f"payload is not JSON: {raw[:60]!r} (use --content-type for other kinds)") from None


def _enqueue_options(args: argparse.Namespace) -> EnqueueOptions:
    opts: EnqueueOptions = {"priority": args.priority}
    if args.content_type:
        opts["content_type"] = args.content_type
    if args.header:
        opts["headers"] = dict(_header(h) for h in args.header)
    if args.delay is not None:
        opts["delay"] = args.delay
    if args.run_at is not None:
        opts["run_at"] = args.run_at
    if args.max_attempts is not None:
        opts["max_attempts"] = args.max_attempts
    if args.backoff is not None:
        opts["backoff"] = Backoff(kind=args.backoff, initial=args.backoff_initial)
    if args.idempotency_key:
        opts["idempotency_key"] = args.idempotency_key
    return opts


def _header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--header needs key=value, got {text!r}")
    return key, value


def get(client: Client, args: argparse.Namespace) -> int:
    job = client.get(args.job_id)
    emit(args, render.job_detail(job), job)
    return OK


def watch(client: Client, args: argparse.Namespace) -> int:
    last: Job | None = None
    for job in client.watch(args.job_id):
        last = job
        print(json.dumps(render.as_dict(job)) if args.output == "json" else render.watch_line(job), flush=True)
    if last is None or not is_terminal(last):
        return ERROR
    return OK if last.state == Job.STATE_SUCCEEDED else JOB_FAILED


def job_filter(args: argparse.Namespace, states: Iterable[str] = ()) -> Filter:
    return Filter(
        queues=args.queue or (),
        states=[*(args.state or ()), *states],
        created_after=args.created_after,
        created_before=args.created_before,
        finished_after=args.finished_after,
        finished_before=args.finished_before,
        error_contains=args.error or "",
        payload_contains=args.payload,
        idempotency_key=args.idempotency_key or "",
        concurrency_key=args.concurrency_key or "",
    )


def ls(client: Client, args: argparse.Namespace, states: Iterable[str] = ()) -> int:
    where = job_filter(args, states)
    order = "oldest" if args.oldest else "newest"
    jobs = list(islice(client.list(where, order=order, page_size=min(args.limit, 1000)), args.limit))
    emit(args, render.job_rows(jobs) if jobs else "no jobs", jobs)
    return OK


def dead(client: Client, args: argparse.Namespace) -> int:
    return ls(client, args, states=["dead"])


def cancel(client: Client, args: argparse.Namespace) -> int:
    jobs = [client.cancel(i) for i in args.job_ids]
    emit(args, "\n".join(f"{j.id}  {state_name(j.state)}" for j in jobs), jobs)
    return OK


def requeue(client: Client, args: argparse.Namespace) -> int:
    if args.job_ids:
        if _has_filter(args):
            raise UsageError("give job ids or filter options, not both")
        jobs = client.requeue(*args.job_ids, include_succeeded=args.include_succeeded)
        emit(args, "\n".join(f"{j.id}  {state_name(j.state)}" for j in jobs), jobs)
        return OK
    if not _has_filter(args):
        raise UsageError("give job ids, or filter options (e.g. --queue emails --state dead)")
    return _requeue_matching(client, args)


def _has_filter(args: argparse.Namespace) -> bool:
    names = ("queue", "state", "created_after", "created_before", "finished_after", "finished_before")
    return any(getattr(args, n) for n in (*names, "error", "payload", "idempotency_key", "concurrency_key"))


def _requeue_matching(client: Client, args: argparse.Namespace) -> int:
    where = job_filter(args)
    allowed = {Job.STATE_DEAD, Job.STATE_CANCELLED} | ({Job.STATE_SUCCEEDED} if args.include_succeeded else set())
    total = sum(1 for j in client.list(where, page_size=1000) if j.state in allowed)
    if total == 0:
        emit(args, "no matching job to requeue", [])
        return OK
    if not args.yes and not _confirm(f"Requeue {total} job(s)? [y/N] "):
        print("aborted", file=sys.stderr)
        return ERROR
    done: list[Job] = []
    # Capped at the count confirmed: a requeued job that fails again must not be taken twice.
    while len(done) < total:
        batch = client.requeue_matching(
            where, include_succeeded=args.include_succeeded, limit=min(1000, total - len(done))
        )
        if not batch:
            break
        done += batch
        _progress(len(done), total)
    print(file=sys.stderr)
    emit(args, f"requeued {len(done)} job(s)", done)
    return OK


def _confirm(prompt: str) -> bool:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    print(f"\rrequeued {done}/{total} [{bar}]", end="", file=sys.stderr, flush=True)


def queues(client: Client, args: argparse.Namespace) -> int:
    found = client.queues()
    emit(args, render.queue_rows(found) if found else "no queues", found)
    return OK


def pause(client: Client, args: argparse.Namespace) -> int:
    q = client.pause(args.name)
    emit(args, f"{q.name} paused", q)
    return OK


def resume(client: Client, args: argparse.Namespace) -> int:
    q = client.resume(args.name)
    emit(args, f"{q.name} resumed", q)
    return OK
