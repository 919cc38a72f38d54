"""Databases for test suites outside pytest (the Node tests): create and drop one, or serve an embedded
PostgreSQL for as long as the caller keeps this process's stdin open.

    python tests/e2e/pgtool.py create ADMIN_URL   prints the URL of a new, empty database
    python tests/e2e/pgtool.py drop URL ADMIN_URL drops it
    python tests/e2e/pgtool.py embedded           prints an admin URL, serves until stdin closes
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create(admin_url: str) -> str:
    name = f"spool_node_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(admin_url, name)


async def drop(url: str, admin_url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def embedded() -> None:
    from spoold import embedded

    with tempfile.TemporaryDirectory(prefix="spool-node-pg-") as tmp:
        database = embedded.start(Path(tmp))
        try:
            print(database.url, flush=True)
            sys.stdin.read()  # until the parent closes the pipe or exits
        finally:
            database.stop()


def main(argv: list[str]) -> None:
    match argv:
        case ["create", admin_url]:
            print(asyncio.run(create(admin_url)))
        case ["drop", url, admin_url]:
            asyncio.run(drop(url, admin_url))
        case ["embedded"]:
            embedded()
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
