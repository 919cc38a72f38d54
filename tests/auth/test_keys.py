"""Managing keys over AdminService, last_used_at written cheaply, `auto` on loopback, and a
revocation reaching a second server within 5 seconds, with or without its notification."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc, queue_service_pb2_grpc
from spoold.app import App
from spoold.auth.usage import KeyUsage
from spoold.config import Settings
from spoold.store.keys import KeyStore
from tests import conftest
from tests.auth.conftest import bearer, key_id, make_key
from tests.conftest import wait_until
from tests.helpers import enqueue_request, expect_error


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(auth="required", key_usage_interval=timedelta(milliseconds=100))


@pytest.fixture
def admin_stub(channel: grpc.aio.Channel) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(channel)


async def test_create_list_and_revoke(admin_stub: Any, stub: Any, db: asyncpg.Connection) -> None:
    admin = bearer(await make_key(db, ["admin"], name="root"))
    made = await admin_stub.CreateApiKey(
        adm.CreateApiKeyRequest(
            name="mailer", scopes=["work", "enqueue"], queues=["emails"], expires_in={"seconds": 3600}
        ),
        metadata=admin,
    )
    assert made.key.startswith(f"spool_{made.api_key.id}_") and len(made.key) >= 6 + 12 + 1 + 64
    assert list(made.api_key.scopes) == ["enqueue", "work"] and list(made.api_key.queues) == ["emails"]
    assert made.api_key.HasField("expires_at") and not made.api_key.HasField("revoked_at")
    row = await db.fetchrow("SELECT secret_hash FROM spool.api_keys WHERE id = $1", made.api_key.id)
    assert made.key.split("_")[2].encode() not in bytes(row["secret_hash"])  # only a hash is stored

    await stub.Enqueue(enqueue_request("emails"), metadata=bearer(made.key))
    listed = await admin_stub.ListApiKeys(adm.ListApiKeysRequest(), metadata=admin)
    assert [k.name for k in listed.api_keys] == ["root", "mailer"]
    assert made.key not in str(listed)

    revoked = await admin_stub.RevokeApiKey(adm.RevokeApiKeyRequest(id=made.api_key.id), metadata=admin)
    assert revoked.api_key.HasField("revoked_at")
    again = await admin_stub.RevokeApiKey(adm.RevokeApiKeyRequest(id=made.api_key.id), metadata=admin)
    assert again.api_key.revoked_at == revoked.api_key.revoked_at
    await wait_until(lambda: _refused(stub, made.key), within=5)
    assert [k.name for k in (await admin_stub.ListApiKeys(adm.ListApiKeysRequest(), metadata=admin)).api_keys] == [
        "root"
    ]
    every = await admin_stub.ListApiKeys(adm.ListApiKeysRequest(include_revoked=True), metadata=admin)
    assert len(every.api_keys) == 2
    await expect_error(
        admin_stub.RevokeApiKey(adm.RevokeApiKeyRequest(id="nosuchkey"), metadata=admin),
        grpc.StatusCode.NOT_FOUND,
        "API_KEY_NOT_FOUND",
        "id",
    )


async def _refused(stub: Any, key: str) -> bool:
    try:
        await stub.Enqueue(enqueue_request("emails"), metadata=bearer(key))
    except grpc.aio.AioRpcError as err:
        return err.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


async def test_last_used_at_is_written_once_a_minute_at_most(stub: Any, db: asyncpg.Connection) -> None:
    key = await make_key(db, ["enqueue"], ["emails"])
    await stub.Enqueue(enqueue_request("emails"), metadata=bearer(key))

    async def used() -> Any:
        return await db.fetchval("SELECT last_used_at FROM spool.api_keys WHERE id = $1", key_id(key))

    await wait_until(used, within=10)
    first = await used()
    await stub.Enqueue(enqueue_request("emails"), metadata=bearer(key))
    await asyncio.sleep(0.5)  # five rounds of the usage loop; none may write again within the minute
    assert await used() == first


async def test_key_usage_throttles_per_key(db: asyncpg.Connection) -> None:
    now = [1000.0]
    usage = KeyUsage(KeyStore(db), interval=1, every=60, clock=lambda: now[0])
    key = await make_key(db, ["read"], ["q"])
    usage.touch(key_id(key))
    await usage.run_once()
    first = await db.fetchval("SELECT last_used_at FROM spool.api_keys")
    assert first is not None
    now[0] += 59
    usage.touch(key_id(key))
    assert usage._pending == {}  # within the minute: nothing to write
    now[0] += 2
    usage.touch(key_id(key))
    await usage.run_once()
    assert await db.fetchval("SELECT last_used_at FROM spool.api_keys") > first


async def test_auto_on_loopback_admits_calls_without_keys_but_checks_keys_given(
    db_url: str, db: asyncpg.Connection
) -> None:
    app = App(conftest.test_settings(auth="auto"), db_url)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = queue_service_pb2_grpc.QueueServiceStub(channel)
            await stub.Enqueue(enqueue_request("emails"))
            revoked = await make_key(db, ["enqueue"], ["emails"], revoked=True)
            await expect_error(
                stub.Enqueue(enqueue_request("emails"), metadata=bearer(revoked)),
                grpc.StatusCode.UNAUTHENTICATED,
                "API_KEY_REVOKED",
            )
    finally:
        await app.stop()


@pytest.fixture
async def two_replicas(db_url: str) -> AsyncIterator[list[queue_service_pb2_grpc.QueueServiceStub]]:
    apps = [App(conftest.test_settings(auth="required"), db_url) for _ in range(2)]
    channels = []
    try:
        for app in apps:
            await app.start()
            channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{app.port}"))
        yield [queue_service_pb2_grpc.QueueServiceStub(c) for c in channels]
    finally:
        for c in channels:
            await c.close()
        for app in apps:
            await app.stop()


async def _revoked_within(stubs: list[Any], key: str, revoke: Any) -> float:
    for s in stubs:  # both servers have the key cached
        await s.Enqueue(enqueue_request("emails"), metadata=bearer(key))
    started = time.monotonic()
    await revoke()
    await wait_until(lambda: _refused(stubs[1], key), within=10, interval=0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "notification lost"])
async def test_revocation_seen_by_a_second_replica(
    two_replicas: list[Any], db: asyncpg.Connection, notified: bool
) -> None:
    key = await make_key(db, ["enqueue"], ["emails"])

    async def revoke() -> None:
        if not notified:  # as if the notification were lost: only the cache's age bounds the delay
            await db.execute("ALTER TABLE spool.api_keys DISABLE TRIGGER api_keys_notify_update")
        await db.execute("UPDATE spool.api_keys SET revoked_at = now() WHERE id = $1", key_id(key))

    took = await _revoked_within(two_replicas, key, revoke)
    assert took < 5, f"the second replica took {took:.1f}s to refuse a revoked key"
