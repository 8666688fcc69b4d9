"""The overview's daily summary of devices, kept by triggers on devices, and an index on
claims by status for its failed and expired claims.

``funnel_days``: per UTC day of registration, group (the device's; the nil UUID for none)
and model (the nil UUID for none): devices registered that day, and how many of them are
provisioned and claimed now. ``claim_delay_days``: per day of registration and group, the
claimed devices by their time-to-claim bucket (domain/funnel.py DELAY_BOUNDS, copied below).

Triggers keep both in the transaction that changes a device — whichever path writes it
(the importer's raw inserts, the provisioning writer, claims, releases, deletions) — so the
overview sums at most a row per day, group and model instead of counting a million devices.
SQLite: row triggers (on insert; on update of the five columns that matter, when one
changed; on delete). PostgreSQL: statement triggers over transition tables, one aggregate
upsert per statement (a COPY of a hundred thousand devices is one). The upgrade fills the
tables from the devices already there.

NOTE for later migrations: a SQLite batch migration that recreates ``devices`` drops its
triggers; create them again (``create_triggers``) after it.

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-05 16:00:00
"""

# ruff: noqa: S608 - SQL built from this module's constants only, no input

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# domain/funnel.py DELAY_BOUNDS at this revision (seconds, upper bounds, exclusive).
_M, _H, _D = 60, 3600, 86400
DELAY_BOUNDS = (
    *(_M, 5 * _M, 15 * _M, 30 * _M),
    *(_H, 2 * _H, 4 * _H, 8 * _H, 12 * _H),
    *(_D, 2 * _D, 3 * _D, 7 * _D, 14 * _D, 30 * _D, 60 * _D, 90 * _D, 180 * _D),
)
_NIL = {
    "sqlite": "'00000000000000000000000000000000'",
    "postgresql": "'00000000-0000-0000-0000-000000000000'::uuid",
}


def _day(dialect: str, row: str) -> str:
    if dialect == "sqlite":
        return f"substr({row}.created_at, 1, 10)"
    return f"to_char({row}.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _delay(dialect: str, row: str) -> str:
    """Whole Unix seconds from registration to claim (domain/funnel.py delay_seconds)."""
    if dialect == "sqlite":
        return (
            f"(CAST(strftime('%s', {row}.claimed_at) AS INTEGER)"
            f" - CAST(strftime('%s', {row}.created_at) AS INTEGER))"
        )
    return (
        f"(floor(extract(epoch FROM {row}.claimed_at))"
        f" - floor(extract(epoch FROM {row}.created_at)))"
    )


def _bucket(dialect: str, row: str) -> str:
    d = _delay(dialect, row)
    whens = " ".join(f"WHEN {d} < {b} THEN {i}" for i, b in enumerate(DELAY_BOUNDS))
    return f"(CASE {whens} ELSE {len(DELAY_BOUNDS)} END)"


def _keys(dialect: str, row: str) -> tuple[str, str, str]:
    nil = _NIL[dialect]
    return (
        _day(dialect, row),
        f"coalesce({row}.group_id, {nil})",
        f"coalesce({row}.model_id, {nil})",
    )


def _flag(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS INTEGER)" if dialect == "postgresql" else f"({expr})"


_FUNNEL_UPSERT = (
    " ON CONFLICT (day, group_key, model_key) DO UPDATE SET"
    " registered = funnel_days.registered + excluded.registered,"
    " provisioned = funnel_days.provisioned + excluded.provisioned,"
    " claimed = funnel_days.claimed + excluded.claimed"
)
_DELAY_UPSERT = (
    " ON CONFLICT (day, group_key, bucket) DO UPDATE SET"
    " claimed = claim_delay_days.claimed + excluded.claimed"
)


def _funnel_rows(dialect: str, row: str, sign: str, source: str) -> str:
    day, group, model = _keys(dialect, row)
    p = _flag(dialect, f"{row}.provisioned_at IS NOT NULL")
    c = _flag(dialect, f"{row}.claimed_at IS NOT NULL")
    return f"SELECT {day} AS day, {group} AS g, {model} AS m, {sign}1 AS r, {sign}{p} AS p, {sign}{c} AS c FROM {source}"


def _delay_rows(dialect: str, row: str, sign: str, source: str) -> str:
    day, group, _ = _keys(dialect, row)
    return (
        f"SELECT {day} AS day, {group} AS g, {_bucket(dialect, row)} AS b, {sign}1 AS n"
        f" FROM {source} WHERE {row}.claimed_at IS NOT NULL"
    )


