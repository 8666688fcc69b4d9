"""`provisiond webhooks redeliver`: by id or --failed [--webhook] [--since], the count of
deliveries queued (text and --json), and clear errors for a wrong call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from provisiond.bootstrap import Container
from tests.integration.cli.conftest import Cli
from tests.integration.webhooks.test_redelivery import failed_delivery, log_of
from tests.integration.webhooks.test_webhooks import intranet, org
from tests.support.containers import within
from tests.support.receiver import Receiver, receiver


@pytest.fixture
def refusing() -> Iterator[Receiver]:
    with receiver() as r:
        r.answer = lambda _n: 503
        yield r


def test_redeliver_by_id_and_every_failed_one(database_url: str, refusing: Receiver) -> None:
    cli = Cli(database_url)
    settings = intranet(database_url)

    async def work(c: Container) -> Any:
        await org(c)
        webhook, _ = await failed_delivery(c, refusing.url, "RC-1")
        second, _ = await failed_delivery(c, refusing.url + "/2", "RC-2")
        return webhook, [d.id for d in await log_of(c, webhook.id)], second

    webhook, (first_id, other_id), _ = within(settings, work)
    # the first webhook got both devices' deliveries, the second (made after RC-1) RC-2's;
    # all three gave up
    by_id = cli("webhooks", "redeliver", str(first_id))
    assert "queued 1 failed deliveries again" in by_id.stderr
    pending = cli("webhooks", "redeliver", str(first_id))
    assert f"delivery {first_id} is still pending: not queued again" in pending.stderr
    one_hook = cli("webhooks", "redeliver", "--failed", "--webhook", str(webhook.id), "--json")
    assert json.loads(one_hook.stdout) == {"queued": 1}  # the other of that webhook
    rest = cli("webhooks", "redeliver", "--failed", "--since", "1h", "--json")
    assert json.loads(rest.stdout) == {"queued": 1}  # the second webhook's
    assert json.loads(cli("webhooks", "redeliver", "--failed", "--json").stdout) == {"queued": 0}
    assert other_id != first_id


def test_wrong_calls_are_refused_clearly(database_url: str) -> None:
    cli = Cli(database_url)
    neither = cli("webhooks", "redeliver", code=2)
    assert "give a delivery id, or --failed" in neither.stderr
    cli("webhooks", "redeliver", "7", "--failed", code=2)
    cli("webhooks", "redeliver", "7", "--since", "1h", code=2)
    assert "is not a delivery id" in cli("webhooks", "redeliver", "seven", code=2).stderr
    assert "--since" in cli("webhooks", "redeliver", "--failed", "--since", "then", code=2).stderr
    missing = cli("webhooks", "redeliver", "12345", code=4)
    assert missing.stderr.startswith("error[delivery-not-found]: no delivery 12345")
