"""The `spool` command: its groups and commands, and how failures become one line and an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
from click.shell_completion import get_completion_class

from spool.cli import _bulk, _jobs, _keys, _observe, _pipelines, _queues, _schedules
from spool.cli._base import CONTEXT, ERROR, NOT_FOUND, OK, USAGE, Cli, SpoolGroup, command, pass_cli
from spool.cli._connect import Unreachable, describe
from spool.cli._text import clean
from spool.errors import NotFound, SpoolError

HELP = """The command line for a Spool server (over gRPC, so it works against any replica).

\b
Global options (--address, --token, --token-file, --insecure, --tls, --tls-ca, --tls-cert,
--tls-key, --output) go anywhere on the line. Environment: SPOOL_ADDRESS (default
127.0.0.1:50051), SPOOL_TOKEN, SPOOL_TOKEN_FILE, SPOOL_INSECURE=1, SPOOL_TLS=1, SPOOL_TLS_CA,
SPOOL_TLS_CERT, SPOOL_TLS_KEY, NO_COLOR.
Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 (watch, pipeline watch) the job ended DEAD or
CANCELLED, the pipeline FAILED or CANCELLED.
"""


@click.group(
    "spool",
    cls=SpoolGroup,
    help=HELP,
    context_settings=CONTEXT,
    epilog=(
        "\b\nExamples:\n"
        '  spool enqueue emails \'{"to": "ada@example.com"}\' --max-attempts 5\n'
        "  spool get 42                       the job, with its attempts as a timeline\n"
        "  spool watch 42                     live until the job finishes\n"
        "  spool ls -s retrying -o json       any state or status, as JSON for jq\n"
        "  spool dead --queue emails          the dead-letter list\n"
        "  spool requeue --queue emails --state dead --error timeout\n"
        "  spool queues                       jobs by status, per queue\n"
        "  spool schedules                    schedules, their next and last fires\n"
        "  spool pipeline ls -s failed        pipelines by state; pipeline watch ID to follow one\n"
        "  spool tail -q emails               job events as they happen\n"
        "  spool COMMAND --help               each command's options and examples"
    ),
)
def spool() -> None:
    pass


@command(
    "completion",
    short_help="Print a shell completion script.",
    example=(
        "spool completion bash > ~/.local/share/bash-completion/completions/spool",
        'spool completion zsh > "${fpath[1]}/_spool"',
        "spool completion fish > ~/.config/fish/completions/spool.fish",
    ),
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@pass_cli
def completion(cli: Cli, shell: str) -> int:
    """Print the shell completion script for SHELL (commands, options, states, queue names)."""
    complete = get_completion_class(shell)
    assert complete is not None  # the three choices are click's own
    sys.stdout.write(complete(spool, {}, "spool", "_SPOOL_COMPLETE").source() + "\n")
    return OK


for cmd in (
    *_jobs.COMMANDS,
    *_observe.COMMANDS,
    *_queues.COMMANDS,
    *_schedules.COMMANDS,
    *_pipelines.COMMANDS,
    *_keys.COMMANDS,
    *_bulk.COMMANDS,
    completion,
):
    spool.add_command(cmd)


def run(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code. Every failure is one line on stderr."""
    cli = Cli()
    try:
        code = spool.main(
            args=list(argv) if argv is not None else None, prog_name="spool", standalone_mode=False, obj=cli
        )
        return code if isinstance(code, int) else OK
    except click.UsageError as err:
        where = err.ctx.command_path if err.ctx else "spool"
        _fail(f"{where}: {err.format_message()} (see {where} --help)")
        return USAGE
    except click.ClickException as err:
        _fail(f"spool: {err.format_message()}")
        return err.exit_code
    except click.Abort:
        return 130
    except Unreachable as err:
        _fail(f"spool: {err}")
        return ERROR
    except SpoolError as err:
        _fail(f"spool: {describe(err, cli.address)}")
        return NOT_FOUND if isinstance(err, NotFound) else ERROR
    except BrokenPipeError:  # `spool ls | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    finally:
        cli.close()


def _fail(line: str) -> None:
    print(clean(line, width=2000), file=sys.stderr)
