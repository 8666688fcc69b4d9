"""Reading import files: CSV (comma or semicolon) and JSON lines, from a binary stream.

The reader never loads the whole file: it yields one record at a time with its line number,
and reports structural problems (a row with the wrong number of cells, a line that is not a
JSON object, bytes that are not UTF-8) as :class:`~provisiond.errors.Problem` values in the
same stream, so the caller can list every problem of a file in one pass.

A CSV cell that provisiond's exports neutralised for spreadsheets (``'=…``, ``'-…``; see
:mod:`provisiond.protocols.csv_cells`) is read back as the value it was, so an export
re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

import orjson

from provisiond.domain.importing import Columns, read_columns
from provisiond.domain.text import has_undecodable_bytes
from provisiond.errors import InvalidInput, Problem
from provisiond.protocols.csv_cells import restore_row

csv.field_size_limit(1024 * 1024)


class ImportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def guess(cls, filename: str | None, content_type: str | None = None) -> ImportFormat:
        ct = (content_type or "").split(";")[0].strip().lower()
        if ct in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
            return cls.JSONL
        if ct in ("text/csv", "application/csv"):
            return cls.CSV
        name = (filename or "").lower()
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return cls.JSONL
        return cls.CSV

    @classmethod
    def parse(cls, text: str) -> ImportFormat:
        try:
            return cls(text.strip().lower())
        except ValueError:
            problem = Problem(f"{text!r} is not an import format; use csv or jsonl", "format")
            raise InvalidInput(str(problem), problems=[problem]) from None


@dataclass(slots=True)
class RawRecord:
    line: int
    values: dict[str, str]
    columns: Columns


Item = RawRecord | Problem


def read_import(stream: IO[bytes], fmt: ImportFormat) -> Iterator[Item]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if fmt is ImportFormat.JSONL:
        return _read_jsonl(text)
    return _read_csv(text)


def _sniff_delimiter(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _read_csv(text: io.TextIOWrapper) -> Iterator[Item]:  # noqa: C901 - one check per way a CSV line can be malformed, each naming the line
    header_line = 1
    first = text.readline()
    while first and not first.strip():
        header_line += 1
        first = text.readline()
    if not first:
        yield Problem("the file is empty: it needs a header line with a 'serial' column", line=1)
        return
    delimiter = _sniff_delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter))
    columns, problems = read_columns(header, line=header_line)
    yield from problems
    if problems:
        return
    names = list(header)
    width = len(names)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + header_line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            if "unexpected end of data" in str(err):  # the file ends inside quotes
                yield Problem(
                    "the CSV is malformed: a quoted cell starts on this line and is never closed",
                    line=start,
                )
            else:
                yield Problem(f"the CSV is malformed: {err}", line=reader.line_num + header_line)
            return
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != width:
            yield Problem(f"has {len(row)} cells; the header has {width}", line=start)
            continue
        if "'" in "".join(row):  # maybe a cell an export neutralised: read its value
            row = restore_row(row)
        yield RawRecord(start, dict(zip(names, row, strict=True)), columns)


def _read_jsonl(text: io.TextIOWrapper) -> Iterator[Item]:  # noqa: C901, PLR0912 - one check per way a JSON line can be malformed, each naming the line
    cache: dict[tuple[str, ...], tuple[Columns, list[Problem]]] = {}
    seen_any = False
    for number, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        seen_any = True
        if has_undecodable_bytes(raw):
            yield Problem("is not valid UTF-8", line=number)
            continue
        try:
            obj: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            yield Problem(f"is not valid JSON: {err.msg}", line=number)
            continue
        if not isinstance(obj, dict):
            yield Problem("is not a JSON object", line=number)
            continue
        values: dict[str, str] = {}
        bad = False
        for key, value in obj.items():
            if value is None:
                continue
            if isinstance(value, bool):
                values[key] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                values[key] = str(value)
            else:
                yield Problem("must be a string, a number or a boolean", field=key, line=number)
                bad = True
        if bad:
            continue
        keys = tuple(values)
        if keys not in cache:
            cache[keys] = read_columns(keys, line=number)
        columns, problems = cache[keys]
        if problems:
            for p in problems:
                yield Problem(p.message, line=number)
            continue
        yield RawRecord(number, values, columns)
    if not seen_any:
        yield Problem("the file is empty", line=1)
