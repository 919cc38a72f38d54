"""What every command shares: the global options (address, token, TLS, output), accepted anywhere
on the line; the connection; the output; and command groups that pass all of it on.

A new command group is a SpoolGroup: its commands, and the group itself, take the global options.
A new global option is one more entry in GLOBAL_OPTIONS and one more field of Globals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from spool._config import resolve_address
from spool.cli._connect import Globals, connect
from spool.cli._output import Output
from spool.client import Client

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes, documented in `spool --help` and docs/cli.md.
OK, ERROR, USAGE, NOT_FOUND, JOB_FAILED = 0, 1, 2, 3, 4

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Cli:
    """The root context's object: global options, and the client and output made from them on first use."""

    def __init__(self) -> None:
        self.options = Globals()
        self._client: Client | None = None
        self._out: Output | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.options)
        return self._client

    @property
    def address(self) -> str:
        if self._client is not None:
            return self._client.connection.address
        return resolve_address(self.options.address)

    @property
    def out(self) -> Output:
        if self._out is None:
            self._out = Output(self.options.json)
        return self._out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_cli = click.make_pass_decorator(Cli, ensure=True)


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Stores a global option given anywhere on the line; the last one given wins."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            setattr(ctx.find_root().ensure_object(Cli).options, name, value)
        return value

    return callback


GLOBAL_OPTIONS: list[Callable[[], click.Option]] = [
    lambda: click.Option(
        ["--address", "-a"],
        metavar="HOST:PORT",
        expose_value=False,
        callback=_remember("address"),
        help="spoold's gRPC address (default $SPOOL_ADDRESS, else 127.0.0.1:50051).",
    ),
    lambda: click.Option(
        ["--token"],
        expose_value=False,
        callback=_remember("token"),
        help="Sent as 'authorization: Bearer TOKEN' (default $SPOOL_TOKEN). Other users of the machine "
        "see it in `ps`: prefer $SPOOL_TOKEN or --token-file.",
    ),
    lambda: click.Option(
        ["--token-file"],
        metavar="FILE",
        expose_value=False,
        callback=_remember("token_file"),
        help="Read the token from FILE (default $SPOOL_TOKEN_FILE).",
    ),
    lambda: click.Option(
        ["--insecure"],
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_remember("insecure"),
        help="Send the token without TLS to a host off this machine (default $SPOOL_INSECURE); refused otherwise.",
    ),
    lambda: click.Option(
        ["--tls/--no-tls"],
        default=None,
        expose_value=False,
        callback=_remember("tls"),
        help="Connect with TLS (default $SPOOL_TLS, else no).",
    ),
    lambda: click.Option(
        ["--tls-ca"],
        metavar="PEM",
        expose_value=False,
        callback=_remember("tls_ca"),
        help="The CA bundle that signed spoold's certificate; implies --tls (default $SPOOL_TLS_CA).",
    ),
    lambda: click.Option(
        ["--tls-cert"],
        metavar="PEM",
        expose_value=False,
        callback=_remember("tls_cert"),
        help="A client certificate, for mTLS, with --tls-key (default $SPOOL_TLS_CERT).",
    ),
    lambda: click.Option(
        ["--tls-key"],
        metavar="PEM",
        expose_value=False,
        callback=_remember("tls_key"),
        help="The client certificate's private key (default $SPOOL_TLS_KEY).",
    ),
    lambda: click.Option(
        ["--output", "-o"],
        type=click.Choice(["table", "json"]),
        expose_value=False,
        callback=_remember("output"),
        help="table (for people, the default) or json (for scripts and jq).",
    ),
]


def add_global_options(command: click.Command) -> None:
    taken = {p.name for p in command.params}
    for make in GLOBAL_OPTIONS:
        option = make()
        if option.name not in taken:
            command.params.append(option)


class SpoolGroup(click.Group):
    """A group whose commands and subgroups (SpoolGroups too) take the global options anywhere."""

    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        add_global_options(self)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        add_global_options(cmd)
        super().add_command(cmd, name)


def examples(*lines: str) -> str:
    """A command's epilog: its examples, kept as written (click rewraps other paragraphs)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def command(name: str, *, example: tuple[str, ...], **kwargs: Any) -> Callable[[F], click.Command]:
    """A command with its examples in --help; the global options come when a SpoolGroup adds it."""
    return click.command(name, epilog=examples(*example), context_settings=CONTEXT, **kwargs)
