"""TLS and mTLS end to end, with certificates made at run time: the Python client, the `spool`
CLI, the Node client and the Go client each connect through the CA bundle (and, for mTLS, a client
certificate) given in SPOOL_TLS_CA, SPOOL_TLS_CERT and SPOOL_TLS_KEY; without a client certificate,
an mTLS server refuses the connection."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trustme

import spool
from spool._config import Connection
from spoold.app import App
from tests import conftest
from tests.auth.conftest import make_key
from tests.e2e.test_go_client import go_example  # noqa: F401 (a fixture)
from tests.test_spoold_process import free_port


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path

    def client_env(self, mtls: bool = True) -> dict[str, str]:
        env = {"SPOOL_TLS_CA": str(self.ca)}
        if mtls:
            env |= {"SPOOL_TLS_CERT": str(self.client_cert), "SPOOL_TLS_KEY": str(self.client_key)}
        return env


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server, client = server_ca.issue_cert("127.0.0.1", "localhost"), client_ca.issue_cert("worker.example")
    paths = Certs(*(d / n for n in ("ca.pem", "server.pem", "server.key", "client-ca.pem", "client.pem", "client.key")))
    server_ca.cert_pem.write_to_path(str(paths.ca))
    paths.server_cert.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(paths.server_key))
    client_ca.cert_pem.write_to_path(str(paths.client_ca))
    paths.client_cert.write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(paths.client_key))
    return paths


async def _serve(db_url: str, certs: Certs, mtls: bool, **changes: Any) -> App:
    settings = conftest.test_settings(
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        tls_client_ca=certs.client_ca if mtls else None,
        **changes,
    )
    app = App(settings, db_url)
    await app.start()
    return app


@pytest.fixture
async def mtls_app(db_url: str, certs: Certs) -> AsyncIterator[App]:
    app = await _serve(db_url, certs, mtls=True)
    try:
        yield app
    finally:
        await app.stop()


async def test_python_client_over_tls_with_the_ca_given_as_an_argument(db_url: str, certs: Certs) -> None:
    app = await _serve(db_url, certs, mtls=False)
    try:
        async with spool.AsyncClient(f"127.0.0.1:{app.port}", root_certificates=certs.ca.read_bytes()) as client:
            job = await client.enqueue("tls", {"over": "tls"})
            assert (await client.get(job.id)).queue == "tls"
        with spool.Client(f"127.0.0.1:{app.port}", tls=False) as plain, pytest.raises(spool.SpoolError):
            plain.get(job.id)
    finally:
        await app.stop()


async def test_python_client_over_mtls_from_the_environment(mtls_app: App, certs: Certs) -> None:
    address = f"127.0.0.1:{mtls_app.port}"
    conn = Connection.resolve(address, env=certs.client_env())
    assert conn.tls and conn.certificate_chain is not None
    async with spool.AsyncClient(
        address,
        root_certificates=conn.root_certificates,
        certificate_chain=conn.certificate_chain,
        private_key=conn.private_key,
    ) as client:
        await client.enqueue("mtls", {"n": 1})
    without = Connection.resolve(address, env=certs.client_env(mtls=False))
    async with spool.AsyncClient(
        address, root_certificates=without.root_certificates, retry=spool.RetryPolicy(attempts=1)
    ) as client:
        with pytest.raises(spool.Unavailable):
            await client.enqueue("mtls", {"n": 2})


async def test_mtls_and_api_keys_combine(db_url: str, certs: Certs, db: asyncpg.Connection) -> None:
    app = await _serve(db_url, certs, mtls=True, auth="required")
    try:
        key = await make_key(db, ["enqueue"], ["mtls"])
        tls = {
            "root_certificates": certs.ca.read_bytes(),
            "certificate_chain": certs.client_cert.read_bytes(),
            "private_key": certs.client_key.read_bytes(),
        }
        async with spool.AsyncClient(f"127.0.0.1:{app.port}", retry=spool.RetryPolicy(attempts=1), **tls) as anonymous:
            with pytest.raises(spool.SpoolError) as caught:
                await anonymous.enqueue("mtls", {})
            assert caught.value.reason == "API_KEY_MISSING"
        async with spool.AsyncClient(f"127.0.0.1:{app.port}", token=key, **tls) as client:
            await client.enqueue("mtls", {})
    finally:
        await app.stop()


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_over_mtls(mtls_app: App, certs: Certs) -> None:
    spool_cli = str(Path(sys.executable).with_name("spool"))
    env = {"SPOOL_ADDRESS": f"127.0.0.1:{mtls_app.port}"}
    code, out, err = await _run(
        spool_cli, "-o", "json", "enqueue", "cli-tls", '{"n": 1}', env={**env, **certs.client_env()}
    )
    assert code == 0, err
    assert json.loads(out)["queue"] == "cli-tls"
    flags = ["--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
    code, out, err = await _run(spool_cli, "enqueue", "cli-tls", "{}", *flags, env=env)
    assert code == 0, err
    code, _, err = await _run(spool_cli, "enqueue", "cli-tls", "{}", "--tls-ca", str(certs.ca), env=env)
    assert code == 1 and len(err.splitlines()) == 1, err


async def test_the_node_client_over_mtls(mtls_app: App, certs: Certs, node_scripts: Path) -> None:
    script = str(node_scripts / "cli.js")
    address = f"127.0.0.1:{mtls_app.port}"
    code, out, err = await _run("node", script, "enqueue", address, "node-tls", '{"n": 1}', env=certs.client_env())
    assert code == 0, err
    assert "id" in json.loads(out.splitlines()[0])
    code, _, _ = await _run("node", script, "enqueue", address, "node-tls", "{}", env=certs.client_env(mtls=False))
    assert code != 0


async def test_the_go_client_over_mtls(mtls_app: App, certs: Certs, go_example: Path) -> None:  # noqa: F811
    address = f"127.0.0.1:{mtls_app.port}"
    code, out, err = await _run(str(go_example), address, "go-tls", env=certs.client_env())
    assert code == 0, err
    steps = {line["step"]: line for line in map(json.loads, out.splitlines())}
    assert steps["acked"]["state"] == "STATE_SUCCEEDED"
    code, _, err = await _run(str(go_example), address, "go-tls", env=certs.client_env(mtls=False))
    assert code != 0


async def test_buf_curl_over_mtls_with_a_key(db_url: str, certs: Certs, db: asyncpg.Connection) -> None:
    """docs/curl.md's TLS commands: reflection needs no key, the call needs a key and a client certificate."""
    buf = str(Path(sys.executable).with_name("buf"))
    app = await _serve(db_url, certs, mtls=True, auth="required")
    try:
        url = f"https://127.0.0.1:{app.port}"
        tls = ["--cacert", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
        code, out, err = await _run(buf, "curl", "--protocol", "grpc", *tls, "--list-methods", url, env={})
        assert code == 0, err
        assert "spool.v1.QueueService/Enqueue" in out
        key = await make_key(db, ["enqueue"], ["emails"])
        call = [buf, "curl", "--protocol", "grpc", *tls, "-d", '{"queue":"emails","payload":"e30="}']
        code, out, err = await _run(
            *call, "-H", f"Authorization: Bearer {key}", f"{url}/spool.v1.QueueService/Enqueue", env={}
        )
        assert code == 0, err
        assert json.loads(out)["job"]["queue"] == "emails"
        code, out, err = await _run(*call, f"{url}/spool.v1.QueueService/Enqueue", env={})
        assert code != 0 and "unauthenticated" in out + err
        no_cert = [buf, "curl", "--protocol", "grpc", "--cacert", str(certs.ca), "--list-methods", url]
        code, _, _ = await _run(*no_cert, env={})
        assert code != 0
    finally:
        await app.stop()


async def test_the_cli_names_a_tls_file_it_cannot_read() -> None:
    spool_cli = str(Path(sys.executable).with_name("spool"))
    code, _, err = await _run(spool_cli, "get", "1", env={"SPOOL_TLS_CA": "/nonexistent/ca.pem"})
    assert code == 2 and "SPOOL_TLS_CA" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)")
