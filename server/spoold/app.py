"""Assembles spoold: pool, migrations, listener, loops and the gRPC server, and takes them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import platform
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from starlette.routing import BaseRoute

from spool.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    pipeline_service_pb2,
    pipeline_service_pb2_grpc,
    queue_service_pb2,
    queue_service_pb2_grpc,
)
from spoold import __version__, console, listening, tracing
from spoold.api import schedule_convert
from spoold.api.access import Access
from spoold.api.admin_service import AdminService
from spoold.api.auth import AuthGuard
from spoold.api.decoding import DecodeGuard
from spoold.api.metering import RpcMeter
from spoold.api.pipeline_service import PipelineService
from spoold.api.queue_service import QueueService
from spoold.api.starting import Deferred, StartGate
from spoold.auth.gate import Gate, describe, resolve_mode
from spoold.auth.usage import KeyUsage
from spoold.auth.verifier import KeyChanges, KeyVerifier
from spoold.cancels import CancelHub
from spoold.config import Settings
from spoold.console import QueueFeed
from spoold.http import asgi
from spoold.http.door import Door
from spoold.http.server import FLAG as HTTP_FLAG
from spoold.http.server import HttpServer
from spoold.leasing import Leaser
from spoold.loops import BulkRunner, Counts, Loop, Pruner, ReadyPoller, Reaper, Scheduler, Watchdog
from spoold.metrics import Metrics, endpoint
from spoold.metrics.gauges import QueueGauges
from spoold.metrics.process import LoopCollector, PoolCollector
from spoold.model import JobDefaults, Retention
from spoold.notify import KEYS, Listener
from spoold.pipeline_watch import PipelineWatchHub, pipeline_hub
from spoold.queue_limit import QueueLimit
from spoold.scheduling import Firer
from spoold.store.bulk import BulkStore
from spoold.store.database import CONNECT_ERRORS, redacted, unreachable
from spoold.store.jobs import JobStore
from spoold.store.keys import KeyStore
from spoold.store.opening import open_database
from spoold.store.pipelines import PipelineStore
from spoold.store.queues import QueueStore
from spoold.store.ready import ReadyStore
from spoold.store.retention import RetentionStore
from spoold.store.schedules import ScheduleStore
from spoold.store.search import SearchStore
from spoold.store.searching import SearchPool
from spoold.store.tail import TailStore
from spoold.store.watches import WatchStore
from spoold.tail import TailHub, TailPoller
from spoold.watch import WatchHub, WatchPoller

log = logging.getLogger(__name__)

QUEUE_SERVICE = queue_service_pb2.DESCRIPTOR.services_by_name["QueueService"]
ADMIN_SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]
PIPELINE_SERVICE = pipeline_service_pb2.DESCRIPTOR.services_by_name["PipelineService"]
SERVICES = (QUEUE_SERVICE.full_name, ADMIN_SERVICE.full_name, PIPELINE_SERVICE.full_name)
# A server's rows in spool.watched outlive it by this much if it dies; its keep-alive runs 4x as often.
_WATCH_TTL = timedelta(seconds=60)


@dataclass
class App:
    settings: Settings
    dsn: str
    port: int = 0
    pool: asyncpg.Pool | None = None
    searches: SearchPool | None = None
    store: JobStore | None = None
    listener: Listener | None = None
    leaser: Leaser | None = None
    loops: list[Loop] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    server: grpc.aio.Server | None = None
    health: health.aio.HealthServicer | None = None
    hub: WatchHub | None = None
    pipeline_hub: PipelineWatchHub | None = None
    tail: TailHub | None = None
    cancels: CancelHub | None = None
    gate: Gate | None = None
    http: HttpServer | None = None
    feed: QueueFeed | None = None
    metrics: Metrics | None = None
    serving: bool = False
    _subscriptions: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # Outermost interceptors, before authentication (tests put fault injection here).
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = ()
    starting: StartGate = field(default_factory=StartGate)
    # An OpenTelemetry TracerProvider to make the SERVER spans with, whatever Settings.tracing says
    # (tests give one with an in-memory exporter); else one is made when tracing is on.
    tracer_provider: Any = None
    spans: Any = None  # api/tracing.py's ServerSpans, when tracing is on
    installed: tuple[grpc.aio.ServerInterceptor, ...] = ()  # the gRPC server's interceptors, outermost first
    _own_provider: bool = False

    def check(self) -> Gate:
        """Checks the settings (auth mode, TLS files) and that the port is free, before anything
        starts: a refusal ends start-up at once, as a StartupError naming the setting."""
        s = self.settings
        mode = resolve_mode(s.auth, s.host, insecure=s.insecure, client_ca=s.tls_client_ca is not None)
        listening.server_credentials(s)
        listening.check_port(s.host, s.port)
        if s.http_port:
            listening.check_port(s.host, s.http_port, HTTP_FLAG)
        return Gate(mode)

    def bind(self) -> int:
        """Builds the gRPC server and takes its port."""
        if self.server is not None:
            return self.port
        s = self.settings
        self.gate = self.check()
        interceptors: list[grpc.aio.ServerInterceptor] = [
            self.starting,
            *self.interceptors,
            AuthGuard(self.gate),
            DecodeGuard(s.limits),
        ]
        self.spans = self._server_spans()
        if self.spans is not None:  # before the start gate and the key check: their refusals are traced too
            from spoold.api.tracing import RpcTracer

            interceptors.insert(0, RpcTracer(self.spans))
        if s.metrics:  # first: it counts what the key check refuses too
            self.metrics = Metrics()
            interceptors.insert(0, RpcMeter(self.metrics.rpc))
        self.installed = tuple(interceptors)
        self.server = grpc.aio.server(
            options=[*listening.transport_options(s), *listening.OPTIONS],
            maximum_concurrent_rpcs=s.grpc_max_concurrent_rpcs or None,
            interceptors=interceptors,
        )
        self.port = listening.bind(self.server, s)
        if s.http_port:
            self.http = HttpServer(s)
        return self.port

    def _server_spans(self) -> Any:
        """The doors' span maker when tracing is on (or a provider was given), else None: then no
        tracing code is imported or installed at all."""
        if self.tracer_provider is None and self.settings.tracing:
            self.tracer_provider = tracing.provider()
            self._own_provider = self.tracer_provider is not None
        if self.tracer_provider is None:
            return None
        from spoold.api.tracing import ServerSpans

        return ServerSpans(self.tracer_provider)

    @property
    def http_port(self) -> int | None:
        """The HTTP port being served, or None when it is off."""
        return self.http.port if self.http is not None else None

    async def start(self) -> int:
        """Starts everything; returns the port the gRPC server listens on."""
        s = self.settings
        self.bind()
        assert self.server is not None and self.gate is not None
        # The server starts before the database is open: while it is being reached, health says
        # NOT_SERVING and Spool's methods answer UNAVAILABLE (api/starting.py), rather than the
        # port refusing connections or the process exiting. The gRPC door's adapter is its
        # interceptors (api/auth.py, api/decoding.py); the servicers know no transport, so they
        # are not of the generated servicer classes.
        servicers = {QUEUE_SERVICE: Deferred(), ADMIN_SERVICE: Deferred(), PIPELINE_SERVICE: Deferred()}
        queue_service_pb2_grpc.add_QueueServiceServicer_to_server(cast(Any, servicers[QUEUE_SERVICE]), self.server)
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(cast(Any, servicers[ADMIN_SERVICE]), self.server)
        pipeline_service_pb2_grpc.add_PipelineServiceServicer_to_server(
            cast(Any, servicers[PIPELINE_SERVICE]), self.server
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        await self._set_serving(False)
        await self.server.start()
        self.pool, _ = await open_database(self.dsn, s)
        try:
            self.searches = await SearchPool.create(self.dsn, s.search_pool_size, s.search_timeout, s.search_wait)
        except CONNECT_ERRORS as exc:
            raise unreachable(self.dsn, exc) from exc
        self.store = JobStore(
            self.pool,
            JobDefaults(lease_duration=s.default_lease_duration),
            s.limits.max_attempt_log_chars,
            s.limits.max_releases,
        )
        assert self.searches is not None
        queues = QueueStore(self.pool, self.searches)
        self._meter(queues)
        self.listener = Listener(self.dsn)
        await self.listener.start()
        poll = s.lease_poll_interval.total_seconds()
        self.leaser = Leaser(self.store, self.listener, poll, shared=s.lease_shared_poll)
        retention = Retention(s.retention_succeeded, s.retention_cancelled, s.retention_dead)
        schedules = ScheduleStore(self.pool, self.store)
        firer = Firer(functools.partial(schedule_convert.template_job, settings=s), s.schedule_grace)
        self.loops = [
            Reaper(self.store, s.reaper_interval.total_seconds(), s.reaper_batch),
            Pruner(RetentionStore(self.pool), s.pruner_interval.total_seconds(), s.pruner_batch, retention),
            Scheduler(schedules, firer, s.scheduler_interval.total_seconds()),
            Counts(queues, s.counts_interval.total_seconds()),
        ]
        if s.lease_shared_poll:
            self.loops.append(ReadyPoller(ReadyStore(self.pool), self.leaser, poll))
        assert self.searches is not None
        bulk = BulkStore(self.pool, self.searches)
        self.loops.append(BulkRunner(bulk, s.bulk_interval.total_seconds(), s.bulk_batch))
        self.hub = self._watch_hub()
        self.tail = self._tail_hub()
        self.cancels = CancelHub(self.listener, s.watch_buffer, self.hub.counted)
        self.cancels.start()
        keys = KeyStore(self.pool)
        self._keep_keys_checked(keys)
        access = Access(keys)
        limit = QueueLimit(queues, s.limits.max_queues)
        pipelines = PipelineStore(self.store, self.searches)
        self.pipeline_hub, poller = pipeline_hub(self.pool, pipelines, self.listener, s, self.hub.counted, _WATCH_TTL)
        self.loops.append(poller)
        services = {
            QUEUE_SERVICE: QueueService(
                self.store,
                self.leaser,
                s,
                access,
                SearchStore(self.searches),
                hub=self.hub,
                queue_limit=limit,
                tail=self.tail,
                cancels=self.cancels,
            ),
            ADMIN_SERVICE: AdminService(queues, keys, access, s, schedules, firer, bulk),
            PIPELINE_SERVICE: PipelineService(pipelines, s, access, limit, self.pipeline_hub),
        }
        for descriptor, service in services.items():
            servicers[descriptor].target = service
        self.starting.open()
        if self.http is not None:
            admin = cast(AdminService, services[ADMIN_SERVICE])
            self.feed = QueueFeed(admin.ListQueues, admin.GetQueueActivity, s.console_feed_interval.total_seconds())
            self.loops.append(self.feed)
            rpc = self.metrics.rpc if self.metrics is not None else None
            extra: list[BaseRoute] = (
                [endpoint.route(self.metrics.render, self.gate, s.metrics_public)] if self.metrics else []
            )
            extra += console.routes(self.gate, s, self.feed)
            door = Door(self.gate, services, s.limits, rpc, self.spans)
            self.http.start(asgi.build(door, s, self._live, self._ready, extra))
        await self._set_serving(True)
        self.loops.append(self._watchdog())
        self.tasks = [loop.start() for loop in self.loops]
        self._announce()
        return self.port

    def _announce(self) -> None:
        """The start-up a person reads: one line each for version, addresses, database, auth, TLS."""
        s = self.settings
        assert self.gate is not None
        http = f", HTTP/JSON on {s.host}:{self.http.port}" if self.http is not None else ""
        tls = "off (plaintext)"
        if s.tls_cert:
            tls = f"{'mTLS, client CA ' + str(s.tls_client_ca) if s.tls_client_ca else 'on'}, certificate {s.tls_cert}"
        log.info("spoold %s (Python %s)", __version__, platform.python_version())
        log.info("spoold serving on %s:%d (gRPC)%s", s.host, self.port, http)
        log.info("database: %s", redacted(self.dsn))
        log.info("auth: %s", describe(self.gate.mode))
        log.info("TLS: %s", tls)
        if self.spans is not None:
            log.info("tracing: %s", tracing.describe(self.tracer_provider))

    async def _live(self) -> bool:
        """/healthz: serving, as gRPC health says (the watchdog turns it off when loops stall)."""
        return self.serving

    async def _ready(self) -> bool:
        """/readyz: serving, and the database answers within a second."""
        if not self.serving or self.pool is None:
            return False
        try:
            async with asyncio.timeout(1):
                return bool(await self.pool.fetchval("SELECT 1"))
        except Exception:  # any failure to answer is "not ready"
            log.debug("readiness: the database did not answer", exc_info=True)
            return False

    def _meter(self, queues: QueueStore) -> None:
        """Points the metrics (when on) at what they count and read: jobs, loops, pool, queue gauges."""
        if self.metrics is None or self.store is None:
            return
        store = self.store
        store.metrics = self.metrics.jobs
        self.metrics.add(LoopCollector(lambda: self.loops))
        self.metrics.add(PoolCollector(lambda: self.pool, lambda: store.queued))
        gauges = QueueGauges(queues)
        self.metrics.add(gauges, gauges.refresh)

    def _keep_keys_checked(self, keys: KeyStore) -> None:
        """The key verifier, its cache kept honest by NOTIFY, and its last_used_at bookkeeping."""
        assert self.gate is not None and self.listener is not None
        s = self.settings
        usage = KeyUsage(keys, s.key_usage_interval.total_seconds())
        self.loops.append(usage)
        verifier = KeyVerifier(keys, usage, s.key_cache_ttl.total_seconds())
        self._subscriptions.enter_context(self.listener.subscribe(KEYS, KeyChanges(verifier)))
        self.gate.verifier = verifier

    def _watch_hub(self) -> WatchHub:
        """The WatchJob fan-out, with its poller among the supervised loops."""
        assert self.pool is not None and self.store is not None and self.listener is not None
        s = self.settings
        watches = WatchStore(self.pool, uuid.uuid4(), _WATCH_TTL)
        hub = WatchHub(self.store, watches, self.listener, s.watch_buffer, s.max_watchers)
        hub.start()
        poll = s.watch_poll_interval.total_seconds()
        keep_alive_every = max(1, int(_WATCH_TTL.total_seconds() / 4 / poll))
        self.loops.append(WatchPoller(hub, poll, keep_alive_every))
        return hub

    def _tail_hub(self) -> TailHub:
        """The TailJobs fan-out, with its poller among the supervised loops (as WatchJob's)."""
        assert self.pool is not None and self.listener is not None
        s = self.settings
        assert self.hub is not None  # every stream that waits is counted with WatchJob's (SPOOL_MAX_WATCHERS)
        hub = TailHub(TailStore(self.pool, uuid.uuid4(), _WATCH_TTL), self.listener, s.tail_buffer, self.hub.counted)
        hub.start()
        poll = s.watch_poll_interval.total_seconds()
        keep_alive_every = max(1, int(_WATCH_TTL.total_seconds() / 4 / poll))
        self.loops.append(TailPoller(hub, poll, keep_alive_every, prune_every=keep_alive_every))
        return hub

    def _watchdog(self) -> Watchdog:
        """Health follows the loops; each loop backs off its failures as configured."""
        s = self.settings
        for loop in self.loops:
            loop.backoff_max = s.loop_backoff_max.total_seconds()
        return Watchdog(list(self.loops), s.loop_stall_timeout.total_seconds(), self._set_serving)

    async def _set_serving(self, serving: bool) -> None:
        assert self.health is not None
        self.serving = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICES):
            await self.health.set(name, status)

    async def wait_for_failure(self) -> asyncio.Task[None]:
        """Returns the first background task to end. None should: a loop outlives its failures, so
        only a bug in the loop machinery itself gets here."""
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        return done.pop()

    async def stop(self) -> None:
        """Health NOT_SERVING, end long polls, finish in-flight RPCs, then loops, listener, pool."""
        self.serving = False
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        if self.leaser is not None:
            self.leaser.close()
        for hub in (self.hub, self.pipeline_hub, self.tail):
            if hub is not None:
                hub.close()  # watch and tail streams end UNAVAILABLE now, well within the grace
        if self.cancels is not None:
            self.cancels.close()
        doors = [self.http.stop()] if self.http is not None else []
        if self.server is not None:
            doors.append(self.server.stop(self.settings.shutdown_grace.total_seconds()))
        await asyncio.gather(*doors)
        for loop in self.loops:
            await loop.stop()
        for hub in (self.hub, self.pipeline_hub, self.tail):
            if hub is not None:
                await hub.stop()
        self._subscriptions.close()
        if self.listener is not None:
            await self.listener.stop()
        if self.searches is not None:
            await self.searches.close()
        if self.pool is not None:
            await self.pool.close()
        if self._own_provider:  # the spans still batched go out now (within the exporter's timeout)
            await asyncio.to_thread(self.tracer_provider.shutdown)
        log.info("spoold stopped")
