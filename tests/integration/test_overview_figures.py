"""The overview's figures equal a naive count of the devices and claims, on both backends.

Devices are registered through every path that writes them (the importer's raw inserts,
the one-device service, plain SQL), then provisioned, claimed, released, moved to other
groups and customers, given another model and deleted — one row at a time and many rows
per statement (PostgreSQL's summary triggers run per statement) — and claims of every
status are added. The overview of admins at several levels, over presets and ranges, must
then say exactly what a count over the rows in Python says: the summary the triggers keep
never drifts from the devices, and another customer's devices and claims never count.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, delete, insert, select, update

from provisiond.bootstrap import open_container
from provisiond.domain.claims import ClaimProof, ClaimStatus
from provisiond.domain.device import DeviceState
from provisiond.domain.funnel import DELAY_BOUNDS, REASONS, Counts, delay_bucket, ending_reason
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role, User, UserSpec
from provisiond.services import directory
from provisiond.services.claims import overview
from provisiond.services.devices import DeviceSpec, create_device
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import ImportOptions, register_devices
from provisiond.settings import load_settings
from provisiond.store.database import sync_url
from provisiond.store.schema import (
    DELAY_BUCKETS,
    REASON_COLUMNS,
    claims,
    device_models,
    devices,
    groups,
    users,
)

migration = importlib.import_module("provisiond.store.migrations.versions.0020_funnel_summary")

OPERATOR = Scope.operator()
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
GROUPS = ["Org", "Org/A", "Org/A/S1", "Org/A/S2", "Org/B", "Org/B/S1", "Other", "Other/X"]
MODELS = ["M1", "M2", "M3"]
INSTALLERS = {"a@org.example": "Org/A/S1", "b@org.example": "Org/B", "x@other.example": "Other/X"}


class Sink:
    def add_rows(self, *_: object) -> None: ...
    def prepare(self) -> None: ...
    def commit(self) -> None: ...


def moment(rng: random.Random, days_back: float) -> datetime:
    return NOW - timedelta(seconds=rng.uniform(0, days_back * 86400))


async def register(url: str, rng: random.Random) -> None:
    async with open_container(load_settings(database_url=url)) as c:
        for model in MODELS:
            await directory.add_model(c.uow(), scope=OPERATOR, name=model, actor="t", now=NOW)
        for path in GROUPS:
            await directory.create_group(c.uow(), scope=OPERATOR, path=path, actor="t", now=NOW)
        for email, group in INSTALLERS.items():
            spec = UserSpec(email, "correct horse battery", "installer", group)
            await directory.create_user(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=NOW)
        for batch in range(6):  # the importer: six imports on six days, stock and placed
            text = "serial,model,group\n" + "".join(
                f"IMP{batch}-{i},{rng.choice([*MODELS, ''])},"
                f"{rng.choice(['', '', 'Org/A/S1', 'Org/B', 'Other/X', 'Org'])}\n"
                for i in range(25)
            )
            await register_devices(
                c.uow(),
                scope=OPERATOR,
                items=read_import(io.BytesIO(text.encode()), ImportFormat.CSV),
                options=ImportOptions(batch_size=16),
                sink=Sink(),
                actor="t",
                now=moment(rng, 100),
            )
        for i in range(30):  # one at a time
            spec = DeviceSpec(
                serial=f"ONE-{i}",
                model=rng.choice([*MODELS, None]),
                group=rng.choice([None, "Org/A/S2", "Other", "Org/B/S1"]),
            )
            await create_device(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=moment(rng, 120))


def plain_inserts(engine: Engine, rng: random.Random) -> None:
    with engine.begin() as conn:
        group_ids = dict(conn.execute(select(groups.c.path, groups.c.id)).all())
        model_ids = dict(conn.execute(select(device_models.c.name, device_models.c.id)).all())
        rows = []
        for i in range(200):
            created = moment(rng, 120)
            path = rng.choice([None, None, *GROUPS])
            claimed = created + timedelta(seconds=rng.uniform(0, 3 * 86400)) if path else None
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "serial": f"SQL-{i}",
                    "name": f"SQL-{i}",
                    "model_id": model_ids.get(rng.choice([*MODELS, ""])),
                    "state": "claimed" if path else "registered",
                    "group_id": group_ids.get(path) if path else None,
                    "created_at": created,
                    "updated_at": created,
                    "claimed_at": claimed
                    if claimed and claimed < NOW
                    else (created if path else None),
                }
            )
        conn.execute(insert(devices), rows)


def lifecycle(engine: Engine, rng: random.Random) -> None:
    """Provision, claim, release, move, re-model and delete devices: one row at a time and
    many rows per statement."""
    with engine.begin() as conn:
        group_ids = dict(conn.execute(select(groups.c.path, groups.c.id)).all())
        model_ids = dict(conn.execute(select(device_models.c.name, device_models.c.id)).all())
        rows = conn.execute(select(devices.c.id, devices.c.created_at, devices.c.state)).all()
        for row in rows:
            if rng.random() < 0.4:
                at = min(NOW, row.created_at + timedelta(seconds=rng.uniform(1, 5 * 86400)))
                conn.execute(
                    update(devices).where(devices.c.id == row.id).values(provisioned_at=at)
                )
            if row.state != "claimed" and rng.random() < 0.4:
                delay = 10 ** rng.uniform(0, 7.2)  # a second to six months
                at = min(NOW, row.created_at + timedelta(seconds=delay))
                conn.execute(
                    update(devices)
                    .where(devices.c.id == row.id)
                    .values(
                        state=DeviceState.CLAIMED.value,
                        group_id=group_ids[rng.choice(GROUPS)],
                        claimed_at=at,
                    )
                )
        claimed = [
            r.id for r in conn.execute(select(devices.c.id).where(devices.c.state == "claimed"))
        ]
        rng.shuffle(claimed)
        released, moved = claimed[:12], claimed[12:30]
        conn.execute(
            update(devices)
            .where(devices.c.id.in_(released))
            .values(state="released", group_id=None, claimed_at=None, owner_user_id=None)
        )
        for device_id in moved:
            conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(group_id=group_ids[rng.choice(GROUPS)])
            )
        # many rows in one statement: a new model, then deletions
        conn.execute(
            update(devices).where(devices.c.serial.like("IMP2-%")).values(model_id=model_ids["M3"])
        )
        conn.execute(delete(devices).where(devices.c.serial.like("SQL-1_")))
        conn.execute(delete(devices).where(devices.c.serial == "ONE-3"))


def add_claims(engine: Engine, rng: random.Random) -> None:
    with engine.begin() as conn:
        user_ids = [r.id for r in conn.execute(select(users.c.id))]
        device_ids = [r.id for r in conn.execute(select(devices.c.id))]
        rows = []
        for i in range(160):
            started = moment(rng, 110)
            status = rng.choice(list(ClaimStatus))
            proof = rng.choice([ClaimProof.BUTTON, ClaimProof.CODE, ClaimProof.DEVICE_SECRET])
            window = timedelta(seconds=rng.choice([60, 600, 86400]))
            live = status in (ClaimStatus.OPEN, ClaimStatus.PROVEN)
            if live and i % 2:  # some live claims are still open now
                started = NOW - window / 2
            proven = status in (ClaimStatus.PROVEN, ClaimStatus.COMPLETED) or (
                status in (ClaimStatus.EXPIRED, ClaimStatus.FAILED) and rng.random() < 0.3
            )
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "device_id": rng.choice(device_ids),
                    "user_id": rng.choice(user_ids),
                    "target": "me",
                    "proof": proof.value,
                    "status": status.value,
                    "started_at": started,
                    "expires_at": started + window,
                    "proven_at": started + window / 3 if proven else None,
                    "ended_at": None if live else started + window / 2,
                    "address": "127.0.0.1",
                }
            )
        # at most one live claim per device
        seen: set[uuid.UUID] = set()
        for row in rows:
            if row["status"] in ("open", "proven"):
                if row["device_id"] in seen:
                    row["status"] = "cancelled"
                    row["ended_at"] = row["started_at"]
                seen.add(row["device_id"])
        conn.execute(insert(claims), rows)
        # claims move on: live ones whose window closed expire (one at a time, and many in a
        # statement), and a device deleted takes its claims with it (a cascade)
        stale = [
            r["id"] for r in rows if r["status"] in ("open", "proven") and r["expires_at"] <= NOW
        ]
        for claim_id in stale[:3]:
            conn.execute(
                update(claims).where(claims.c.id == claim_id).values(status="expired", ended_at=NOW)
            )
        conn.execute(
            update(claims).where(claims.c.id.in_(stale[3:6])).values(status="expired", ended_at=NOW)
        )
        failed = next(r["device_id"] for r in rows if r["status"] == "failed")
        conn.execute(delete(devices).where(devices.c.id == failed))


@dataclass
class Fleet:
    devices: list[dict[str, object]]
    claims: list[dict[str, object]]


def read_back(engine: Engine) -> Fleet:
    with engine.connect() as conn:
        d = conn.execute(
            select(
                devices.c.created_at,
                devices.c.provisioned_at,
                devices.c.claimed_at,
                groups.c.path,
                device_models.c.name.label("model"),
            )
            .select_from(devices)
            .outerjoin(groups, groups.c.id == devices.c.group_id)
            .outerjoin(device_models, device_models.c.id == devices.c.model_id)
        )
        c = conn.execute(
            select(
                claims.c.status,
                claims.c.proof,
                claims.c.started_at,
                claims.c.expires_at,
                claims.c.proven_at,
                groups.c.path,
                device_models.c.name.label("model"),
            ).select_from(
                claims.join(users, users.c.id == claims.c.user_id)
                .join(groups, groups.c.id == users.c.group_id)
                .join(devices, devices.c.id == claims.c.device_id)
                .outerjoin(device_models, device_models.c.id == devices.c.model_id)
            )
        )
        return Fleet([dict(r._mapping) for r in d], [dict(r._mapping) for r in c])


def within(path: str, under: str | None) -> bool:
    return under is None or path == under or path.startswith(under + "/")


def label(path: str | None, under: str | None) -> str:
    if path is None:
        return overview.STOCK
    if under is None:  # an operator-wide admin's: by top-level group
        return path.split("/")[0]
    if path == under:
        return f"{under.rsplit('/', 1)[-1]} (directly)"
    return path[len(under) + 1 :].split("/")[0]


def whole_seconds(at: datetime) -> int:
    return int(at.timestamp() // 1)


def naive(fleet: Fleet, under: str | None, first: datetime, end: datetime) -> dict[str, object]:
    stock = under is None  # the devices of no group: an operator-wide admin's only
    total = Counts()
    by_group: dict[str, Counts] = defaultdict(Counts)
    by_model: dict[str, Counts] = defaultdict(Counts)
    by_day: dict[str, Counts] = defaultdict(Counts)
    delays: list[int] = []
    for d in fleet.devices:
        path = d["path"]
        in_scope = (path is None and stock) or (path is not None and within(path, under))
        created = d["created_at"]
        if not in_scope or not first <= created < end:
            continue
        one = Counts(1, int(d["provisioned_at"] is not None), int(d["claimed_at"] is not None))
        total += one
        by_group[label(path, under)] += one
        by_model[d["model"] or "(no model)"] += one
        by_day[created.date().isoformat()] += one
        if d["claimed_at"] is not None:
            delays.append(whole_seconds(d["claimed_at"]) - whole_seconds(created))
    delays.sort()
    median = delay_bucket(delays[(len(delays) - 1) // 2]) if delays else None
    reasons: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ends_by_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ends_by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in fleet.claims:
        if not within(c["path"], under) or not first <= c["started_at"] < end:
            continue
        status = ClaimStatus(c["status"])
        if status in (ClaimStatus.OPEN, ClaimStatus.PROVEN) and c["expires_at"] <= NOW:
            status = ClaimStatus.EXPIRED
        if status not in (ClaimStatus.FAILED, ClaimStatus.EXPIRED):
            continue
        why = ending_reason(status, ClaimProof(c["proof"]), proven=c["proven_at"] is not None)
        which = 0 if status is ClaimStatus.FAILED else 1
        reasons[why][which] += 1
        ends_by_group[label(c["path"], under)][which] += 1
        ends_by_model[c["model"] or "(no model)"][which] += 1
    return {
        "totals": total,
        "by_group": dict(by_group),
        "by_model": dict(by_model),
        "by_day": {k: v for k, v in by_day.items() if v.registered},
        "median": median,
        "reasons": {k: tuple(v) for k, v in reasons.items()},
        "endings_by_group": {k: tuple(v) for k, v in ends_by_group.items()},
        "endings_by_model": {k: tuple(v) for k, v in ends_by_model.items()},
    }


def admin(path: str | None) -> User:
    group = uuid.uuid4() if path is not None else None
    return User(uuid.uuid4(), f"admin@{path or 'operator'}", Role.ADMIN, group, path, NOW)


async def figures(url: str, under: str | None, spec: overview.PeriodSpec) -> overview.Overview:
    async with open_container(load_settings(database_url=url)) as c:
        return await overview.overview(c.uow(), user=admin(under), spec=spec, now=NOW)


async def device_counts(url: str) -> dict[str, int]:
    """The store's devices per group (by path), as the group tree shows them."""
    async with open_container(load_settings(database_url=url)) as c, c.uow().read() as uow:
        paths = {g.id: g.path for g in await uow.groups.list(None)}
        return {paths[g]: n for g, n in (await uow.groups.device_counts(list(paths))).items()}


