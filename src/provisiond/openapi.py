"""Print the OpenAPI document: `python -m provisiond.openapi > docs/openapi.json`.

docs/openapi.json is committed and compared with the live app in a test, so every change to
the API is a deliberate one. The app is composed as `serve` composes it (bootstrap.py): the
HTTP app with the device API's routes.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from provisiond.bootstrap import compose_app
from provisiond.settings import Settings


def document() -> dict[str, Any]:
    @asynccontextmanager
    async def no_container() -> AsyncIterator[Any]:
        yield None

    app = compose_app(Settings(database_url="sqlite://"), no_container)
    return app.openapi()


def render() -> str:
    return (
        orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    )


if __name__ == "__main__":
    sys.stdout.write(render())
