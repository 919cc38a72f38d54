"""Where the client connects and how: read from arguments, else from the environment, in this one place."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"

# Reconnect quickly after a server restart: gRPC's default backoff grows to two minutes.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


@dataclass(frozen=True)
class Connection:
    """Target, transport security and the metadata sent with every call (e.g. authorization).

    TLS: `root_certificates` is the CA bundle that signed the server's certificate (None: the
    system's); `certificate_chain` and `private_key` are the client's own, for mTLS. All PEM."""

    address: str = DEFAULT_ADDRESS
    tls: bool = False
    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        *,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        insecure: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Connection:
        """Arguments win; SPOOL_ADDRESS, SPOOL_TLS, SPOOL_TOKEN (else the file SPOOL_TOKEN_FILE
        names), SPOOL_INSECURE and the PEM files named by SPOOL_TLS_CA, SPOOL_TLS_CERT and
        SPOOL_TLS_KEY fill what they leave out. Any TLS file turns TLS on unless `tls` is False.
        ValueError for a file that cannot be read, half a key pair, or a key that would go in the
        clear to a host off this machine (no TLS) unless `insecure` (SPOOL_INSECURE=1) says so."""
        env = os.environ if env is None else env
        ca = root_certificates if root_certificates is not None else _pem(env, "SPOOL_TLS_CA")
        cert = certificate_chain if certificate_chain is not None else _pem(env, "SPOOL_TLS_CERT")
        key = private_key if private_key is not None else _pem(env, "SPOOL_TLS_KEY")
        if (cert is None) != (key is None):
            raise ValueError("a client certificate needs its private key: give both (SPOOL_TLS_CERT, SPOOL_TLS_KEY)")
        if tls is None:
            tls = env.get("SPOOL_TLS", "").lower() in ("1", "true", "yes", "on") or any((ca, cert, key))
        token = token if token is not None else env_token(env)
        extra = (("authorization", f"Bearer {token}"),) if token else ()
        target = resolve_address(address, env)
        sent = (*tuple(metadata), *extra)
        if insecure is None:
            insecure = env.get("SPOOL_INSECURE", "").lower() in ("1", "true", "yes", "on")
        if not tls and not insecure and any(k.lower() == "authorization" for k, _ in sent) and not local(target):
            raise ValueError(
                f"an API key would go to {target} in the clear: connect with TLS (tls=True, SPOOL_TLS=1, "
                "--tls), or accept the risk with insecure=True (SPOOL_INSECURE=1, --insecure)"
            )
        return cls(
            address=target,
            tls=tls,
            root_certificates=ca,
            certificate_chain=cert,
            private_key=key,
            metadata=sent,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)

    def sync_channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.address, self.credentials(), options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls:
            return grpc.aio.secure_channel(self.address, self.credentials(), options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)


def resolve_address(address: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The argument, else SPOOL_ADDRESS, else 127.0.0.1:50051."""
    env = os.environ if env is None else env
    return address or env.get("SPOOL_ADDRESS") or DEFAULT_ADDRESS


def env_token(env: Mapping[str, str]) -> str | None:
    """SPOOL_TOKEN, else the contents of the file SPOOL_TOKEN_FILE names: a key kept out of the
    command line, where `ps` shows it to every user of the machine."""
    if env.get("SPOOL_TOKEN"):
        return env["SPOOL_TOKEN"]
    path = env.get("SPOOL_TOKEN_FILE")
    return read_token(path, "SPOOL_TOKEN_FILE") if path else None


def read_token(path: str | Path, what: str) -> str:
    """The key in a file, without surrounding whitespace; ValueError naming `what` if it cannot be
    read or is empty."""
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not token:
        raise ValueError(f"{what}: {path} is empty")
    return token


def local(address: str) -> bool:
    """Whether the target is on this machine: a loopback address, localhost, or a unix socket."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.removeprefix("dns:").lstrip("/").removeprefix("ipv4:").removeprefix("ipv6:")
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_pem(path: str | Path, what: str) -> bytes:
    """A PEM file's bytes; ValueError naming `what` (a flag or variable) if it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc


def _pem(env: Mapping[str, str], name: str) -> bytes | None:
    path = env.get(name)
    return read_pem(path, name) if path else None
