"""What waits, as /metrics reports it: each figure made to move by the failure it reports
(an outbox nobody takes, a webhook receiver answering 500, a broker that is down, The
Things Stack refusing), scraped over HTTP from a running server, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from provisiond.bootstrap import Container
from provisiond.settings import Settings, load_settings
from tests.integration.broker.test_no_secret_on_the_broker import dynsec_settings
from tests.integration.metrics.conftest import Samples, scrape, value, wait_for
from tests.integration.tts.conftest import import_meters, settings_for
from tests.integration.web.conftest import Server
from tests.integration.web.test_provisioning import make_profile, provision
from tests.support.broker_accounts import name
from tests.support.containers import within
from tests.support.mosquitto import Broker
from tests.support.receiver import Receiver, receiver
from tests.support.tts_standin import StandIn, tts_standin

GHOST = "ghost-instance:1:dead"


def lease_of(samples: Samples, lease: str) -> dict[str, float]:
    """The holders the metrics name for ``lease``: holder -> 1 (held) or 0 (expired)."""
    out = {}
    for (metric, labels), v in samples.items():
        named = dict(labels)
        if metric == "provisiond_lease_holder" and named["lease"] == lease:
            out[named["holder"]] = v
    return out


class TestAnOutboxNobodyTakes:
    """An instance froze holding the outbox's lease: events pile up and age."""

    @pytest.fixture
    def server_settings(self, database_url: str) -> Settings:
        settings = load_settings(database_url=database_url, log_level="warning")

        async def plant(c: Container) -> None:  # before the server starts: it cannot take it
            async with c.uow() as uow:
                now = c.now()
                assert await uow.leases.acquire("outbox", GHOST, now, now + timedelta(hours=1))
                await uow.commit()

        within(settings, plant)
        return settings

    def test_depth_age_and_holder_then_drained_once_the_lease_lapses(
        self,
        server: Server,
        api: httpx.Client,
    ) -> None:
        container = server.app.state.container
        for n in range(3):
            assert api.post("/api/v1/devices", json={"serial": f"OBX-{n}"}).status_code == 201
        samples = scrape(server.url)
        assert value(samples, "provisiond_outbox_entries") == 3
        assert lease_of(samples, "outbox") == {GHOST: 1}
        (mine,) = [dict(k[1])["holder"] for k in samples if k[0] == "provisiond_instance_info"]
        assert mine != GHOST
        assert value(samples, "provisiond_instances") == 1  # the ghost has no heartbeat

        later = container.now() + timedelta(minutes=10)
        container.clock = lambda: later  # the scrape reads the age at the server's clock
        samples = scrape(server.url)
        assert value(samples, "provisiond_outbox_entries") == 3
        age = value(samples, "provisiond_outbox_oldest_age_seconds")
        assert age is not None
        assert 599 <= age <= 660

        container.clock = lambda: later + timedelta(hours=2)  # the ghost's lease lapses

        def drained(s: Samples) -> bool:
            return value(s, "provisiond_outbox_entries") == 0 and lease_of(s, "outbox") == {mine: 1}

        samples = wait_for(server.url, drained)
        assert value(samples, "provisiond_outbox_oldest_age_seconds") == 0


def test_an_expired_lease_nobody_took_reads_0(
    server: Server,
) -> None:
    async def lapse(c: Container) -> None:
        async with c.uow() as uow:
            now = c.now()
            assert await uow.leases.acquire("orphan", GHOST, now, now - timedelta(seconds=1))
            await uow.commit()

    within(server.settings, lapse)
    samples = scrape(server.url)
    assert lease_of(samples, "orphan") == {GHOST: 0}
    lapsed = value(samples, "provisiond_lease_lapsed_seconds", lease="orphan")
    assert lapsed is not None
    assert 1 <= lapsed < 60
    assert value(samples, "provisiond_lease_lapsed_seconds", lease="outbox") == 0


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.mark.slow  # 3 attempts, 1 s and 2 s apart
class TestWebhookDeliveries:
    @pytest.fixture
    def server_settings(self, database_url: str) -> Settings:
        return load_settings(
            database_url=database_url,
            log_level="warning",
            webhooks__allow_networks=["127.0.0.1"],
            webhooks__max_attempts=3,  # 1 s, 2 s of backoff, then failed
        )

    def test_a_receiver_answering_500_moves_its_webhook_to_retrying_then_failed(
        self,
        server: Server,
        api: httpx.Client,
        hooks: Receiver,
    ) -> None:
        with receiver() as healthy:
            hooks.answer = lambda _n: 500
            ids = {}
            for name, url in (("broken", hooks.url), ("healthy", healthy.url)):
                r = api.post(
                    "/api/v1/webhooks",
                    json={"group": None, "url": url, "events": ["device.registered"]},
                )
                assert r.status_code == 201, r.text
                ids[name] = r.json()["id"]
            broken, fine = ids["broken"], ids["healthy"]
            samples = scrape(server.url)
            for hook in (broken, fine):
                for state in ("pending", "retrying", "failed"):
                    assert (
                        value(samples, "provisiond_webhook_deliveries", webhook=hook, state=state)
                        == 0
                    )

            assert api.post("/api/v1/devices", json={"serial": "HOOK-1"}).status_code == 201

            def count(s: Samples, hook: str, state: str) -> float | None:
                return value(s, "provisiond_webhook_deliveries", webhook=hook, state=state)

            samples = wait_for(server.url, lambda s: count(s, broken, "retrying") == 1)
            assert count(samples, broken, "failed") == 0
            samples = wait_for(
                server.url,
                lambda s: count(s, broken, "failed") == 1 and count(s, broken, "retrying") == 0,
            )
            assert len(hooks.requests) == 3  # every attempt answered 500
            assert len(healthy.requests) == 1
            for state in ("pending", "retrying", "failed"):
                assert count(samples, fine, state) == 0  # delivered: nothing waits


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


