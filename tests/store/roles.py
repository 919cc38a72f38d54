"""Databases owned by an ordinary role, with other ordinary roles beside it: Spool as it runs in
production (never as a superuser), and the roles that share its server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg

from spoold.store.migrate import migrate


def as_role(url: str, role: str, database: str, *, login: bool) -> str:
    """The same server as url, in another database, as another role: logged in as that role where
    the server lets it (trust authentication), else logged in as url's user with the session's
    role set to it at start-up (a server that authenticates by peer admits only its OS user)."""
    parts = urlsplit(url)._replace(path=f"/{database}")
    if login:
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{role}@{host}"))
    query = "&".join(q for q in (parts.query, urlencode({"role": role})) if q)
    return urlunsplit(parts._replace(query=query))


_PRODUCER_ROLE = """
DO $$ BEGIN
    CREATE ROLE spool_producer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


@dataclass(frozen=True)
class OwnedDatabase:
    admin_url: str
    name: str
    owner: str  # owns the database and migrates it: spoold's role
    login: bool = True  # whether the roles log in themselves (see as_role)

    def url(self, role: str | None = None) -> str:
        return as_role(self.admin_url, role or self.owner, self.name, login=self.login)

    async def connect(self, role: str | None = None) -> asyncpg.Connection:
        return await asyncpg.connect(self.url(role))


@contextlib.asynccontextmanager
async def owned_database(admin_url: str, *others: str) -> AsyncIterator[tuple[OwnedDatabase, list[str]]]:
    """A database owned by a new LOGIN role without superuser, CREATEROLE or CREATEDB, migrated as
    that role; and one more LOGIN role per name in `others`, named uniquely. All dropped on exit."""
    tag = uuid.uuid4().hex[:10]
    owner = f"spool_owner_{tag}"
    roles = [f"spool_{name}_{tag}" for name in others]
    db = OwnedDatabase(admin_url, f"spool_roles_{tag}", owner)
    admin = await asyncpg.connect(admin_url)
    try:
        # What docs/security.md asks of a DBA when spoold's role may not create roles.
        await admin.execute(_PRODUCER_ROLE)
        for role in (owner, *roles):
            await admin.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        await admin.execute(f'CREATE DATABASE "{db.name}" OWNER "{owner}"')
        try:
            await (await db.connect()).close()
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError):
            db = replace(db, login=False)
        conn = await db.connect()
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield db, roles
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        for role in (*roles, owner):
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
