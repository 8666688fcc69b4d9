"""Running a use case in a container of its own, as one CLI command would, from sync tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from provisiond.bootstrap import Container, open_container
from provisiond.settings import Settings

T = TypeVar("T")


def within(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
    """Open a container on ``settings``, run ``work`` in it, close it."""

    async def main() -> T:
        async with open_container(settings) as c:
            return await work(c)

    return asyncio.run(main())


class NullSink:
    """A credentials sink that keeps nothing (for imports whose secrets a test ignores)."""

    def add_rows(self, *_: object) -> None:
        pass

    def prepare(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def discard(self) -> None:
        pass
