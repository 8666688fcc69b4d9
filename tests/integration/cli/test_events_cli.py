"""`provisiond events list / tail --follow`, and operator-wide webhooks from the CLI, on both
backends; `tail --follow` as a real process that sees an event committed after it started
and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

from provisiond.bootstrap import Container
from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.scope import Scope
from provisiond.services import directory
from provisiond.services import events as service
from provisiond.settings import load_settings
from tests.integration.cli.conftest import Cli
from tests.support.containers import within

WAIT = 60  # seconds: only how long a broken run may hang before it fails


def test_events_list_filters_and_pages(cli: Cli) -> None:
    cli("devices", "create", "EV-1", "--group", "Kanarra/Tekton Health")
    cli("devices", "create", "EV-2")
    cli("devices", "delete", "EV-1", "--yes")
    one = cli.json("events", "list", "--serial", "ev-1")
    assert isinstance(one, dict)
    assert [(e["type"], e["group"]) for e in one["items"]] == [
        ("device.deleted", "Kanarra/Tekton Health"),
        ("device.registered", "Kanarra/Tekton Health"),
    ]
    tekton = cli.json(
        "events",
        "list",
        "--group",
        "Kanarra/Tekton Health",
        "--kind",
        "group.created",
        "--kind",
        "device.deleted",
    )
    assert isinstance(tekton, dict)
    assert [e["type"] for e in tekton["items"]] == ["device.deleted", "group.created"]
    page = cli.json("events", "list", "--limit", "2", "--since", "1h")
    assert isinstance(page, dict)
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    every = cli.json("events", "list", "--all", "--limit", "2")
    assert isinstance(every, dict)
    assert len(every["items"]) > 2
    assert every["next_cursor"] is None
    assert cli.json("events", "list", "--until", "1h") == {"items": [], "next_cursor": None}
    table = cli("events", "list", "--serial", "EV-2").stdout
    assert "EV-2" in table
    bad = cli("events", "list", "--kind", "no.such", code=2)
    assert "kind" in bad.stderr
    cli("events", "list", "--since", "last tuesday", code=2)


def test_operator_wide_webhooks_from_the_cli(cli: Cli) -> None:
    added = cli.json("webhooks", "add", "https://93.184.215.14/all", "--operator-wide")
    assert isinstance(added, dict)
    assert added["group"] is None
    listed = cli.json("webhooks", "list")
    assert [w["group"] for w in listed] == [None]  # type: ignore[union-attr]
    cli("webhooks", "add", "https://93.184.215.14/x", code=2)  # neither
    cli(
        "webhooks",
        "add",
        "https://93.184.215.14/x",
        "--operator-wide",
        "--group",
        "Kanarra",
        code=2,
    )  # both


class Lines:
    """A process's stdout, one line at a time, read by a thread (so a wait can time out)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: [self._lines.put(line) for line in stdout], daemon=True
        ).start()

    def next(self) -> dict[str, Any]:
        return json.loads(self._lines.get(timeout=WAIT))  # type: ignore[no-any-return]


def test_tail_follow_prints_events_committed_after_it_started(cli: Cli) -> None:
    cli("devices", "create", "BEFORE-1")
    env = {**os.environ, "PROVISIOND_DATABASE_URL": cli.url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisiond",
            "events",
            "tail",
            "--follow",
            "--json",
            "--lines",
            "1",
            "--interval",
            "0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(process)
        assert lines.next()["serial"] == "BEFORE-1"  # it has started: the latest event
        cli("devices", "create", "AFTER-1", "--group", "Kanarra/Tekton Health")
        cli("groups", "create", "Kanarra/Later")
        after = lines.next()
        assert (after["type"], after["serial"], after["group"]) == (
            "device.registered",
            "AFTER-1",
            "Kanarra/Tekton Health",
        )
        later = lines.next()
        assert (later["type"], later["group"]) == ("group.created", "Kanarra/Later")
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(WAIT)
    stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_a_follower_sees_an_event_whose_transaction_commits_late(postgres_url: str) -> None:
    """On PostgreSQL an event's id is taken when it is written: a transaction that wrote
    first may commit last. The follower looks at the missing id again and prints it."""

    async def work(c: Container) -> list[list[str]]:
        _, follower = await service.tail_events(c.uow, scope=Scope.operator(), limit=0)
        seen: list[list[str]] = []
        slow = c.uow()
        async with slow:
            await slow.events.add(
                NewEvent(EventType.MODEL_ADDED, c.now(), "slow", data={"name": "late"})
            )
            await directory.create_group(
                c.uow(), scope=Scope.operator(), path="Quick", actor="quick", now=c.now()
            )
            seen.append([e.actor for e in await follower.poll()])
            await slow.commit()
        seen.append([e.actor for e in await follower.poll()])
        seen.append([e.actor for e in await follower.poll()])
        return seen

    assert within(load_settings(database_url=postgres_url), work) == [["quick"], ["slow"], []]