def seen(view: overview.Overview) -> dict[str, object]:
    return {
        "totals": view.totals,
        "by_group": {r.label: r.counts for r in view.by_group},
        "by_model": {r.label: r.counts for r in view.by_model},
        "by_day": {d: c for d, c in zip(view.days, view.by_day, strict=True) if c.registered},
        "median": view.median,
        "reasons": {e.label: (e.failed, e.expired) for e in view.by_reason},
        "endings_by_group": {e.label: (e.failed, e.expired) for e in view.endings_by_group},
        "endings_by_model": {e.label: (e.failed, e.expired) for e in view.endings_by_model},
    }


PERIODS = [
    overview.PeriodSpec(days="7"),
    overview.PeriodSpec(days="30"),
    overview.PeriodSpec(days="90"),
    overview.PeriodSpec(first="2026-08-20", last="2026-11-05"),
    overview.PeriodSpec(first="2026-07-01", last="2026-11-25"),
]


def test_the_figures_equal_a_naive_count(database_url: str) -> None:
    rng = random.Random(23)  # noqa: S311 - test data
    asyncio.run(register(database_url, rng))
    engine = create_engine(sync_url(database_url))
    try:
        plain_inserts(engine, rng)
        lifecycle(engine, rng)
        add_claims(engine, rng)
        fleet = read_back(engine)
    finally:
        engine.dispose()
    # the groups' device counts (the console's group tree) come from the same summary
    assert asyncio.run(device_counts(database_url)) == Counter(
        d["path"] for d in fleet.devices if d["path"] is not None
    )
    compared = ended = 0
    for under in (None, "Org", "Org/A", "Org/B/S1", "Other"):
        for spec in PERIODS:
            view = asyncio.run(figures(database_url, under, spec))
            expected = naive(fleet, under, view.period.start, view.period.end)
            assert seen(view) == expected, (under, spec)
            compared += expected["totals"].registered  # type: ignore[attr-defined]
            ended += sum(sum(v) for v in expected["reasons"].values())  # type: ignore[attr-defined]
    assert compared > 500  # the periods hold devices: the comparison is not of zeros
    assert ended > 20  # and claims that failed or expired
    # another customer's devices and claims never count: Other's own figures hold them
    everything = overview.PeriodSpec(first="2026-07-01", last="2026-11-25")
    org, other = (asyncio.run(figures(database_url, u, everything)) for u in ("Org", "Other"))
    other_only = naive(fleet, "Other", org.period.start, org.period.end)
    assert other_only["totals"].registered > 0  # type: ignore[attr-defined]
    assert not {"Other", "X"} & {r.label for r in org.by_group}
    assert "Org" not in {r.label for r in other.by_group}
    assert not any(e.label.startswith(("A", "B")) for e in other.endings_by_group)


def test_the_summary_has_a_column_per_time_to_claim_bucket() -> None:
    assert len(DELAY_BOUNDS) + 1 == DELAY_BUCKETS == len(migration.DELAY_BOUNDS) + 1
    assert tuple(migration.REASON_CONDITIONS) == REASON_COLUMNS == tuple(k for k, _, _ in REASONS)
    assert migration.DELAY_BOUNDS == DELAY_BOUNDS
