"""spool.AsyncClient and spool.Client against a live spoold: calls, paging, watching, typed errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

import spool
from spool._config import Connection
from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.config import Settings

Job = job_pb2.Job


async def test_enqueue_get_and_the_payload_round_trip(client: spool.AsyncClient) -> None:
    job = await client.enqueue("emails", {"to": "ada@example.com"}, priority=3, headers={"trace": "t1"})
    assert job.state == Job.STATE_PENDING and job.priority == 3 and job.headers["trace"] == "t1"
    assert job.idempotency_key, "a key is generated so that a retried Enqueue cannot create a second job"
    got = await client.get(job.id)
    assert spool.payload_json(got) == {"to": "ada@example.com"} and got.content_type == "application/json"
    raw = await client.enqueue("blobs", b"\x00\x01")
    assert (await client.get(raw.id)).payload == b"\x00\x01"


async def test_the_same_idempotency_key_returns_the_first_job(client: spool.AsyncClient) -> None:
    first = await client.enqueue("emails", {"n": 1}, idempotency_key="order-7")
    again = await client.enqueue("emails", {"n": 2}, idempotency_key="order-7")
    assert again.id == first.id and spool.payload_json(again) == {"n": 1}


async def test_a_concurrency_key_is_global_only_when_asked(client: spool.AsyncClient) -> None:
    scoped = await client.enqueue("q", {}, concurrency_key="k")
    shared = await client.enqueue("q", {}, concurrency_key="k", concurrency_global=True)
    assert scoped.concurrency_scope == Job.CONCURRENCY_SCOPE_QUEUE
    assert shared.concurrency_scope == Job.CONCURRENCY_SCOPE_GLOBAL


async def test_enqueue_many_is_one_batch(client: spool.AsyncClient) -> None:
    jobs = await client.enqueue_many("batch", [{"i": i} for i in range(5)], max_attempts=2)
    assert [spool.payload_json(j) for j in jobs] == [{"i": i} for i in range(5)]
    assert len({j.idempotency_key for j in jobs}) == 5 and all(j.max_attempts == 2 for j in jobs)


async def test_list_iterates_over_every_page(client: spool.AsyncClient) -> None:
    made = await client.enqueue_many("paged", [{"i": i} for i in range(7)])
    await client.enqueue("other", {"i": 99})
    where = spool.Filter(queues=["paged"])
    seen = [j.id async for j in client.list(where, order="oldest", page_size=2)]
    assert seen == [j.id for j in made]
    matching = [j.id async for j in client.list(spool.Filter(payload_contains={"i": 99}))]
    assert len(matching) == 1


async def test_watch_follows_a_job_until_it_is_terminal(client: spool.AsyncClient) -> None:
    job = await client.enqueue("watched", {})
    states: list[int] = []
    first = asyncio.Event()

    async def follow() -> None:
        async for snapshot in client.watch(job.id):
            states.append(snapshot.state)
            first.set()

    watching = asyncio.create_task(follow())
    await asyncio.wait_for(first.wait(), 10)
    (leased,) = await client.lease(["watched"], worker_id="w")
    await client.call(client.stub.Ack, qs.AckRequest(job_id=job.id, lease_token=leased.lease_token))
    await asyncio.wait_for(watching, 10)
    assert states[0] == Job.STATE_PENDING and states[-1] == Job.STATE_SUCCEEDED


async def test_errors_are_typed_by_their_reason(client: spool.AsyncClient) -> None:
    with pytest.raises(spool.JobNotFound) as not_found:
        await client.get("999999")
    assert not_found.value.code == grpc.StatusCode.NOT_FOUND and not_found.value.reason == "JOB_NOT_FOUND"

    with pytest.raises(spool.InvalidArgument) as invalid:
        await client.enqueue("has space", {})
    assert invalid.value.reason == "INVALID_ARGUMENT" and invalid.value.field == "queue"

    job = await client.enqueue("typed", {})
    with pytest.raises(spool.WrongState) as wrong:
        await client.requeue(job.id)
    assert wrong.value.code == grpc.StatusCode.FAILED_PRECONDITION and wrong.value.reason == "WRONG_STATE"

    (leased,) = await client.lease(["typed"])
    stale = qs.HeartbeatRequest(job_id=job.id, lease_token=str(int(leased.lease_token) + 1))
    with pytest.raises(spool.LeaseLost) as lost:
        await client.call(client.stub.Heartbeat, stale)
    assert lost.value.reason == "LEASE_LOST"

    with pytest.raises(spool.ResourceExhausted) as big:
        await client.enqueue("typed", b"x" * (2 * 1024 * 1024))
    assert big.value.reason == "PAYLOAD_TOO_LARGE"


async def test_cancel_and_requeue(client: spool.AsyncClient) -> None:
    job = await client.enqueue("cancelled", {})
    assert (await client.cancel(job.id)).state == Job.STATE_CANCELLED
    (again,) = await client.requeue(job.id)
    assert again.state == Job.STATE_PENDING and again.attempt == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unavailable_is_retried_then_raised() -> None:
    quick = spool.RetryPolicy(initial=timedelta(milliseconds=10), maximum=timedelta(milliseconds=20), attempts=3)
    async with spool.AsyncClient(f"127.0.0.1:{_closed_port()}", retry=quick) as client:
        with pytest.raises(spool.Unavailable) as caught:
            await client.get("1")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_the_sync_client_does_the_same_over_a_plain_channel(app: App) -> None:
    def script() -> tuple[Job, list[str], type[Exception]]:
        with spool.Client(f"127.0.0.1:{app.port}") as c:
            job = c.enqueue("sync", {"a": 1})
            ids = [j.id for j in c.list(spool.Filter(queues=["sync"]), page_size=1)]
            try:
                c.get("999999")
            except spool.SpoolError as err:
                return c.get(job.id), ids, type(err)
        raise AssertionError("get of an unknown job succeeded")

    # In a thread: the server under test shares this event loop.
    job, ids, error = await asyncio.to_thread(script)
    assert spool.payload_json(job) == {"a": 1} and ids == [job.id] and error is spool.JobNotFound


async def test_admin_calls(client: spool.AsyncClient) -> None:
    await client.enqueue("admin-q", {})
    assert (await client.pause("admin-q")).paused
    assert await client.lease(["admin-q"]) == []
    (queue,) = [q for q in await client.queues() if q.name == "admin-q"]
    assert queue.paused and queue.stats.ready == 1
    assert not (await client.resume("admin-q")).paused
    with pytest.raises(spool.QueueNotFound) as missing:
        await client.queue("never-seen")
    assert missing.value.reason == "QUEUE_NOT_FOUND"


def test_the_client_package_imports_without_the_server() -> None:
    check = (
        "import sys; import spool, spool.worker, spool.cli; "
        "assert 'asyncpg' not in sys.modules and 'spoold' not in sys.modules, sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_enqueue_rides_out_a_server_that_is_not_up_yet(db_url: str, settings: Settings) -> None:
    port = _closed_port()
    patient = spool.RetryPolicy(initial=timedelta(milliseconds=50), maximum=timedelta(milliseconds=200), attempts=100)
    async with spool.AsyncClient(f"127.0.0.1:{port}", retry=patient) as client:
        enqueue = asyncio.create_task(client.enqueue("early", {"n": 1}))
        server = App(replace(settings, port=port), db_url)
        await server.start()
        try:
            job = await asyncio.wait_for(enqueue, 30)
            assert [j.id async for j in client.list(spool.Filter(queues=["early"]))] == [job.id]
        finally:
            await server.stop()


def test_connection_settings_come_from_arguments_then_the_environment() -> None:
    env = {"SPOOL_ADDRESS": "queue.internal:443", "SPOOL_TLS": "1", "SPOOL_TOKEN": "s3cret"}
    from_env = Connection.resolve(env=env)
    assert from_env.address == "queue.internal:443" and from_env.tls
    assert from_env.metadata == (("authorization", "Bearer s3cret"),)
    given = Connection.resolve("127.0.0.1:1", tls=False, token="", metadata=[("x-tenant", "a")], env=env)
    assert given.address == "127.0.0.1:1" and not given.tls and given.metadata == (("x-tenant", "a"),)
    assert Connection.resolve(env={}).address == "127.0.0.1:50051"


def test_retry_delays_grow_to_the_cap_with_jitter_and_stop() -> None:
    policy = spool.RetryPolicy(initial=timedelta(seconds=1), maximum=timedelta(seconds=4), attempts=6)
    delays = list(policy.delays())
    assert len(delays) == 5
    for n, delay in enumerate(delays):
        assert 0 <= delay <= min(4, 2**n)