class TestABrokerThatIsDown:
    @pytest.fixture
    def server_settings(self, database_url: str) -> Settings:
        return load_settings(
            database_url=database_url,
            log_level="warning",
            broker={
                "kind": "mosquitto-dynsec",
                "url": f"mqtt://admin:pw@127.0.0.1:{closed_port()}",
                "timeout_seconds": 1,
            },
        )

    def test_devices_wait_for_their_accounts_with_the_reason(
        self,
        server: Server,
        api: httpx.Client,
    ) -> None:
        samples = scrape(server.url)
        assert {
            r: value(samples, "provisiond_broker_accounts_waiting", reason=r)
            for r in ("queued", "broker_unavailable", "name_taken")
        } == {"queued": 0, "broker_unavailable": 0, "name_taken": 0}
        for n in range(2):
            assert api.post("/api/v1/devices", json={"serial": f"BRK-{n}"}).status_code == 201

        samples = wait_for(
            server.url,
            lambda s: (
                value(s, "provisiond_broker_accounts_waiting", reason="broker_unavailable") == 2
            ),
        )
        assert value(samples, "provisiond_broker_accounts_waiting", reason="queued") == 0
        assert value(samples, "provisiond_broker_accounts_waiting", reason="name_taken") == 0


class TestANameAnotherCredentialHolds:
    @pytest.fixture
    def server_settings(self, database_url: str, broker: Broker) -> Settings:
        return dynsec_settings(database_url, broker)

    def test_the_device_waits_for_an_operator_with_that_reason(
        self, server: Server, api: httpx.Client
    ) -> None:
        created = api.post("/api/v1/devices", json={"serial": "NAME-A"})
        assert created.status_code == 201
        token = created.json()["credential"]["secret"]
        key, secret = make_profile(api, name="mixed", credentials=["access-token", "mqtt-basic"])
        squatter = provision(
            server,
            key,
            secret,
            deviceName="NAME-B",
            credentialsType="MQTT_BASIC",
            clientId="name-b",
            username=name(token),  # NAME-A's user name, issued first
            password="the squatter's password 1",
        )
        assert squatter["status"] == "SUCCESS"

        samples = wait_for(
            server.url,
            lambda s: value(s, "provisiond_broker_accounts_waiting", reason="name_taken") == 1,
        )
        assert (
            value(samples, "provisiond_broker_accounts_waiting", reason="broker_unavailable") == 0
        )


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with tts_standin({"kanarra-meters", "kanarra-spare"}) as s:
        yield s


class TestTheThingsStackRefusing:
    @pytest.fixture
    def server_settings(self, database_url: str, standin: StandIn) -> Settings:
        return settings_for(database_url, standin, passphrase="meters-passphrase-1")

    def test_refused_registrations_fail_and_unanswered_ones_wait(
        self,
        server: Server,
        standin: StandIn,
    ) -> None:
        samples = scrape(server.url)
        assert value(samples, "provisiond_tts_registrations", status="failed") == 0
        # the first device: its Join Server call is refused (a missing right), for good;
        # the second: the Network Server is away (503), again and again
        standin.fail("js", 403)
        standin.fail("ns", *[503] * 50)

        within(server.settings, import_meters)

        def settled(s: Samples) -> bool:
            return (
                value(s, "provisiond_tts_registrations", status="failed") == 1
                and value(s, "provisiond_tts_registrations_waiting", reason="retrying") == 1
            )

        samples = wait_for(server.url, settled)
        assert value(samples, "provisiond_tts_registrations", status="conflict") == 0
        assert value(samples, "provisiond_tts_registrations_waiting", reason="queued") == 0
