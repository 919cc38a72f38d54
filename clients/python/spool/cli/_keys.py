"""The API key commands: keys create, keys ls, keys revoke (an admin key's work)."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.table import Table
from rich.text import Text

from spool.cli._base import OK, Cli, SpoolGroup, examples, pass_cli
from spool.cli._options import Duration
from spool.cli._text import clean, when
from spool.v1 import admin_service_pb2 as adm


def _split(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    """`--scope work,enqueue --scope read` as one list."""
    return [part.strip() for v in value for part in v.split(",") if part.strip()]


@click.group(
    "keys",
    short_help="API keys: create, ls, revoke.",
    cls=SpoolGroup,
    epilog=examples(
        "spool keys create --name mailer --scope enqueue,work --queues emails --expires 30d",
        "spool keys ls --all",
        "spool keys revoke 3c5yqmrph4k0",
    ),
)
def keys() -> None:
    """API keys, sent as 'authorization: Bearer <key>'; these commands need an admin key
    (the first one comes from `spoold keys create`)."""


@keys.command(
    "create",
    short_help="Make a key; prints it alone on the last line (shown only once).",
    epilog=examples(
        "spool keys create --name ops --scope admin",
        "KEY=$(spool keys create --name mailer --scope work --queues 'emails,emails-*' | tail -1)",
    ),
)
@click.option("--name", required=True, help="For people: who or what uses the key.")
@click.option("--scope", "scopes", required=True, multiple=True, callback=_split, help="enqueue, work, read, admin.")
@click.option("--queues", multiple=True, callback=_split, help="Queue patterns, e.g. emails,reports-* (not for admin).")
@click.option("--expires", type=Duration(), metavar="DURATION", help="Lifetime, e.g. 30d (default: never).")
@pass_cli
def create(cli: Cli, /, name: str, scopes: list[str], queues: list[str], expires: timedelta | None) -> int:
    """Make an API key with these scopes, on these queues. The key is printed alone on the last line
    of stdout, and never shown again: only a hash of it is kept."""
    key, text = cli.client.create_api_key(name, scopes, queues, expires_in=expires)
    if cli.out.json:
        cli.out.data(adm.CreateApiKeyResponse(api_key=key, key=text))
        return OK
    cli.out.note(f"created API key {key.id} ({key.name}): scopes {','.join(key.scopes)}, queues {','.join(key.queues)}")
    cli.out.note("send it as 'authorization: Bearer <key>'; it is shown only this once:")
    click.echo(text)
    return OK


def _rows(found: list[adm.ApiKey]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for h in ("ID", "NAME", "SCOPES", "QUEUES", "CREATED", "EXPIRES", "LAST USED", "REVOKED"):
        table.add_column(h, no_wrap=True, overflow="ellipsis")
    for k in found:
        cells = (k.id, k.name, ",".join(k.scopes), ",".join(k.queues))
        times = (when(k.created_at), when(k.expires_at), when(k.last_used_at), when(k.revoked_at))
        table.add_row(*(Text(clean(c, width=60)) for c in (*cells, *times)))
    return table


@keys.command(
    "ls", short_help="List keys (never their secrets).", epilog=examples("spool keys ls", "spool keys ls --all")
)
@click.option("--all", "include_revoked", is_flag=True, help="Revoked keys too.")
@pass_cli
def ls(cli: Cli, /, include_revoked: bool) -> int:
    """API keys, oldest first: scopes, queues, and when each was last used (updated about once a minute)."""
    found = cli.client.api_keys(include_revoked=include_revoked)
    cli.out.emit(_rows(found) if found else "no API keys", found)
    return OK


@keys.command("revoke", short_help="Revoke a key by id.", epilog=examples("spool keys revoke 3c5yqmrph4k0"))
@click.argument("key_id", metavar="ID")
@pass_cli
def revoke(cli: Cli, /, key_id: str) -> int:
    """Revoke the key with this id: every server refuses it within seconds. Revoking it again changes nothing."""
    key = cli.client.revoke_api_key(key_id)
    cli.out.emit(f"revoked API key {clean(key.id)} ({clean(key.name, width=60)})", key)
    return OK


COMMANDS = (keys,)
