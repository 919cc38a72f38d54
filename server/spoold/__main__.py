"""The spoold command: serve the queue, on embedded PostgreSQL unless a database URL is given."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from spoold import embedded
from spoold.app import App
from spoold.config import Settings
from spoold.errors import StartupError
from spoold.logformat import FORMATS, configure

log = logging.getLogger("spoold")


def parse_args(argv: Sequence[str] | None, settings: Settings) -> Settings:
    p = argparse.ArgumentParser(
        prog="spoold",
        description=(
            "Spool job queue server. Every flag has a SPOOL_* variable (SPOOL_DATABASE_URL, SPOOL_PORT, ...);"
            " every setting is in docs/configuration.md."
        ),
        epilog="`spoold keys --help`: make, list and revoke API keys straight in the database. `spoold psql`: psql"
        " on the embedded database.",
    )
    p.add_argument("--database-url", help="PostgreSQL URL; default: an embedded server in --data-dir")
    p.add_argument("--data-dir", type=Path, help=f"embedded PostgreSQL data (default {settings.data_dir})")
    p.add_argument("--host", help=f"address to listen on (default {settings.host})")
    p.add_argument("--port", type=int, help=f"port to listen on (default {settings.port})")
    p.add_argument(
        "--http-port",
        type=int,
        help=f"HTTP/JSON port on the same host: Connect, REST, /healthz (default {settings.http_port}; 0: none)",
    )
    p.add_argument(
        "--metrics-public",
        action="store_true",
        default=None,
        help="serve /metrics without a key, even where keys are required (SPOOL_METRICS_PUBLIC)",
    )
    p.add_argument(
        "--auth",
        choices=("auto", "required", "off"),
        help="API keys: auto (the default) requires them unless --host is loopback",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow --auth off on a non-loopback address (anyone who reaches the port can do anything)",
    )
    p.add_argument("--tls-cert", type=Path, help="serve TLS with this PEM certificate chain (SPOOL_TLS_CERT)")
    p.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-cert (SPOOL_TLS_KEY)")
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        help="require client certificates signed by this PEM CA bundle: mTLS (SPOOL_TLS_CLIENT_CA)",
    )
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        help=f"spoold log lines: text or one JSON object per line (SPOOL_LOG_FORMAT; default {settings.log_format})",
    )
    args = p.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    return replace(settings, **given)


async def serve(settings: Settings) -> int:
    app = App(settings, settings.database_url or "")
    app.check()  # a refused setting or a port in use ends here, before any database is started
    database = None
    if not app.dsn:
        database = embedded.start(settings.data_dir)
        app.dsn = database.url
        log.info("embedded PostgreSQL %s, data in %s", database.version, database.pgdata)
        log.info("psql: %s psql (or: psql -h %s -U postgres)", _me(), database.socket_dir)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    code = 0
    try:
        await app.start()
        failed = asyncio.ensure_future(app.wait_for_failure())
        signalled = asyncio.ensure_future(stopping.wait())
        await asyncio.wait((failed, signalled), return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            task = failed.result()
            log.critical("background task %s died: %r; shutting down", task.get_name(), task.exception())
            code = 1
        failed.cancel()
        signalled.cancel()
    finally:
        await app.stop()
        if database is not None:
            database.stop()
    return code


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.from_environment()
        if args[:1] == ["keys"]:
            from spoold.keys_cli import run_keys

            sys.exit(run_keys(args[1:], settings))
        if args[:1] == ["psql"]:
            _psql(args[1:], settings)
        settings = parse_args(args, settings)
    except (StartupError, ValueError) as exc:
        sys.exit(_refuse(exc))
    try:
        configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        sys.exit(_refuse(exc))
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # uvloop is optional on platforms without it
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            code = runner.run(serve(settings))
    except StartupError as exc:
        code = _refuse(exc)
    sys.exit(code)


def _me() -> str:
    """This command as the user can type it again from here (e.g. .venv/bin/spoold)."""
    path = Path(sys.argv[0]).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _psql(args: list[str], settings: Settings) -> None:
    """`spoold psql [ARGS]`: psql on the running embedded PostgreSQL of $SPOOL_DATA_DIR (.spool)."""
    database = embedded.running(settings.data_dir)
    if database is None:
        raise StartupError(f"--data-dir/SPOOL_DATA_DIR: no embedded PostgreSQL is running in {settings.data_dir}")
    command = database.psql_args()
    os.execv(command[0], [*command, *args])


def _refuse(exc: Exception) -> int:
    """A setting spoold cannot start with: one line naming it, and exit status 2."""
    print(f"spoold: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    main()
