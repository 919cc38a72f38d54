"""Spool benchmarks: Spool through gRPC beside the database's own ceiling, measured in one run.

`python -m bench` (or `make bench`) runs them all; `python -m bench.<name>` runs one. See README.md.
"""
