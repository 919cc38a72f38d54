"""Where the command line connects, and what it says when it cannot: one line, within about 2 s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import click
import grpc

from spool._config import read_pem, read_token
from spool._retry import RetryPolicy
from spool.cli._text import clean
from spool.client import Client
from spool.errors import SpoolError

# How long a command waits for spoold to accept the connection before saying it cannot reach it.
CONNECT_TIMEOUT = 2.0
# A brief database outage is ridden out; a command line does not wait long for anything.
RETRY = RetryPolicy(initial=timedelta(milliseconds=100), maximum=timedelta(seconds=1), attempts=3)


@dataclass
class Globals:
    """The options every command takes, wherever they stand on the line. None means: from the
    environment (SPOOL_ADDRESS, SPOOL_TOKEN or SPOOL_TOKEN_FILE, SPOOL_INSECURE, SPOOL_TLS), else
    the default."""

    address: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool | None = None
    tls: bool | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    output: str = "table"

    @property
    def json(self) -> bool:
        return self.output == "json"


class Unreachable(Exception):
    """No connection to spoold: the address, and why in a few words."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"cannot reach spoold at {address}: {why}")


class BadSetting(click.ClickException):
    """A TLS file that cannot be read, or half a key pair: a usage error, one line."""

    exit_code = 2


def _pem(path: str | None, option: str) -> bytes | None:
    return read_pem(path, option) if path else None


def client_for(g: Globals) -> Client:
    """A client for the options (files named by --tls-* win over SPOOL_TLS_*), not yet connected."""
    try:
        return Client(
            g.address,
            tls=g.tls,
            root_certificates=_pem(g.tls_ca, "--tls-ca"),
            certificate_chain=_pem(g.tls_cert, "--tls-cert"),
            private_key=_pem(g.tls_key, "--tls-key"),
            token=g.token if g.token is not None or g.token_file is None else read_token(g.token_file, "--token-file"),
            insecure=g.insecure,
            retry=RETRY,
        )
    except ValueError as err:
        raise BadSetting(str(err)) from None


def connect(g: Globals) -> Client:
    """A client whose channel is connected, or Unreachable after CONNECT_TIMEOUT."""
    client = client_for(g)
    try:
        grpc.channel_ready_future(client.channel).result(timeout=CONNECT_TIMEOUT)
    except grpc.FutureTimeoutError:
        why = _why(client.channel)
        client.close()
        raise Unreachable(client.connection.address, why) from None
    return client


def _why(channel: grpc.Channel) -> str:
    """Why the channel is not ready, from the error of one call that may not wait for it."""
    probe: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/grpc.health.v1.Health/Check")
    try:
        probe(b"", timeout=0.5)
    except grpc.RpcError as err:
        code = err.code() if isinstance(err, grpc.Call) else None
        details = (err.details() if isinstance(err, grpc.Call) else "") or ""
        return _reason(code, details)
    return "it did not accept the connection in time"


def _reason(code: grpc.StatusCode | None, details: str) -> str:
    text = details.lower()
    if "connection refused" in text:
        return "connection refused; is it running? (make run)"
    if "dns" in text or "resolv" in text or "not known" in text or "domain name" in text:
        return "the host name does not resolve"
    if "handshake" in text or "ssl" in text or "tls" in text or "certificate" in text:
        return f"the TLS handshake failed ({clean(details, width=160)}); check --tls and --tls-ca"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or not details:
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    return clean(details, width=200)


def describe(err: SpoolError, address: str) -> str:
    """One line for a failed call: the server's message, with its ErrorInfo reason when that says
    more than the status code (never the code twice)."""
    if err.code == grpc.StatusCode.UNAVAILABLE and not err.reason:
        return str(Unreachable(address, _reason(err.code, err.message)))
    if err.code == grpc.StatusCode.DEADLINE_EXCEEDED and not err.reason:
        return f"no answer from spoold at {address} in time"
    text = clean(err.message, width=1000) or err.code.name.lower().replace("_", " ")
    if err.reason and err.reason != err.code.name:
        text += f" ({err.reason})"
    return text