def _apply(dialect: str, parts: list[tuple[str, str]]) -> list[str]:
    """Statements adding each (sign, source) part's rows to both summaries."""
    funnel = " UNION ALL ".join(_funnel_rows(dialect, "d", s, src) for s, src in parts)
    delays = " UNION ALL ".join(_delay_rows(dialect, "d", s, src) for s, src in parts)
    return [
        "INSERT INTO funnel_days (day, group_key, model_key, registered, provisioned, claimed)"
        f" SELECT day, g, m, sum(r), sum(p), sum(c) FROM ({funnel}) AS x"
        " GROUP BY day, g, m HAVING sum(r) <> 0 OR sum(p) <> 0 OR sum(c) <> 0"
        " ORDER BY day, g, m" + _FUNNEL_UPSERT,
        "INSERT INTO claim_delay_days (day, group_key, bucket, claimed)"
        f" SELECT day, g, b, sum(n) FROM ({delays}) AS x"
        " GROUP BY day, g, b HAVING sum(n) <> 0 ORDER BY day, g, b" + _DELAY_UPSERT,
    ]


def _sqlite_row(row: str, sign: str) -> list[str]:
    """One device row's (OLD or NEW) contribution, as SQLite trigger statements."""
    day, group, model = _keys("sqlite", row)
    p, c = f"({row}.provisioned_at IS NOT NULL)", f"({row}.claimed_at IS NOT NULL)"
    return [
        "INSERT INTO funnel_days (day, group_key, model_key, registered, provisioned, claimed)"
        f" SELECT {day}, {group}, {model}, {sign}1, {sign}{p}, {sign}{c} WHERE true"
        + _FUNNEL_UPSERT,
        "INSERT INTO claim_delay_days (day, group_key, bucket, claimed)"
        f" SELECT {day}, {group}, {_bucket('sqlite', row)}, {sign}1"
        f" WHERE {row}.claimed_at IS NOT NULL" + _DELAY_UPSERT,
    ]


_WATCHED = ("created_at", "group_id", "model_id", "provisioned_at", "claimed_at")


def create_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _WATCHED)
        bodies = {
            "insert": ("AFTER INSERT ON devices", _sqlite_row("NEW", "")),
            "update": (
                f"AFTER UPDATE OF {', '.join(_WATCHED)} ON devices WHEN {changed}",
                _sqlite_row("OLD", "-") + _sqlite_row("NEW", ""),
            ),
            "delete": ("AFTER DELETE ON devices", _sqlite_row("OLD", "-")),
        }
        for name, (when, statements) in bodies.items():
            body = "; ".join(statements)
            op.execute(f"CREATE TRIGGER devices_funnel_{name} {when} BEGIN {body}; END")
        return
    parts = {
        "insert": ("NEW TABLE AS new_rows", [("", "new_rows AS d")]),
        "update": (
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            [("-", "old_rows AS d"), ("", "new_rows AS d")],
        ),
        "delete": ("OLD TABLE AS old_rows", [("-", "old_rows AS d")]),
    }
    for name, (referencing, sources) in parts.items():
        body = "; ".join(_apply("postgresql", sources))
        op.execute(
            f"CREATE FUNCTION provisiond_funnel_{name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {body}; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER devices_funnel_{name} AFTER {name.upper()} ON devices "
            f"REFERENCING {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION provisiond_funnel_{name}()"
        )


def drop_triggers(dialect: str) -> None:
    for name in ("insert", "update", "delete"):
        on = " ON devices" if dialect == "postgresql" else ""
        op.execute(f"DROP TRIGGER IF EXISTS devices_funnel_{name}{on}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS provisiond_funnel_{name}()")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "funnel_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("group_key", sa.Uuid(), nullable=False),
        sa.Column("model_key", sa.Uuid(), nullable=False),
        sa.Column("registered", sa.BigInteger(), nullable=False),
        sa.Column("provisioned", sa.BigInteger(), nullable=False),
        sa.Column("claimed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "group_key", "model_key", name=op.f("pk_funnel_days")),
    )
    op.create_table(
        "claim_delay_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("group_key", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "group_key", "bucket", name=op.f("pk_claim_delay_days")),
    )
    op.create_index(op.f("ix_claims_status_started_at"), "claims", ["status", "started_at"])
    for statement in _apply(dialect, [("", "devices AS d")]):
        op.execute(statement)
    create_triggers(dialect)


def downgrade() -> None:
    drop_triggers(op.get_bind().dialect.name)
    op.drop_index(op.f("ix_claims_status_started_at"), table_name="claims")
    op.drop_table("claim_delay_days")
    op.drop_table("funnel_days")
