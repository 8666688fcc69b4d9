"""The overview's daily summaries, kept by triggers on devices and claims, and an index on
claims by status (the live claims whose window closed).

``device_days``: per UTC day and group (the nil UUID for none), the devices registered
that day in the group, how many of them are provisioned and claimed now, the claimed ones
in each time-to-claim bucket (b0..b18: domain/funnel.py DELAY_BOUNDS, copied below), and
the claims started that day by people of the group that failed or expired, by reason
(domain/funnel.py REASONS). ``funnel_days``: the same per model (the nil UUID for none):
devices registered, provisioned, claimed; claims failed and expired.

Triggers keep them in the transaction that changes a device or a claim — whichever path
writes it (the importer's raw inserts, the provisioning writer, claims, releases,
deletions, cascades) — so the overview sums at most a row per day, group and model
instead of counting a million devices. SQLite: row triggers (on insert; on update of the
columns that matter, when one changed; on delete). PostgreSQL: statement triggers over
transition tables, one aggregate upsert per statement and summary (a COPY of a million
devices is one). On SQLite the tables are WITHOUT ROWID: a range of days is read in key
order, without a second lookup per row. The upgrade fills them from the rows already there.

NOTE for later migrations: a SQLite batch migration that recreates ``devices`` or
``claims`` drops its triggers; create them again (``create_triggers``) after it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 16:00:00
"""

# ruff: noqa: S608 - SQL built from this module's constants only, no input

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
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


