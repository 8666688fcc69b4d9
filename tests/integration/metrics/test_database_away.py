"""PostgreSQL goes away under a running `provisiond serve`: /metrics still answers, says it
could not read what waits (provisiond_backlog_up 0), and counts the provision requests it
could not answer (outcome ERROR); when the database returns, so do the figures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.integration.metrics.conftest import scrape, value, wait_for
from tests.support.postgres import Cluster, throwaway_cluster
from tests.support.processes import Instance
from tests.support.processes import provisiond as run_cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # a fault


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as started:
        if started is None:
            pytest.skip("no PostgreSQL binaries (initdb) to start a cluster of our own")
        yield started


def test_metrics_answer_through_an_outage_and_say_so(cluster: Cluster) -> None:
    url = cluster.url.rpartition("/")[0] + "/provisiond"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE provisiond")
    assert run_cli(url, "db", "upgrade").returncode == 0
    instance = Instance(url)
    try:
        body = {"provisionDeviceKey": "no-such-key", "provisionDeviceSecret": "x"}
        assert httpx.post(instance.url + "/api/v1/provision", json=body).status_code == 200
        samples = scrape(instance.url)
        assert value(samples, "provisiond_backlog_up") == 1
        assert value(samples, "provisiond_outbox_entries") == 0

        cluster.stop()
        refused = httpx.post(instance.url + "/api/v1/provision", json=body, timeout=30)
        assert refused.status_code == 503
        started = time.monotonic()
        samples = scrape(instance.url)
        assert time.monotonic() - started < 10  # no hanging on the database
        assert value(samples, "provisiond_backlog_up") == 0
        assert value(samples, "provisiond_outbox_entries") is None  # not made up
        answered = {
            o: value(samples, "provisiond_provisioning_answers_total", transport="http", outcome=o)
            for o in ("NOT_FOUND", "ERROR")
        }
        assert answered == {"NOT_FOUND": 1, "ERROR": 1}

        cluster.start()
        samples = wait_for(
            instance.url, lambda s: value(s, "provisiond_backlog_up") == 1, timeout=60
        )
        assert value(samples, "provisiond_outbox_entries") == 0
    finally:
        instance.stop()
