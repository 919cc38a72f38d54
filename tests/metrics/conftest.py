"""A spoold with its HTTP port, and reading its /metrics as Prometheus would."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spoold.app import App
from spoold.config import Settings
from tests.http.conftest import http_settings

Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def settings() -> Settings:
    return http_settings()


class Scrape:
    """One scrape: each sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Sample, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when absent (a counter not yet incremented)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over the samples of `name` whose labels include these."""
        return sum(v for (n, ls), v in self.samples.items() if n == name and set(labels.items()) <= set(ls))

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


async def scrape(app: App, headers: Mapping[str, str] | None = None) -> Scrape:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{app.http_port}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return Scrape(answer.text)