def _utc_day(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"substr({column}, 1, 10)"
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


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


def _in_bucket(i: int) -> str:
    """Whether the delay ``d`` (seconds) falls in bucket ``i`` (between its bounds)."""
    low = f"d >= {DELAY_BOUNDS[i - 1]}" if i > 0 else ""
    high = f"d < {DELAY_BOUNDS[i]}" if i < len(DELAY_BOUNDS) else ""
    return " AND ".join(c for c in (low, high) if c)


def _flag(dialect: str, expr: str) -> str:
    return f"CAST(({expr}) AS INTEGER)" if dialect == "postgresql" else f"({expr})"


@dataclass(frozen=True)
class Summary:
    """A summary table: its key columns, and for one source row (alias ``row``) the inner
    columns it is computed from, which rows count, and each counted column's value."""

    table: str
    keys: tuple[str, ...]
    inner: Callable[[str, str], dict[str, str]]  # (dialect, row) -> name: expression
    values: Callable[[str], dict[str, str]]  # dialect -> column: expression over inner
    where: Callable[[str], str] = lambda _row: "true"


def _nil(dialect: str, expr: str) -> str:
    return f"coalesce({expr}, {_NIL[dialect]})"


FUNNEL = Summary(
    "funnel_days",
    ("day", "group_key", "model_key"),
    lambda dialect, row: {
        "day": _utc_day(dialect, f"{row}.created_at"),
        "group_key": _nil(dialect, f"{row}.group_id"),
        "model_key": _nil(dialect, f"{row}.model_id"),
        "p": _flag(dialect, f"{row}.provisioned_at IS NOT NULL"),
        "c": _flag(dialect, f"{row}.claimed_at IS NOT NULL"),
    },
    lambda _dialect: {"registered": "1", "provisioned": "p", "claimed": "c"},
)
DEVICE_DAYS = Summary(
    "device_days",
    ("day", "group_key"),
    lambda dialect, row: {
        "day": _utc_day(dialect, f"{row}.created_at"),
        "group_key": _nil(dialect, f"{row}.group_id"),
        "p": _flag(dialect, f"{row}.provisioned_at IS NOT NULL"),
        "c": _flag(dialect, f"{row}.claimed_at IS NOT NULL"),
        "d": _delay(dialect, row),  # NULL when not claimed: in no bucket
    },
    lambda _dialect: {
        "registered": "1",
        "provisioned": "p",
        "claimed": "c",
        **{
            f"b{i}": f"CASE WHEN {_in_bucket(i)} THEN 1 ELSE 0 END"
            for i in range(len(DELAY_BOUNDS) + 1)
        },
    },
)
# Claims that failed or expired count where they started (UTC day) and who started them
# (the claimer's group): in device_days by reason (domain/funnel.py REASONS, copied here as
# conditions), in funnel_days by the device's model — as they were when the claim ended.
_FAILED, _EXPIRED = "status = 'failed'", "status = 'expired'"
REASON_CONDITIONS = {
    "failed_codes": f"{_FAILED} AND proof <> 'device-secret'",
    "failed_secrets": f"{_FAILED} AND proof = 'device-secret'",
    "expired_button": f"{_EXPIRED} AND NOT proven AND proof = 'button'",
    "expired_code": f"{_EXPIRED} AND NOT proven AND proof = 'code'",
    "expired_secret": f"{_EXPIRED} AND NOT proven AND proof = 'device-secret'",
    "expired_none": f"{_EXPIRED} AND NOT proven AND proof = 'none'",
    "expired_proven": f"{_EXPIRED} AND proven",
}


def _claim_inner(dialect: str, row: str, *, model: bool) -> dict[str, str]:
    inner = {
        "day": _utc_day(dialect, f"{row}.started_at"),
        "group_key": _nil(dialect, f"(SELECT u.group_id FROM users u WHERE u.id = {row}.user_id)"),
        "status": f"{row}.status",
        "proof": f"{row}.proof",
        "proven": f"({row}.proven_at IS NOT NULL)",
    }
    if model:
        inner["model_key"] = _nil(
            dialect, f"(SELECT dv.model_id FROM devices dv WHERE dv.id = {row}.device_id)"
        )
    return inner


def _ended(row: str) -> str:
    return f"{row}.status IN ('failed', 'expired')"


CLAIM_REASONS = Summary(
    "device_days",
    ("day", "group_key"),
    lambda dialect, row: _claim_inner(dialect, row, model=False),
    lambda _dialect: {k: f"CASE WHEN {c} THEN 1 ELSE 0 END" for k, c in REASON_CONDITIONS.items()},
    _ended,
)
CLAIM_MODELS = Summary(
    "funnel_days",
    ("day", "group_key", "model_key"),
    lambda dialect, row: _claim_inner(dialect, row, model=True),
    lambda _dialect: {
        "failed": f"CASE WHEN {_FAILED} THEN 1 ELSE 0 END",
        "expired": f"CASE WHEN {_EXPIRED} THEN 1 ELSE 0 END",
    },
    _ended,
)
SUMMARIES = {"devices": (FUNNEL, DEVICE_DAYS), "claims": (CLAIM_REASONS, CLAIM_MODELS)}


# The writer's slot, the last key of each summary row. On PostgreSQL each backend adds to
# rows of its own (its process id): concurrent transactions never update the same summary
# row, so a transaction that writes devices never waits for another's commit on a summary
# row — which made two overlapping imports deadlock (one held the day's row, the other a
# serial the first was about to insert). Reads sum over slots. SQLite has one writer: 0.
_SLOT = {"sqlite": "0", "postgresql": "pg_backend_pid()"}


def _keys(summary: Summary) -> str:
    return ", ".join((*summary.keys, "slot"))


def _inner(dialect: str, summary: Summary, row: str) -> str:
    columns = {**summary.inner(dialect, row), "slot": _SLOT[dialect]}
    return ", ".join(f"{e} AS {n}" for n, e in columns.items())


def _apply(dialect: str, summary: Summary, parts: list[tuple[str, str, str]]) -> str:
    """The statement adding each (sign, row alias, FROM source) part's rows to ``summary``."""
    values = summary.values(dialect)
    keys = _keys(summary)
    selects = []
    for sign, row, source in parts:
        inner = _inner(dialect, summary, row)
        outer = ", ".join(f"{sign}({e}) AS {c}" for c, e in values.items())
        selects.append(
            f"SELECT {keys}, {outer} FROM (SELECT {inner} FROM {source}"
            f" WHERE {summary.where(row)}) AS r"
        )
    sums = ", ".join(f"sum({c})" for c in values)
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in values)
    update = ", ".join(f"{c} = {summary.table}.{c} + excluded.{c}" for c in values)
    return (
        f"INSERT INTO {summary.table} ({keys}, {', '.join(values)})"
        f" SELECT {keys}, {sums} FROM ({' UNION ALL '.join(selects)}) AS x"
        f" GROUP BY {keys} HAVING {nonzero} ORDER BY {keys}"
        f" ON CONFLICT ({keys}) DO UPDATE SET {update}"
    )


def _apply_row(summary: Summary, sign: str, row: str) -> str:
    """SQLite: the statement adding one row's (NEW or OLD) part to ``summary`` — a plain
    upsert, half the cost per row of the grouped form above."""
    values = summary.values("sqlite")
    keys = _keys(summary)
    inner = _inner("sqlite", summary, row)
    update = ", ".join(f"{c} = {summary.table}.{c} + excluded.{c}" for c in values)
    return (
        f"INSERT INTO {summary.table} ({keys}, {', '.join(values)})"
        f" SELECT {keys}, {', '.join(f'{sign}({e})' for e in values.values())}"
        f" FROM (SELECT {inner}) AS r WHERE {summary.where(row)}"
        f" ON CONFLICT ({keys}) DO UPDATE SET {update}"
    )


