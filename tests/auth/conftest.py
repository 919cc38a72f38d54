"""Fixtures for the key tests: spoold with keys required, and keys made straight in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from spoold.auth import keys
from spoold.config import Settings
from spoold.store.keys import KeyStore
from tests.conftest import test_settings


@pytest.fixture
def settings() -> Settings:
    return test_settings(auth="required")


async def make_key(
    db: asyncpg.Connection,
    scopes: Sequence[str],
    queues: Sequence[str] = ("*",),
    *,
    name: str = "test",
    expires_at: datetime | None = None,
    revoked: bool = False,
) -> str:
    """A key's text, made as `spoold keys create` makes it (no validation: tests need odd keys)."""
    store = KeyStore(db)
    new = keys.new_key()
    await store.create(new, name, list(scopes), list(queues), expires_at)
    if revoked:
        await store.revoke(new.id)
    return new.text


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def expired_at() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def key_id(key: str) -> str:
    return keys.parse(key)[0]
