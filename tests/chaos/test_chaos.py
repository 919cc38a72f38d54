"""The chaos suite's short form (5,000 jobs, one cycle of faults) as a test: `make chaos`.

It runs only when SPOOL_CHAOS=1 (as `make chaos` sets it): it takes minutes, its own PostgreSQL and
four worker processes. The long form is `make chaos-long` (python -m tests.chaos --long)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.run import SHORT, run

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("SPOOL_CHAOS") != "1", reason="the chaos suite runs with `make chaos`"),
]


async def test_chaos_short_form_keeps_every_job_and_answers_no_internal(tmp_path: Path) -> None:
    verdict = await run(SHORT, tmp_path)
    print(verdict.report)
    assert not verdict.failures, verdict.report