_WATCHED = {
    "devices": ("created_at", "group_id", "model_id", "provisioned_at", "claimed_at"),
    "claims": ("status", "proof", "proven_at", "started_at", "user_id", "device_id"),
}


# A claim's summary key reads its device's model and its claimer's group: a device or a user
# deleted takes its claims first, while both are there to be read (the cascade would delete
# them after).
_CLAIMS_FIRST = {"devices": "device_id", "users": "user_id"}


def create_triggers(dialect: str) -> None:
    """The triggers that keep the summaries (after a batch migration recreated a table)."""
    for table, column in _CLAIMS_FIRST.items():
        delete = f"DELETE FROM claims WHERE {column} = OLD.id"
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {table}_claims_first BEFORE DELETE ON {table} BEGIN {delete}; END"
            )
            continue
        op.execute(
            f"CREATE FUNCTION provisiond_{table}_claims_first() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {delete}; RETURN OLD; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_claims_first BEFORE DELETE ON {table} FOR EACH ROW"
            f" EXECUTE FUNCTION provisiond_{table}_claims_first()"
        )
    for table, summaries in SUMMARIES.items():
        if dialect == "sqlite":
            watched = _WATCHED[table]
            changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in watched)
            triggers = {
                "insert": ("AFTER INSERT", [("", "NEW")]),
                "update": (f"AFTER UPDATE OF {', '.join(watched)}", [("-", "OLD"), ("", "NEW")]),
                "delete": ("AFTER DELETE", [("-", "OLD")]),
            }
            for name, (when, parts) in triggers.items():
                body = "; ".join(_apply_row(s, sign, row) for sign, row in parts for s in summaries)
                guard = f" WHEN {changed}" if name == "update" else ""
                op.execute(
                    f"CREATE TRIGGER {table}_summary_{name} {when} ON {table}{guard}"
                    f" BEGIN {body}; END"
                )
            continue
        statements = {
            "insert": ("NEW TABLE AS new_rows", [("", "d", "new_rows AS d")]),
            "update": (
                "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                [("-", "d", "old_rows AS d"), ("", "d", "new_rows AS d")],
            ),
            "delete": ("OLD TABLE AS old_rows", [("-", "d", "old_rows AS d")]),
        }
        for name, (referencing, sources) in statements.items():
            body = "; ".join(_apply(dialect, s, sources) for s in summaries)
            op.execute(
                f"CREATE FUNCTION provisiond_{table}_summary_{name}() RETURNS trigger"
                f" LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_summary_{name} AFTER {name.upper()} ON {table}"
                f" REFERENCING {referencing} FOR EACH STATEMENT"
                f" EXECUTE FUNCTION provisiond_{table}_summary_{name}()"
            )


def drop_triggers(dialect: str) -> None:
    for table in _CLAIMS_FIRST:
        on = f" ON {table}" if dialect == "postgresql" else ""
        op.execute(f"DROP TRIGGER IF EXISTS {table}_claims_first{on}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS provisiond_{table}_claims_first()")
    for table in SUMMARIES:
        for name in ("insert", "update", "delete"):
            on = f" ON {table}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS {table}_summary_{name}{on}")
            if dialect == "postgresql":
                op.execute(f"DROP FUNCTION IF EXISTS provisiond_{table}_summary_{name}()")


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "funnel_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("group_key", sa.Uuid(), nullable=False),
        sa.Column("model_key", sa.Uuid(), nullable=False),
        *(_counter(name) for name in ("registered", "provisioned", "claimed", "failed", "expired")),
        sa.Column("slot", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint(
            "day", "group_key", "model_key", "slot", name=op.f("pk_funnel_days")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "device_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("group_key", sa.Uuid(), nullable=False),
        *(
            _counter(name)
            for name in (
                "registered",
                "provisioned",
                "claimed",
                *(f"b{i}" for i in range(len(DELAY_BOUNDS) + 1)),
                *REASON_CONDITIONS,
            )
        ),
        sa.Column("slot", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("day", "group_key", "slot", name=op.f("pk_device_days")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_claims_status_started_at"), "claims", ["status", "started_at"])
    for table, summaries in SUMMARIES.items():
        for summary in summaries:
            op.execute(_apply(dialect, summary, [("", "d", f"{table} AS d")]))
    create_triggers(dialect)


def downgrade() -> None:
    drop_triggers(op.get_bind().dialect.name)
    op.drop_index(op.f("ix_claims_status_started_at"), table_name="claims")
    op.drop_table("device_days")
    op.drop_table("funnel_days")
