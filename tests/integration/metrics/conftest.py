"""Scraping a real provisiond's /metrics over HTTP, and waiting for a figure to read so."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import api, server  # noqa: F401 - the fixtures

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, log_level="warning")


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str, token: str | None = None) -> Samples:
    """The samples of ``url`` (a server's base URL; /metrics is added)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for(
    url: str, check: Callable[[Samples], bool], timeout: float = 30, token: str | None = None
) -> Samples:
    """Scrape until ``check`` holds (the background loops run at their own pace)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url, token)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            shown = {k: v for k, v in samples.items() if not k[0].startswith("provisiond_http")}
            raise AssertionError(f"the metrics never read so: {shown}")
        time.sleep(0.05)
