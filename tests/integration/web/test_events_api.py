"""GET /api/v1/events over real HTTP, and list_events' scope, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from provisiond.bootstrap import Container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.services import devices as device_service
from provisiond.services import directory
from provisiond.services import events as service
from provisiond.settings import Settings
from tests.integration.web.conftest import Server
from tests.support.containers import within

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = response.json()
    assert doc["code"] == code
    return doc


def every_page(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = api.get("/api/v1/events", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        assert ("link" in r.headers) == (cursor is not None)
        if cursor is None:
            return items


def test_the_audit_log_is_filtered_and_paged(server: Server, api: httpx.Client) -> None:
    for path in ("Acme/West", "Globex"):
        assert api.post("/api/v1/groups", json={"path": path}).status_code == 201
    for i in range(7):
        assert (
            api.post(
                "/api/v1/devices", json={"serial": f"EV-{i}", "group": "Acme/West"}
            ).status_code
            == 201
        )
    assert (
        api.post("/api/v1/devices", json={"serial": "GX-1", "group": "Globex"}).status_code == 201
    )
    assert api.post("/api/v1/devices", json={"serial": "STOCK-1"}).status_code == 201
    assert api.delete("/api/v1/devices/EV-3").status_code == 204

    everything = every_page(api, limit=2)
    assert [e["id"] for e in everything] == sorted(
        (e["id"] for e in everything), reverse=True
    )  # newest first, no repeats
    # the server's token, groups (Acme, Acme/West, Globex), devices, the deletion
    assert [e["type"] for e in everything].count("device.registered") == 9
    assert len(everything) == 1 + 3 + 9 + 1
    assert everything[-1]["type"] == "token.created"
    assert everything[0]["type"] == "device.deleted"

    # a deleted device's history stays readable by its serial
    ev3 = every_page(api, serial="ev-3")
    assert [(e["type"], e["group"]) for e in ev3] == [
        ("device.deleted", "Acme/West"),
        ("device.registered", "Acme/West"),
    ]
    assert api.get("/api/v1/devices/EV-3").status_code == 404

    acme = every_page(api, group="Acme", limit=3)
    assert {e["group"] for e in acme} == {"Acme", "Acme/West"}
    assert len(acme) == 2 + 7 + 1
    registered = every_page(api, group="Acme", kind="device.registered")
    assert sorted(e["serial"] for e in registered) == [f"EV-{i}" for i in range(7)]
    both = every_page(api, kind=["device.deleted", "group.created"])
    assert sorted(e["type"] for e in both) == ["device.deleted"] + ["group.created"] * 3
    assert every_page(api, actor="token:tests") == everything[:-1]  # not the token's
    assert every_page(api, actor="token:someone-else") == []
    stock = next(e for e in everything if e["serial"] == "STOCK-1")
    assert stock["group"] is None

    first, last = everything[-1]["at"], everything[0]["at"]
    assert every_page(api, since=last) == [everything[0]]
    assert every_page(api, until=first) == []
    window = every_page(api, since=first, until=last)
    assert len(window) == len(everything) - 1

    doc = problem(
        api.get(
            "/api/v1/events",
            params={
                "kind": ["device.claimed", "nope"],
                "serial": "bad serial!",
                "since": last,
                "until": first,
            },
        ),
        422,
        "invalid-input",
    )
    assert {p["field"] for p in doc["errors"]} >= {"kind", "serial", "since"}
    problem(api.get("/api/v1/events", params={"cursor": "bm90LWEtY3Vyc29y"}), 422, "invalid-cursor")
    problem(api.get("/api/v1/events", params={"since": "yesterday"}), 422, "invalid-input")
    with httpx.Client(base_url=server.url) as anonymous:
        problem(anonymous.get("/api/v1/events"), 401, "unauthenticated")


def test_a_scope_reads_its_subtree_only_and_its_pages_are_full(server_settings: Settings) -> None:
    """The scope is part of the query: a customer whose events are older than a thousand of
    another's still gets a full first page, and never sees the other's or ungrouped ones."""

    async def work(c: Container) -> dict[str, Any]:
        for path in ("Acme/West", "Acme&Partners", "Globex"):
            await directory.create_group(
                c.uow(), scope=Scope.operator(), path=path, actor="tests", now=c.now()
            )
        for i in range(3):
            await device_service.create_device(
                c.uow(),
                scope=Scope.operator(),
                spec=DeviceSpec(f"AC-{i}", group="Acme/West"),
                actor="tests",
                now=c.now(),
            )
        for i in range(60):
            await device_service.create_device(
                c.uow(),
                scope=Scope.operator(),
                spec=DeviceSpec(f"GX-{i}", group="Globex"),
                actor="tests",
                now=c.now(),
            )
        await device_service.create_device(
            c.uow(),
            scope=Scope.operator(),
            spec=DeviceSpec("AP-1", group="Acme&Partners"),
            actor="tests",
            now=c.now(),
        )
        await device_service.create_device(
            c.uow(), scope=Scope.operator(), spec=DeviceSpec("STOCK-1"), actor="tests", now=c.now()
        )
        acme = Scope(Role.VIEWER, "Acme")
        return {
            "acme": await service.list_events(c.uow(), scope=acme, limit=4),
            "acme-west": await service.list_events(c.uow(), scope=acme, group="Acme/West"),
            "above": await service.list_events(
                c.uow(), scope=Scope(Role.ADMIN, "Acme/West"), group="Acme"
            ),
            "beside": await service.list_events(c.uow(), scope=acme, group="Globex"),
            "stock": await service.list_events(c.uow(), scope=acme, serial="STOCK-1"),
            "operator-stock": await service.list_events(
                c.uow(), scope=Scope.operator(), serial="STOCK-1"
            ),
            "deleted-group": await _deleted_group(c),
        }

    pages = within(server_settings, work)
    acme = pages["acme"]
    assert len(acme.items) == 4
    assert acme.next_cursor is not None
    assert {e.group_path for e in acme.items} <= {"Acme", "Acme/West"}
    assert [e.serial for e in pages["acme-west"].items] == ["AC-2", "AC-1", "AC-0", None]
    assert {e.group_path for e in pages["above"].items} == {"Acme/West"}
    assert pages["beside"].items == []  # another customer's group: as one with no events
    assert pages["stock"].items == []  # unowned stock is no customer's
    assert [e.type.value for e in pages["operator-stock"].items] == ["device.registered"]
    assert pages["deleted-group"] == (
        ["group.deleted", "device.deleted", "device.registered", "group.created"],
        [],
    )


async def _deleted_group(c: Container) -> tuple[list[str], list[str]]:
    """A group deleted, and its device before it: their events keep the group's path."""
    await directory.create_group(
        c.uow(), scope=Scope.operator(), path="Acme/Old", actor="tests", now=c.now()
    )
    await device_service.create_device(
        c.uow(),
        scope=Scope.operator(),
        spec=DeviceSpec("OLD-1", group="Acme/Old"),
        actor="tests",
        now=c.now(),
    )
    await device_service.delete_device(
        c.uow(), scope=Scope.operator(), serial="OLD-1", actor="tests", now=c.now()
    )
    await directory.delete_group(
        c.uow(), scope=Scope.operator(), path="Acme/Old", actor="tests", now=c.now()
    )
    mine = await service.list_events(c.uow(), scope=Scope(Role.VIEWER, "Acme"), group="Acme/Old")
    theirs = await service.list_events(
        c.uow(), scope=Scope(Role.VIEWER, "Globex"), group="Acme/Old"
    )
    return [e.type.value for e in mine.items], [e.type.value for e in theirs.items]


@pytest.mark.parametrize(
    "text", ["15m", "2h", "7d", "2026-05-01T12:00:00", "2026-05-01T14:00:00+02:00"]
)
def test_times_are_iso_or_an_age(text: str) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
    moment = service.parse_time(text, now=now, field="since")
    assert moment.tzinfo is not None
    assert moment in {
        now - timedelta(minutes=15),
        now - timedelta(hours=2),
        now - timedelta(days=7),
        datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    }
