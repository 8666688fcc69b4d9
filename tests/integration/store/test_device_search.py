"""Device listing against a brute-force model: every filter combination, every page.

The store picks a different index per filter (tag range, per-group ranges merged, serial);
walking all pages of every combination and comparing with a plain Python filter over the
same devices checks that each plan returns exactly the matching devices, in serial order,
each once, however the pages fall.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from provisiond.bootstrap import Container, open_container
from provisiond.domain.scope import Scope
from provisiond.services import devices, directory
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, register_devices
from provisiond.settings import load_settings
from provisiond.store import devices as device_store

OPERATOR = Scope.operator()

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LEAVES = ["Org/A/S1", "Org/A/S2", "Org/A/S3", "Org/B/S1", "Org/B/S2", "Org", "Other/X"]
MODELS = ["M1", "M2"]


@dataclass(frozen=True)
class Row:
    serial: str
    model: str
    group: str
    firmware: str
    colour: str


def rows(n: int) -> list[Row]:
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    out = []
    for i in range(n):
        serial = f"D{rng.randrange(10**6):06d}-{i}"  # random order: file order is not serial
        out.append(
            Row(
                serial,
                rng.choice([*MODELS, ""]),
                rng.choice([*LEAVES, "", "", ""]),
                rng.choice(["1.0", "1.1", "2.0", ""]),
                rng.choice(["red", "blue", ""]),
            )
        )
    return out


async def load(url: str, data: list[Row]) -> None:
    async with open_container(load_settings(database_url=url)) as c:
        for model in MODELS:
            await directory.add_model(c.uow(), scope=OPERATOR, name=model, actor="t", now=NOW)
        for leaf in LEAVES:
            await directory.create_group(c.uow(), scope=OPERATOR, path=leaf, actor="t", now=NOW)
        text = "serial,model,group,firmware,colour\n" + "".join(
            f"{r.serial},{r.model},{r.group},{r.firmware},{r.colour}\n" for r in data
        )

        class Sink:
            def add_rows(self, *_: object) -> None: ...
            def prepare(self) -> None: ...
            def commit(self) -> None: ...

        await register_devices(
            c.uow(),
            scope=OPERATOR,
            items=read_import(io.BytesIO(text.encode()), ImportFormat.CSV),
            options=ImportOptions(batch_size=64),
            sink=Sink(),
            actor="t",
            now=NOW,
        )


def expected(
    data: list[Row],
    group: str | None,
    state: str | None,
    model: str | None,
    tags: dict[str, str],
    prefix: str | None,
) -> list[str]:
    def keep(r: Row) -> bool:
        have = {k: v for k, v in (("firmware", r.firmware), ("colour", r.colour)) if v}
        return (
            (group is None or r.group == group or r.group.startswith(group + "/"))
            and (state is None or state == ("claimed" if r.group else "registered"))
            and (model is None or r.model == model)
            and all(have.get(k) == v for k, v in tags.items())
            and (prefix is None or r.serial.startswith(prefix))
        )

    return sorted(r.serial for r in data if keep(r))


async def walk(c: Container, page_size: int, **flt: object) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = await devices.list_devices(
            c.uow(), scope=OPERATOR, limit=page_size, cursor=cursor, **flt
        )  # type: ignore[arg-type]
        assert len(page.items) <= page_size
        out += [d.serial for d in page.items]
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@pytest.mark.slow
@pytest.mark.parametrize("groups_per_query", [200, 2])
def test_every_filter_combination_pages_through_exactly_the_matches(
    database_url: str, groups_per_query: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # groups_per_query=2 splits a subtree's groups over several statements merged in Python.
    monkeypatch.setattr(device_store, "_GROUPS_PER_QUERY", groups_per_query)
    data = rows(300)
    asyncio.run(load(database_url, data))
    combos = itertools.product(
        [None, "Org", "Org/A", "Org/A/S1", "Other"],
        [None, "claimed", "registered"],
        [None, "M1"],
        [{}, {"firmware": "1.1"}, {"firmware": "2.0", "colour": "red"}],
        [None, "D1"],
    )

    async def check_all() -> int:
        checked = 0
        async with open_container(load_settings(database_url=database_url)) as c:
            for group, state, model, tags, prefix in combos:
                want = expected(data, group, state, model, tags, prefix)
                got = await walk(
                    c, 11, group=group, state=state, model=model, tags=tags, serial_prefix=prefix
                )
                assert got == want, (group, state, model, tags, prefix)
                checked += bool(want)
        return checked

    assert (
        asyncio.run(check_all()) > 100
    )  # most combinations match something: the comparison has teeth
