"""Spool: a durable job queue over gRPC. `spool.v1` holds the generated API."""

__version__ = "0.1.0"
