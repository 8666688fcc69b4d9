"""Webhooks reach public destinations only, on both backends: a URL that is, or resolves to,
a non-public address is refused when the webhook is made (nothing is created; the API's
refusal is in tests/integration/web/test_webhook_destinations.py); a name that
resolves to a public address then and to loopback at delivery (DNS rebinding) is refused at
delivery and no connection reaches the loopback receiver; the allow-list lets an intranet
receiver work, with the name kept for Host and TLS; and the delivery log tells a class of
failure, never what a port answered."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisiond.bootstrap import Container
from provisiond.domain.destinations import AllowList
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.domain.webhooks import WebhookSpec
from provisiond.errors import InvalidInput
from provisiond.integrations.webhooks.sender import HttpSender
from provisiond.services import devices as device_service
from provisiond.services import webhooks as service
from provisiond.services.destinations import DestinationGuard
from provisiond.services.webhooks import WebhookDeliverer, WebhookPolicy
from provisiond.settings import Settings, load_settings
from tests.integration.webhooks.test_webhooks import dispatch, org
from tests.support.containers import within
from tests.support.mosquitto import free_port, write_tls_files
from tests.support.receiver import Receiver, receiver
from tests.unit.test_webhook_destinations import (
    FORBIDDEN_URLS,
    MALFORMED,
    NAMES,
    PUBLIC_V4,
    Names,
)


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def resolving(c: Container, names: Names) -> None:
    """Make the container's webhooks resolve names with ``names``."""
    c.webhook_guard = DestinationGuard(c.settings.webhooks.allow_list, names)


async def deliver(
    c: Container, *, seconds: float = 5, ssl_context: ssl.SSLContext | None = None
) -> int:
    sender = HttpSender(seconds, guard=c.webhook_guard, ssl_context=ssl_context)
    try:
        return await WebhookDeliverer(c.uow, sender, c.sealer, WebhookPolicy(), c.now).deliver()
    finally:
        await sender.close()


OPERATOR = Scope.operator()


async def hook_for(c: Container, url: str) -> Any:
    webhook, _ = await service.create_webhook(
        c.uow(),
        scope=OPERATOR,
        spec=WebhookSpec(group="Org", url=url, events=["device.registered"]),
        actor="tests",
        now=c.now(),
        sealer=c.sealer,
        guard=c.webhook_guard,
    )
    return webhook


async def register(c: Container, serial: str) -> None:
    await device_service.create_device(
        c.uow(),
        scope=OPERATOR,
        spec=DeviceSpec(serial, group="Org/East"),
        actor="tests",
        now=c.now(),
    )
    await dispatch(c)


# ------------------------------------------------------------------- creation


def test_no_spelling_of_a_forbidden_destination_makes_a_webhook(database_url: str) -> None:
    async def work(c: Container) -> tuple[dict[str, str], list[Any], list[str]]:
        resolving(c, Names(NAMES))
        await org(c)
        outcome: dict[str, str] = {}
        for url in [*FORBIDDEN_URLS, *(url for url, _ in MALFORMED)]:
            try:
                await hook_for(c, url)
                outcome[url] = "created"
            except InvalidInput as err:
                outcome[url] = ",".join(str(p.field) for p in err.problems)
        async with c.uow().read() as uow:
            kinds = [e.type.value for e in await uow.events.latest(500)]
        return outcome, (await service.list_webhooks(c.uow(), scope=OPERATOR)).items, kinds

    outcome, hooks, kinds = within(load_settings(database_url=database_url), work)
    assert {url: field for url, field in outcome.items() if field != "url"} == {}
    assert hooks == []
    assert "webhook.created" not in kinds


# ------------------------------------------------------------------- delivery


