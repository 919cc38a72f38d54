"""spool.v1.AdminService: queue stats, pause and resume, per-queue defaults, API keys; schedules in
api/admin_schedules.py. No SQL here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from spool.v1 import admin_service_pb2 as adm
from spoold.api import admin_convert, convert, key_convert, paging
from spoold.api import validate as v
from spoold.api.access import Access
from spoold.api.admin_bulk import BulkAdmin
from spoold.api.admin_schedules import ScheduleAdmin
from spoold.api.calls import CallContext as Context
from spoold.api.errors import unary
from spoold.auth import keys
from spoold.auth.principal import principal
from spoold.config import Settings
from spoold.errors import InvalidArgument, QueueNotFound
from spoold.scheduling import Firer
from spoold.store.bulk import BulkStore
from spoold.store.keys import KeyStore
from spoold.store.queues import QueueStore
from spoold.store.schedules import ScheduleStore

log = logging.getLogger(__name__)


ACTIVITY_MINUTES = 60


def _now() -> datetime:
    return datetime.now(UTC)


class AdminService(ScheduleAdmin, BulkAdmin):
    def __init__(
        self,
        queues: QueueStore,
        keys: KeyStore,
        access: Access,
        settings: Settings,
        schedules: ScheduleStore,
        firer: Firer,
        bulk: BulkStore,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._queues = queues
        self._keys = keys
        self._access = access
        self._settings = settings
        self._limits = settings.limits
        self._schedules = schedules
        self._firer = firer
        self._bulk = bulk
        self._clock = clock

    @unary
    async def ListQueues(self, request: adm.ListQueuesRequest, context: Context) -> adm.ListQueuesResponse:
        size, after = paging.queue_page(request)
        found, more = await self._queues.list(after, size)
        token = paging.next_queues_token([q.name for q in found], more)
        queues = [admin_convert.queue_proto(q) for q in found if self._access.sees(q.name)]
        return adm.ListQueuesResponse(queues=queues, next_page_token=token)

    @unary
    async def GetQueueActivity(
        self, request: adm.GetQueueActivityRequest, context: Context
    ) -> adm.GetQueueActivityResponse:
        if not 0 <= request.minutes <= ACTIVITY_MINUTES:
            raise InvalidArgument("minutes", f"must be between 1 and {ACTIVITY_MINUTES} (0 means {ACTIVITY_MINUTES})")
        minutes = request.minutes or ACTIVITY_MINUTES
        start, found = await self._queues.activity(minutes)
        queues = [
            adm.QueueActivity(queue=a.queue, succeeded=a.succeeded, dead=a.dead)
            for a in found.values()
            if self._access.sees(a.queue)
        ]
        return adm.GetQueueActivityResponse(start=convert.ts(start), queues=queues)

    @unary
    async def GetQueue(self, request: adm.GetQueueRequest, context: Context) -> adm.GetQueueResponse:
        name = v.name("name", request.name, self._limits)
        if not self._access.sees(name):
            raise QueueNotFound(name)
        return adm.GetQueueResponse(queue=admin_convert.queue_proto(await self._queues.get(name)))

    @unary
    async def PauseQueue(self, request: adm.PauseQueueRequest, context: Context) -> adm.PauseQueueResponse:
        queue = await self._queues.set_paused(v.name("name", request.name, self._limits), True)
        return adm.PauseQueueResponse(queue=admin_convert.queue_proto(queue))

    @unary
    async def ResumeQueue(self, request: adm.ResumeQueueRequest, context: Context) -> adm.ResumeQueueResponse:
        queue = await self._queues.set_paused(v.name("name", request.name, self._limits), False)
        return adm.ResumeQueueResponse(queue=admin_convert.queue_proto(queue))

    @unary
    async def UpdateQueue(self, request: adm.UpdateQueueRequest, context: Context) -> adm.UpdateQueueResponse:
        queue = await self._queues.update(admin_convert.update(request, self._limits))
        return adm.UpdateQueueResponse(queue=admin_convert.queue_proto(queue))

    @unary
    async def DeleteQueue(self, request: adm.DeleteQueueRequest, context: Context) -> adm.DeleteQueueResponse:
        deleted = await self._queues.delete(v.name("name", request.name, self._limits), request.force)
        return adm.DeleteQueueResponse(deleted_jobs=deleted)

    @unary
    async def CreateApiKey(self, request: adm.CreateApiKeyRequest, context: Context) -> adm.CreateApiKeyResponse:
        spec = key_convert.create(request, datetime.now(UTC))
        new = keys.new_key()
        key = await self._keys.create(new, spec.name, spec.scopes, spec.queues, spec.expires_at)
        log.info("API key %s (%s) created by %s", key.id, key.name, principal().label)
        return adm.CreateApiKeyResponse(api_key=key_convert.key_proto(key), key=new.text)

    @unary
    async def ListApiKeys(self, request: adm.ListApiKeysRequest, context: Context) -> adm.ListApiKeysResponse:
        found = await self._keys.list(request.include_revoked)
        return adm.ListApiKeysResponse(api_keys=[key_convert.key_proto(k) for k in found])

    @unary
    async def RevokeApiKey(self, request: adm.RevokeApiKeyRequest, context: Context) -> adm.RevokeApiKeyResponse:
        key_id = v.text("id", request.id, 64, required=True)
        key = await self._keys.revoke(key_id)
        log.info("API key %s (%s) revoked by %s", key.id, key.name, principal().label)
        return adm.RevokeApiKeyResponse(api_key=key_convert.key_proto(key))
