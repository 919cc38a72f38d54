"""Assertions shared by the tests: status codes with their ErrorInfo reason and field."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from spool.v1 import queue_service_pb2 as qs


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"no status details on {err.code()}: {err.details()}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in status details")


async def expect_error(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str, field: str | None = None
) -> grpc.aio.AioRpcError:
    """Awaits the call, which must fail with this code, ErrorInfo reason and (if given) field."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    assert err.code() == code, f"{err.code()} {err.details()}"
    info = error_info(err)
    assert info.reason == reason, info
    if field is not None:
        assert info.metadata.get("field") == field, info
        assert field in (err.details() or "")
    return err


def enqueue_request(queue: str = "default", payload: object | None = None, **fields: Any) -> qs.EnqueueRequest:
    body = json.dumps(payload if payload is not None else {"n": 1}).encode()
    return qs.EnqueueRequest(queue=queue, payload=body, **fields)
