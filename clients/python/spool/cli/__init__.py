"""`spool`: the command line for a Spool server. It needs the `cli` extra (click and rich):
pip install 'spool-client[cli]'. Importing `spool` never imports it."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from spool.cli._app import run
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("click", "rich"):
            raise
        print("spool: the command line needs the cli extra: pip install 'spool-client[cli]'", file=sys.stderr)
        return 1
    return run(argv)


__all__ = ["main"]
