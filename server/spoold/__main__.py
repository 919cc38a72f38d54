"""The spoold command: serve the queue, on embedded PostgreSQL unless a database URL is given."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from spoold import embedded
from spoold.app import App
from spoold.config import Settings

log = logging.getLogger("spoold")


def parse_args(argv: Sequence[str] | None, settings: Settings) -> Settings:
    p = argparse.ArgumentParser(
        prog="spoold",
        description="Spool job queue server. Environment: SPOOL_DATABASE_URL, SPOOL_HOST, SPOOL_PORT, ...",
    )
    p.add_argument("--database-url", help="PostgreSQL URL; default: an embedded server in --data-dir")
    p.add_argument("--data-dir", type=Path, help=f"embedded PostgreSQL data (default {settings.data_dir})")
    p.add_argument("--host", help=f"address to listen on (default {settings.host})")
    p.add_argument("--port", type=int, help=f"port to listen on (default {settings.port})")
    args = p.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    return replace(settings, **given)


async def serve(settings: Settings) -> int:
    stop_embedded = None
    dsn = settings.database_url
    if not dsn:
        dsn, stop_embedded = embedded.start(settings.data_dir)
    app = App(settings, dsn)
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
        if stop_embedded is not None:
            stop_embedded()
    return code


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv, Settings.from_environment())
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # uvloop is optional on platforms without it
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        code = runner.run(serve(settings))
    sys.exit(code)


if __name__ == "__main__":
    main()
