"""API keys as text (`spool_<id>_<secret>`) and as stored (the secret's SHA-256, never the secret)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from spoold.auth.scopes import Scope
from spoold.errors import ApiKeyMalformed

PREFIX = "spool_"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_LENGTH = 12
_SECRET_BYTES = 32  # 256 random bits
# The id is lowercase letters and digits, the secret 64 hex digits: a secret scanner can spot the
# shape, and neither part holds the separator.
_FORMAT = re.compile(r"spool_([a-z0-9]{1,32})_([0-9a-f]{64})")
MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    secret_hash: bytes
    scopes: frozenset[Scope]
    queues: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class NewKey:
    """A key just made: the text is shown once, only the hash is kept."""

    id: str
    secret: str

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.id}_{self.secret}"

    @property
    def secret_hash(self) -> bytes:
        return digest(self.secret)


def new_key() -> NewKey:
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    return NewKey(key_id, secrets.token_hex(_SECRET_BYTES))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse(text: str) -> tuple[str, str]:
    """(id, secret) of a key in its text form; ApiKeyMalformed for anything else."""
    if len(text) > MAX_KEY_CHARS:
        raise ApiKeyMalformed(
            f"the API key is over {MAX_KEY_CHARS} characters; Spool keys look like spool_<id>_<secret>"
        )
    found = _FORMAT.fullmatch(text)
    if found is None:
        raise ApiKeyMalformed("the API key is not in Spool's format (spool_<id>_<secret>)")
    return found.group(1), found.group(2)


def matches(key: ApiKey, secret: str) -> bool:
    """Whether the secret is the key's, compared in constant time."""
    return hmac.compare_digest(key.secret_hash, digest(secret))
