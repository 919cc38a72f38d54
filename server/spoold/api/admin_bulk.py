"""AdminService's bulk operations and the count before them (a part of api/admin_service.AdminService).
No SQL here. Starting and aborting need the admin scope (an admin key reaches every queue);
counting and reading the records need read."""

from __future__ import annotations

from dataclasses import replace

from google.protobuf import json_format

from spool.v1 import admin_service_pb2 as adm
from spoold.api import convert, search
from spoold.api import validate as v
from spoold.api.access import Access
from spoold.api.calls import CallContext as Context
from spoold.api.errors import unary
from spoold.auth.principal import principal
from spoold.bulk import BulkAction, BulkOperation, BulkState, acted_on
from spoold.config import Limits
from spoold.errors import BulkOperationNotFound, InvalidArgument
from spoold.model import JobFilter
from spoold.store.bulk import BulkStore
from spoold.store.keys import KeyStore

COUNT_DEFAULT = 100_000
COUNT_MAX = 10_000_000
_ACTIONS = {adm.BulkOperation.ACTION_REQUEUE: BulkAction.REQUEUE, adm.BulkOperation.ACTION_CANCEL: BulkAction.CANCEL}
_ACTION_PROTO = {a: p for p, a in _ACTIONS.items()}
_STATES = {
    BulkState.RUNNING: adm.BulkOperation.STATE_RUNNING,
    BulkState.SUCCEEDED: adm.BulkOperation.STATE_SUCCEEDED,
    BulkState.ABORTED: adm.BulkOperation.STATE_ABORTED,
}
_PAGE_DEFAULT, _PAGE_MAX = 50, 1000


def operation_proto(op: BulkOperation) -> adm.BulkOperation:
    out = adm.BulkOperation(
        id=str(op.id),
        action=_ACTION_PROTO[op.action],
        include_succeeded=op.include_succeeded,
        state=_STATES[op.state],
        expected=op.expected,
        done=op.done,
        created_by=op.created_by,
        created_at=convert.ts(op.created_at),
        updated_at=convert.ts(op.updated_at),
        finished_at=convert.ts(op.finished_at),
    )
    json_format.ParseDict(op.filter, out.filter)
    return out


def _operation_id(value: str, field: str = "id") -> int:
    try:
        return v.positive_id(field, value)
    except InvalidArgument:
        raise BulkOperationNotFound(value[:40], field=field) from None


class BulkAdmin:
    _bulk: BulkStore
    _keys: KeyStore
    _access: Access
    _limits: Limits

    def _filter(self, p: adm.StartBulkOperationRequest | adm.CountJobsRequest) -> JobFilter:
        f = search.job_filter(p.filter, self._limits)
        self._access.queues("filter.queues", f.queues)
        if self._access.like() is not None and not f.queues:
            raise InvalidArgument("filter.queues", "name the queues: this API key may use only some")
        return f

    @unary
    async def CountJobs(self, request: adm.CountJobsRequest, context: Context) -> adm.CountJobsResponse:
        f = self._filter(request)
        if not 0 <= request.limit <= COUNT_MAX:
            raise InvalidArgument("limit", f"must be between 1 and {COUNT_MAX:,} (0 means {COUNT_DEFAULT:,})")
        limit = request.limit or COUNT_DEFAULT
        touched = self._touched(request.action, f, request.include_succeeded) if request.action else f
        n = await self._bulk.count(touched, limit + 1) if touched is not None else 0
        return adm.CountJobsResponse(count=min(n, limit), more=n > limit)

    @unary
    async def StartBulkOperation(
        self, request: adm.StartBulkOperationRequest, context: Context
    ) -> adm.StartBulkOperationResponse:
        action = _ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument("action", "ACTION_REQUEUE or ACTION_CANCEL")
        if request.include_succeeded and action is not BulkAction.REQUEUE:
            raise InvalidArgument("include_succeeded", "is for ACTION_REQUEUE only")
        f = self._filter(request)
        if f == JobFilter():
            raise InvalidArgument("filter", "set at least one field: an empty filter would touch every job")
        touched = self._touched(request.action, f, request.include_succeeded)
        expected = await self._bulk.count(touched, COUNT_MAX) if touched is not None else 0
        given = json_format.MessageToDict(request.filter)
        op = await self._bulk.create(action, given, f, request.include_succeeded, expected, await self._who())
        return adm.StartBulkOperationResponse(operation=operation_proto(op))

    @staticmethod
    def _touched(action: adm.BulkOperation.Action.ValueType, f: JobFilter, include_succeeded: bool) -> JobFilter | None:
        """The filter narrowed to the jobs the action would change; None: it would change none."""
        found = _ACTIONS.get(adm.BulkOperation.Action.ValueType(action))
        if found is None:
            raise InvalidArgument("action", "ACTION_REQUEUE or ACTION_CANCEL")
        states = acted_on(found, f, include_succeeded)
        return replace(f, states=tuple(states)) if states else None

    async def _who(self) -> str:
        p = principal()
        if p.key_id is None:
            return "no key"
        key = await self._keys.get(p.key_id)
        return f"key {p.key_id} ({key.name})" if key is not None else f"key {p.key_id}"

    def _sees(self, op: BulkOperation) -> bool:
        """A key restricted to some queues sees the operations whose filter names only its queues;
        the others are answered as missing, as the jobs of such queues are."""
        if self._access.like() is None:
            return True
        return bool(op.criteria.queues) and all(self._access.sees(q) for q in op.criteria.queues)

    @unary
    async def GetBulkOperation(
        self, request: adm.GetBulkOperationRequest, context: Context
    ) -> adm.GetBulkOperationResponse:
        op = await self._bulk.get(_operation_id(request.id))
        if not self._sees(op):
            raise BulkOperationNotFound(request.id)
        return adm.GetBulkOperationResponse(operation=operation_proto(op))

    @unary
    async def ListBulkOperations(
        self, request: adm.ListBulkOperationsRequest, context: Context
    ) -> adm.ListBulkOperationsResponse:
        if not 0 <= request.page_size <= _PAGE_MAX:
            raise InvalidArgument("page_size", f"must be between 1 and {_PAGE_MAX} (0 means {_PAGE_DEFAULT})")
        size = request.page_size or _PAGE_DEFAULT
        after = v.positive_id("page_token", request.page_token) if request.page_token else 0
        found = await self._bulk.list(after, size + 1)
        shown = [operation_proto(op) for op in found[:size] if self._sees(op)]
        out = adm.ListBulkOperationsResponse(operations=shown)
        if len(found) > size:
            out.next_page_token = str(found[size - 1].id)
        return out

    @unary
    async def AbortBulkOperation(
        self, request: adm.AbortBulkOperationRequest, context: Context
    ) -> adm.AbortBulkOperationResponse:
        op = await self._bulk.abort(_operation_id(request.id))
        return adm.AbortBulkOperationResponse(operation=operation_proto(op))
