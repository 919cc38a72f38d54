"""Each malformed or misused credential, and each bad key definition: the documented code and
reason, and nothing written."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import grpc
import pytest

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from tests.api.support import count
from tests.auth.conftest import bearer, expired_at, key_id, make_key
from tests.helpers import enqueue_request, expect_error

Stub = Any


@pytest.fixture
async def enqueuer(db: asyncpg.Connection) -> str:
    return await make_key(db, ["enqueue"], ["emails"])


async def _refused(stub: Stub, db: asyncpg.Connection, metadata: Any, code: grpc.StatusCode, reason: str) -> None:
    await expect_error(stub.Enqueue(enqueue_request("emails"), metadata=metadata), code, reason)
    assert await count(db) == 0


UNAUTH = grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Bearer", "API_KEY_MALFORMED"),
        ("Bearer ", "API_KEY_MALFORMED"),
        ("Bearer junk", "API_KEY_MALFORMED"),
        ("Basic dXNlcjpwYXNz", "API_KEY_MALFORMED"),
        ("Bearer spool_abc_def", "API_KEY_MALFORMED"),
        ("Bearer " + "x" * 5000, "API_KEY_MALFORMED"),
        (f"Bearer spool_{'q' * 12}_{'0' * 64}", "API_KEY_INVALID"),
    ],
)
async def test_bad_authorization_values(stub: Stub, db: asyncpg.Connection, value: str, reason: str) -> None:
    await _refused(stub, db, (("authorization", value),), UNAUTH, reason)


async def test_right_id_wrong_secret_is_told_apart_from_nothing(
    stub: Stub, db: asyncpg.Connection, enqueuer: str
) -> None:
    wrong = f"spool_{key_id(enqueuer)}_{secrets.token_hex(32)}"
    err = await expect_error(stub.Enqueue(enqueue_request("emails"), metadata=bearer(wrong)), UNAUTH, "API_KEY_INVALID")
    unknown = f"spool_{'q' * 12}_{secrets.token_hex(32)}"
    other = await expect_error(
        stub.Enqueue(enqueue_request("emails"), metadata=bearer(unknown)), UNAUTH, "API_KEY_INVALID"
    )
    assert err.details() == other.details()  # an unknown id and a wrong secret read the same
    assert await count(db) == 0


async def test_revoked_and_expired_keys(stub: Stub, db: asyncpg.Connection) -> None:
    revoked = await make_key(db, ["enqueue"], ["emails"], revoked=True)
    expired = await make_key(db, ["enqueue"], ["emails"], expires_at=expired_at())
    await _refused(stub, db, bearer(revoked), UNAUTH, "API_KEY_REVOKED")
    await _refused(stub, db, bearer(expired), UNAUTH, "API_KEY_EXPIRED")


async def test_a_key_in_the_wrong_header_is_missing(stub: Stub, db: asyncpg.Connection, enqueuer: str) -> None:
    err = await expect_error(
        stub.Enqueue(enqueue_request("emails"), metadata=(("x-api-key", enqueuer),)), UNAUTH, "API_KEY_MISSING"
    )
    assert "authorization: Bearer" in (err.details() or "")
    assert await count(db) == 0


async def test_two_authorization_headers(stub: Stub, db: asyncpg.Connection, enqueuer: str) -> None:
    twice = (("authorization", f"Bearer {enqueuer}"), ("authorization", f"Bearer {enqueuer}"))
    await _refused(stub, db, twice, UNAUTH, "API_KEY_MALFORMED")


async def test_a_100_kb_header_is_refused_by_the_transport(stub: Stub, db: asyncpg.Connection) -> None:
    """Over gRPC's 16 KiB hard limit on metadata, the call never reaches Spool: the transport
    answers RESOURCE_EXHAUSTED itself, without an ErrorInfo (docs/security.md)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Enqueue(enqueue_request("emails"), metadata=(("authorization", "Bearer " + "x" * 100_000),))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await count(db) == 0


@pytest.fixture
def admin_stub(channel: grpc.aio.Channel) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(channel)


@pytest.mark.parametrize(
    ("scopes", "queues", "field", "message"),
    [
        (["work"], ["*"], "queues[0]", "for admin keys only"),
        (["read"], ["**"], "queues[0]", "for admin keys only"),
        (["work"], [], "queues", "required"),
        (["admin"], ["emails"], "queues", "reaches every queue"),
        (["work", "deploy"], ["emails"], "scopes", "unknown scope 'deploy'"),
        (["WORK"], ["emails"], "scopes", "unknown scope"),
        ([], ["emails"], "scopes", "at least one"),
        (["work"], ["has space"], "queues[0]", "printable"),
    ],
)
async def test_bad_key_definitions(
    admin_stub: admin_service_pb2_grpc.AdminServiceStub,
    db: asyncpg.Connection,
    scopes: list[str],
    queues: list[str],
    field: str,
    message: str,
) -> None:
    admin = bearer(await make_key(db, ["admin"]))
    before = await count(db, "api_keys")
    req = adm.CreateApiKeyRequest(name="bad", scopes=scopes, queues=queues)
    err = await expect_error(
        admin_stub.CreateApiKey(req, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field
    )
    assert message in (err.details() or "")
    assert await count(db, "api_keys") == before


async def test_a_key_whose_patterns_match_no_queue_sees_nothing_and_touches_nothing(
    app: App, stub: Stub, db: asyncpg.Connection
) -> None:
    admin = bearer(await make_key(db, ["admin"]))
    await stub.Enqueue(enqueue_request("emails"), metadata=admin)
    lonely = bearer(await make_key(db, ["read", "work", "enqueue"], ["nothing-*"]))
    assert not (await stub.ListJobs(qs.ListJobsRequest(), metadata=lonely)).jobs
    await expect_error(
        stub.Lease(qs.LeaseRequest(queues=["emails"]), metadata=lonely),
        grpc.StatusCode.PERMISSION_DENIED,
        "QUEUE_NOT_ALLOWED",
        "queues[0]",
    )
    await expect_error(
        stub.Enqueue(enqueue_request("emails"), metadata=lonely),
        grpc.StatusCode.PERMISSION_DENIED,
        "QUEUE_NOT_ALLOWED",
        "queue",
    )
    assert (await stub.Lease(qs.LeaseRequest(queues=["nothing-yet"]), metadata=lonely)).jobs == []
    assert await count(db) == 1
