"""/metrics behind a bearer token, or on a listener of its own that serves nothing else."""

from __future__ import annotations

import httpx
import pytest

from provisiond.settings import Settings, load_settings
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
