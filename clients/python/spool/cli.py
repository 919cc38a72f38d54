"""`spool`: the command line for a Spool server (over gRPC, so it works against any server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from spool import _commands as cmd
from spool.client import Client
from spool.errors import NotFound, SpoolError

Command = Callable[[Client, argparse.Namespace], int]

EPILOG = """\
examples:
  spool enqueue emails '{"to": "ada@example.com"}' --max-attempts 5
  echo '{"n": 1}' | spool enqueue reports - --delay 10m
  spool get 42                       the job, with its attempts as a timeline
  spool watch 42                     live until the job finishes
  spool ls --queue emails --state running --created-after 2h
  spool ls --error timeout --payload '{"customer": 7}' -o json
  spool dead --queue emails          the dead-letter list
  spool requeue 42 43                by id
  spool requeue --queue emails --state dead --error timeout --yes
  spool cancel 42
  spool queues                       stats by derived status
  spool pause emails / spool resume emails

environment: SPOOL_ADDRESS (default 127.0.0.1:50051), SPOOL_TLS=1, SPOOL_TOKEN.
exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 (watch) the job ended DEAD or CANCELLED.
"""


def _filter_options(p: argparse.ArgumentParser, *, states: bool = True) -> None:
    g = p.add_argument_group("filter")
    g.add_argument("--queue", "-q", action="append", help="this queue (repeat for several)")
    if states:
        g.add_argument("--state", "-s", action="append", help="pending, running, succeeded, dead, cancelled")
    g.add_argument("--created-after", type=cmd.parse_time, metavar="TIME", help="ISO 8601, or 2h for 2 hours ago")
    g.add_argument("--created-before", type=cmd.parse_time, metavar="TIME")
    g.add_argument("--finished-after", type=cmd.parse_time, metavar="TIME")
    g.add_argument("--finished-before", type=cmd.parse_time, metavar="TIME")
    g.add_argument("--error", metavar="TEXT", help="last error's type or message contains TEXT (any case)")
    g.add_argument("--payload", metavar="JSON", help="payload contains this JSON document")
    g.add_argument("--idempotency-key", metavar="KEY")
    g.add_argument("--concurrency-key", metavar="KEY")


def _listing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", "-n", type=int, default=50, help="at most this many jobs (default 50)")
    p.add_argument("--oldest", action="store_true", help="oldest first (default newest first)")


def _enqueue_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enqueue", help="create a job; prints its id")
    p.add_argument("queue")
    p.add_argument("payload", nargs="?", default="{}", help="JSON (default {}), or - to read stdin")
    p.add_argument("--content-type", help="default application/json; anything else is sent as bytes")
    p.add_argument("--header", "-H", action="append", metavar="KEY=VALUE")
    p.add_argument("--priority", type=int, default=0)
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=cmd.parse_duration, metavar="DURATION", help="e.g. 30s, 10m, 2h")
    when.add_argument("--run-at", type=cmd.parse_time, metavar="TIME")
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--backoff", choices=["exponential", "linear", "fixed"])
    p.add_argument("--backoff-initial", type=cmd.parse_duration, metavar="DURATION")
    p.add_argument("--idempotency-key", help="a second enqueue with this key returns the first job")
    p.set_defaults(run=cmd.enqueue)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spool", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", "-a", help="host:port of spoold (default $SPOOL_ADDRESS or 127.0.0.1:50051)")
    parser.add_argument("--tls", action="store_true", default=None, help="connect with TLS")
    parser.add_argument("--token", help="sent as 'authorization: Bearer TOKEN' (default $SPOOL_TOKEN)")
    parser.add_argument("--output", "-o", choices=["table", "json"], default="table", help="default table")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _enqueue_parser(sub)
    for name, run, text in [("get", cmd.get, "a job and its attempts"), ("watch", cmd.watch, "follow a job")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        p.set_defaults(run=run)
    p = sub.add_parser("ls", help="search jobs with any ListJobs filter")
    _filter_options(p)
    _listing(p)
    p.set_defaults(run=cmd.ls)
    p = sub.add_parser("dead", help="the dead-letter list (ls --state dead)")
    _filter_options(p, states=False)
    _listing(p)
    p.set_defaults(run=cmd.dead, state=None)
    p = sub.add_parser("requeue", help="DEAD or CANCELLED jobs back to PENDING, by id or by filter")
    p.add_argument("job_ids", nargs="*")
    _filter_options(p)
    p.add_argument("--include-succeeded", action="store_true", help="requeue SUCCEEDED jobs too")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(run=cmd.requeue)
    p = sub.add_parser("cancel", help="cancel jobs (a running one stops at its next heartbeat)")
    p.add_argument("job_ids", nargs="+")
    p.set_defaults(run=cmd.cancel)
    sub.add_parser("queues", help="queues with their jobs by derived status").set_defaults(run=cmd.queues)
    for name, run in [("pause", cmd.pause), ("resume", cmd.resume)]:
        p = sub.add_parser(name, help=f"{name} leasing from a queue")
        p.add_argument("name")
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command = args.run
    try:
        with Client(args.address, tls=args.tls, token=args.token) as client:
            return run(client, args)
    except cmd.UsageError as err:
        parser.error(str(err))
    except NotFound as err:
        print(f"spool: {err.message}", file=sys.stderr)
        return cmd.NOT_FOUND
    except SpoolError as err:
        print(f"spool: {err}", file=sys.stderr)
        return cmd.ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `spool ls | head`
        return cmd.OK


if __name__ == "__main__":
    sys.exit(main())
