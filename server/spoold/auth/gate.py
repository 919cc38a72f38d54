"""The check every door runs before any service code: which key, and may it call this method."""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Sequence

from spoold.auth import scopes
from spoold.auth.principal import ANONYMOUS, Principal
from spoold.auth.verifier import KeyVerifier
from spoold.errors import ApiKeyMalformed, ApiKeyMissing, ScopeMissing, ShuttingDown, SpoolError, StartupError

log = logging.getLogger(__name__)

_BEARER = "bearer "


class Mode(enum.Enum):
    """REQUIRED: every call needs a key. OPTIONAL: a call without one has full access, a call with
    one is checked (`auto` on loopback). OFF: keys are not looked at."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    OFF = "off"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def resolve_mode(setting: str, host: str, *, insecure: bool, client_ca: bool) -> Mode:
    """The mode for `--auth` (auto, required, off) on `--host`; StartupError for a refused pairing."""
    if setting == "required":
        return Mode.REQUIRED
    if setting == "auto":
        return Mode.OPTIONAL if is_loopback(host) else Mode.REQUIRED
    if setting != "off":
        raise StartupError(f"--auth/SPOOL_AUTH: {setting!r} is not one of auto, required, off")
    if not is_loopback(host) and not insecure and not client_ca:
        raise StartupError(
            f"--auth/SPOOL_AUTH: 'off' on {host}, which is not loopback, lets anyone who reaches the port do "
            "anything; add --insecure (SPOOL_INSECURE=1) if that is what you want, or use API keys or mTLS"
        )
    return Mode.OFF


def describe(mode: Mode) -> str:
    """One sentence for the start-up line."""
    if mode is Mode.REQUIRED:
        return "every call needs an API key (Authorization: Bearer spool_...)"
    if mode is Mode.OPTIONAL:
        return "API keys are not required on loopback (--auth auto): any local process has full access"
    return "API keys are off (--auth off): every caller has full access"


def bearer(values: Sequence[str]) -> str:
    """The key from the `authorization` header values of one call."""
    if len(values) > 1:
        raise ApiKeyMalformed("more than one authorization header; send exactly one")
    value = values[0]
    if not value.lower().startswith(_BEARER):
        raise ApiKeyMalformed("the authorization header must be 'Bearer <key>'")
    token = value[len(_BEARER) :].strip()
    if not token:
        raise ApiKeyMalformed("the authorization header has 'Bearer' but no key")
    return token


class Gate:
    """Made with the mode when the server is built; given its verifier once the database is there."""

    def __init__(self, mode: Mode, verifier: KeyVerifier | None = None) -> None:
        self.mode = mode
        self.verifier = verifier

    async def admit(self, method: str, authorization: Sequence[str]) -> Principal:
        """The caller of `method`, given its authorization header values; a SpoolError refuses it
        (logged with the key id, never the key)."""
        try:
            return await self._admit(method, authorization)
        except SpoolError as err:
            log.info("refused %s: %s (%s)", method, err.reason, err.metadata.get("key_id", "no key id"))
            raise

    async def _admit(self, method: str, authorization: Sequence[str]) -> Principal:
        if self.mode is Mode.OFF:
            return ANONYMOUS
        if not authorization:
            if self.mode is Mode.OPTIONAL:
                return ANONYMOUS
            raise ApiKeyMissing("this call needs an API key: send the header 'authorization: Bearer <key>'")
        if self.verifier is None:
            raise ShuttingDown("the server is starting; retry")
        principal = await self.verifier.verify(bearer(authorization))
        needed = scopes.required(method)
        if not principal.has(needed):
            raise ScopeMissing(
                f"API key {principal.key_id} lacks the {needed.value!r} scope that {method.rsplit('/', 1)[-1]} needs",
                key_id=principal.key_id or "",
                scope=needed.value,
            )
        self.verifier.used(principal.key_id or "")
        return principal
