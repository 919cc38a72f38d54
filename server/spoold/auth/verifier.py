"""Turns an API key into a Principal: parse, look up (cached), compare in constant time, check
revocation and expiry. The cache is bounded in size and in age (a revoked key is refused within
`ttl` even if the change notification is lost) and dropped per key on each notification."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from cachetools import TTLCache

from spoold.auth import keys
from spoold.auth.keys import ApiKey
from spoold.auth.principal import Principal, QueuePatterns
from spoold.auth.usage import KeyUsage
from spoold.errors import ApiKeyExpired, ApiKeyInvalid, ApiKeyRevoked
from spoold.notify import Subscription
from spoold.store.keys import KeyStore

log = logging.getLogger(__name__)

MAX_CACHED = 10_000


@dataclass(frozen=True)
class _Entry:
    key: ApiKey
    principal: Principal


def _entry(key: ApiKey | None) -> _Entry | None:
    if key is None:
        return None
    return _Entry(key, Principal(key.id, key.scopes, QueuePatterns(key.queues)))


class KeyVerifier:
    def __init__(self, store: KeyStore, usage: KeyUsage | None, ttl: float, max_cached: int = MAX_CACHED) -> None:
        self._store = store
        self._usage = usage
        # Unknown ids are cached too (as None), so a flood of made-up keys does not reach the database.
        self._cache: TTLCache[str, _Entry | None] = TTLCache(max_cached, ttl)
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}
        self._generation = 0

    async def verify(self, text: str) -> Principal:
        key_id, secret = keys.parse(text)
        entry = await self._lookup(key_id)
        if entry is None or not keys.matches(entry.key, secret):
            raise ApiKeyInvalid("the API key is not valid (unknown id or wrong secret)")
        if entry.key.revoked_at is not None:
            raise ApiKeyRevoked(f"API key {key_id} was revoked", key_id=key_id)
        if entry.key.expires_at is not None and entry.key.expires_at <= datetime.now(UTC):
            raise ApiKeyExpired(f"API key {key_id} expired at {entry.key.expires_at.isoformat()}", key_id=key_id)
        return entry.principal

    def used(self, key_id: str) -> None:
        """Records an admitted call's key for last_used_at (cheaply: see KeyUsage)."""
        if self._usage is not None:
            self._usage.touch(key_id)

    def forget(self, key_id: str | None) -> None:
        """Drops what is cached about one key (None: every key), and any lookup now in flight."""
        self._generation += 1
        if key_id is None:
            self._cache.clear()
            self._loading.clear()
        else:
            self._cache.pop(key_id, None)
            self._loading.pop(key_id, None)

    def _loaded(self, key_id: str, done: asyncio.Future[ApiKey | None]) -> None:
        if self._loading.get(key_id) is done:
            del self._loading[key_id]

    async def _lookup(self, key_id: str) -> _Entry | None:
        try:
            return self._cache[key_id]
        except KeyError:
            pass
        # Concurrent calls with the same uncached key share one query.
        loading = self._loading.get(key_id)
        if loading is None:
            loading = asyncio.ensure_future(self._store.get(key_id))
            self._loading[key_id] = loading
            loading.add_done_callback(lambda done: self._loaded(key_id, done))
        generation = self._generation
        entry = _entry(await asyncio.shield(loading))
        if generation == self._generation:  # else the key changed while it was read: don't keep it
            self._cache[key_id] = entry
        return entry


class KeyChanges(Subscription):
    """The verifier's ear on the key-change channel: a notification drops that key from the cache,
    a reconnect (notifications may have been missed) drops every key."""

    def __init__(self, verifier: KeyVerifier) -> None:
        super().__init__(None)
        self._verifier = verifier

    def deliver(self, payload: str | None) -> None:
        self._verifier.forget(payload)
