"""A small demo organisation, so a fresh install has something to look at.

The story of the reference webinar: Kanarra makes generator gateways and sells them to
hospital chains (Sadler-Isberg, Tekton Health) whose sites are the leaves of the tree.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from provisiond.domain.profiles import ProfileSpec
from provisiond.domain.scope import Scope
from provisiond.domain.tokens import TokenSpec
from provisiond.domain.users import UserSpec
from provisiond.services import directory, profiles
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, SecretRow, register_devices
from provisiond.store.uow import UnitOfWork

GROUPS = (
    "Kanarra/Sadler-Isberg/West/Anaheim",
    "Kanarra/Sadler-Isberg/West/Los Angeles",
    "Kanarra/Sadler-Isberg/East/Boston",
    "Kanarra/Tekton Health/Central/Dallas",
)
MODELS = (
    ("UNO-2483G", "Advantech industrial gateway, Modbus to the generator"),
    ("KG-450", "Kanarra 450 kW diesel generator controller"),
)
OPERATOR = Scope.operator()  # the demo is seeded by the operator
DEMO_PROFILE = "generators"  # claimed by pressing the gateway's button
USERS = (
    ("admin@kanarra.example", "admin", "Kanarra"),
    ("tech@sadler-isberg.example", "installer", "Kanarra/Sadler-Isberg"),
    ("viewer@tekton.example", "viewer", "Kanarra/Tekton Health"),
)


@dataclass
class DemoSeed:
    token: str
    passwords: dict[str, str] = field(default_factory=dict)
    credentials: list[tuple[str, str]] = field(default_factory=list)


class _MemorySink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.rows.extend((serial, secret) for serial, _, _, secret in rows)

    def prepare(self) -> None:
        return None

    def commit(self) -> None:
        return None


def _demo_csv() -> bytes:
    lines = ["serial,name,model,group,profile,firmware"]
    for n in range(1, 21):  # stock: registered, waiting to be claimed in the field; the
        # first ten need their claim button pressed (profile "generators")
        profile = DEMO_PROFILE if n <= 10 else ""
        lines.append(f"KAN-GW-{n:04d},,UNO-2483G,,{profile},2.{n % 3}.0")
    claimed = [
        ("KAN-GW-0101", "KP001", "Kanarra/Sadler-Isberg/West/Anaheim"),
        ("KAN-GW-0102", "LA-North", "Kanarra/Sadler-Isberg/West/Los Angeles"),
        ("KAN-GW-0103", "Boston-1", "Kanarra/Sadler-Isberg/East/Boston"),
        ("KAN-GW-0104", "Dallas-A", "Kanarra/Tekton Health/Central/Dallas"),
    ]
    for serial, name, group in claimed:
        lines.append(f"{serial},{name},KG-450,{group},,3.1.0")
    return ("\n".join(lines) + "\n").encode()


async def is_empty(uow: UnitOfWork) -> bool:
    async with uow.read():
        return not await uow.groups.list()


async def seed_demo(new_uow: Callable[[], UnitOfWork], *, actor: str, now: datetime) -> DemoSeed:
    """Create the demo organisation. Call on an empty database only (see :func:`is_empty`)."""
    for path in GROUPS:
        await directory.create_group(new_uow(), scope=OPERATOR, path=path, actor=actor, now=now)
    for name, description in MODELS:
        await directory.add_model(
            new_uow(), scope=OPERATOR, name=name, description=description, actor=actor, now=now
        )
    passwords = {}
    for email, role, group in USERS:
        password = secrets.token_urlsafe(12)
        await directory.create_user(
            new_uow(),
            scope=OPERATOR,
            spec=UserSpec(email, password, role, group),
            actor=actor,
            now=now,
        )
        passwords[email] = password
    await profiles.create_profile(
        new_uow(),
        scope=OPERATOR,
        spec=ProfileSpec(DEMO_PROFILE, claim_proof="button"),
        actor=actor,
        now=now,
    )
    sink = _MemorySink()
    await register_devices(
        new_uow(),
        scope=OPERATOR,
        items=read_import(io.BytesIO(_demo_csv()), ImportFormat.CSV),
        options=ImportOptions(source="demo"),
        sink=sink,
        actor=actor,
        now=now,
    )
    _, token = await directory.create_token(
        new_uow(), scope=OPERATOR, spec=TokenSpec("demo"), actor=actor, now=now
    )
    return DemoSeed(token, passwords, sink.rows)
