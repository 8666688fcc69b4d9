"""Webhooks never carry one customer's events to another, on both backends.

The leak this reproduces (issue 20): ``claim.proven`` was stored without a group and an
ungrouped device's registration had none, and both went to every top-level group's webhook.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.claims import ClaimProof
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role, UserSpec
from provisiond.domain.webhooks import WebhookSpec
from provisiond.errors import Forbidden
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services import webhooks as service
from provisiond.services.claims import claiming, windows
from provisiond.services.outbox import Dispatcher
from provisiond.settings import load_settings
from tests.support.containers import within

OPERATOR = Scope.operator()
# Public addresses (nothing is delivered here: the tests read the queued deliveries).
ACME_URL = "https://93.184.215.14/acme"
GLOBEX_URL = "https://93.184.215.14/globex"


async def dispatch(c: Container) -> None:
    dispatcher = Dispatcher(c.uow, consumers=[service.fan_out])
    while await dispatcher.dispatch():
        pass


async def queued(c: Container, webhook_id: Any) -> list[str]:
    log = await service.list_deliveries(
        c.uow(), scope=Scope.operator(), webhook_id=webhook_id, limit=500
    )
    return sorted(d.event_type for d in log)


def test_a_claim_and_ungrouped_stock_do_not_reach_another_customer(database_url: str) -> None:
    settings = load_settings(database_url=database_url)

    async def work(c: Container) -> tuple[list[str], list[str]]:
        for path in ("Acme/Site", "Globex/Plant"):
            await directory.create_group(
                c.uow(), scope=Scope.operator(), path=path, actor="tests", now=c.now()
            )
        acme, _ = await service.create_webhook(
            c.uow(),
            guard=c.webhook_guard,
            spec=WebhookSpec(group="Acme", url=ACME_URL),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            scope=OPERATOR,
        )
        globex, _ = await service.create_webhook(
            c.uow(),
            guard=c.webhook_guard,
            spec=WebhookSpec(group="Globex", url=GLOBEX_URL),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            scope=OPERATOR,
        )
        alice = await directory.create_user(
            c.uow(),
            scope=Scope.operator(),
            spec=UserSpec(
                "alice@acme.example",
                password="correct horse battery",
                role="installer",
                group="Acme",
            ),
            actor="tests",
            now=c.now(),
        )
        # stock: registered, in no group, nobody's yet
        device, _ = await device_service.create_device(
            c.uow(), scope=Scope.operator(), spec=DeviceSpec("STOCK-1"), actor="tests", now=c.now()
        )
        policy = replace(c.claim_policy, default_proof=ClaimProof.BUTTON)
        await claiming.start_claim(
            c.uow(),
            c.limiter,
            policy,
            user=alice,
            serial="STOCK-1",
            target="group",
            address="127.0.0.1",
            now=c.now(),
        )
        assert (
            await windows.press_button(c.uow(), c.hub, device_id=device.id, now=c.now()) is not None
        )
        await dispatch(c)
        return await queued(c, acme.id), await queued(c, globex.id)

    acme, globex = within(settings, work)
    assert globex == []  # Acme's claim and the unowned stock are none of Globex's business
    assert acme == ["claim.proven", "claim.started"]  # Acme's own claim, nothing else


def test_operator_wide_webhooks_get_every_event_and_only_operators_make_them(
    database_url: str,
) -> None:
    settings = load_settings(database_url=database_url)

    async def work(c: Container) -> tuple[list[str], list[str], list[Any]]:
        await directory.create_group(
            c.uow(), scope=Scope.operator(), path="Acme/Site", actor="tests", now=c.now()
        )
        with pytest.raises(Forbidden):  # a customer's admin may not see other customers'
            await service.create_webhook(
                c.uow(),
                guard=c.webhook_guard,
                spec=WebhookSpec(group=None, url=ACME_URL),
                actor="tests",
                now=c.now(),
                sealer=c.sealer,
                scope=Scope(Role.ADMIN, "Acme"),
            )
        everything, _ = await service.create_webhook(
            c.uow(),
            guard=c.webhook_guard,
            spec=WebhookSpec(group=None, url=GLOBEX_URL),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            scope=OPERATOR,
        )
        site, _ = await service.create_webhook(
            c.uow(),
            guard=c.webhook_guard,
            spec=WebhookSpec(group="Acme/Site", url=ACME_URL),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            scope=OPERATOR,
        )
        await device_service.create_device(
            c.uow(), scope=Scope.operator(), spec=DeviceSpec("STOCK-2"), actor="tests", now=c.now()
        )
        await device_service.create_device(
            c.uow(),
            scope=Scope.operator(),
            spec=DeviceSpec("SITE-1", group="Acme/Site"),
            actor="tests",
            now=c.now(),
        )
        await device_service.delete_device(
            c.uow(), scope=Scope.operator(), serial="SITE-1", actor="tests", now=c.now()
        )
        await dispatch(c)
        hooks = await service.list_webhooks(c.uow(), scope=Scope.operator())
        return await queued(c, everything.id), await queued(c, site.id), hooks

    everything, site, hooks = within(settings, work)
    assert everything == ["device.deleted", "device.registered", "device.registered"]
    assert site == ["device.deleted", "device.registered"]
    assert [(w.group_path, w.operator_wide) for w in hooks.items] == [
        (None, True),
        ("Acme/Site", False),
    ]
