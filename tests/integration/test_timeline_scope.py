"""A device's timeline shows its new owner nothing of its previous owner.

A release that keeps the device's history (release policy ``keep``) leaves the previous
owner's events on the device: who claimed it, into which site, who released it. When
another customer claims it, the device page (pages) and the device detail (API) list the
device's events by its id; each event keeps the subtree it belonged to, and only those the
reader's scope covers (or that belong to no customer, like the stock registration) are
shown. The operator sees everything.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.claims import Claim, ClaimProof, ClaimStatus, ClaimTarget
from provisiond.domain.device import DeviceSpec
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role, UserSpec
from provisiond.services import devices, directory
from provisiond.services.claims import visibility
from provisiond.settings import load_settings
from tests.support.containers import within

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
OPERATOR = Scope.operator()


async def history(c: Container) -> dict[str, list[str]]:
    for path in ("Acme/Site", "Globex/Site"):
        await directory.create_group(c.uow(), scope=OPERATOR, path=path, actor="t", now=NOW)
    user = await directory.create_user(
        c.uow(),
        scope=OPERATOR,
        spec=UserSpec(
            "gina@globex.example", password="correct horse battery", role="admin", group="Globex"
        ),
        actor="t",
        now=NOW,
    )
    device, _ = await devices.create_device(
        c.uow(), scope=OPERATOR, spec=DeviceSpec("KEPT-1", group="Globex/Site"), actor="t", now=NOW
    )
    amy = await directory.create_user(
        c.uow(),
        scope=OPERATOR,
        spec=UserSpec(
            "amy@acme.example", password="correct horse battery", role="admin", group="Acme"
        ),
        actor="t",
        now=NOW,
    )
    async with c.uow() as uow:  # Acme owned it before, and released it keeping its history
        for who in (amy, user):
            await uow.claims.add(
                Claim(
                    uuid.uuid4(),
                    device.id,
                    "KEPT-1",
                    who.id,
                    ClaimTarget.GROUP,
                    ClaimProof.NONE,
                    ClaimStatus.COMPLETED,
                    NOW,
                    NOW,
                ),
                "192.0.2.1",
            )
        for kind in (EventType.DEVICE_CLAIMED, EventType.DEVICE_RELEASED):
            await uow.events.add(
                NewEvent(
                    kind,
                    NOW,
                    "user:amy@acme.example",
                    device_id=device.id,
                    serial="KEPT-1",
                    group_path="Acme/Site",
                )
            )
        await uow.commit()
    async with c.uow() as uow:
        await uow.events.add(
            NewEvent(
                EventType.DEVICE_CLAIMED,
                NOW,
                "user:gina@globex.example",
                device_id=device.id,
                serial="KEPT-1",
                group_path="Globex/Site",
            )
        )
        await uow.commit()

    def actors(events: list[Any]) -> list[str]:
        return [e.actor for e in events]

    _, _, api_globex = await devices.get_device_detail(
        c.uow(), scope=Scope(Role.ADMIN, "Globex"), serial="KEPT-1"
    )
    _, _, api_operator = await devices.get_device_detail(c.uow(), scope=OPERATOR, serial="KEPT-1")
    _, page_globex, claims = await visibility.device_timeline(
        c.uow(), c.limiter, c.claim_policy, user, "KEPT-1"
    )
    return {
        "api_globex": actors(api_globex),
        "api_operator": actors(api_operator),
        "page_globex": actors(page_globex),
        "claims_globex": [str(c.user_id) for c in claims],
        "gina": [str(user.id)],
    }


def test_a_new_owner_sees_nothing_of_the_previous_owner(database_url: str) -> None:
    seen = within(load_settings(database_url=database_url), history)
    assert "user:amy@acme.example" not in seen["api_globex"]
    assert "user:amy@acme.example" not in seen["page_globex"]
    assert "user:gina@globex.example" in seen["api_globex"]
    assert "user:gina@globex.example" in seen["page_globex"]
    assert seen["api_operator"].count("user:amy@acme.example") == 2
    assert seen["claims_globex"] == seen["gina"]  # Acme's claim attempt is not shown
