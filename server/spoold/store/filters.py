"""A JobFilter as a SQL condition with numbered parameters, for the searches of sql/search.sql.

The condition is composed from the fixed fragments below, one per set field; values only ever
travel as parameters, except job states, which are the server's own constants (see _states). A
composed condition, rather than one catch-all statement full of `$n IS NULL OR ...`, gives each
search a plan of its own: a prepared catch-all falls back to a generic plan that cannot use the
partial indexes (the trigram index needs its predicate in the query, and an unused branch still
costs a filter on every row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spoold.model import JobFilter, JobState, JobStatus, Order

# Where a query of sql/search.sql takes the composed condition. A query is valid SQL without it,
# so the test that prepares every named query prepares these too.
MARKER = "/* AND filter */"

# The expression of jobs_error_trgm_idx (migrations/0003_search.sql), spelled the same way so the
# planner matches it, with the index's predicate alongside so the partial index qualifies.
_ERROR_TEXT = "(coalesce(j.error_type, '') || E'\\n' || coalesce(j.error_message, ''))"
_HAS_ERROR = "(j.error_type IS NOT NULL OR j.error_message IS NOT NULL)"

# Each derived status as a condition, and the state it belongs to: the rule of sql/queues.sql.
_STATUSES: dict[JobStatus, tuple[JobState, str]] = {
    JobStatus.READY: (
        JobState.PENDING,
        "(j.state = 'pending' AND j.attempt = 0 AND j.run_at <= now() AND NOT spool.throttled(j.queue, j.rate_key))",
    ),
    JobStatus.THROTTLED: (
        JobState.PENDING,
        "(j.state = 'pending' AND j.attempt = 0 AND j.run_at <= now() AND spool.throttled(j.queue, j.rate_key))",
    ),
    JobStatus.SCHEDULED: (JobState.PENDING, "(j.state = 'pending' AND j.attempt = 0 AND j.run_at > now())"),
    JobStatus.RETRYING: (JobState.PENDING, "(j.state = 'pending' AND j.attempt > 0)"),
    JobStatus.RUNNING: (JobState.RUNNING, "j.state = 'running'"),
    JobStatus.SUCCEEDED: (JobState.SUCCEEDED, "j.state = 'succeeded'"),
    JobStatus.DEAD: (JobState.DEAD, "j.state = 'dead'"),
    JobStatus.CANCELLED: (JobState.CANCELLED, "j.state = 'cancelled'"),
    JobStatus.WAITING: (JobState.WAITING, "j.state = 'waiting'"),
}


@dataclass
class Condition:
    """SQL text and its parameter values, numbered from `first`."""

    first: int
    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, template: str, *values: object) -> None:
        """template holds {0}, {1}... for the values' parameter numbers."""
        numbers = [f"${self.first + len(self.params) + i}" for i in range(len(values))]
        self.clauses.append(template.format(*numbers))
        self.params.extend(values)

    def apply(self, query: str) -> str:
        if MARKER not in query:
            raise ValueError("query has no filter marker")
        return query.replace(MARKER, "".join(f"\n    AND {c}" for c in self.clauses))


def like_pattern(text: str) -> str:
    """A substring match for LIKE/ILIKE: the text's own %, _ and \\ match literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def condition(f: JobFilter, first: int) -> Condition:
    """The filter as a condition on `spool.jobs j`, its parameters numbered from `first`."""
    c = Condition(first)
    if len(f.queues) == 1:
        # Equality, not ANY: an index with the queue as its second column (jobs_dead_idx, ...) can
        # then test it inside the index and still return rows in id order.
        c.add("j.queue = {0}::text", f.queues[0])
    elif f.queues:
        c.add("j.queue = ANY({0}::text[])", list(f.queues))
    if f.states:
        c.clauses.append(_states(f.states))
    if f.statuses:
        _statuses(c, f.statuses)
    _time_range(c, "created_at", f.created_after, f.created_before)
    _time_range(c, "finished_at", f.finished_after, f.finished_before)
    if f.error_contains:
        c.add(f"{_HAS_ERROR} AND {_ERROR_TEXT} ILIKE {{0}}", like_pattern(f.error_contains))
    if f.payload_contains is not None:
        c.add("j.payload_json @> {0}::jsonb", f.payload_contains)
    if f.idempotency_key is not None:
        c.add("j.idempotency_key = {0}", f.idempotency_key)
    if f.concurrency_key is not None:
        c.add("j.concurrency_key = {0}", f.concurrency_key)
    if f.pipeline_id is not None:
        c.add("j.pipeline_id = {0}::bigint", f.pipeline_id)
    return c


def _statuses(c: Condition, statuses: tuple[JobStatus, ...]) -> None:
    """Any of the statuses. The states they belong to come first, as a plain state test, so that an
    index on state serves the search as it does a search by state."""
    states = tuple(dict.fromkeys(_STATUSES[s][0] for s in statuses))
    either = " OR ".join(_STATUSES[s][1] for s in statuses)
    c.clauses.append(f"{_states(states)} AND ({either})")


def _states(states: tuple[JobState, ...]) -> str:
    """The states as literals, not a parameter: they come from a closed enum, never from the caller's
    text, and a literal lets the planner use the partial index of a rare state (jobs_dead_idx, ...)
    in a prepared statement's generic plan, where `state = ANY($1)` proves nothing about the rows.
    Finished states also say finished_at IS NOT NULL, which lets jobs_finished_idx serve a queue."""
    literals = ", ".join(f"'{s.value}'" for s in states)
    if all(s.terminal for s in states):
        return f"j.state IN ({literals}) AND j.finished_at IS NOT NULL"
    return f"j.state IN ({literals})"


def _time_range(c: Condition, column: str, after: object, before: object) -> None:
    if after is not None:
        c.add(f"j.{column} >= {{0}}::timestamptz", after)
    if before is not None:
        c.add(f"j.{column} < {{0}}::timestamptz", before)


def keyset(c: Condition, order: Order, after_id: int | None) -> None:
    """Continues a search after the last job of the previous page."""
    if after_id is not None:
        c.add("j.id < {0}::bigint" if order is Order.NEWEST_FIRST else "j.id > {0}::bigint", after_id)
