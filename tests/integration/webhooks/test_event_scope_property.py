"""Property, on both backends: for generated group trees, webhooks and events of every kind,
no webhook receives an event outside its subtree, an operator-wide webhook receives every
event it subscribes to, and a scope lists exactly the events it covers.

Each example runs in one transaction that is rolled back, so examples do not see each other.
Group names share prefixes and hold characters that sort around the path separator.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisiond.bootstrap import open_container
from provisiond.domain.device import Device, DeviceState
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import Group
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.domain.webhooks import Webhook
from provisiond.services.events import event_filter
from provisiond.services.webhooks import fan_out
from provisiond.settings import load_settings
from provisiond.store.uow import UnitOfWork

pytestmark = pytest.mark.slow  # property-based

NAMES = [
    "Acme",
    "Acme&Partners",
    "Acme+Co",
    "Acme0",
    "Acme.West",
    "Ac",
    "Acme-",
    "Ünïcode",
    "x~y=z",
    "#$%",
    "Globex",
]
GONE = ["Gone", "Acme/Gone", "Acme&Partners/Gone"]  # paths of groups deleted since
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def covers(scope_path: str | None, path: str | None) -> bool:
    """The rule, spelled out independently of the code under test."""
    if scope_path is None:
        return True
    return path is not None and (path == scope_path or path.startswith(scope_path + "/"))


@dataclass(frozen=True)
class PlannedEvent:
    type: EventType
    how: str  # none | path | id | gone: how the event names its group
    path: str | None
    devices: tuple[str | None, ...]  # an import's devices, by group path (None: no group)


@dataclass(frozen=True)
class World:
    paths: tuple[str, ...]
    hooks: tuple[tuple[str | None, frozenset[EventType]], ...]
    events: tuple[PlannedEvent, ...]
    group_filter: str


@st.composite
def worlds(draw: st.DrawFn) -> World:
    paths: list[str] = []
    for _ in range(draw(st.integers(1, 7))):
        parent = draw(st.sampled_from([None, *paths]))
        name = draw(st.sampled_from(NAMES))
        path = name if parent is None else f"{parent}/{name}"
        if path not in paths:
            paths.append(path)
    group_or_none = st.sampled_from([None, *paths])
    hooks = draw(
        st.lists(
            st.tuples(group_or_none, st.frozensets(st.sampled_from(EventType), min_size=1)),
            min_size=1,
            max_size=5,
        )
    )
    placed = st.one_of(
        st.just(("none", None)),
        st.tuples(st.sampled_from(["path", "id"]), st.sampled_from(paths)),
        st.tuples(st.just("gone"), st.sampled_from(GONE)),
    )
    events = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(EventType))
        how, path = draw(placed)
        devices = (
            tuple(draw(st.lists(group_or_none, max_size=3)))
            if kind is EventType.DEVICES_IMPORTED
            else ()
        )
        events.append(PlannedEvent(kind, how, path, devices))
    return World(tuple(paths), tuple(hooks), tuple(events), draw(st.sampled_from([*paths, *GONE])))


async def check(uow: UnitOfWork, world: World) -> None:
    groups: dict[str, Group] = {}
    for path in world.paths:
        parent = path.rpartition("/")[0] or None
        group = Group(
            uuid.uuid4(),
            path.rpartition("/")[2],
            path,
            groups[parent].id if parent else None,
            path.count("/"),
            NOW,
        )
        await uow.groups.add(group)
        groups[path] = group
    hooks: list[Webhook] = []
    for path, kinds in world.hooks:
        hook = Webhook(
            uuid.uuid4(),
            groups[path].id if path else None,
            path,
            "https://93.184.215.14/hook",
            tuple(kinds),
            True,
            None,
            0,
            NOW,
        )
        await uow.webhooks.add(hook, "sealed")
        hooks.append(hook)

    expected_paths: dict[int, str | None] = {}
    imported: dict[int, tuple[str | None, ...]] = {}
    for n, planned in enumerate(world.events):
        group = groups.get(planned.path or "")
        new = NewEvent(
            planned.type,
            NOW,
            "tests",
            serial=f"S-{n}",
            **{
                "none": {},
                "path": {"group_id": group.id if group else None, "group_path": planned.path},
                "id": {"group_id": group.id if group else None},  # the store takes its path
                "gone": {"group_id": uuid.uuid4(), "group_path": planned.path},
            }[planned.how],
        )
        event_id = await uow.events.add(new)
        expected_paths[event_id] = planned.path
        imported[event_id] = planned.devices
        for i, path in enumerate(planned.devices):
            device_group = groups[path] if path else None
            await uow.devices.add(
                Device(
                    uuid.uuid4(),
                    f"D-{event_id}-{i}",
                    "d",
                    None,
                    DeviceState.CLAIMED if path else DeviceState.REGISTERED,
                    device_group.id if device_group else None,
                    path,
                    None,
                    None,
                    NOW,
                    NOW,
                    NOW if path else None,
                ),
                model_id=None,
                registered_event_id=event_id,
            )

    stored = await uow.events.find(after=min(expected_paths) - 1, limit=1000)
    assert {e.id: e.group_path for e in stored} == expected_paths

    await fan_out(uow, stored)
    received: Counter[tuple[uuid.UUID, int, str]] = Counter()
    for hook in hooks:
        for d in await uow.webhooks.deliveries(hook.id, status=None, before=None, limit=10_000):
            received[(hook.id, d.event_id, d.event_type)] += 1
    expected: Counter[tuple[uuid.UUID, int, str]] = Counter()
    for e in stored:
        for hook in hooks:
            if e.type is EventType.DEVICES_IMPORTED:  # one device.registered per device
                for path in imported[e.id]:
                    if EventType.DEVICE_REGISTERED in hook.events and covers(hook.group_path, path):
                        expected[(hook.id, e.id, EventType.DEVICE_REGISTERED.value)] += 1
            elif e.type in hook.events and covers(hook.group_path, e.group_path):
                expected[(hook.id, e.id, e.type.value)] += 1
    assert received == expected

    for scope_path in (None, *world.paths, *GONE):
        scope = Scope(Role.VIEWER, scope_path)
        for asked in (None, world.group_filter):
            listed = await uow.events.search(
                event_filter(scope, group=asked), before=None, limit=1000
            )
            assert {e.id for e in listed} == {
                i
                for i, path in expected_paths.items()
                if covers(scope_path, path) and covers(asked, path)
            }, (scope_path, asked)


def test_no_webhook_or_reader_gets_an_event_outside_its_subtree(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    opened = open_container(load_settings(database_url=database_url, log_level="warning"))
    container = loop.run_until_complete(opened.__aenter__())

    async def example(world: World) -> None:
        async with container.uow() as uow:  # never committed: rolled back
            await check(uow, world)

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(worlds())
    def run(world: World) -> None:
        loop.run_until_complete(example(world))

    try:
        run()
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()
