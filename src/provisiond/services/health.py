"""Readiness: can this process serve requests that need the database?"""

from __future__ import annotations

from provisiond.store.uow import UnitOfWork


async def check_ready(uow: UnitOfWork) -> None:
    """Raise Unavailable unless the database answers."""
    async with uow.read():
        await uow.ping()
