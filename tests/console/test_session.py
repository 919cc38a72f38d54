"""Signing in to the console: the key in an HttpOnly, SameSite=Strict cookie, accepted as the
Bearer header is; the CSRF token on every POST; read keys refused what they cannot do."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.console.conftest import Keys, sign_in
from tests.console.jobs import kill
from tests.http.conftest import connect_info, fingerprint

LIST = "/spool.v1.QueueService/ListJobs"
REQUEUE = "/spool.v1.QueueService/Requeue"


@pytest.fixture
async def job_id(base: str, keys: Keys) -> str:
    """A job that went DEAD through the real lease and nack."""
    return await kill(base, keys.admin)


async def test_signing_in_sets_an_http_only_strict_cookie_and_a_csrf_token(web: httpx.AsyncClient, keys: Keys) -> None:
    answer = await web.post("/console/session", json={"key": keys.admin})

    assert answer.status_code == 200
    body = answer.json()
    assert body["signedIn"] is True and body["canAct"] is True and body["scopes"] == ["admin"]
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert "httponly" in cookies["spool_session"] and "samesite=strict" in cookies["spool_session"]
    assert "httponly" not in cookies["spool_csrf"] and "samesite=strict" in cookies["spool_csrf"]
    again = await web.get("/console/session")
    assert again.json()["keyId"] == body["keyId"]


async def test_a_bad_key_does_not_sign_in(web: httpx.AsyncClient, keys: Keys) -> None:
    answer = await web.post("/console/session", json={"key": keys.admin[:-2] + "xx"})

    assert answer.status_code == 401
    assert "spool_session" not in web.cookies
    assert (await web.get("/console/session")).status_code == 401


async def test_without_a_key_the_session_asks_for_one(web: httpx.AsyncClient) -> None:
    answer = await web.get("/console/session")

    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_the_cookie_signs_in_connect_calls_and_a_post_needs_the_csrf_token(
    job_id: str, web: httpx.AsyncClient, keys: Keys, db: asyncpg.Connection
) -> None:
    csrf = await sign_in(web, keys.admin)
    before = await fingerprint(db)

    for headers in ({}, {"x-spool-csrf": "not-the-token"}, {"x-spool-csrf": ""}):
        refused = await web.post(REQUEUE, json={"jobIds": [job_id]}, headers=headers)
        assert refused.status_code == 403
        assert connect_info(refused.json()).reason == "CSRF_TOKEN_INVALID"
    assert await fingerprint(db) == before

    listed = await web.post(LIST, json={"filter": {"statuses": ["STATUS_DEAD"]}}, headers={"x-spool-csrf": csrf})
    assert [j["id"] for j in listed.json()["jobs"]] == [job_id]
    done = await web.post(REQUEUE, json={"jobIds": [job_id]}, headers={"x-spool-csrf": csrf})
    assert done.status_code == 200 and done.json()["jobs"][0]["state"] == "STATE_PENDING"


async def test_the_rest_routes_need_the_token_too_but_not_for_a_get(
    job_id: str, web: httpx.AsyncClient, keys: Keys
) -> None:
    csrf = await sign_in(web, keys.admin)

    assert (await web.get(f"/v1/jobs/{job_id}")).json()["status"] == "DEAD"
    refused = await web.post(f"/v1/jobs/{job_id}:requeue", json={})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"][0]["reason"] == "CSRF_TOKEN_INVALID"
    ok = await web.post(f"/v1/jobs/{job_id}:requeue", json={}, headers={"x-spool-csrf": csrf})
    assert ok.json()["status"] == "PENDING"


async def test_a_bearer_header_needs_no_csrf_token(job_id: str, base: str, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {keys.admin}"}) as c:
        answer = await c.post(REQUEUE, json={"jobIds": [job_id]})

    assert answer.status_code == 200


async def test_a_read_key_sees_but_a_forced_requeue_is_refused(
    job_id: str, web: httpx.AsyncClient, keys: Keys, db: asyncpg.Connection
) -> None:
    csrf = await sign_in(web, keys.read)
    session = (await web.get("/console/session")).json()
    assert session["canAct"] is False and session["canEnqueue"] is False
    before = await fingerprint(db)

    seen = await web.post(LIST, json={}, headers={"x-spool-csrf": csrf})
    forced = await web.post(REQUEUE, json={"jobIds": [job_id]}, headers={"x-spool-csrf": csrf})
    paused = await web.post(
        "/spool.v1.AdminService/PauseQueue", json={"name": "payments"}, headers={"x-spool-csrf": csrf}
    )

    assert [j["id"] for j in seen.json()["jobs"]] == [job_id]
    assert forced.status_code == 403 and connect_info(forced.json()).reason == "SCOPE_MISSING"
    assert paused.status_code == 403 and connect_info(paused.json()).reason == "SCOPE_MISSING"
    assert await fingerprint(db) == before


async def test_signing_out_forgets_the_key(web: httpx.AsyncClient, keys: Keys) -> None:
    await sign_in(web, keys.admin)

    assert (await web.delete("/console/session")).status_code == 200
    assert "spool_session" not in web.cookies
    assert (await web.get("/console/session")).status_code == 401


async def test_the_page_is_served_with_a_strict_content_security_policy(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    script = await web.get("/console/static/js/main.js")

    assert page.status_code == 200 and '<script type="module" src="/console/static/js/main.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "default-src 'none'" in script.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await web.get("/console/static/js/nothing.js")).status_code == 404
