"""Portable column types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        return utc_datetime(value)


def utc_datetime(value: Any) -> datetime | None:
    """A stored timestamp (SQLite's naive UTC text, or a driver's datetime) as aware UTC."""
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def sqlite_timestamp(value: datetime) -> str:
    """The text UtcDateTime stores on SQLite (``%Y-%m-%d %H:%M:%S.%f``), for the raw
    bulk-insert and provisioning paths (isoformat: a fifth of strftime's cost)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class bytewise(ColumnElement[str]):
    """A text expression compared by its bytes (code points), whatever the collation.

    PostgreSQL compares text by the database's collation: under a linguistic one (ICU
    ``en-US``, glibc ``en_US.UTF-8``) ``Acme&Partners`` sorts between ``Acme/`` and
    ``Acme0``, so a range of paths is not a subtree. ``COLLATE "C"`` compares code points,
    as SQLite's default BINARY collation does; UTF-8's byte order is code-point order.

    Its expression is part of a statement's cache key (``_traverse_internals``): without
    it SQLAlchemy can make no key for a statement holding one, and compiles every scoped
    read again on each execution (docs/performance.md, "A scoped read's statement").
    """

    # SQLAlchemy reads this list on the class (HasTraverseInternals declares it so)
    _traverse_internals: list[tuple[str, InternalTraversal]] = [  # noqa: RUF012
        ("expr", InternalTraversal.dp_clauseelement)
    ]
    inherit_cache = True

    def __init__(self, expr: ColumnElement[str]) -> None:
        self.expr = expr
        self.type = expr.type


@compiles(bytewise)
def _bytewise(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.expr, **kw))


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.expr, **kw)} COLLATE "C")'
