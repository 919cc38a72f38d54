"""Where the client connects and how: read from arguments, else from the environment, in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    """Target, transport security and the metadata sent with every call (e.g. authorization)."""

    address: str = DEFAULT_ADDRESS
    tls: bool = False
    root_certificates: bytes | None = None
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        *,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        env: Mapping[str, str] | None = None,
    ) -> Connection:
        """Arguments win; SPOOL_ADDRESS, SPOOL_TLS and SPOOL_TOKEN fill what they leave out."""
        env = os.environ if env is None else env
        token = token if token is not None else env.get("SPOOL_TOKEN")
        extra = (("authorization", f"Bearer {token}"),) if token else ()
        return cls(
            address=address or env.get("SPOOL_ADDRESS") or DEFAULT_ADDRESS,
            tls=tls if tls is not None else env.get("SPOOL_TLS", "").lower() in ("1", "true", "yes", "on"),
            root_certificates=root_certificates,
            metadata=(*tuple(metadata), *extra),
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)

    def sync_channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.address, self.credentials(), options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls:
            return grpc.aio.secure_channel(self.address, self.credentials(), options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
