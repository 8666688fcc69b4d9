"""Webhooks end to end, on both backends: events fan out to the right groups' webhooks, are
POSTed signed to a real HTTP receiver on loopback, retried with backoff, logged, and the
webhook is disabled after failures in a row; nothing is lost across a restart."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.domain.webhooks import WebhookSpec, verify
from provisiond.integrations.webhooks.sender import HttpSender
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services import webhooks as service
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.outbox import Dispatcher
from provisiond.services.registration import ImportOptions, register_devices
from provisiond.services.webhooks import WebhookDeliverer, WebhookPolicy
from provisiond.settings import Settings, load_settings
from tests.support.containers import NullSink, within
from tests.support.mosquitto import free_port
from tests.support.receiver import Receiver, receiver

OPERATOR = Scope.operator()

T = TypeVar("T")
OPERATOR = Scope.operator()


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def dispatch(c: Container) -> None:
    dispatcher = Dispatcher(c.uow, consumers=[service.fan_out])
    while await dispatcher.dispatch():
        pass


def intranet(database_url: str) -> Settings:
    """The receiver is on loopback: an intranet receiver, allowed by the allow-list (which
    these tests thereby prove works)."""
    return load_settings(database_url=database_url, webhooks__allow_networks=["127.0.0.0/8"])


async def deliver(c: Container, policy: WebhookPolicy | None = None) -> int:
    sender = HttpSender(5, guard=c.webhook_guard)
    try:
        deliverer = WebhookDeliverer(c.uow, sender, c.sealer, policy or WebhookPolicy(), c.now)
        return await deliverer.deliver()
    finally:
        await sender.close()


async def org(c: Container) -> None:
    for path in ("Org/West/Anaheim", "Org/East"):
        await directory.create_group(c.uow(), scope=OPERATOR, path=path, actor="tests", now=c.now())


def test_events_reach_the_groups_webhooks_signed(
    database_url: str, hook_receiver: Receiver
) -> None:
    settings = intranet(database_url)

    async def work(c: Container) -> Any:
        await org(c)
        west, secret = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org/West", url=hook_receiver.url),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        only_claims, _ = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(
                group="Org", url=hook_receiver.url + "/claims", events=["device.claimed"]
            ),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        device, _ = await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-1", group="Org/West/Anaheim"),
            actor="tests",
            now=c.now(),
        )
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-2", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        attempted = await deliver(c)
        log = await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=west.id)
        return west, secret, only_claims, device, attempted, log

    _, secret, _, device, attempted, log = within(settings, work)
    assert attempted == 1  # East's device is not West's; nothing was claimed
    (request,) = hook_receiver.wait_for(1)
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-provisiond-event"] == "device.registered"
    assert verify(
        secret, request.headers["x-provisiond-signature"], request.body, now=int(time.time())
    )
    assert not verify(
        "whsec_wrong", request.headers["x-provisiond-signature"], request.body, now=int(time.time())
    )
    assert not verify(
        secret, request.headers["x-provisiond-signature"], request.body + b" ", now=int(time.time())
    )
    body = json.loads(request.body)
    assert body["type"] == "device.registered"
    assert body["device"] == {"id": str(device.id), "serial": "WH-1"}
    assert body["group"] == "Org/West/Anaheim"
    assert body["actor"] == "tests"
    (delivery,) = log
    assert request.headers["x-provisiond-delivery"] == str(delivery.id)
    assert (delivery.status.value, delivery.attempts, delivery.last_status_code) == (
        "delivered",
        1,
        200,
    )
    assert delivery.event_id == body["event_id"]


def test_failures_are_retried_with_backoff_then_given_up(
    database_url: str, hook_receiver: Receiver
) -> None:
    settings = intranet(database_url)
    hook_receiver.answer = lambda n: 500 if n in (0, 2, 3, 4) else 200
    start = datetime.now().astimezone()
    clock = {"now": start}
    policy = WebhookPolicy(max_attempts=3, disable_after=100)

    async def work(c: Container) -> Any:
        c.clock = lambda: clock["now"]
        await org(c)
        hook, _ = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org", url=hook_receiver.url, events=["device.registered"]),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-R1", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        steps = [await deliver(c, policy)]  # 500
        (first,) = await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        steps.append(await deliver(c, policy))  # not due yet: nothing
        clock["now"] = start + timedelta(seconds=1)
        steps.append(await deliver(c, policy))  # 200
        (second,) = await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        # a second event meets three 500s: failed for good after max_attempts
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-R2", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        for wait in (0, 1, 2):
            clock["now"] += timedelta(seconds=wait)
            steps.append(await deliver(c, policy))
        clock["now"] += timedelta(hours=2)
        steps.append(await deliver(c, policy))  # nothing left to try
        log = await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        failed = await service.list_deliveries(
            c.uow(), scope=OPERATOR, webhook_id=hook.id, status="failed"
        )
        return first, second, steps, log, failed

    first, second, steps, log, failed = within(settings, work)
    assert steps == [1, 0, 1, 1, 1, 1, 0]
    assert first.status.value == "pending"
    assert first.last_status_code == 500
    assert first.last_error == "the receiver answered 500"
    assert first.next_attempt_at == start + timedelta(seconds=1)
    assert (second.status.value, second.attempts) == ("delivered", 2)
    assert [d.status.value for d in log] == ["failed", "delivered"]
    assert log[0].attempts == 3
    assert [d.id for d in failed] == [log[0].id]
    assert len(hook_receiver.requests) == 5


def test_a_webhook_is_disabled_after_failures_in_a_row_and_resumes(
    database_url: str, hook_receiver: Receiver
) -> None:
    settings = intranet(database_url)
    clock = {"now": datetime.now().astimezone()}
    policy = WebhookPolicy(max_attempts=10, disable_after=3)
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"

    async def work(c: Container) -> Any:
        c.clock = lambda: clock["now"]
        await org(c)
        hook, _ = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org", url=dead),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        for i in range(3):
            await device_service.create_device(
                c.uow(),
                scope=OPERATOR,
                spec=DeviceSpec(f"WH-D{i}", group="Org/East"),
                actor="tests",
                now=c.now(),
            )
        await dispatch(c)
        assert await deliver(c, policy) == 3
        disabled, _ = await service.get_webhook(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-D9", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        clock["now"] += timedelta(hours=2)
        idle = await deliver(c, policy)  # disabled: nothing is sent, events still queue
        _, counts = await service.get_webhook(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        async with c.uow() as uow:  # the receiver is fixed: point the webhook at it
            from provisiond.store.schema import webhooks

            await uow._conn.execute(  # type: ignore[union-attr]
                webhooks.update().values(url=hook_receiver.url)
            )
            await uow.commit()
        await service.set_webhook_enabled(
            c.uow(), scope=OPERATOR, webhook_id=hook.id, enabled=True, actor="tests", now=c.now()
        )
        resumed = await deliver(c, policy)
        enabled, final = await service.get_webhook(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        async with c.uow().read() as uow:
            events = [e.type.value for e in await uow.events.latest(20)]
        return disabled, idle, counts, resumed, enabled, final, events

    disabled, idle, counts, resumed, enabled, final, events = within(settings, work)
    assert not disabled.enabled
    assert disabled.disabled_reason is not None
    assert disabled.disabled_reason.startswith("disabled after 3 failed deliveries in a row")
    assert "cannot reach the receiver" in disabled.disabled_reason
    assert "webhook.disabled" in events
    assert idle == 0
    assert counts == {"pending": 4}
    assert resumed == 4
    assert enabled.enabled
    assert enabled.consecutive_failures == 0
    assert final == {"delivered": 4}
    assert len(hook_receiver.wait_for(4)) == 4


def test_nothing_is_lost_across_a_restart(database_url: str, hook_receiver: Receiver) -> None:
    settings = intranet(database_url)

    async def before(c: Container) -> None:
        await org(c)
        await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org", url=hook_receiver.url),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        for i in range(5):
            await device_service.create_device(
                c.uow(),
                scope=OPERATOR,
                spec=DeviceSpec(f"WH-L{i}", group="Org/East"),
                actor="tests",
                now=c.now(),
            )
        await dispatch(c)  # fanned out, the process "stops" before delivering
        for i in range(5, 8):  # more events, not even fanned out
            await device_service.create_device(
                c.uow(),
                scope=OPERATOR,
                spec=DeviceSpec(f"WH-L{i}", group="Org/East"),
                actor="tests",
                now=c.now(),
            )

    within(settings, before)

    async def after(c: Container) -> int:
        await dispatch(c)
        return await deliver(c)

    assert within(settings, after) == 8
    serials = sorted(json.loads(r.body)["device"]["serial"] for r in hook_receiver.wait_for(8))
    assert serials == [f"WH-L{i}" for i in range(8)]
    assert within(settings, after) == 0  # delivered once


def test_a_bulk_import_is_delivered_device_by_device(
    database_url: str, hook_receiver: Receiver
) -> None:
    settings = intranet(database_url)
    rows = "serial,group\n" + "".join(
        f"WH-I{i:03d},{'Org/West' if i % 2 else 'Org/East'}\n" for i in range(60)
    )

    async def work(c: Container) -> int:
        await org(c)
        await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org/West", url=hook_receiver.url, events=["device.registered"]),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        await register_devices(
            c.uow(),
            scope=OPERATOR,
            items=read_import(io.BytesIO(rows.encode()), ImportFormat.CSV),
            options=ImportOptions(source="factory.csv"),
            sink=NullSink(),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        return await deliver(c)

    assert within(settings, work) == 30
    bodies = [json.loads(r.body) for r in hook_receiver.wait_for(30)]
    assert sorted(b["device"]["serial"] for b in bodies) == [
        f"WH-I{i:03d}" for i in range(60) if i % 2
    ]
    assert {b["group"] for b in bodies} == {"Org/West"}
    assert {b["data"]["import"] for b in bodies} == {"factory.csv"}


def test_two_dispatchers_at_once_fan_each_event_out_once(
    database_url: str, hook_receiver: Receiver
) -> None:
    """Two dispatchers reading the queue at the same time (one took over the other's lease
    while the other still ran): each event becomes one delivery, none is lost."""
    settings = intranet(database_url)

    async def work(c: Container) -> tuple[list[int], list[Any]]:
        await org(c)
        hook, _ = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org", url=hook_receiver.url),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        for i in range(60):
            await device_service.create_device(
                c.uow(),
                scope=OPERATOR,
                spec=DeviceSpec(f"WH-R{i}", group="Org/East"),
                actor="tests",
                now=c.now(),
            )
        dispatchers = [Dispatcher(c.uow, consumers=[service.fan_out]) for _ in range(2)]
        handled: list[int] = []

        async def drain(dispatcher: Dispatcher) -> None:
            for _ in range(200):
                handled.append(await dispatcher.dispatch(limit=7))
                if handled[-1] == 0 and not await queued(c):
                    return

        await asyncio.gather(*(drain(d) for d in dispatchers))
        return handled, await service.list_deliveries(
            c.uow(), scope=OPERATOR, webhook_id=hook.id, limit=100
        )

    handled, log = within(settings, work)
    assert sum(handled) == 60  # every event handled by exactly one of the two
    assert len(log) == 60
    assert len({d.event_id for d in log}) == 60


async def queued(c: Container) -> int:
    async with c.uow().read() as uow:
        return await uow.outbox.size()


def test_a_new_webhook_does_not_receive_the_backlog_queued_before_it(
    database_url: str, hook_receiver: Receiver
) -> None:
    """Events still waiting for the dispatcher when a webhook is created happened before
    it: the webhook never receives them (CI once saw a fresh webhook count a failure for a
    device created just before it)."""
    settings = intranet(database_url)

    async def work(c: Container) -> tuple[int, int]:
        await org(c)
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-BEFORE", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        hook, _ = await service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group="Org", url=hook_receiver.url),
            actor="tests",
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
        await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("WH-AFTER", group="Org/East"),
            actor="tests",
            now=c.now(),
        )
        await dispatch(c)
        sent = await deliver(c)
        log = await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)
        return sent, len(log)

    assert within(settings, work) == (1, 1)
    [only] = hook_receiver.wait_for(1)
    assert json.loads(only.body)["device"]["serial"] == "WH-AFTER"
