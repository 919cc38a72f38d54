"""Settings, read in one place from a mapping (the environment, overridden by command-line flags)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

_LONGEST_LIMIT = timedelta(days=3650)
# What a Lease answer holds besides its jobs' counted bytes (the envelope, field tags).
LEASE_ANSWER_MARGIN = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What a request may ask for; anything beyond is refused with INVALID_ARGUMENT or RESOURCE_EXHAUSTED."""

    max_payload_bytes: int = 1024 * 1024
    max_batch: int = 1000
    # The whole EnqueueBatch message: 1,000 jobs of 8 KiB, or 8 of the largest payloads.
    max_batch_bytes: int = 8 * 1024 * 1024
    max_delay: timedelta = timedelta(days=30)
    max_lease_duration: timedelta = timedelta(hours=12)
    max_attempt_timeout: timedelta = timedelta(days=7)
    max_wait: timedelta = timedelta(seconds=60)
    max_lease_jobs: int = 1000
    max_name_length: int = 128
    max_key_length: int = 256
    max_headers: int = 64
    max_header_bytes: int = 8 * 1024
    max_error_bytes: int = 64 * 1024
    # Each attempt keeps the last this many characters of its log lines (docs/observability.md).
    max_attempt_log_chars: int = 64 * 1024
    # A JSON number written out in full (jsonb prints 1e400 as 401 digits): enough for every double
    # and for integers of 400 digits. spool.enqueue() applies the default whatever this says.
    max_json_number_chars: int = 400
    # The largest gRPC message spoold sends or receives. A Lease (or an Ack's next) answer stops
    # taking jobs before their bytes would pass it, less LEASE_ANSWER_MARGIN for the rest.
    max_message_bytes: int = 64 * 1024 * 1024
    # Releases (Nack with release, and jobs given back by the server) a job gets without spending
    # an attempt, per (re)queue; past them a release counts as a failed attempt (ReleaseLimit).
    max_releases: int = 100
    # Distinct queues (with jobs or settings): an Enqueue that would make one more is refused
    # (RESOURCE_EXHAUSTED, QUEUE_LIMIT_REACHED). 0: no limit.
    max_queues: int = 10000

    @property
    def lease_answer_bytes(self) -> int:
        """The bytes the jobs of one Lease answer may take (spool.answer_bytes counts them)."""
        return max(self.max_message_bytes - LEASE_ANSWER_MARGIN, 0)

    def __post_init__(self) -> None:
        # A request's time is now plus one of these: past about 3650 days it could leave the
        # years a timestamp holds (9999), and a call would fail instead of being refused.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta) and not timedelta(0) < value <= _LONGEST_LIMIT:
                raise ValueError(f"SPOOL_{f.name.upper()}: must be more than 0 and at most {_LONGEST_LIMIT.days} days")


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(".spool")
    host: str = "127.0.0.1"
    port: int = 50051
    # API keys: "auto" requires them off loopback, "required" everywhere, "off" nowhere (docs/security.md).
    auth: str = "auto"
    # Lets --auth off serve a non-loopback address without mTLS.
    insecure: bool = False
    # TLS: the server's certificate chain and key (PEM); with a client CA, client certificates are required.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # The HTTP/JSON door (Connect for every RPC, the REST routes, /healthz, /readyz) on the same
    # host, with the same keys and TLS; 0 turns it off.
    http_port: int = 8080
    # Prometheus metrics at /metrics on the HTTP port (docs/observability.md); off: no counting at all.
    metrics: bool = True
    # /metrics without a key even where keys are required (else: a read key covering every queue).
    metrics_public: bool = False
    # OpenTelemetry SERVER spans for every RPC, exported with OTLP (docs/observability.md#tracing).
    # Unset: on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set or OTEL_TRACES_EXPORTER
    # names otlp; SPOOL_TRACING=0 keeps it off whatever those say.
    tracing: bool = False
    # Origins a browser may call the HTTP port from, comma-separated ("*": any); none by default.
    http_cors_origins: str = ""
    # A request's headers must all arrive within this (and an idle keep-alive connection is closed after it).
    http_header_timeout: timedelta = timedelta(seconds=10)
    # A request's body must all arrive within this after its headers; else 408, and nothing is done.
    http_read_timeout: timedelta = timedelta(seconds=30)
    # The largest request body; 0: the largest batch, base64-encoded in JSON, plus 64 KiB (docs/http.md).
    http_max_body_bytes: int = 0
    # How long a server trusts what it read about a key: a revocation whose notification is lost
    # still reaches every server within this time.
    key_cache_ttl: timedelta = timedelta(seconds=3)
    # How often last_used_at is written (each key at most once a minute per server).
    key_usage_interval: timedelta = timedelta(seconds=5)
    # At start-up, how long to wait for a database that is down or unreachable (retrying with
    # backoff, health NOT_SERVING) before giving up; 0: at the first failure.
    database_wait: timedelta = timedelta(seconds=60)
    pool_min_size: int = 4
    pool_max_size: int = 16
    # A call that finds every connection busy for this long answers UNAVAILABLE (0: wait forever).
    pool_acquire_timeout: timedelta = timedelta(seconds=10)
    # PostgreSQL cancels any statement of spoold's that runs this long (0: no limit); the call
    # answers UNAVAILABLE. Migrations run without it.
    statement_timeout: timedelta = timedelta(seconds=30)
    # Searches (ListJobs, Requeue by filter, queue stats) run on a pool of their own, so that the
    # hot path never waits behind them: at most this many at once per process...
    search_pool_size: int = 1
    # ...each cancelled after this (DEADLINE_EXCEEDED, SEARCH_TIMEOUT)...
    search_timeout: timedelta = timedelta(seconds=10)
    # ...and a search that finds them all busy for this long answers RESOURCE_EXHAUSTED, SEARCHES_BUSY.
    search_wait: timedelta = timedelta(seconds=5)
    default_lease_duration: timedelta = timedelta(seconds=30)
    # A job's checkpoints (Heartbeat with a checkpoint) at most one per this, per process: one
    # sooner is refused RESOURCE_EXHAUSTED, CHECKPOINT_RATE_LIMITED, with a RetryInfo delay (the
    # workers wait it and send again). 0: no limit. Heartbeats without a checkpoint are never refused.
    checkpoint_min_interval: timedelta = timedelta(milliseconds=100)
    # Idle Lease long polls are woken by NOTIFY at once, and by a poll every lease_poll_interval
    # for what no NOTIFY announces (a scheduled job coming due). Shared (the default): one cheap
    # probe per process and interval for all waiters (loops/ready.py); off: each waiter claims
    # again every interval (the cost grows with the waiters).
    lease_poll_interval: timedelta = timedelta(seconds=1)
    lease_shared_poll: bool = True
    reaper_interval: timedelta = timedelta(seconds=1)
    reaper_batch: int = 1000
    # How often each replica looks for schedules due; a fire is at most about this late.
    scheduler_interval: timedelta = timedelta(seconds=1)
    # A fire time this far behind when a scheduler first sees it was missed (no server ran the
    # schedule): the schedule's catch-up policy decides whether it still fires.
    schedule_grace: timedelta = timedelta(seconds=10)
    # How often the per-statement queue count deltas are folded together (migration 0018): it
    # bounds the rows a queue-stats read sums, not its accuracy.
    counts_interval: timedelta = timedelta(seconds=1)
    pruner_interval: timedelta = timedelta(seconds=60)
    pruner_batch: int = 1000
    # How long finished jobs are kept where their queue sets no retention of its own.
    retention_succeeded: timedelta = timedelta(days=7)
    retention_cancelled: timedelta = timedelta(days=7)
    retention_dead: timedelta = timedelta(days=30)
    # gRPC transport limits (docs/security.md#limits): streams at once on one connection, RPCs at
    # once in the process (past it: RESOURCE_EXHAUSTED from gRPC), keepalive pings on idle
    # connections and how long one may stay silent, and a connection's maximum age (then GOAWAY;
    # its calls get the grace to finish, longer than the longest Lease wait).
    grpc_max_concurrent_streams: int = 1000
    grpc_max_concurrent_rpcs: int = 10000
    grpc_keepalive_time: timedelta = timedelta(seconds=60)
    grpc_keepalive_timeout: timedelta = timedelta(seconds=20)
    grpc_max_connection_age: timedelta = timedelta(hours=1)
    grpc_max_connection_age_grace: timedelta = timedelta(minutes=2)
    # Streams that wait by design at once in this process, all kinds together: WatchJob (and the
    # REST events route), TailJobs, WatchCancels; past it RESOURCE_EXHAUSTED, WATCHERS_LIMIT_REACHED.
    max_watchers: int = 1000
    # WatchJob: NOTIFY wakes watchers at once; this poll catches a lost notification.
    watch_poll_interval: timedelta = timedelta(seconds=1)
    # Bulk operations (AdminService.StartBulkOperation): how often a server looks for one to run,
    # and how many jobs one batch (one transaction) handles.
    bulk_interval: timedelta = timedelta(seconds=1)
    bulk_batch: int = 1000
    # The web console's queue stats: one query per interval, pushed to every open console.
    console_feed_interval: timedelta = timedelta(seconds=2)
    # Snapshots kept per watcher that is not reading; older ones are dropped (coalesced).
    watch_buffer: int = 16
    # TailJobs: events kept per stream that is not reading; older ones are dropped (and counted).
    tail_buffer: int = 256
    # A background loop whose owed run has not completed for this long (its runs keep failing,
    # or one hangs) turns health NOT_SERVING, so that an orchestrator can restart the process.
    loop_stall_timeout: timedelta = timedelta(seconds=60)
    # A failing loop retries after its interval, doubling per failure up to this (with jitter).
    loop_backoff_max: timedelta = timedelta(seconds=5)
    shutdown_grace: timedelta = timedelta(seconds=10)
    log_level: str = "INFO"
    # spoold's own log lines: "text" or "json" (one object per line); docs/observability.md.
    log_format: str = "text"
    limits: Limits = Limits()

    @classmethod
    def from_environment(cls) -> Settings:
        return cls.from_env(os.environ)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Reads SPOOL_* variables; unknown ones are ignored, malformed ones raise ValueError."""
        settings = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SPOOL_{f.name.upper()}")
            if raw is not None and f.name != "limits":
                default = Path() if f.name in _PATHS else getattr(settings, f.name)
                values[f.name] = _parse(raw, default, f.name) if raw or f.name not in _PATHS else None
        limit_values: dict[str, Any] = {}
        for f in fields(Limits):
            raw = env.get(f"SPOOL_{f.name.upper()}")
            if raw is not None:
                limit_values[f.name] = _parse(raw, getattr(settings.limits, f.name), f.name)
        values.setdefault("tracing", _otlp_wanted(env))
        return replace(settings, **values, limits=replace(settings.limits, **limit_values))


def _otlp_wanted(env: Mapping[str, str]) -> bool:
    """Whether the standard OpenTelemetry variables ask for OTLP export of traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(endpoint and endpoint.strip()) or "otlp" in exporters


_PATHS = frozenset({"tls_cert", "tls_key", "tls_client_ca"})


def _parse(raw: str, default: object, name: str) -> object:
    try:
        if isinstance(default, timedelta):
            return timedelta(seconds=float(raw))
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"SPOOL_{name.upper()}: {exc}") from exc
    return raw
