"""What a Worker says by default. Spool logs to the "spool" logger (the Worker to "spool.worker");
an application that configures logging decides where it goes. Worker.run(), the entry point of a
worker program, prints spool's INFO lines to stderr when nothing is configured, so that a new
worker says that it started and what failed; Worker.serve(), used inside applications, never does."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_logging() -> None:
    """A stderr handler at INFO on the "spool" logger, unless the application configured logging."""
    spool = logging.getLogger("spool")
    if logging.getLogger().handlers or spool.handlers or spool.level != logging.NOTSET:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    spool.addHandler(handler)
    spool.setLevel(logging.INFO)
