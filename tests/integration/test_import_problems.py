"""Every kind of bad import file: the exact problems reported, and nothing written.

Each file is imported through the use case the CLI and the API share, on SQLite and on
PostgreSQL; afterwards every table an import writes has the rows it had before.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from provisiond.bootstrap import open_container
from provisiond.domain.scope import Scope
from provisiond.domain.users import UserSpec
from provisiond.errors import ImportInvalid
from provisiond.services import directory
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, SecretRow, register_devices
from provisiond.settings import load_settings

OPERATOR = Scope.operator()

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TABLES = ("devices", "device_tags", "credentials", "events")

CASES: dict[str, tuple[bytes, list[str]]] = {
    "unknown owner": (
        b"serial,owner\nA1,nobody@example.com\n",
        ["line 2, owner: no user 'nobody@example.com'"],
    ),
    "owner not an e-mail": (
        b"serial,owner\nA1,not-an-email\n",
        ["line 2, owner: 'not-an-email' is not an e-mail address"],
    ),
    "group and owner": (
        b"serial,group,owner\nA1,Org,tech@example.com\n",
        ["line 2, owner: give a group or an owner, not both"],
    ),
    "no serial column": (b"name,model\nx,y\n", ["line 1: there is no 'serial' column"]),
    "empty file": (
        b"",
        ["line 1: the file is empty: it needs a header line with a 'serial' column"],
    ),
    "header only": (b"serial,name\n", ["line 2: the file has a header but no devices"]),
    "bad tag column": (
        b"serial,bad column!\nA1,x\n",
        [
            "line 1: column 'bad column!': tag name 'bad column!' may hold only "
            "letters, digits, '_', '.' and '-'"
        ],
    ),
    "column twice": (b"serial,Serial\nA1,A2\n", ["line 1: column 'Serial' appears twice"]),
    "too many tags": (
        b"serial,"
        + ",".join(f"t{i}" for i in range(33)).encode()
        + b"\nA1,"
        + b",".join(b"v" for _ in range(33))
        + b"\n",
        ["line 2: a device has at most 32 tags"],
    ),
    "serial with a slash": (
        b"serial\nA1/2\n",
        [
            "line 2, serial: contains '/'; a serial may hold only letters A-Z,"
            " digits, '-', '_', '.' and ':'"
        ],
    ),
    "serial too long": (
        b"serial\n" + b"A" * 65 + b"\n",
        ["line 2, serial: is 65 characters long; at most 64 are allowed"],
    ),
    "empty serial": (b"serial,name\n,x\n", ["line 2, serial: is empty"]),
    "tag value too long": (
        b"serial,colour\nA1," + b"r" * 257 + b"\n",
        ["line 2, colour: is 257 characters long; at most 256 are allowed"],
    ),
    "control character": (
        b"serial,name\nA1,a\x07b\n",
        ["line 2, name: contains a control character"],
    ),
    "unclosed quote": (
        b'serial,name\nA1,ok\nA2,"open\nA3,x\n',
        ["line 3: the CSV is malformed: a quoted cell starts on this line and is never closed"],
    ),
    "problems on several lines": (
        b"serial;name;group\nB1;;Org\nB2;;Nowhere\n;;\nB1;;\nB3;\xff;\n",
        [
            "line 3, group: no group 'Nowhere' (create it with `provisiond groups create`)",
            "line 4, serial: is empty",
            "line 5, serial: B1 is also on line 2",
            "line 6: contains bytes that are not valid UTF-8",
        ],
    ),
}

JSONL_CASES: dict[str, tuple[bytes, list[str]]] = {
    "nested value": (
        b'{"serial": "A1", "colour": {"r": 1}}\n',
        ["line 1, colour: must be a string, a number or a boolean"],
    ),
    "no serial": (b'{"name": "x"}\n', ["line 1: there is no 'serial' column"]),
    "not an object": (b'{"serial": "A1"}\n"A2"\n', ["line 2: is not a JSON object"]),
}


async def counts(c: object) -> dict[str, int]:
    engine = c.database.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return {
            t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())  # noqa: S608
            for t in TABLES
        }


class Sink:
    def __init__(self) -> None:
        self.added = 0
        self.prepared = False

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.added += len(rows)

    def prepare(self) -> None:
        self.prepared = True

    def commit(self) -> None:
        pass


def run_import(database_url: str, data: bytes, fmt: ImportFormat) -> list[str]:
    async def main() -> list[str]:
        async with open_container(load_settings(database_url=database_url)) as c:
            await directory.create_group(c.uow(), scope=OPERATOR, path="Org", actor="t", now=NOW)
            await directory.create_user(
                c.uow(),
                scope=OPERATOR,
                spec=UserSpec(
                    "tech@example.com", password="correct horse", role="installer", group="Org"
                ),
                actor="t",
                now=NOW,
            )
            before = await counts(c)
            sink = Sink()
            with pytest.raises(ImportInvalid) as failed:
                await register_devices(
                    c.uow(),
                    scope=OPERATOR,
                    items=read_import(io.BytesIO(data), fmt),
                    options=ImportOptions(),
                    sink=sink,
                    actor="t",
                    now=NOW,
                )
            assert await counts(c) == before
            assert not sink.prepared  # the credentials file is never made durable
            err = failed.value
            total = len(err.problems)
            plural = "s" if total != 1 else ""
            assert str(err) == f"{total} problem{plural} found; nothing was imported"
            return [str(p) for p in err.problems]

    return asyncio.run(main())


@pytest.mark.parametrize("case", CASES)
def test_bad_csv_is_refused_whole(database_url: str, case: str) -> None:
    data, expected = CASES[case]
    assert run_import(database_url, data, ImportFormat.CSV) == expected


@pytest.mark.parametrize("case", JSONL_CASES)
def test_bad_json_lines_are_refused_whole(database_url: str, case: str) -> None:
    data, expected = JSONL_CASES[case]
    assert run_import(database_url, data, ImportFormat.JSONL) == expected
