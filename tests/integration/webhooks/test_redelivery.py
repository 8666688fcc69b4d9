"""Redelivering failed webhook deliveries, on both backends: a delivery that gave up goes out
again to the real receiver (on loopback), signed; one by id, or every failed one of a webhook
or of the caller's subtree since a time; never a duplicate of one still pending; scoped to the
caller's subtree (another customer's admin cannot); one transaction with its audit event."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import DeliveryStatus, WebhookSpec, verify
from provisiond.errors import DeliveryDelivered, DeliveryNotFound, Forbidden, WebhookNotFound
from provisiond.services import devices as device_service
from provisiond.services import events as event_service
from provisiond.services import webhooks as service
from provisiond.services.webhook_redelivery import redeliver_delivery, redeliver_failed
from provisiond.services.webhooks import WebhookPolicy
from tests.integration.webhooks.test_webhooks import deliver, dispatch, intranet, org
from tests.support.containers import within
from tests.support.receiver import Receiver, receiver

OPERATOR = Scope.operator()
WEST_ADMIN = Scope(Role.ADMIN, "Org/West")
EAST_ADMIN = Scope(Role.ADMIN, "Org/East")  # another customer's admin: the attacker
GIVE_UP = WebhookPolicy(max_attempts=2)


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    """Answers 500 until told otherwise."""
    with receiver() as r:
        r.answer = lambda _n: 500
        yield r


async def later(c: Container, minutes: int) -> None:
    moment = c.now() + timedelta(minutes=minutes)
    c.clock = lambda: moment


async def failed_delivery(c: Container, url: str, serial: str = "RD-1") -> tuple[Any, str]:
    """A webhook of Org/West and one delivery of it that gave up (two attempts, 500 each)."""
    webhook, secret = await service.create_webhook(
        c.uow(),
        scope=OPERATOR,
        spec=WebhookSpec(group="Org/West", url=url, events=["device.registered"]),
        actor="tests",
        now=c.now(),
        sealer=c.sealer,
        guard=c.webhook_guard,
    )
    await register(c, serial)
    for _ in range(GIVE_UP.max_attempts):  # (a receiver answering 200 takes the first)
        await deliver(c, GIVE_UP)
        await later(c, 60)
    return webhook, secret


async def register(c: Container, serial: str) -> None:
    await device_service.create_device(
        c.uow(),
        scope=OPERATOR,
        spec=DeviceSpec(serial, group="Org/West/Anaheim"),
        actor="tests",
        now=c.now(),
    )
    await dispatch(c)


async def log_of(c: Container, webhook_id: Any) -> list[Any]:
    return await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=webhook_id)


def test_a_delivery_that_gave_up_goes_out_again(database_url: str, flaky: Receiver) -> None:
    settings = intranet(database_url)

    async def work(c: Container) -> Any:
        await org(c)
        webhook, secret = await failed_delivery(c, flaky.url)
        (gave_up,) = await log_of(c, webhook.id)
        assert (gave_up.status, gave_up.attempts) == (DeliveryStatus.FAILED, 2)
        assert await deliver(c, GIVE_UP) == 0  # nothing left to try
        flaky.answer = lambda _n: 200
        queued = await redeliver_delivery(
            c.uow(), scope=WEST_ADMIN, delivery_id=gave_up.id, actor="tests", now=c.now()
        )
        # asked again while it is pending: not queued twice
        again = await redeliver_delivery(
            c.uow(), scope=WEST_ADMIN, delivery_id=gave_up.id, actor="tests", now=c.now()
        )
        attempted = await deliver(c, GIVE_UP)
        (after,) = await log_of(c, webhook.id)
        audit = await event_service.list_events(
            c.uow(), scope=WEST_ADMIN, kinds=["webhook.redelivered"]
        )
        return secret, gave_up, queued, again, attempted, after, audit.items

    secret, gave_up, queued, again, attempted, after, audit = within(settings, work)
    assert (queued, again, attempted) == (1, 0, 1)
    requests = flaky.wait_for(3)
    assert len(requests) == 3
    first, resent = requests[0], requests[2]
    assert resent.body == first.body
    assert resent.headers["x-provisiond-delivery"] == str(gave_up.id)
    assert verify(
        secret, resent.headers["x-provisiond-signature"], resent.body, now=int(time.time())
    )
    assert (after.id, after.status, after.last_status_code) == (
        gave_up.id,
        DeliveryStatus.DELIVERED,
        200,
    )
    (event,) = audit
    assert event.actor == "tests"
    assert event.group_path == "Org/West"
    assert event.data["delivery_id"] == gave_up.id
    assert event.data["queued"] == 1


def test_every_failed_one_since_a_time(database_url: str, flaky: Receiver) -> None:
    settings = intranet(database_url)

    async def work(c: Container) -> Any:
        await org(c)
        webhook, _ = await failed_delivery(c, flaky.url, "RD-OLD")
        cut = c.now()
        await later(c, 60)
        await register(c, "RD-NEW")
        for _ in range(GIVE_UP.max_attempts):
            await deliver(c, GIVE_UP)
            await later(c, 60)
        statuses = [d.status for d in await log_of(c, webhook.id)]
        assert statuses == [DeliveryStatus.FAILED, DeliveryStatus.FAILED]
        since = await redeliver_failed(
            c.uow(), scope=WEST_ADMIN, webhook_id=webhook.id, since=cut, actor="t", now=c.now()
        )
        pending_once = await redeliver_failed(
            c.uow(), scope=WEST_ADMIN, webhook_id=webhook.id, since=cut, actor="t", now=c.now()
        )
        everything = await redeliver_failed(
            c.uow(), scope=OPERATOR, webhook_id=None, since=None, actor="t", now=c.now()
        )
        return since, pending_once, everything, [d.status for d in await log_of(c, webhook.id)]

    since, pending_once, everything, statuses = within(settings, work)
    assert (since, pending_once, everything) == (1, 0, 1)  # the newer one, then the older
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.PENDING]


def test_another_customers_admin_cannot_redeliver(database_url: str, flaky: Receiver) -> None:
    settings = intranet(database_url)

    async def work(c: Container) -> Any:
        await org(c)
        webhook, _ = await failed_delivery(c, flaky.url)
        (gave_up,) = await log_of(c, webhook.id)
        with pytest.raises(DeliveryNotFound) as by_id:
            await redeliver_delivery(
                c.uow(), scope=EAST_ADMIN, delivery_id=gave_up.id, actor="e", now=c.now()
            )
        with pytest.raises(DeliveryNotFound) as missing:
            await redeliver_delivery(
                c.uow(), scope=EAST_ADMIN, delivery_id=gave_up.id + 1000, actor="e", now=c.now()
            )
        with pytest.raises(WebhookNotFound):
            await redeliver_failed(
                c.uow(), scope=EAST_ADMIN, webhook_id=webhook.id, since=None, actor="e", now=c.now()
            )
        in_scope = await redeliver_failed(
            c.uow(), scope=EAST_ADMIN, webhook_id=None, since=None, actor="e", now=c.now()
        )
        with pytest.raises(Forbidden):
            await redeliver_delivery(
                c.uow(),
                scope=Scope(Role.VIEWER, "Org/West"),
                delivery_id=gave_up.id,
                actor="v",
                now=c.now(),
            )
        (after,) = await log_of(c, webhook.id)
        audit = await event_service.list_events(
            c.uow(), scope=OPERATOR, kinds=["webhook.redelivered"]
        )
        return by_id.value, missing.value, in_scope, after, audit.items

    by_id, missing, in_scope, after, audit = within(settings, work)
    assert str(by_id).split()[:2] == str(missing).split()[:2] == ["no", "delivery"]
    assert in_scope == 0
    assert after.status is DeliveryStatus.FAILED
    assert audit == []


def test_a_delivered_one_is_not_resent(database_url: str, flaky: Receiver) -> None:
    settings = intranet(database_url)
    flaky.answer = lambda _n: 200

    async def work(c: Container) -> Any:
        await org(c)
        webhook, _ = await failed_delivery(c, flaky.url)  # delivered at the first attempt
        (done,) = await log_of(c, webhook.id)
        assert done.status is DeliveryStatus.DELIVERED
        with pytest.raises(DeliveryDelivered):
            await redeliver_delivery(
                c.uow(), scope=OPERATOR, delivery_id=done.id, actor="t", now=c.now()
            )

    within(settings, work)
