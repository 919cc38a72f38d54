"""AdminService's API key messages to validated values, and keys back to proto (never a secret)."""

from __future__ import annotations

from datetime import datetime

from spool.v1 import admin_service_pb2 as adm
from spoold.api import convert
from spoold.api import validate as v
from spoold.auth.keys import ApiKey
from spoold.auth.scopes import Scope
from spoold.auth.spec import MAX_LIFETIME, KeySpec, key_spec


def create(req: adm.CreateApiKeyRequest, now: datetime) -> KeySpec:
    expires_at = None
    which = req.WhichOneof("expiry")
    if which == "expires_at":
        expires_at = v.timestamp("expires_at", req.expires_at)
    elif which == "expires_in":
        expires_at = now + v.duration("expires_in", req.expires_in, MAX_LIFETIME)
    return key_spec(req.name, tuple(req.scopes), tuple(req.queues), expires_at, now)


def key_proto(key: ApiKey) -> adm.ApiKey:
    out = adm.ApiKey(
        id=key.id,
        name=key.name,
        scopes=[s.value for s in Scope if s in key.scopes],
        queues=list(key.queues),
        created_at=convert.ts(key.created_at),
    )
    for field in ("expires_at", "revoked_at", "last_used_at"):
        when = getattr(key, field)
        if when is not None:
            getattr(out, field).CopyFrom(convert.ts(when))
    return out
