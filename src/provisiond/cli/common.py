"""What every command shares: the options, settings, running a use case, rendering failure."""

from __future__ import annotations

import asyncio
import functools
import getpass
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from provisiond.bootstrap import Container, open_container
from provisiond.cli import output
from provisiond.domain.scope import Scope
from provisiond.errors import ConfigurationError, ProvisiondError
from provisiond.settings import Settings, load_settings

T = TypeVar("T")
OPERATOR = Scope.operator()  # the command line holds the database: it is operator-wide

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="PROVISIOND_DATABASE_URL",
        show_envvar=True,
        help="Database URL: sqlite:///PATH or postgresql://USER@HOST/DB. "
        "Default: provisiond.db in the data directory.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="PROVISIOND_CONFIG_FILE",
        show_envvar=True,
        help="A TOML file of settings.",
        dir_okay=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Print the traceback of a failure.")]


@dataclass(frozen=True, slots=True)
class Common:
    database: str | None = None
    config: Path | None = None
    json: bool = False
    debug: bool = False

    def settings(self, **overrides: Any) -> Settings:
        try:
            return load_settings(self.config, database_url=self.database, **overrides)
        except ValidationError as err:
            problems = "; ".join(
                (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "") + e["msg"]
                for e in err.errors()
            )
            raise ConfigurationError(f"invalid settings: {problems}") from err


_OPTIONS: dict[str, tuple[Any, Any]] = {  # name: (annotation, default), in help order
    "database": (DatabaseOpt, None),
    "config": (ConfigOpt, None),
    "json": (JsonOpt, False),
    "debug": (DebugOpt, False),
}
Command = Callable[..., None]


def common_options(
    *, database: bool = True, config: bool = True, json: bool = True, debug: bool = True
) -> Callable[[Command], Command]:
    """Give a command the shared options, declared here once: the command takes ``common:
    Common`` and Typer sees, after its own options, ``--database``, ``--config``, ``--json``
    and ``--debug`` (those not turned off here)."""
    wanted = [
        name
        for name, on in (
            ("database", database),
            ("config", config),
            ("json", json),
            ("debug", debug),
        )
        if on
    ]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "common"]
        shared = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=_OPTIONS[name][1],
                annotation=_OPTIONS[name][0],
            )
            for name in wanted
        ]

        @functools.wraps(command)
        def with_common(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in wanted}
            command(common=Common(**given), **kwargs)

        parameters = [*own, *shared]
        with_common.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_common.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_common

    return decorate


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


def fail(common: Common, err: ProvisiondError) -> NoReturn:
    if common.debug:
        traceback.print_exception(err, file=sys.stderr)
    if common.json:
        output.print_json(err.to_problem())
    output.print_error(err)
    raise typer.Exit(err.exit_code)


def run(
    common: Common,
    work: Callable[[Container], Awaitable[T]],
    *,
    check_schema: bool = True,
    **settings: Any,
) -> T:
    """Open a container, run one use case, close it; render a ProvisiondError and exit."""

    async def main() -> T:
        async with open_container(
            common.settings(**settings), check_schema=check_schema
        ) as container:
            return await work(container)

    try:
        return asyncio.run(main())
    except ProvisiondError as err:
        fail(common, err)
    except KeyboardInterrupt:
        output.stderr.print("interrupted; nothing was changed by the unfinished command")
        raise typer.Exit(130) from None


def guard(common: Common, work: Callable[[], T]) -> T:
    """Run synchronous work (migrations, settings) with the same error rendering."""
    try:
        return work()
    except ProvisiondError as err:
        fail(common, err)


def parse_tag_options(values: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = val
    return tags


async def collect_pages(
    fetch: Callable[[str | None], Awaitable[Any]], cursor: str | None, every_page: bool
) -> tuple[list[Any], str | None]:
    """The items of the page at ``cursor`` (with ``every_page``, of it and all after it) and
    the cursor of the page after them. ``fetch(cursor)`` answers a services.paging.Page."""
    items: list[Any] = []
    while True:
        page = await fetch(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not every_page or cursor is None:
            return items, cursor
