"""Where a command's output goes: rich for people (colour only on a terminal, and never under
NO_COLOR), JSON for scripts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.message import Message
from rich.console import Console, RenderableType
from rich.text import Text

from spool.cli import _json
from spool.cli._text import clean


def _console(file: TextIO) -> Console:
    # Off a terminal, lines are as long as their content: a pipe or a file gets every column whole.
    width = None if file.isatty() else 100_000
    return Console(file=file, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False)


class Output:
    def __init__(self, json: bool) -> None:
        self.json = json
        self.console = _console(sys.stdout)
        self.errors = _console(sys.stderr)

    def show(self, renderable: RenderableType) -> None:
        """Human output on stdout."""
        if self.console.is_terminal:
            self.console.print(renderable)
            return
        # Tables pad their last column; a pipe gets the lines without the padding.
        with self.console.capture() as captured:
            self.console.print(renderable)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    def data(self, value: Message | Sequence[Message] | dict[str, Any], *, indent: int | None = 2) -> None:
        """JSON on stdout."""
        sys.stdout.write(_json.dumps(value, indent=indent) + "\n")
        sys.stdout.flush()

    def emit(self, human: RenderableType, value: Message | Sequence[Message] | dict[str, Any]) -> None:
        """The human form, or with -o json the value as JSON."""
        if self.json:
            self.data(value)
        else:
            self.show(human)

    def note(self, text: str, style: str = "") -> None:
        """A line for the person at the terminal (stderr), whatever the output format."""
        self.errors.print(Text(clean(text, width=2000), style=style))
