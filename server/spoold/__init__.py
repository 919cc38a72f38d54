"""spoold: the Spool job queue server."""

__version__ = "0.1.0"
