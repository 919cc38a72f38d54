"""deploy/: the alert rules pass promtool's own tests, and the Grafana dashboard is valid JSON; both
use only metrics that spoold exports and docs/observability.md describes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
# Names as the docs write them: histograms and counters by the family name Prometheus stores.
_SUFFIXES = re.compile(r"_(bucket|sum|count)$")


def _metrics_in(text: str) -> set[str]:
    return {_SUFFIXES.sub("", m) for m in re.findall(r"\bspool_[a-z_]*[a-z]\b", text)}


def _documented() -> str:
    return (ROOT / "docs" / "observability.md").read_text()


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run does)"
)
def test_the_alert_rules_pass_promtool() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_and_documented() -> None:
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    tests = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) >= 5
    assert [a for a in alerts if f"alertname: {a}" not in tests] == []
    assert [a for a in alerts if f"`{a}`" not in _documented()] == []
    assert [m for m in _metrics_in(rules) if f"`{m}`" not in _documented()] == []


def test_the_dashboard_is_valid_json_over_documented_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "spool.json").read_text())
    panels = dashboard["panels"]
    assert panels and len({p["id"] for p in panels}) == len(panels)
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    used = _metrics_in(exprs)
    assert {"spool_queue_jobs", "spool_job_events_total", "spool_rpc_duration_seconds"} <= used
    assert [m for m in used if f"`{m}`" not in _documented()] == []