def test_dns_rebinding_is_refused_at_delivery(database_url: str, hook_receiver: Receiver) -> None:
    """Public when the webhook is made, loopback when it is delivered: refused, and not a
    connection reaches the receiver."""
    names = Names({"rebind.test": [PUBLIC_V4]})
    port = hook_receiver.url.split(":")[2].split("/")[0]

    async def work(c: Container) -> Any:
        resolving(c, names)
        await org(c)
        hook = await hook_for(c, f"http://rebind.test:{port}/hook")
        names.table["rebind.test"] = ["127.0.0.1"]  # the attacker's DNS changes its answer
        await register(c, "RB-1")
        attempted = await deliver(c)
        return attempted, await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)

    attempted, log = within(load_settings(database_url=database_url), work)
    assert attempted == 1
    (delivery,) = log
    assert (delivery.status.value, delivery.attempts, delivery.last_status_code) == (
        "pending",
        1,
        None,
    )
    assert delivery.last_error == "not sent: rebind.test resolves to a loopback address"
    assert names.asked.count("rebind.test") == 2  # at creation, and at delivery
    assert hook_receiver.connections == 0
    assert hook_receiver.requests == []


def test_an_allowed_intranet_receiver_gets_the_name_it_was_given(
    database_url: str, hook_receiver: Receiver
) -> None:
    """The connection goes to the address that was checked, the request carries the name."""
    names = Names({"intranet.test": ["127.0.0.1"]})
    port = hook_receiver.url.split(":")[2].split("/")[0]
    settings = load_settings(database_url=database_url, webhooks__allow_networks=["127.0.0.0/8"])

    async def work(c: Container) -> Any:
        resolving(c, names)
        await org(c)
        hook = await hook_for(c, f"http://intranet.test:{port}/hook")
        await register(c, "IN-1")
        await deliver(c)
        return await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)

    (delivery,) = within(settings, work)
    assert (delivery.status.value, delivery.last_status_code) == ("delivered", 200)
    (request,) = hook_receiver.wait_for(1)
    assert request.headers["host"] == f"intranet.test:{port}"


@pytest.mark.parametrize("certified", ["hooks.test", "other.test"])
def test_tls_is_verified_for_the_name_not_the_address(
    sqlite_url: str, tmp_path: Path, certified: str
) -> None:
    """The certificate is checked against the URL's name (its SNI), not the pinned address
    (which the certificate names too, so a check against it would pass)."""
    ca, cert, key = write_tls_files(tmp_path, names=(certified,))
    names = Names({"hooks.test": ["127.0.0.1"]})
    settings = load_settings(database_url=sqlite_url, webhooks__allow_networks=["127.0.0.1"])
    with receiver(tls=(str(cert), str(key))) as r:
        port = r.url.split(":")[2].split("/")[0]

        async def work(c: Container) -> Any:
            resolving(c, names)
            await org(c)
            hook = await hook_for(c, f"https://hooks.test:{port}/hook")
            await register(c, "TLS-1")
            await deliver(c, ssl_context=ssl.create_default_context(cafile=str(ca)))
            return await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)

        (delivery,) = within(settings, work)
        if certified == "hooks.test":
            assert (delivery.status.value, delivery.last_status_code) == ("delivered", 200)
            assert r.wait_for(1)[0].headers["host"] == f"hooks.test:{port}"
        else:
            assert delivery.last_error == "cannot reach the receiver"
            assert r.requests == []
        assert set(r.server_names) == {"hooks.test"}


def test_redirects_are_not_followed(database_url: str, hook_receiver: Receiver) -> None:
    settings = load_settings(database_url=database_url, webhooks__allow_networks=["127.0.0.0/8"])
    with receiver() as elsewhere:
        hook_receiver.answer = lambda _n: 307
        hook_receiver.headers = {"Location": elsewhere.url}

        async def work(c: Container) -> Any:
            await org(c)
            hook = await hook_for(c, hook_receiver.url)
            await register(c, "RD-1")
            await deliver(c)
            return await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)

        (delivery,) = within(settings, work)
        assert (delivery.last_status_code, delivery.last_error) == (
            307,
            "the receiver answered 307",
        )
        assert len(hook_receiver.wait_for(1)) == 1
        assert elsewhere.connections == 0


