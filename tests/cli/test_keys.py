"""`spool keys create|ls|revoke` against a server that requires keys, run for real."""

from __future__ import annotations

import asyncpg
import pytest

from spoold.config import Settings
from tests import conftest
from tests.auth.conftest import make_key
from tests.cli.conftest import Spool


@pytest.fixture
def settings() -> Settings:
    return conftest.test_settings(auth="required")


async def test_keys_create_ls_and_revoke(cli: Spool, db: asyncpg.Connection) -> None:
    admin = await make_key(db, ["admin"], name="ops")
    made = await cli(
        "keys",
        "create",
        "--name",
        "mailer",
        "--scope",
        "enqueue,work",
        "--queues",
        "emails",
        "--expires",
        "30d",
        SPOOL_TOKEN=admin,
    )
    assert made.code == 0, made.err
    key = made.out.splitlines()[-1]
    assert key.startswith("spool_") and made.out.strip() == key
    assert "created API key" in made.err and "shown only this once" in made.err

    assert (await cli("enqueue", "emails", "{}", SPOOL_TOKEN=key)).code == 0
    refused = await cli("enqueue", "billing", "{}", SPOOL_TOKEN=key)
    assert refused.code == 1 and "QUEUE_NOT_ALLOWED" in refused.err and len(refused.err.splitlines()) == 1

    listed = await cli("keys", "ls", "-o", "json", SPOOL_TOKEN=admin)
    rows = {k["name"]: k for k in listed.json()}
    assert rows["mailer"]["scopes"] == ["enqueue", "work"] and rows["mailer"]["queues"] == ["emails"]
    assert "expires_at" in rows["mailer"] and key not in listed.out
    table = await cli("keys", "ls", SPOOL_TOKEN=admin)
    assert "mailer" in table.out and "ID" in table.out.splitlines()[0]

    key_id = rows["mailer"]["id"]
    revoked = await cli("keys", "revoke", key_id, SPOOL_TOKEN=admin)
    assert revoked.code == 0 and key_id in revoked.out

    async def refused_now() -> bool:
        return (await cli("enqueue", "emails", "{}", SPOOL_TOKEN=key)).code != 0

    await conftest.wait_until(refused_now, within=10, interval=0.2)
    gone = await cli("keys", "ls", SPOOL_TOKEN=admin)
    assert "mailer" not in gone.out
    assert "mailer" in (await cli("keys", "ls", "--all", SPOOL_TOKEN=admin)).out


async def test_keys_need_an_admin_key_and_say_so_in_one_line(cli: Spool, db: asyncpg.Connection) -> None:
    worker = await make_key(db, ["work"], ["emails"])
    denied = await cli("keys", "ls", SPOOL_TOKEN=worker)
    assert denied.code == 1 and "SCOPE_MISSING" in denied.err and len(denied.err.splitlines()) == 1
    missing = await cli("keys", "ls")
    assert missing.code == 1 and "API_KEY_MISSING" in missing.err
    bad = await cli(
        "keys", "create", "--name", "w", "--scope", "work", "--queues", "*", SPOOL_TOKEN=await make_key(db, ["admin"])
    )
    assert bad.code == 1 and "for admin keys only" in bad.err and "Traceback" not in bad.err
