"""Global options anywhere on the line, derived states, one-line errors and exit codes, help."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from datetime import timedelta

import click
import pytest

import spool
from spool.cli._app import spool as root
from tests.cli.conftest import Result, Spool, ack, environment, lease, make_dead, nack, run


async def test_global_options_work_in_any_position(cli: Spool, client: spool.AsyncClient) -> None:
    await make_dead(client, "emails", 1)
    job = await client.enqueue("emails", {"n": 1})
    # The CLI's own help example, and options after the subcommand and its argument.
    assert [r["queue"] for r in (await cli("ls", "--error", "timeout", "-o", "json")).json()] == ["emails"]
    assert (await cli("get", job.id, "-o", "json")).json()["id"] == job.id
    assert (await cli("-o", "json", "get", job.id)).json()["id"] == job.id
    assert (await cli("queues", "-o", "json")).json()[0]["name"] == "emails"
    assert (await cli("queues", "show", "emails", "--output", "json")).json()["name"] == "emails"
    # --address after the subcommand wins over the environment, wherever it stands.
    env = environment(SPOOL_ADDRESS="127.0.0.1:1")
    assert (await run("get", job.id, "--address", cli.address, "-o", "json", env=env)).json()["id"] == job.id
    assert (await run("queues", "show", "emails", "-a", cli.address, env=env)).code == 0


async def test_ls_by_every_state_and_derived_status(cli: Spool, client: spool.AsyncClient) -> None:
    (dead,) = await make_dead(client, "dead", 1)
    ready = await client.enqueue("s", {})
    scheduled = await client.enqueue("s", {}, delay=timedelta(hours=1))
    cancelled = await client.enqueue("s", {})
    await client.cancel(cancelled.id)
    retrying = await client.enqueue("r", {}, max_attempts=3)
    await nack(client, await lease(client, "r"))
    running = await client.enqueue("run", {})
    await lease(client, "run")
    done = await client.enqueue("ok", {})
    await ack(client, await lease(client, "ok"))
    expected = {
        "ready": [ready.id],
        "scheduled": [scheduled.id],
        "retrying": [retrying.id],
        "running": [running.id],
        "dead": [dead],
        "succeeded": [done.id],
        "cancelled": [cancelled.id],
    }
    for state, ids in expected.items():
        got = (await cli("ls", "-s", state, "--oldest", "-o", "json")).json()
        assert [(j["id"], j["status"]) for j in got] == [(i, state) for i in ids]
    pending = (await cli("ls", "--state", "pending", "--oldest", "-o", "json")).json()
    assert [j["id"] for j in pending] == [ready.id, scheduled.id, retrying.id]
    both = (await cli("ls", "-s", "dead,retrying", "-s", "STATE_CANCELLED", "--oldest", "-o", "json")).json()
    assert [j["id"] for j in both] == [dead, cancelled.id, retrying.id]
    table = await cli("ls", "-s", "retrying")
    assert table.code == 0 and "retrying" in table.out and "Timeout: slow" in table.out


async def test_an_unknown_state_is_one_line_naming_the_valid_ones(cli: Spool) -> None:
    r = await cli("ls", "-s", "retryin")
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert "unknown state 'retryin'; valid: pending, ready, throttled, scheduled, retrying, running" in r.err


async def test_errors_are_one_line_without_the_code_twice(cli: Spool, client: spool.AsyncClient) -> None:
    r = await cli("get", "abc")
    assert (r.code, r.err) == (1, "spool: job_id: malformed: 'abc'\n")
    r = await cli("get", "999999")
    assert (r.code, r.err) == (3, "spool: job_id: job 999999 not found (JOB_NOT_FOUND)\n")
    job = await client.enqueue("q", {})
    r = await cli("requeue", job.id)
    assert r.code == 1 and r.err.count("\n") == 1 and r.err.endswith("(WRONG_STATE)\n")
    for args in (["bogus-command"], ["requeue"], ["enqueue", "q", "not json"], ["enqueue", "q", "{}", "--delay", "x"]):
        r = await cli(*args)
        assert r.code == 2 and r.err.count("\n") == 1 and r.err.startswith("spool"), (args, r.err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_server_that_is_down_is_one_clear_line_quickly() -> None:
    port = free_port()
    started = time.monotonic()
    r = await run("-a", f"127.0.0.1:{port}", "ls")
    took = time.monotonic() - started
    assert r.code == 1
    assert r.err == f"spool: cannot reach spoold at 127.0.0.1:{port}: connection refused; is it running? (make run)\n"
    # The connection is given about 2 s; the old CLI's retries took about 7 s (generous for a busy machine).
    assert took < 6, took


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((*path, name))
        if isinstance(cmd, click.Group):
            found += commands(cmd, (*path, name))
    return found


async def test_every_command_has_help_with_an_example() -> None:
    paths = [(), *commands(root)]
    assert ("queues", "delete") in paths and ("completion",) in paths
    # A few at a time: some 40 interpreters started at once can take minutes on a busy machine.
    slots = asyncio.Semaphore(4)

    async def helped(path: tuple[str, ...]) -> Result:
        async with slots:
            return await run(*path, "--help")

    results = await asyncio.gather(*(helped(p) for p in paths))
    for path in paths:  # no option name is taken twice (a command's own and a global one)
        cmd = root
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        names = [opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")]
        assert len(names) == len(set(names)), (path, sorted(n for n in names if names.count(n) > 1))
    for path, r in zip(paths, results, strict=True):
        assert r.code == 0 and re.search(r"Examples:\n +spool ", r.out), path
        assert r.err == "", (path, r.err)  # e.g. click's warning for an option name used twice
        # The global options are offered by every command.
        assert "--address" in r.out and "--output" in r.out, path
    enqueue = (await run("enqueue", "--help")).out
    assert "Higher runs first" in enqueue
    for option in ("--run-at TIME", "--header KEY=VALUE"):
        (line,) = [ln for ln in enqueue.splitlines() if option in ln]
        assert len(line.split(option, 1)[1].strip()) > 10, f"{option} has no help"


@pytest.mark.parametrize("words", [["ls", "--st"], ["ls", "-s", "ret"], ["queues", "de"]])
async def test_shell_completion(words: list[str]) -> None:
    env = environment(
        _SPOOL_COMPLETE="bash_complete", COMP_WORDS=" ".join(["spool", *words]), COMP_CWORD=str(len(words))
    )
    r = await run(env=env)
    expected = {"--st": "--state", "ret": "retrying", "de": "delete"}[words[-1]]
    assert f"plain,{expected}" in r.out.splitlines(), r.out


async def test_completion_scripts_and_queue_names(cli: Spool, client: spool.AsyncClient) -> None:
    script = (await run("completion", "bash")).out
    assert "_SPOOL_COMPLETE=bash_complete" in script
    await client.enqueue("emails", {})
    env = cli.env(_SPOOL_COMPLETE="bash_complete", COMP_WORDS="spool pause em", COMP_CWORD="2")
    assert "plain,emails" in (await run(env=env)).out.splitlines()