# ------------------------------------------------------------------- what the log tells


@contextlib.contextmanager
def raw_server(
    answer: bytes | None, *, then: bytes = b"", repeat: int = 0
) -> Iterator[tuple[str, dict[str, int]]]:
    """A TCP server on loopback that sends ``answer`` (None: nothing) then ``then``
    ``repeat`` times to every connection, and holds it open until the client closes;
    counts the bytes it got out."""
    listener = socket.create_server(("127.0.0.1", 0))
    counts = {"sent": 0}
    done = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                if answer is not None:
                    conn.sendall(answer)
                    counts["sent"] += len(answer)
                for _ in range(repeat):
                    conn.sendall(then)
                    counts["sent"] += len(then)
                while conn.recv(65536):  # until the client closes
                    pass
            except OSError:
                pass

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook", counts
    finally:
        done.set()
        listener.close()


def test_the_log_tells_a_class_of_failure_not_what_the_port_said(database_url: str) -> None:
    """A closed port and one that answers something other than HTTP read the same; a
    silent one times out; nothing of what the socket met is recorded."""
    settings: Settings = load_settings(
        database_url=database_url, webhooks__allow_networks=["127.0.0.0/8"]
    )
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    with raw_server(banner) as (ssh, _), raw_server(None) as (silent, _), receiver() as failing:
        failing.answer = lambda _n: 500
        closed = f"http://127.0.0.1:{free_port()}/hook"
        urls = {
            "closed": closed,
            "ssh": ssh,
            "silent": silent,
            "500": failing.url,
            "unknown": "https://nowhere.test/hook",
        }

        async def work(c: Container) -> dict[str, Any]:
            resolving(c, Names({}))
            await org(c)
            hooks = {k: await hook_for(c, url) for k, url in urls.items()}
            await register(c, "PS-1")
            await deliver(c, seconds=1)  # the silent port's wait
            return {
                k: (await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=h.id))[0]
                for k, h in hooks.items()
            }

        log = within(settings, work)
    told = {k: (d.last_status_code, d.last_error) for k, d in log.items()}
    assert told == {
        "closed": (None, "cannot reach the receiver"),
        "ssh": (None, "cannot reach the receiver"),
        "silent": (None, "no answer in time"),
        "500": (500, "the receiver answered 500"),
        "unknown": (None, "the host name does not resolve"),
    }


def test_a_long_answer_is_not_read_on(sqlite_url: str) -> None:
    """A receiver cannot make a delivery read (and hold) an endless answer."""
    settings = load_settings(database_url=sqlite_url, webhooks__allow_networks=["127.0.0.1"])
    head = b"HTTP/1.1 500 Oops\r\nContent-Length: 1073741824\r\n\r\n"
    chunk = b"x" * (1 << 20)
    with raw_server(head, then=chunk, repeat=128) as (url, counts):

        async def work(c: Container) -> Any:
            await org(c)
            hook = await hook_for(c, url)
            await register(c, "LA-1")
            await deliver(c)
            return await service.list_deliveries(c.uow(), scope=OPERATOR, webhook_id=hook.id)

        (delivery,) = within(settings, work)
    assert (delivery.last_status_code, delivery.last_error) == (500, "the receiver answered 500")
    assert counts["sent"] < 32 * len(chunk)  # what the socket buffers took, at most


def test_the_allow_list_is_a_setting(database_url: str) -> None:
    settings = load_settings(
        database_url=database_url,
        webhooks__allow_networks=["10.20.0.0/16", "::1"],
        webhooks__allow_hosts=["*.corp.example"],
    )
    assert settings.webhooks.allow_list == AllowList.parse(
        ["10.20.0.0/16", "::1"], ["*.corp.example"]
    )
    with pytest.raises(ValueError, match=r"webhooks\.allow_networks"):
        load_settings(database_url=database_url, webhooks__allow_networks=["10.20.0.0/99"])
