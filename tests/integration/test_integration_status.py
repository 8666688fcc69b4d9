"""The integrations' status counts each webhook's deliveries, and gives a customer's admin the
counts of their own webhooks only — the store is asked for those alone — on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, insert

from provisiond.bootstrap import Container
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import DeliveryStatus, WebhookSpec
from provisiond.services import directory, webhooks
from provisiond.services.integration_status import integration_status
from provisiond.settings import load_settings
from provisiond.store.database import sync_url
from provisiond.store.schema import webhook_deliveries
from tests.support.containers import within

OPERATOR = Scope.operator()
NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
# per webhook: (status, attempts) of each delivery
DELIVERIES = {
    "https://acme.example/h": [("pending", 0), ("pending", 2), ("failed", 5), ("delivered", 1)],
    "https://rival.example/h": [("pending", 0), ("failed", 3), ("failed", 3)],
}


async def statuses(c: Container, database_url: str) -> dict[str, dict[str, dict[str, int]]]:
    ids = {}
    for group, url in (("Acme", "https://acme.example/h"), ("Rival", "https://rival.example/h")):
        await directory.create_group(c.uow(), scope=OPERATOR, path=group, actor="t", now=NOW)
        hook, _ = await webhooks.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group=group, url=url),
            actor="t",
            now=NOW,
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        ids[url] = hook.id
    await directory.create_group(c.uow(), scope=OPERATOR, path="Empty", actor="t", now=NOW)
    rows = [
        {
            "webhook_id": ids[url],
            "event_id": n,
            "event_type": "device.registered",
            "body": {},
            "status": DeliveryStatus(status).value,
            "attempts": attempts,
            "created_at": NOW,
        }
        for url, deliveries in DELIVERIES.items()
        for n, (status, attempts) in enumerate(deliveries, 1)
    ]
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.execute(insert(webhook_deliveries), rows)
    engine.dispose()
    async with c.uow().read() as reader:  # what a customer's admin's read asks the store
        acme = ids["https://acme.example/h"]
        assert list(await reader.backlog.deliveries(of=[acme])) == [acme]
        assert await reader.backlog.deliveries(of=[]) == {}
    seen = {}
    for name, scope in (
        ("operator", OPERATOR),
        ("acme", Scope(Role.ADMIN, "Acme")),
        ("empty", Scope(Role.ADMIN, "Empty")),
    ):
        found = await integration_status(c.uow, scope=scope, now=NOW)
        seen[name] = {hook.url: counts for hook, counts in found.webhooks}
    return seen


def test_each_admin_gets_the_delivery_counts_of_their_own_webhooks(database_url: str) -> None:
    seen = within(load_settings(database_url=database_url), lambda c: statuses(c, database_url))
    acme = {"pending": 1, "retrying": 1, "failed": 1}
    rival = {"pending": 1, "retrying": 0, "failed": 2}
    assert seen["operator"] == {"https://acme.example/h": acme, "https://rival.example/h": rival}
    assert seen["acme"] == {"https://acme.example/h": acme}
    assert seen["empty"] == {}
