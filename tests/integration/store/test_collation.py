"""The subtree rule holds whatever the database's collation.

Groups are selected by a range of paths (``path/`` up to ``path0``). Under a linguistic
collation (ICU ``en-US``, glibc ``en_US.UTF-8``) ``&``, ``+``, ``#`` and friends sort between
``/`` and ``0``, so ``Acme&Partners`` fell inside ``Acme``: an ``Acme`` admin listed its
devices, its users, and could finish a claim into its site. Here each store query that
selects a subtree runs on SQLite and on PostgreSQL databases created with both kinds of
linguistic collation, with sibling names full of punctuation and non-ASCII letters, and
must return exactly the subtree.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.scope import Scope, within
from provisiond.domain.users import UserSpec
from provisiond.domain.webhooks import WebhookSpec
from provisiond.services import devices, directory, webhooks
from provisiond.settings import load_settings
from provisiond.store import migrate
from provisiond.store.devices import DeviceFilter
from tests.conftest import need
from tests.support.postgres import throwaway_cluster, with_database

OPERATOR = Scope.operator()
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
UNDER = "Acme"
INSIDE = ["Acme", "Acme/West", "Acme/West/Anaheim", "Acme/Wëst & Co", "Acme/Wëst & Co/Ünïcode~1"]
OUTSIDE = [
    "Acme&Partners",
    "Acme&Partners/Site",
    "Acme+Co",
    "Acme#1",
    "Acme$",
    "Acme%",
    "Acme~",
    "Acme=",
    "Acme.",
    "Acme.x/Acme",
    "Acme Co",
    "Acme-Co",
    "Acme_x",
    "Acmé",
    "ACME",
    "acme",
    "Acme0",
    "Acme!",
    "Acme'",
    "Acme(1)",
    "Acme,",
    "Acme;",
    "Acme:",
    "Acme?",
    "Acme@",
    "Acme[",
    "Acme\\",
    "Acme^",
    "Acme`",
    "Acme{",
    "Acme|",
    "Acme}",
    "Acme\u200b",
    "Acme\u03b1",
    "Acme\u03a9",
    "Bcme",
    "Abme",
]
LOCALES = {
    "icu": "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    "glibc": "LOCALE 'en_US.UTF-8'",
}


def _create(server: str, name: str, locale: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' {locale}")


@pytest.fixture(scope="module")
def locale_server(postgres_template: str) -> Iterator[str]:
    """A server that can create databases with both locales.

    A server started before en_US.UTF-8 was generated (scripts/test generates it) does not
    see it until restarted; a throwaway cluster of our own does.
    """
    name = f"provisiond_c_{uuid.uuid4().hex[:12]}"
    try:
        _create(postgres_template, name, LOCALES["glibc"])
    except psycopg.errors.WrongObjectType:
        with throwaway_cluster() as cluster:
            need(cluster is not None, "no en_US.UTF-8 locale and no initdb for a new cluster")
            assert cluster is not None
            try:
                _create(cluster.url, name, LOCALES["glibc"])
            except psycopg.errors.WrongObjectType as e:
                need(
                    False,
                    f"PostgreSQL cannot create an en_US.UTF-8 database ({e}); "
                    "generate the locale: locale-gen en_US.UTF-8 (scripts/test does)",
                )
            yield cluster.url
        return
    with psycopg.connect(postgres_template, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')
    yield postgres_template


@pytest.fixture(params=["sqlite", "icu", "glibc"])
def collated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'p.db'}"
        migrate.upgrade(url)
        yield url
        return
    server = request.getfixturevalue("locale_server")
    name = f"provisiond_c_{uuid.uuid4().hex[:12]}"
    _create(server, name, LOCALES[request.param])
    url = with_database(server, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_names_outside_really_sort_inside_the_old_range() -> None:
    """The fixture means something: some outside names sort between 'Acme/' and 'Acme0'
    linguistically (checked on the ICU database by the test below); byte-wise none does."""
    assert all(not within(p, UNDER) for p in OUTSIDE)
    assert all(within(p, UNDER) for p in INSIDE)


@pytest.mark.slow
def test_every_subtree_query_returns_exactly_the_subtree(collated_url: str) -> None:
    asyncio.run(_check(collated_url))


async def _check(collated_url: str) -> None:
    async with open_container(load_settings(database_url=collated_url)) as c:
        for i, path in enumerate(INSIDE + OUTSIDE):
            await directory.create_group(c.uow(), scope=OPERATOR, path=path, actor="t", now=NOW)
            await devices.create_device(
                c.uow(),
                scope=OPERATOR,
                spec=DeviceSpec(f"D{i:03d}", group=path, tags={"k": "v"}),
                actor="t",
                now=NOW,
            )
            await directory.create_user(
                c.uow(),
                scope=OPERATOR,
                spec=UserSpec(
                    f"u{i}@example.com", password="correct horse battery", role="viewer", group=path
                ),
                actor="t",
                now=NOW,
            )
            await webhooks.create_webhook(
                c.uow(),
                scope=OPERATOR,
                spec=WebhookSpec(group=path, url=f"https://h{i}.example/"),
                actor="t",
                now=NOW,
                sealer=c.sealer,
                guard=c.webhook_guard,
            )
        inside_serials = {f"D{i:03d}" for i, _ in enumerate(INSIDE)}
        inside_emails = {f"u{i}@example.com" for i, _ in enumerate(INSIDE)}

        uow = c.uow()
        async with uow.read():
            assert {g.path for g in await uow.groups.list(UNDER)} == set(INSIDE)
            assert {u.email for u in await uow.users.list(UNDER)} == inside_emails
            ids = await uow.devices.search(DeviceFilter(group=UNDER), after=None, limit=500)
            assert {d.serial for d in ids} == inside_serials
            ids = await uow.devices.search(
                DeviceFilter(group=UNDER, tags={"k": "v"}), after=None, limit=500
            )
            assert {d.serial for d in ids} == inside_serials
            hooks = await uow.webhooks.in_subtree(UNDER)
            assert len(hooks) == len(INSIDE)
            by_group = await uow.insights.funnel_by_group(
                UNDER,
                with_stock=False,
                first="2000-01-01",
                last=(NOW + timedelta(days=1)).strftime("%Y-%m-%d"),
            )
            assert sum(f.counts.registered for f in by_group.values()) == len(INSIDE)
            events = await uow.insights.latest_events(UNDER, limit=500)
            assert {e.serial for e in events if e.serial} <= inside_serials
