"""Opaque keyset page tokens for ListJobs (and, by seal/unseal, ListQueues and a job's attempts):
where the last page ended, for which search.

A token is urlsafe base64 of a keyed BLAKE2b tag followed by a small JSON document holding the
order, the last job id and a digest of the filter. The tag catches a token that was cut, edited
or made up; the digest catches a token used with another filter or order. The key is not a
secret (a token grants nothing: every position of every search is readable anyway), so the tag
is an integrity check, not a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict
from datetime import datetime
from enum import Enum

from spoold.errors import InvalidArgument
from spoold.model import JobFilter, Order

_KEY = b"spool.v1.ListJobs.page_token"
_TAG = 12
_VERSION = 1
FIELD = "page_token"


def search_digest(f: JobFilter, order: Order) -> str:
    """Equal for equal searches, whatever the order in which the request listed queues or states."""
    fields: dict[str, object] = {}
    for name, value in asdict(f).items():
        fields[name] = sorted(str(_plain(v)) for v in value) if isinstance(value, tuple) else _plain(value)
    canonical = json.dumps({"order": order.value, "filter": fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _tag(body: bytes) -> bytes:
    return hashlib.blake2b(body, key=_KEY, digest_size=_TAG).digest()


def encode(last_id: int, f: JobFilter, order: Order) -> str:
    body = json.dumps(
        {"v": _VERSION, "o": order.value, "id": last_id, "f": search_digest(f, order)}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(_tag(body) + body).rstrip(b"=").decode()


def decode(token: str, f: JobFilter, order: Order) -> int:
    """The last job id of the previous page; INVALID_ARGUMENT for any token this search did not issue."""
    body = _authentic_body(token)
    try:
        doc = json.loads(body)
        version, token_order, last_id, digest = doc["v"], doc["o"], doc["id"], doc["f"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(FIELD, "malformed page token") from exc
    if version != _VERSION or not isinstance(last_id, int) or not 0 < last_id < 2**63:
        raise InvalidArgument(FIELD, "malformed page token")
    if token_order != order.value or digest != search_digest(f, order):
        raise InvalidArgument(FIELD, "the page token belongs to another filter or order")
    return last_id


def seal(kind: str, scope: str, after: str) -> str:
    """A page token of another listing (`kind`): the page ended at `after`, within `scope` (e.g.
    the job whose attempts are paged), tamper-checked as ListJobs' tokens are."""
    body = json.dumps({"v": _VERSION, "k": kind, "s": scope, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_tag(body) + body).rstrip(b"=").decode()


def unseal(token: str, kind: str, scope: str, field: str) -> str:
    """Where the previous page of `seal` ended; INVALID_ARGUMENT (naming `field`) for any token
    that this listing did not issue for this scope."""
    body = _authentic_body(token, field)
    try:
        doc = json.loads(body)
        version, token_kind, token_scope, after = doc["v"], doc["k"], doc["s"], doc["a"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(field, "malformed page token") from exc
    if version != _VERSION or token_kind != kind or not isinstance(after, str):
        raise InvalidArgument(field, "malformed page token")
    if token_scope != scope:
        raise InvalidArgument(field, "the page token belongs to another request")
    return after


def _authentic_body(token: str, field: str = FIELD) -> bytes:
    if len(token) > 512 or not token.isascii():
        raise InvalidArgument(field, "malformed page token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(field, "malformed page token") from exc
    tag, body = raw[:_TAG], raw[_TAG:]
    if len(tag) != _TAG or not hmac.compare_digest(tag, _tag(body)):
        raise InvalidArgument(field, "malformed page token")
    return body
