"""Validation of bulk-import records (CSV rows or JSON lines), one record at a time.

Pure: it knows the column rules, not the database. Cross-record checks (duplicates in the file,
serials already registered, unknown groups, models and owners) belong to the registration
service, which has the store.

Columns: ``serial`` (required), ``name``, ``model``, ``group``, ``owner``, ``profile`` (how
the device is claimed; see docs/claiming.md); every other column is
a tag. Column names are matched case-insensitively and trimmed. Empty cells mean "not given".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from provisiond.domain.device import name_problem, tag_key_problem, tag_value_problem
from provisiond.domain.limits import (
    NAME_MAX,
    SERIAL_MAX,
    TAG_VALUE_MAX,
    TAGS_PER_DEVICE_MAX,
)
from provisiond.domain.serials import normalise_serial, serial_problem
from provisiond.domain.text import has_control_chars, has_undecodable_bytes
from provisiond.errors import Problem

FIELD_COLUMNS = ("serial", "name", "model", "group", "owner", "profile")


@dataclass(slots=True)
class ImportRecord:
    line: int
    serial: str
    name: str
    model: str | None
    group: str | None
    owner: str | None
    tags: dict[str, str]
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class Columns:
    """What each column of a header means: a device field or a tag name."""

    fields: dict[str, str]  # column as written -> field name
    tags: dict[str, str]  # column as written -> tag key
    # The column of each of FIELD_COLUMNS (serial, name, model, group, owner, profile), or None.
    by_field: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.by_field:
            object.__setattr__(self, "by_field", tuple(self.column(f) for f in FIELD_COLUMNS))

    @property
    def names(self) -> list[str]:
        return [*self.fields, *self.tags]

    def column(self, field: str) -> str | None:
        """The column holding a device field, as written in the header."""
        for column, name in self.fields.items():
            if name == field:
                return column
        return None


# Columns of a manufacturing file that hold secrets (an ESP proof of possession, a Matter
# setup passcode): never made tags.
SECRET_COLUMNS = frozenset({"pop", "passcode"})


def read_columns(header: Iterable[str], *, line: int = 1) -> tuple[Columns, list[Problem]]:
    """Classify the header's columns; report missing ``serial``, duplicates and bad names."""
    fields: dict[str, str] = {}
    tags: dict[str, str] = {}
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, raw in enumerate(header, start=1):
        name = raw.strip().lstrip("\ufeff").strip()
        key = name.lower()
        if has_undecodable_bytes(raw):
            problems.append(Problem(f"column {index}: the name is not valid UTF-8", line=line))
            continue
        if not name:
            problems.append(Problem(f"column {index} has no name", line=line))
            continue
        if key in seen:
            problems.append(Problem(f"column {name!r} appears twice", line=line))
            continue
        seen.add(key)
        if key in FIELD_COLUMNS:
            fields[raw] = key
            continue
        if key in SECRET_COLUMNS:
            problems.append(
                Problem(
                    f"column {name!r} holds a device secret, and tags are stored and shown in "
                    "clear: leave it out of the import and keep the file for `provisiond labels "
                    "--secrets`",
                    line=line,
                )
            )
            continue
        problem = tag_key_problem(name)
        if problem:
            problems.append(Problem(f"column {name!r}: {problem}", line=line))
            continue
        tags[raw] = name
    if "serial" not in fields.values():
        problems.append(Problem("there is no 'serial' column", line=line))
    return Columns(fields, tags), problems


def parse_record(
    values: Mapping[str, str], columns: Columns, line: int
) -> ImportRecord | list[Problem]:
    """Validate one record. ``values`` maps column (as written in the header) to cell text.

    The common case (short, printable text) is decided by a few C-level string checks; only a
    record that fails them goes through :func:`_problems`, which says what is wrong.
    """
    get = values.get
    fields = columns.by_field
    serial = normalise_serial(get(fields[0], "") if fields[0] else "")
    name, model, group, owner, profile = (
        (get(col) or "").strip() if col else "" for col in fields[1:]
    )
    tags = {key: value for col, key in columns.tags.items() if (value := get(col))}
    if (
        _SERIAL.fullmatch(serial)
        and len(serial) <= SERIAL_MAX
        and len(name) <= NAME_MAX
        and len(tags) <= TAGS_PER_DEVICE_MAX
        and (name + model + group + owner + profile).isprintable()
        and all(len(v) <= TAG_VALUE_MAX and v.isprintable() for v in tags.values())
        and not (group and owner)
    ):
        return ImportRecord(
            line,
            serial,
            name or serial,
            model or None,
            group or None,
            owner or None,
            tags,
            profile or None,
        )
    problems = _problems(
        serial,
        name,
        {"model": model, "group": group, "owner": owner, "profile": profile},
        tags,
        line,
    )
    if problems:
        return problems
    return ImportRecord(
        line,
        serial,
        name or serial,
        model or None,
        group or None,
        owner or None,
        tags,
        profile or None,
    )


_SERIAL = re.compile(r"[A-Z0-9._:\-]+")


def _problems(  # noqa: C901 - one check per column of an import row, read top to bottom
    serial: str, name: str, texts: dict[str, str], tags: dict[str, str], line: int
) -> list[Problem]:
    """Everything wrong with a record that the fast check refused (maybe nothing: text such
    as a no-break space is not 'printable' but is allowed)."""
    if has_undecodable_bytes(serial) or has_undecodable_bytes(name):
        return [Problem("contains bytes that are not valid UTF-8", line=line)]
    problems: list[Problem] = []
    problem = serial_problem(serial)
    if problem:
        problems.append(Problem(problem, field="serial", line=line))
    if name:
        problem = name_problem(name)
        if problem:
            problems.append(Problem(problem, field="name", line=line))
    for fieldname, text in texts.items():
        if text and (has_undecodable_bytes(text) or has_control_chars(text)):
            problems.append(
                Problem(
                    "is not valid UTF-8 text"
                    if has_undecodable_bytes(text)
                    else "contains a control character",
                    field=fieldname,
                    line=line,
                )
            )
    for key, value in tags.items():
        if has_undecodable_bytes(value):
            problems.append(Problem("is not valid UTF-8", field=key, line=line))
            continue
        problem = tag_value_problem(value)
        if problem:
            problems.append(Problem(problem, field=key, line=line))
    if len(tags) > TAGS_PER_DEVICE_MAX:
        problems.append(Problem(f"a device has at most {TAGS_PER_DEVICE_MAX} tags", line=line))
    if texts["group"] and texts["owner"]:
        problems.append(Problem("give a group or an owner, not both", field="owner", line=line))
    return problems
