"""`provisiond events …`: read the audit log, and follow it as events are committed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Annotated

import orjson
import typer

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import (
    Common,
    collect_pages,
    common_options,
    run,
)
from provisiond.domain.events import Event
from provisiond.domain.scope import Scope
from provisiond.services import events as service

app = typer.Typer(
    help="The audit log: every event, who did it, to what, when.", no_args_is_help=True
)

SerialOpt = Annotated[
    str | None, typer.Option("--serial", help="One device's events (a deleted device's too).")
]
GroupOpt = Annotated[str | None, typer.Option("--group", help="A group's subtree.")]
ActorOpt = Annotated[
    str | None,
    typer.Option("--actor", help="Who: e.g. token:ci, user:ann@example.com, cli:root, provisiond."),
]
KindOpt = Annotated[
    list[str] | None,
    typer.Option("--kind", help="An event type, e.g. device.claimed; repeat for any of several."),
]


def _line(e: Event) -> str:
    data = orjson.dumps(e.data).decode() if e.data else ""
    return "  ".join(
        (
            str(e.id),
            output.short_time(e.at),
            e.type.value,
            e.serial or "-",
            e.group_path or "-",
            e.actor,
            data,
        )
    ).rstrip()


def _emit(events: Sequence[Event], json: bool) -> None:
    for e in events:
        if json:
            output.print_json_line(output.event_dict(e))
        else:
            output.stdout.print(_line(e), markup=False, highlight=False)
    sys.stdout.flush()


@app.command("list")
@common_options()
def list_(
    common: Common,
    serial: SerialOpt = None,
    group: GroupOpt = None,
    actor: ActorOpt = None,
    kind: KindOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="At or after: ISO 8601 (no zone: UTC) or an age: 15m, 2h, 7d."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before: ISO 8601 (no zone: UTC) or an age.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Events per page (1-500).")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a page.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
) -> None:
    """List events, newest first, filtered by device, subtree, actor, kind and time."""

    async def work(c: Container) -> tuple[list[Event], str | None]:
        now = c.now()
        start = service.parse_time(since, now=now, field="since") if since else None
        end = service.parse_time(until, now=now, field="until") if until else None
        return await collect_pages(
            lambda after: service.list_events(
                c.uow(),
                scope=Scope.operator(),
                serial=serial,
                group=group,
                actor=actor,
                kinds=kind or (),
                since=start,
                until=end,
                cursor=after,
                limit=limit,
            ),
            cursor,
            all_pages,
        )

    events, next_cursor = run(common, work)
    if common.json:
        output.print_json(
            {"items": [output.event_dict(e) for e in events], "next_cursor": next_cursor}
        )
        return
    output.table(
        ["id", "at", "type", "serial", "group", "actor", "data"],
        [
            (
                str(e.id),
                output.short_time(e.at),
                e.type.value,
                e.serial or "",
                e.group_path or "",
                e.actor,
                orjson.dumps(e.data).decode() if e.data else "",
            )
            for e in events
        ],
    )
    if next_cursor:
        output.success(f"more: --cursor {next_cursor}   (or --all)")


@app.command("tail")
@common_options()
def tail(
    common: Common,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing events as they are committed (Ctrl-C stops)."
        ),
    ] = False,
    lines: Annotated[
        int,
        typer.Option("--lines", "-n", min=0, max=500, help="How many of the latest events first."),
    ] = 10,
    serial: SerialOpt = None,
    group: GroupOpt = None,
    actor: ActorOpt = None,
    kind: KindOpt = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=60, help="Seconds between looks at the log.")
    ] = 1.0,
) -> None:
    """Print the latest events; with --follow, each one committed later, until Ctrl-C.

    Oldest first, one a line (--json: JSON lines)."""

    async def work(c: Container) -> None:
        last, follower = await service.tail_events(
            c.uow,
            scope=Scope.operator(),
            serial=serial,
            group=group,
            actor=actor,
            kinds=kind or (),
            limit=lines,
        )
        _emit(last, common.json)
        if follow:
            await _follow(follower, common.json, interval)

    run(common, work)


async def _follow(follower: service.EventFollower, json: bool, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            _emit(await follower.poll(), json)
            if follower.behind:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
