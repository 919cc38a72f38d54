"""BulkStore: the records of bulk operations, and one batch of an operation's work."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from spoold.bulk import BulkAction, BulkOperation, BulkState, acted_on, criteria, criteria_json
from spoold.errors import BulkOperationNotFound
from spoold.model import JobFilter
from spoold.store import filters, queries
from spoold.store.database import translated
from spoold.store.searching import SearchPool

Q = queries.load("bulk.sql")
SEARCH = queries.load("search.sql")
# As the searches do (store/search.py): a plan for each filter's own values.
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


def _operation(row: asyncpg.Record) -> BulkOperation:
    return BulkOperation(
        id=row["id"],
        action=BulkAction(row["action"]),
        filter=json.loads(row["filter"]),
        criteria=criteria(json.loads(row["criteria"])),
        include_succeeded=row["include_succeeded"],
        state=BulkState(row["state"]),
        expected=row["expected"],
        done=row["done"],
        cursor=row["cursor"],
        max_id=row["max_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


class BulkStore:
    def __init__(self, pool: asyncpg.Pool, searches: SearchPool) -> None:
        self.pool = pool
        self.searches = searches

    async def count(self, f: JobFilter, limit: int) -> int:
        """Matching jobs, up to `limit`: a search, on the searches' own connections."""
        cond = filters.condition(f, first=2)
        async with self.searches.connection() as conn, conn.transaction(readonly=True):
            await conn.execute(_CUSTOM_PLANS)
            n: int = await conn.fetchval(cond.apply(Q["count_matching"]), limit, *cond.params)
        return n

    async def create(
        self, action: BulkAction, given: dict[str, Any], f: JobFilter, include_succeeded: bool, expected: int, by: str
    ) -> BulkOperation:
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                newest = await conn.fetchval(Q["newest_job"])
                row = await conn.fetchrow(
                    Q["create_operation"],
                    action.value,
                    json.dumps(given),
                    json.dumps(criteria_json(f)),
                    include_succeeded,
                    expected,
                    newest,
                    by,
                )
        assert row is not None  # an INSERT ... RETURNING returns its row
        return _operation(row)

    async def get(self, operation_id: int) -> BulkOperation:
        with translated():
            row = await self.pool.fetchrow(Q["get_operation"], operation_id)
        if row is None:
            raise BulkOperationNotFound(str(operation_id))
        return _operation(row)

    async def list(self, after_id: int, size: int) -> list[BulkOperation]:
        with translated():
            found = await self.pool.fetch(Q["list_operations"], after_id, size)
        return [_operation(r) for r in found]

    async def abort(self, operation_id: int) -> BulkOperation:
        """Stops a running operation; a finished one is answered as it is."""
        with translated():
            row = await self.pool.fetchrow(Q["abort_operation"], operation_id)
        return _operation(row) if row is not None else await self.get(operation_id)

    async def run_batch(self, size: int) -> int:
        """Handles the next `size` jobs of the oldest running operation no other server holds, in
        one transaction with the operation's progress; how many jobs it handled (0: no work)."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(Q["pick_operation"])
                if row is None:
                    return 0
                op = _operation(row)
                states = [s.value for s in acted_on(op.action, op.criteria, op.include_succeeded)]
                handled, last_id = 0, op.cursor
                if states:
                    await conn.execute(_CUSTOM_PLANS)
                    handled, last_id = await _batch(conn, op, states, size)
                finished = handled < size
                await conn.execute(Q["advance_operation"], op.id, handled, max(last_id, op.cursor), finished)
        return max(handled, 1)  # an operation that finished with nothing to do still did work


async def _batch(
    conn: asyncpg.pool.PoolConnectionProxy, op: BulkOperation, states: list[str], size: int
) -> tuple[int, int]:
    """The next `size` matching jobs after the cursor, up to the newest at the start: how many
    were handled, and the last id. A requeue is Requeue-by-filter's own statement (SKIP LOCKED: a job
    another caller holds this instant is left as it is); a cancel is CancelJob's rule, set-wise."""
    if op.action is BulkAction.REQUEUE:
        cond = filters.condition(op.criteria, first=3)
        cond.add("j.id > {0}::bigint AND j.id <= {1}::bigint", op.cursor, op.max_id)
        found = await conn.fetch(cond.apply(SEARCH["requeue_matching"]), states, size, *cond.params)
        return len(found), max((r["id"] for r in found), default=op.cursor)
    cond = filters.condition(op.criteria, first=5)
    row = await conn.fetchrow(cond.apply(Q["cancel_batch"]), op.cursor, op.max_id, size, states, *cond.params)
    assert row is not None  # one row of counts, always
    return int(row["handled"]), int(row["last_id"])
