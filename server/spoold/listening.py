"""The gRPC port, opened safely: never shared with another process (no SO_REUSEPORT), TLS and mTLS
from PEM files checked before anything starts, and each failure one line naming its setting."""

from __future__ import annotations

import errno
import socket
import ssl
from datetime import timedelta
from pathlib import Path

import grpc

from spoold.config import Settings
from spoold.errors import StartupError

# gRPC's default (on) lets a second server bind a port that one already serves: calls would then
# alternate between two servers, perhaps on two databases, without a word.
OPTIONS: tuple[tuple[str, int], ...] = (("grpc.so_reuseport", 0),)
METADATA_BYTES = 32 * 1024


def _ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


def transport_options(s: Settings) -> list[tuple[str, int]]:
    """The gRPC server's limits on messages, streams and connections (docs/security.md#limits)."""
    return [
        ("grpc.max_receive_message_length", s.limits.max_message_bytes),
        ("grpc.max_send_message_length", s.limits.max_message_bytes),
        ("grpc.max_concurrent_streams", s.grpc_max_concurrent_streams),
        ("grpc.keepalive_time_ms", _ms(s.grpc_keepalive_time)),
        ("grpc.keepalive_timeout_ms", _ms(s.grpc_keepalive_timeout)),
        ("grpc.max_connection_age_ms", _ms(s.grpc_max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _ms(s.grpc_max_connection_age_grace)),
        # Clients may ping as often as every 10 s, with or without calls, without being cut off.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A call's metadata: 32 KiB, all of it, refused above that and only above (gRPC's default
        # refuses some calls from 8 KiB, so a 10 KB traceparent could fail a call at random).
        ("grpc.max_metadata_size", METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", METADATA_BYTES),
    ]


def check_port(host: str, port: int, flag: str = "--port/SPOOL_PORT") -> None:
    """StartupError if the port is taken: checked with a plain socket first, so the refusal is one
    clear line (gRPC logs its own), and before the embedded database is started for nothing."""
    if port == 0:
        return
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"--host/SPOOL_HOST: cannot resolve {host!r}: {exc.strerror}") from exc
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no conflict
            try:
                s.bind(address)
            except OSError as exc:
                raise bind_error(host, port, exc, flag) from exc


def bind_error(host: str, port: int, exc: OSError, flag: str) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"{flag}: {host}:{port} is already in use (is another spoold running?)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"--host/SPOOL_HOST: {host} is not an address of this machine")
    if exc.errno == errno.EACCES:
        return StartupError(f"{flag}: not allowed to listen on port {port}")
    return StartupError(f"{flag}: cannot listen on {host}:{port}: {exc.strerror}")


def bind(server: grpc.aio.Server, s: Settings) -> int:
    """Adds the port (TLS when configured); returns its number."""
    address = f"{s.host}:{s.port}"
    credentials = server_credentials(s)
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # gRPC says only "Failed to bind"; the port was taken since check_port
        raise StartupError(f"--port/SPOOL_PORT: cannot listen on {address} (already in use?)") from exc


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StartupError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc


def server_credentials(s: Settings) -> grpc.ServerCredentials | None:
    """None without --tls-cert; else TLS, and with --tls-client-ca, mTLS (client certificates required)."""
    if s.tls_cert is None and s.tls_key is None:
        if s.tls_client_ca is not None:
            raise StartupError("--tls-client-ca/SPOOL_TLS_CLIENT_CA: needs --tls-cert and --tls-key")
        return None
    if s.tls_cert is None or s.tls_key is None:
        missing = "--tls-cert/SPOOL_TLS_CERT" if s.tls_cert is None else "--tls-key/SPOOL_TLS_KEY"
        raise StartupError(f"{missing}: required with the other (the certificate chain and its private key)")
    cert, key = _read("--tls-cert/SPOOL_TLS_CERT", s.tls_cert), _read("--tls-key/SPOOL_TLS_KEY", s.tls_key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(s.tls_cert, s.tls_key)
    except (ssl.SSLError, ValueError) as exc:
        raise StartupError(
            f"--tls-cert/SPOOL_TLS_CERT, --tls-key/SPOOL_TLS_KEY: not a PEM certificate and its key ({exc})"
        ) from exc
    if s.tls_client_ca is not None:
        client_ca = _read("--tls-client-ca/SPOOL_TLS_CLIENT_CA", s.tls_client_ca)
        try:
            context.load_verify_locations(cadata=client_ca.decode(errors="replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise StartupError(f"--tls-client-ca/SPOOL_TLS_CLIENT_CA: no PEM certificate in {s.tls_client_ca}") from exc
        return grpc.ssl_server_credentials([(key, cert)], client_ca, require_client_auth=True)
    return grpc.ssl_server_credentials([(key, cert)])
