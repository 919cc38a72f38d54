"""spoold with faults injected by a server interceptor (tests/grpc_faults.py), for the Node tests.
It takes spoold's arguments and environment, and also:

    SPOOL_TEST_FAULTS="AckBatch:after:INTERNAL,Ack:before:UNAVAILABLE"   calls to fail, in order
    SPOOL_TEST_CLOCK_SKEW=3600   Lease answers' timestamps shifted, as by a server clock that is off
"""

from __future__ import annotations

import functools
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import spoold.__main__ as spoold_main
from spoold.app import App
from tests.grpc_faults import FaultInjector

if __name__ == "__main__":
    skew = timedelta(seconds=float(os.environ.get("SPOOL_TEST_CLOCK_SKEW", "0")))
    injector = FaultInjector.parse(os.environ.get("SPOOL_TEST_FAULTS", ""), skew)
    spoold_main.App = functools.partial(App, interceptors=(injector,))  # type: ignore[misc]
    spoold_main.main()
