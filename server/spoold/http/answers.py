"""Domain errors in the HTTP door's two forms, both made from the one google.rpc.Status of
api/errors.py: Connect error JSON (code, message, details with the ErrorInfo) for the Connect
paths, and AIP-193's error JSON (`{"error": {code, status, message, details}}`) for the REST routes."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from connectrpc.code import Code as ConnectCode
from connectrpc.errors import ConnectError, ErrorDetail
from google.protobuf import json_format
from protobuf.wkt import Any as WireAny
from starlette.responses import JSONResponse, Response

from spoold.api.errors import code_of, http_status, status_of
from spoold.errors import SpoolError

_TYPE_PREFIX = "type.googleapis.com/"


def _connect_code(err: SpoolError) -> ConnectCode:
    name = code_of(err).name
    return ConnectCode[name if name != "CANCELLED" else "CANCELED"]


def retry_after(err: SpoolError) -> dict[str, str]:
    """The standard Retry-After header (RFC 9110: whole seconds) of an error with a retry delay:
    rounded up, at least 1, so that a plain HTTP client never comes back early; {} without one."""
    if err.retry_delay is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(err.retry_delay)))}


def connect_error(err: SpoolError) -> ConnectError:
    """The error as connectrpc raises it to a Connect client; every Connect client decodes the details."""
    details = [ErrorDetail(WireAny(type_url=d.type_url, value=d.value)) for d in status_of(err).details]
    return ConnectError(_connect_code(err), err.message, details)


def connect_response(err: SpoolError) -> Response:
    """The same, for a request refused before connectrpc reads it (a body too large or too slow)."""
    body: dict[str, Any] = {"code": _connect_code(err).value, "message": err.message}
    body["details"] = [
        {"type": d.type_url.removeprefix(_TYPE_PREFIX), "value": base64.b64encode(d.value).decode().rstrip("=")}
        for d in status_of(err).details
    ]
    return Response(json.dumps(body), http_status(err), headers=retry_after(err), media_type="application/json")


def rest_body(err: SpoolError) -> dict[str, Any]:
    status = status_of(err)
    return {
        "error": {
            "code": http_status(err),
            "status": code_of(err).name,
            "message": err.message,
            "details": json_format.MessageToDict(status)["details"],
        }
    }


def rest_response(err: SpoolError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(rest_body(err), http_status(err), headers={**retry_after(err), **(headers or {})})
