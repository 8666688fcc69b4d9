"""/metrics behind a bearer token, or on a listener of its own that serves nothing else."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from provisiond.services.metrics import Backlog
from provisiond.settings import Settings, load_settings
from provisiond.store.uow import UnitOfWork
from provisiond.web import observability
from tests.integration.metrics.conftest import scrape, value
from tests.integration.web.conftest import Server, free_port

TOKEN = "metrics-token-0123456789abcdef"


class TestToken:
    @pytest.fixture
    def server_settings(self, database_url: str) -> Settings:
        return load_settings(database_url=database_url, log_level="warning", metrics__token=TOKEN)

    def test_only_the_token_reads_the_metrics(self, server: Server) -> None:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789abcdef"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": server.token and f"Bearer {server.token}"},  # an operator's
        ):
            r = httpx.get(server.url + "/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "provisiond_" not in r.text
        samples = scrape(server.url, TOKEN)
        assert value(samples, "provisiond_backlog_up") == 1
        assert value(samples, "provisiond_outbox_entries") == 0


class TestOwnPort:
    @pytest.fixture
    def server_settings(self, database_url: str) -> Settings:
        return load_settings(
            database_url=database_url,
            log_level="warning",
            metrics__port=free_port(),
            metrics__token=TOKEN,
        )

    def test_metrics_are_served_on_their_port_only(self, server: Server) -> None:
        port = server.settings.metrics.port
        assert server.app.state.metrics_port == port
        main = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert main.status_code == 404
        own = f"http://127.0.0.1:{port}"
        assert httpx.get(own + "/metrics").status_code == 401
        samples = scrape(own, TOKEN)
        assert value(samples, "provisiond_backlog_up") == 1
        for path in ("/healthz", "/api/v1/devices", "/"):  # nothing else there
            r = httpx.get(own + path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 404, path
        assert httpx.get(server.url + "/healthz").status_code == 200


SCRAPERS = 20


def test_a_flood_of_scrapes_reads_the_database_once_at_a_time(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a token anyone may ask /metrics, and each answer reads the database: scrapes
    that arrive during a read share it. The read is held until every scrape has arrived."""
    metrics = server.app.state.metrics
    arrived = threading.Condition()
    scrapes: list[int] = []
    reads: list[datetime] = []
    release = threading.Event()
    real_scrape, read_backlog = metrics.scrape, observability.read_backlog

    async def counted_scrape(container: Any) -> bytes:
        with arrived:
            scrapes.append(1)
            arrived.notify_all()
        return bytes(await real_scrape(container))

    async def held_read(uow: UnitOfWork, now: datetime) -> Backlog:
        reads.append(now)
        await asyncio.to_thread(release.wait, 60)
        return await read_backlog(uow, now)

    monkeypatch.setattr(metrics, "scrape", counted_scrape)
    monkeypatch.setattr(observability, "read_backlog", held_read)
    with ThreadPoolExecutor(SCRAPERS) as pool:
        answers = [
            pool.submit(httpx.get, server.url + "/metrics", timeout=60) for _ in range(SCRAPERS)
        ]
        with arrived:
            assert arrived.wait_for(lambda: len(scrapes) == SCRAPERS, timeout=60)
        release.set()
        bodies = [a.result() for a in answers]
    assert [b.status_code for b in bodies] == [200] * SCRAPERS
    assert all("provisiond_backlog_up 1.0" in b.text for b in bodies)
    assert len(reads) == 1
    assert value(scrape(server.url), "provisiond_backlog_up") == 1  # the next one reads again
    assert len(reads) == 2
