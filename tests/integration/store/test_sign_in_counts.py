"""The sign-in counts, on SQLite and PostgreSQL: one statement each, so attempts made at the
same moment by separate processes each see the ones before them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from provisiond.bootstrap import open_container
from provisiond.domain.scope import Scope
from provisiond.domain.users import UserSpec
from provisiond.services.accounts import forget_sign_in_addresses
from provisiond.settings import load_settings
from provisiond.store.sessions import Charge
from tests.integration.store.test_concurrency import race

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
LOCK = timedelta(minutes=15)
EMAIL = "tech@kanarra.example"


async def charge(
    c: Any,
    address: str = "192.0.2.1",
    *,
    now: datetime = NOW,
    email: str = EMAIL,
    budget: int = 5,
    threshold: int = 100,
) -> Charge:
    async with c.uow() as uow:
        counted: Charge = await uow.sessions.charge(
            email,
            address,
            now=now,
            budget=budget,
            lock_until=now + LOCK,
            forget_before=now - LOCK,
            known_after=now - timedelta(days=30),
            account_threshold=threshold,
            account_next=now + timedelta(minutes=1),
        )
        await uow.commit()
    return counted


async def add_user(c: Any) -> Any:
    from provisiond.services import directory

    await directory.create_group(
        c.uow(), scope=Scope.operator(), path="Kanarra", actor="tests", now=NOW
    )
    return await directory.create_user(
        c.uow(),
        scope=Scope.operator(),
        spec=UserSpec(EMAIL, password="pw-pw-pw-pw", role="installer", group="Kanarra"),
        actor="tests",
        now=NOW,
    )


def test_twenty_processes_counting_at_once_each_get_their_own_count(database_url: str) -> None:
    async def setup() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            await add_user(c)

    asyncio.run(setup())
    results = race(database_url, lambda c, _: charge(c), n=20)
    assert all(isinstance(r, Charge) for r in results), results
    counts = sorted(r.failures for r in results)  # type: ignore[union-attr]
    assert counts == list(range(1, 21))  # nobody read a count another was changing
    accounts = sorted(
        r.account_failures
        for r in results  # type: ignore[union-attr]
        if r.account_failures is not None
    )  # type: ignore[union-attr]
    assert accounts == [1, 2, 3, 4, 5]  # only the 5 within the address's budget reach it


def test_a_lock_ends_failures_are_forgotten_and_a_sign_in_starts_again(database_url: str) -> None:
    async def main() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            user = await add_user(c)
            assert [(await charge(c, budget=2)).failures for _ in range(3)] == [1, 2, 3]
            # the lock (from the 2nd) is over: a fresh count
            assert (await charge(c, budget=2, now=NOW + LOCK)).failures == 1
            # failures further apart than the lock's length are forgotten
            assert (
                await charge(c, budget=2, now=NOW + 2 * LOCK + timedelta(seconds=1))
            ).failures == 1
            later = NOW + 3 * LOCK
            assert (await charge(c, "192.0.2.2", now=later)).known is False
            async with c.uow() as uow:
                await uow.sessions.signed_in(user.id, EMAIL, "192.0.2.2", later)
                await uow.commit()
            again = await charge(c, "192.0.2.2", now=later)
            assert (again.failures, again.known, again.account_failures) == (1, True, 1)
            # unknown e-mails are counted (and locked) the same way, without an account
            nobody = await charge(c, email="nobody@kanarra.example")
            assert (nobody.failures, nobody.account_failures) == (1, None)

    asyncio.run(main())


def test_a_slowed_down_account_counts_one_check_per_interval_except_from_known_addresses(
    database_url: str,
) -> None:
    async def main() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            user = await add_user(c)
            async with c.uow() as uow:
                await uow.sessions.signed_in(user.id, EMAIL, "192.0.2.9", NOW)
                await uow.commit()
            seen = [
                (await charge(c, f"198.51.100.{n}", threshold=3)).account_failures for n in range(5)
            ]
            assert seen == [1, 2, 3, None, None]  # the 3rd starts the slow-down
            assert (await charge(c, "192.0.2.9", threshold=3)).account_failures == 4
            minute = NOW + timedelta(minutes=1)
            assert [
                (await charge(c, f"203.0.113.{n}", now=minute, threshold=3)).account_failures
                for n in range(2)
            ] == [5, None]

    asyncio.run(main())


def test_stale_rows_are_forgotten_and_known_addresses_kept(database_url: str) -> None:
    async def main() -> None:
        async with open_container(load_settings(database_url=database_url)) as c:
            user = await add_user(c)
            await charge(c, "192.0.2.1")
            await charge(c, "192.0.2.2")
            async with c.uow() as uow:
                await uow.sessions.signed_in(user.id, EMAIL, "192.0.2.2", NOW)
                await uow.commit()
            later = NOW + timedelta(days=1)
            policy = c.session_policy
            assert await forget_sign_in_addresses(c.uow(), policy, now=later, limit=1) == 1
            assert await forget_sign_in_addresses(c.uow(), policy, now=later) == 0
            assert (await charge(c, "192.0.2.2", now=later)).known is True
            assert (await charge(c, "192.0.2.1", now=later)).failures == 1

    asyncio.run(main())
