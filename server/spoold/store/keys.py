"""KeyStore: API keys, one typed method per query of sql/keys.sql."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from spoold.auth import scopes
from spoold.auth.keys import ApiKey, NewKey
from spoold.errors import KeyNotFound
from spoold.store import queries
from spoold.store.database import translated

Q = queries.load("keys.sql")


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        secret_hash=bytes(row["secret_hash"]),
        scopes=scopes.parse(row["scopes"]),
        queues=tuple(row["queues"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class KeyStore:
    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    async def create(
        self, new: NewKey, name: str, scope_names: Sequence[str], queues: Sequence[str], expires_at: datetime | None
    ) -> ApiKey:
        with translated():
            row = await self.pool.fetchrow(
                Q["insert_key"], new.id, name, new.secret_hash, list(scope_names), list(queues), expires_at
            )
        assert row is not None
        return _key(row)

    async def get(self, key_id: str) -> ApiKey | None:
        with translated():
            row = await self.pool.fetchrow(Q["get_key"], key_id)
        return _key(row) if row is not None else None

    async def list(self, include_revoked: bool) -> list[ApiKey]:
        with translated():
            return [_key(r) for r in await self.pool.fetch(Q["list_keys"], include_revoked)]

    async def revoke(self, key_id: str) -> ApiKey:
        with translated():
            row = await self.pool.fetchrow(Q["revoke_key"], key_id)
        if row is None:
            raise KeyNotFound(key_id)
        return _key(row)

    async def touch(self, used: Mapping[str, datetime]) -> None:
        with translated():
            await self.pool.execute(Q["touch_keys"], list(used), list(used.values()))

    async def job_queues(self, job_ids: Sequence[int]) -> dict[int, str]:
        """The queue of each job that exists."""
        with translated():
            return {r["id"]: r["queue"] for r in await self.pool.fetch(Q["job_queues"], list(job_ids))}
