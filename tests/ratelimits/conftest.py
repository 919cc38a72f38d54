from __future__ import annotations

import grpc
import pytest

from spool.v1.admin_service_pb2_grpc import AdminServiceStub


@pytest.fixture
def admin(channel: grpc.aio.Channel) -> AdminServiceStub:
    return AdminServiceStub(channel)