async def test_curl_over_https_on_the_http_port(db_url: str, certs: Certs, db: asyncpg.Connection) -> None:
    """The HTTP door serves TLS with the gRPC port's certificate, and mTLS with its client CA:
    the seed flow's POST with a Bearer key, from the real curl binary."""
    app = await _serve(db_url, certs, mtls=True, auth="required", http_port=free_port())
    try:
        url = f"https://127.0.0.1:{app.http_port}/v1/queues/emails/jobs"
        tls = ["--cacert", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
        key = await make_key(db, ["enqueue"], ["emails"])
        post = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"]
        body = ["-d", '{"payload": {"to": "ada@example.com"}}']
        code, out, err = await _run(*post, *tls, "-H", f"Authorization: Bearer {key}", *body, url, env={})
        assert code == 0, err
        answer, status = out.rsplit("\n", 1)
        assert status == "202" and json.loads(answer)["status"] == "PENDING"
        code, out, _ = await _run(*post, *tls, *body, url, env={})
        assert code == 0 and out.endswith("\n401")  # TLS and a client certificate, but no key
        code, _, _ = await _run(*post, "--cacert", str(certs.ca), *body, url, env={})
        assert code != 0  # no client certificate: the handshake fails
        plain = f"http://127.0.0.1:{app.http_port}/v1/queues/emails/jobs"
        code, out, _ = await _run(*post, *tls, "-H", f"Authorization: Bearer {key}", *body, plain, env={})
        assert code != 0 or not out.endswith("202")  # plain HTTP to the TLS port
        assert await db.fetchval("SELECT count(*) FROM spool.jobs") == 1
    finally:
        await app.stop()
