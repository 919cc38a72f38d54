"""`spoold keys`: make, list and revoke API keys straight in the database, with no server running.
This is how the first admin key is made. Without a database URL it uses the embedded PostgreSQL
of --data-dir (starting it if no spoold is running there)."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from spoold import embedded
from spoold.auth import keys
from spoold.auth.keys import ApiKey
from spoold.auth.spec import key_spec
from spoold.config import Settings
from spoold.errors import SpoolError
from spoold.store.database import CONNECT_ERRORS, unreachable
from spoold.store.keys import KeyStore
from spoold.store.migrate import migrate

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> timedelta:
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m or 3600s")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spoold keys", description=__doc__)
    p.add_argument("--database-url", help="PostgreSQL URL (default $SPOOL_DATABASE_URL, else the embedded one)")
    p.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data (default .spool)")
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser(
        "create",
        help="make a key; prints it alone on stdout (shown only once)",
        epilog="example: spoold keys create --name ci --scope admin",
    )
    create.add_argument("--name", required=True, help="for people: who or what uses the key")
    create.add_argument("--scope", required=True, type=_split, help="enqueue, work, read, admin (comma-separated)")
    create.add_argument("--queues", type=_split, default=[], help="queue patterns, e.g. emails,reports-*")
    create.add_argument("--expires", type=parse_duration, help="lifetime, e.g. 30d (default: never)")
    ls = sub.add_parser("ls", help="list keys (never their secrets)")
    ls.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = sub.add_parser("revoke", help="revoke a key by id: every server refuses it within seconds")
    revoke.add_argument("id")
    return p


def describe(key: ApiKey) -> str:
    expires = key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never"
    state = f"revoked {key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else f"expires {expires}"
    used = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
    scopes = ",".join(s.value for s in sorted(key.scopes, key=lambda s: s.name))
    return f"{key.id}  {key.name!r}  scopes {scopes}  queues {','.join(key.queues)}  {state}  last used {used}"


async def _create(store: KeyStore, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    spec = key_spec(args.name, args.scope, args.queues, now + args.expires if args.expires else None, now)
    new = keys.new_key()
    key = await store.create(new, spec.name, spec.scopes, spec.queues, spec.expires_at)
    print(f"created API key {describe(key)}", file=sys.stderr)
    print("send it as 'authorization: Bearer <key>'; it is shown only this once:", file=sys.stderr)
    print(new.text)
    return 0


async def _ls(store: KeyStore, args: argparse.Namespace) -> int:
    for key in await store.list(args.all):
        print(describe(key))
    return 0


async def _revoke(store: KeyStore, args: argparse.Namespace) -> int:
    print(f"revoked API key {describe(await store.revoke(args.id))}")
    return 0


_COMMANDS: dict[str, Callable[[KeyStore, argparse.Namespace], Awaitable[int]]] = {
    "create": _create,
    "ls": _ls,
    "revoke": _revoke,
}


async def _run(dsn: str, args: argparse.Namespace) -> int:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except CONNECT_ERRORS as exc:
        raise unreachable(dsn, exc) from exc
    try:
        await migrate(conn)
        return await _COMMANDS[args.command](KeyStore(conn), args)
    finally:
        await conn.close()


def run_keys(argv: Sequence[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    if args.database_url:
        settings = replace(settings, database_url=args.database_url)
    if args.data_dir:
        settings = replace(settings, data_dir=args.data_dir)
    database = None if settings.database_url else embedded.start(settings.data_dir)
    try:
        dsn = database.url if database is not None else settings.database_url or ""
        return asyncio.run(_run(dsn, args))
    except SpoolError as exc:
        print(f"spoold keys: {exc.message}", file=sys.stderr)
        return 2
    finally:
        if database is not None:
            database.stop()
