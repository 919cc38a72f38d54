"""Spool under an ordinary owner role, beside hostile and application roles: functions planted in
public never run in Spool's place, and an application role can enqueue but read nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from spool.v1 import job_pb2, queue_service_pb2_grpc
from spool.v1 import queue_service_pb2 as qs
from spoold.app import App
from spoold.store.database import SEARCH_PATH
from tests import conftest
from tests.api.support import expire_lease, ms, reaper
from tests.helpers import enqueue_request
from tests.store.roles import OwnedDatabase, owned_database

# Every one is a closer match than the built-in for a call Spool makes (power(float8, int) in the
# backoff, hashtextextended(text, int) for concurrency keys, array_fill in spool.claim, unnest over
# the arrays of spoold's batch statements, float8 * int in the linear backoff). Each records who ran
# it, then does what the built-in would, so nothing else shows that it ran.
HOSTILE = [
    "CREATE TABLE public.pwned (who text, via text)",
    "GRANT INSERT, SELECT ON public.pwned TO PUBLIC",
    """CREATE FUNCTION public.power(double precision, integer) RETURNS double precision LANGUAGE sql AS
       $$ INSERT INTO public.pwned VALUES (current_user, 'power');
          SELECT pg_catalog.power($1, $2::double precision) $$""",
    """CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint LANGUAGE sql AS
       $$ INSERT INTO public.pwned VALUES (current_user, 'hashtextextended');
          SELECT pg_catalog.hashtextextended($1, $2::bigint) $$""",
    """CREATE FUNCTION public.array_fill(text, integer[]) RETURNS text[] LANGUAGE sql AS
       $$ INSERT INTO public.pwned VALUES (current_user, 'array_fill');
          SELECT pg_catalog.array_fill($1, $2) $$""",
    """CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE sql AS
       $$ INSERT INTO public.pwned VALUES (current_user, 'unnest');
          SELECT pg_catalog.unnest($1) $$""",
    """CREATE FUNCTION public.times(double precision, integer) RETURNS double precision LANGUAGE sql AS
       $$ INSERT INTO public.pwned VALUES (current_user, '*');
          SELECT $1 * $2::double precision $$""",
    "CREATE OPERATOR public.* (LEFTARG = double precision, RIGHTARG = integer, FUNCTION = public.times)",
]


@pytest.fixture
async def roles(admin_url: str) -> AsyncIterator[tuple[OwnedDatabase, str, str, str]]:
    """An owned database, a hostile role with CREATE on public (the default before PostgreSQL 15),
    an application role in spool_producer, and a role with no grant at all."""
    async with owned_database(admin_url, "hostile", "app", "stranger") as (db, (hostile, app, stranger)):
        await run_as(db, None, f'GRANT CREATE ON SCHEMA public TO "{hostile}"')
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'GRANT spool_producer TO "{app}"')
        finally:
            await admin.close()
        yield db, hostile, app, stranger


async def run_as(db: OwnedDatabase, role: str | None, *statements: str) -> None:
    conn = await db.connect(role)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_functions_planted_in_public_never_run(roles: tuple[OwnedDatabase, str, str, str]) -> None:
    db, hostile, app, _ = roles
    await run_as(db, hostile, *HOSTILE)
    server = App(conftest.test_settings(), db.url())
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            await exercise_every_function(server, queue_service_pb2_grpc.QueueServiceStub(ch), db, app)
    finally:
        await server.stop()
    owner = await db.connect()
    try:
        assert await owner.fetch("SELECT who, via FROM public.pwned") == []
        # The calls did happen: one retry waiting out its backoff, the rest finished.
        states = dict(await owner.fetch("SELECT state::text, count(*) FROM spool.jobs GROUP BY 1"))
        assert states == {"pending": 4, "succeeded": 2}
    finally:
        await owner.close()


async def exercise_every_function(
    app: App, stub: queue_service_pb2_grpc.QueueServiceStub, db: OwnedDatabase, producer: str
) -> None:
    """Nack (backoff_delay), the reaper (backoff_delay, state_after_failure), a keyed claim
    (concurrency_bucket), spool.claim (array_fill), the batch statements (unnest), and
    spool.enqueue() as the application role calls it."""
    linear = job_pb2.BackoffPolicy(kind=job_pb2.BackoffPolicy.KIND_LINEAR)  # initial * attempt: float8 * int
    jobs = [
        enqueue_request("q", max_attempts=3),
        enqueue_request("q", max_attempts=3, backoff=linear),
        enqueue_request("q", max_attempts=3, concurrency_key="k", concurrency_limit=2),
        enqueue_request("q"),
    ]
    await stub.EnqueueBatch(qs.EnqueueBatchRequest(jobs=jobs))
    leased = (await stub.Lease(qs.LeaseRequest(queues=["q"], max_jobs=10, wait=ms(500)))).jobs
    assert len(leased) == 4
    first, second, keyed, last = leased
    for lj in (first, second):
        await stub.Nack(qs.NackRequest(job_id=lj.job.id, lease_token=lj.lease_token))
    owner = await db.connect()
    try:
        await expire_lease(owner, keyed.job.id)
        assert await reaper(app).run_once() == 1
        await owner.execute("SELECT spool.enqueue('q', '{\"by\": \"owner\"}')")
        claimed = await owner.fetch("SELECT id FROM spool.claim(ARRAY['q'], 2, NULL, 'w')")
        assert len(claimed) == 1
    finally:
        await owner.close()
    acks = [qs.AckRequest(job_id=lj.job.id, lease_token=lj.lease_token) for lj in (last,)]
    await stub.AckBatch(qs.AckBatchRequest(acks=acks))
    owner = await db.connect()
    try:
        (claimed_id,) = claimed
        token = await owner.fetchval("SELECT lease_token FROM spool.jobs WHERE id = $1", claimed_id["id"])
    finally:
        await owner.close()
    await stub.Ack(qs.AckRequest(job_id=str(claimed_id["id"]), lease_token=str(token)))
    await run_as(db, producer, """SELECT spool.enqueue('q', '{"n": 1.5e3}', headers => '{"trace": "t"}')""")


async def test_an_application_role_can_enqueue_and_nothing_else(roles: tuple[OwnedDatabase, str, str, str]) -> None:
    db, _, app, stranger = roles
    conn = await db.connect(app)
    try:
        job_id = await conn.fetchval("""SELECT spool.enqueue('emails', '{"to": "ada@example.com"}')""")
        assert job_id is not None
        refused = [
            "SELECT * FROM spool.jobs",
            "SELECT * FROM spool.queues",
            "INSERT INTO spool.jobs (queue, content_type, max_attempts, backoff_kind, backoff_initial,"
            " backoff_max, backoff_multiplier, backoff_jitter, lease_duration, state, finished_at)"
            " VALUES ('emails', 'x', 1, 'fixed', '1s', '1s', 1, false, '1s', 'succeeded', now())",
            "SELECT * FROM spool.claim(ARRAY['emails'], 1, NULL, 'me')",
            "SELECT * FROM spool.claim_slots(ARRAY['emails'], ARRAY['me'], ARRAY[NULL::interval])",
            "SELECT spool.backoff_delay('fixed', '1s', '1s', 1, false, 1)",
        ]
        for sql in refused:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()
    conn = await db.connect(stranger)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SELECT spool.enqueue('emails', '{}')")
    finally:
        await conn.close()
    owner = await db.connect()
    try:
        assert await owner.fetchval("SELECT count(*) FROM spool.jobs") == 1
    finally:
        await owner.close()


async def test_every_spool_function_fixes_its_search_path_and_is_not_public(db: asyncpg.Connection) -> None:
    functions = await db.fetch(
        """
        SELECT p.oid::regprocedure::text AS name, p.proconfig,
               p.prorettype = 'trigger'::regtype AS trigger,
               has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_run
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'spool'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
        """
    )
    assert len(functions) >= 10
    # Built-ins first; never public, "$user" or another schema a role could create objects in.
    fixed = {f["name"]: f["proconfig"] for f in functions}
    assert all(
        c is not None and len(c) == 1 and c[0].split("=", 1)[1] in (SEARCH_PATH, "pg_catalog, spool")
        for c in fixed.values()
    ), fixed
    # A trigger function cannot be called, only fired: PUBLIC's EXECUTE on it gives nothing.
    assert [f["name"] for f in functions if f["public_may_run"] and not f["trigger"]] == []
