"""spool.v1.AdminService: queue stats, pause and resume, per-queue defaults. No SQL here."""

from __future__ import annotations

from typing import Any

import grpc

from spool.v1 import admin_service_pb2 as adm
from spool.v1 import admin_service_pb2_grpc
from spoold.api import admin_convert
from spoold.api import validate as v
from spoold.api.errors import unary
from spoold.config import Limits
from spoold.store.queues import QueueStore

Context = grpc.aio.ServicerContext[Any, Any]


class AdminService(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, queues: QueueStore, limits: Limits) -> None:
        self._queues = queues
        self._limits = limits

    @unary
    async def ListQueues(self, request: adm.ListQueuesRequest, context: Context) -> adm.ListQueuesResponse:
        queues = await self._queues.list()
        return adm.ListQueuesResponse(queues=[admin_convert.queue_proto(q) for q in queues])

    @unary
    async def GetQueue(self, request: adm.GetQueueRequest, context: Context) -> adm.GetQueueResponse:
        queue = await self._queues.get(v.name("name", request.name, self._limits))
        return adm.GetQueueResponse(queue=admin_convert.queue_proto(queue))

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
