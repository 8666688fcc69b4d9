"""The console's pages at 1,000,000 devices in an admin's subtree: p50 and p99 over HTTP.

    cd benchmarks && PYTHONPATH=../src ../.venv/bin/python console_pages.py \
        [--rows 1000000] [--requests 200] [--rounds 3] [--backends sqlite,postgresql]

Builds a throwaway database per backend (``bench_console_<backend>``: a SQLite file in
benchmarks/.data, a PostgreSQL database on PROVISIOND_BENCH_POSTGRES), migrated by
``provisiond db upgrade``, then bulk INSERTs straight into the schema (no services: a
million devices in seconds, not the import's minutes):

- ``--rows`` devices claimed into the 50 sites of the organisation "Kanarra" (the admin's
  subtree), 5 models, registered over the last 180 days, 70 % of them provisioned, claimed
  from seconds to months after registration;
- ``--rows``/10 unclaimed stock (registered or released: an operator-wide admin's only) and
  ``--rows``/10 devices of another customer, "Tekton" (not Kanarra's);
- claims for 35 % of Kanarra's devices (completed, failed on wrong codes, expired before
  or after the proof) by one installer per site, and 200,000 events of the subtree.

The summary the overview reads is filled by the same triggers that keep it in step
afterwards (migration 0020). Then ``provisiond serve`` (one process) answers, and an
admin of Kanarra (``--operator``: an operator-wide admin, who sees all 1.2 million devices)
signs in through the form; each URL gets ``--requests`` sequential GETs
per round on a keep-alive httpx client (after 10 not counted), rounds taking the URLs in
turn. Printed: one JSON line per URL and backend with each round's p50 and p99 and their
medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from common import (
    DATA,
    PG_SERVER,
    PROVISIOND,
    free_port,
    fresh_database,
    machine,
    provisiond,
    wait_until_serving,
)

NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = 180
CUSTOMERS, REGIONS, SITES_PER_REGION = 5, 2, 5
SITES = [
    f"Kanarra/Customer-{c}/Region-{r}/Site-{s}"
    for c in range(CUSTOMERS)
    for r in range(REGIONS)
    for s in range(SITES_PER_REGION)
]
# hundreds of groups: the sites that hold the devices and depots that hold none (yet)
DEPOTS = [
    f"Kanarra/Customer-{c}/Region-{r}/Depot-{d}"
    for c in range(CUSTOMERS)
    for r in range(REGIONS)
    for d in range(25)
]
OTHER = ["Tekton", "Tekton/Plant-1", "Tekton/Plant-2"]
PEOPLE, PROFILES, TOKENS, WEBHOOKS, INVITATIONS = 500, 300, 200, 20, 200
MODELS = ["UNO-2483G", "KG-450", "WISE-4012", "RAK7268", "EM300-TH"]
PASSWORD = "correct horse battery staple"
ADMIN = "boss@kanarra.example"
OPERATOR = "ops@provision.example"  # --operator: an admin of no group, who sees everything


def urls(found: dict[str, str]) -> dict[str, str]:
    """Every console page an admin opens (``found``: the ids and names the data got)."""
    today = NOW.date()
    serial, hook, email = found["serial"], found["webhook"], found["email"]
    return {
        "/overview (30 days, the default)": "/overview",
        "/overview?days=7": "/overview?days=7",
        "/overview?days=90": "/overview?days=90",
        "/overview 181 days (all of it)": (
            f"/overview?from={today - timedelta(days=DAYS)}&to={today}"
        ),
        "/devices (first page)": "/devices",
        "/devices?state=claimed": "/devices?state=claimed",
        "/devices?q=<serial prefix>": "/devices?q=70B3D57E0001",
        "/devices/<serial>": f"/devices/{serial}",
        "/devices/<serial>/release": f"/devices/{serial}/release",
        "/devices/<serial>/delete": f"/devices/{serial}/delete",
        "/admin": "/admin",
        "/profiles": "/profiles",
        "/profiles/<name>": f"/profiles/{found['profile']}",
        "/profiles/new": "/profiles/new",
        "/users": "/users",
        "/users/<email>": f"/users/{email}",
        "/users/invite": "/users/invite",
        "/groups": "/groups",
        "/groups/edit?path=<a customer>": "/groups/edit?path=Kanarra/Customer-1",
        "/audit": "/audit",
        "/audit?kind=device.claimed": "/audit?kind=device.claimed",
        "/audit?kind=device.deleted (none)": "/audit?kind=device.deleted",
        "/audit?actor=<an installer>": "/audit?actor=user:tech7@kanarra.example",
        "/audit?serial=<serial>": f"/audit?serial={serial}",
        "/audit?since=<120 days ago>&until=<90 days ago>": (
            f"/audit?since={today - timedelta(days=120)}&until={today - timedelta(days=90)}"
        ),
        "/tokens": "/tokens",
        "/webhooks": "/webhooks",
        "/webhooks/<id> (the busy one)": f"/webhooks/{hook}",
        "/webhooks/<id>?status=failed": f"/webhooks/{hook}?status=failed",
        "/integrations": "/integrations",
        "/models": "/models",
        "/labels": "/labels",
        "/labels?group=<a site>": f"/labels?group={SITES[3]}",
        "/labels?q=<serial prefix>": "/labels?q=70B3D57E0001",
        "/import": "/import",
    }


class Ids:
    def __init__(self, backend: str) -> None:
        self.sqlite = backend == "sqlite"

    def uid(self, value: uuid.UUID) -> str:
        return value.hex if self.sqlite else str(value)

    def at(self, value: datetime) -> str:
        if self.sqlite:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value.isoformat()


async def catalogue(database: str) -> None:
    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.domain.users import UserSpec
    from provisiond.services import directory
    from provisiond.settings import load_settings

    operator = Scope.operator()
    async with open_container(load_settings(database_url=database)) as c:
        for model in MODELS:
            await directory.add_model(c.uow(), scope=operator, name=model, actor="b", now=NOW)
        for path in [*SITES, *DEPOTS, *OTHER]:
            await directory.create_group(c.uow(), scope=operator, path=path, actor="b", now=NOW)
        for i, site in enumerate(SITES):
            spec = UserSpec(f"tech{i}@kanarra.example", PASSWORD, "installer", site)
            await directory.create_user(c.uow(), scope=operator, spec=spec, actor="b", now=NOW)
        spec = UserSpec(ADMIN, PASSWORD, "admin", "Kanarra")
        await directory.create_user(c.uow(), scope=operator, spec=spec, actor="b", now=NOW)


def lookup(database: str, sql: str) -> dict[str, str]:
    if database.startswith("sqlite:///"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return {str(k): str(v) for k, v in conn.execute(sql)}
    with psycopg.connect(database) as conn:
        return {str(k): str(v) for k, v in conn.execute(sql)}  # type: ignore[arg-type]


DEVICE_COLUMNS = (
    "id, serial, name, model_id, state, group_id, created_at, updated_at, claimed_at,"
    " provisioned_at"
)
CLAIM_COLUMNS = (
    "id, device_id, user_id, target, proof, status, started_at, expires_at, proven_at,"
    " ended_at, address"
)
EVENT_COLUMNS = "type, at, actor, device_id, serial, group_id, data, group_path"
USER_COLUMNS = "id, email, password_hash, role, group_id, created_at"
PROFILE_COLUMNS = (
    "id, name, key, secret_hash, strategy, group_id, model_id, credential_types,"
    " rate_per_minute, source_rate_per_minute, enabled, created_at, updated_at,"
    " secret_rotated_at"
)
TOKEN_COLUMNS = "id, name, token_hash, created_at, last_used_at, role, group_id"
WEBHOOK_COLUMNS = "id, group_id, url, secret_sealed, event_types, enabled, created_at"
DELIVERY_COLUMNS = (
    "webhook_id, event_id, event_type, body, status, attempts, next_attempt_at,"
    " last_status_code, last_error, created_at, finished_at"
)
INVITATION_COLUMNS = (
    "id, token_hash, purpose, email, role, group_id, created_at, expires_at, created_by"
)
WORK_COLUMNS = "kind, device_id, attempts, next_attempt_at, last_error"

Table = tuple[str, str, "Iterable[tuple]"]


def rows(database: str, backend: str, n: int) -> list[Table]:
    """The rows to insert (as the backend's text), table by table. Events come in the order
    they happened per device (registered, provisioned, claimed: ids follow registration
    time), ~3 per device, so at 1,000,000 devices the events table holds ~3 million rows."""
    ids = Ids(backend)
    rng = random.Random(n)
    group_ids = lookup(database, "SELECT path, id FROM groups")
    model_ids = [lookup(database, "SELECT name, id FROM device_models")[m] for m in MODELS]
    users = lookup(database, "SELECT g.path, u.id FROM users u JOIN groups g ON g.id = u.group_id")
    password_hash = lookup(
        database, f"SELECT email, password_hash FROM users WHERE email = '{ADMIN}'"
    )
    devices: list[tuple] = []
    claims: list[tuple] = []
    lives: list[tuple] = []  # (created, serial, device id, site, provisioned, claimed, installer)
    start = NOW - timedelta(days=DAYS)
    span = DAYS * 86400

    def device(i: int, kind: str) -> None:
        created = start + timedelta(seconds=rng.random() * span)
        provisioned = (
            min(NOW, created + timedelta(seconds=rng.uniform(60, 2 * 86400)))
            if rng.random() < 0.7
            else None
        )
        group = state = claimed = None
        if kind == "kanarra":
            group = SITES[i % len(SITES)]
        elif kind == "other":
            group = OTHER[i % len(OTHER)]
        if group:
            state = "claimed"
            claimed = min(NOW, created + timedelta(seconds=10 ** rng.uniform(1, 6.8)))
        else:
            state = "released" if rng.random() < 0.1 else "registered"
        device_id = uuid.uuid4()
        serial = f"70B3D57E{i:08X}"
        devices.append(
            (
                ids.uid(device_id),
                serial,
                f"Generator {i}",
                rng.choice(model_ids),
                state,
                group_ids[group] if group else None,
                ids.at(created),
                ids.at(claimed or created),
                ids.at(claimed) if claimed else None,
                ids.at(provisioned) if provisioned else None,
            )
        )
        installer = f"tech{i % len(SITES)}@kanarra.example" if kind == "kanarra" else None
        lives.append((created, serial, device_id, group, provisioned, claimed, installer))
        if kind == "kanarra" and claimed and rng.random() < 0.35:
            claim(device_id, users[group], created, claimed)

    def claim(device_id: uuid.UUID, user: str, created: datetime, claimed: datetime) -> None:
        fate = rng.random()
        window = timedelta(seconds=600)
        began = max(created, claimed - timedelta(seconds=rng.uniform(5, 300)))
        proof = rng.choice(["button", "code", "device-secret"])
        if fate < 0.9:
            status, proven, ended = "completed", began + window / 10, claimed
        else:  # an earlier attempt that did not claim it
            began = created + (claimed - created) * rng.random() * 0.9
            if fate < 0.94:
                status, proven, ended = "failed", None, began + window / 5
            elif fate < 0.98:
                status, proven, ended = "expired", None, began + window
            else:
                status, proven, ended = "expired", began + window / 5, began + window
        claims.append(
            (
                ids.uid(uuid.uuid4()),
                ids.uid(device_id),
                user,
                "group",
                proof,
                status,
                ids.at(began),
                ids.at(began + window),
                ids.at(proven) if proven else None,
                ids.at(ended),
                "127.0.0.1",
            )
        )

    for i in range(n):
        device(i, "kanarra")
    for i in range(n, n + n // 10):
        device(i, "stock")
    for i in range(n + n // 10, n + n // 5):
        device(i, "other")
    lives.sort(key=lambda life: life[0])

    def events() -> Iterator[tuple]:
        """Each device's events, then 200,000 failed claim steps of the subtree."""
        for created, serial, device_id, group, provisioned, claimed, installer in lives:
            gid = group_ids[group] if group else None
            data = json.dumps({"name": serial, "state": "claimed" if group else "registered"})
            yield (
                "device.registered",
                ids.at(created),
                "token:factory-line",
                ids.uid(device_id),
                serial,
                gid,
                data,
                group,
            )
            if provisioned:
                yield (
                    "device.provisioned",
                    ids.at(provisioned),
                    "profile:line-1",
                    ids.uid(device_id),
                    serial,
                    gid,
                    '{"created": false}',
                    group,
                )
            if claimed and installer:
                yield (
                    "device.claimed",
                    ids.at(claimed),
                    f"user:{installer}",
                    ids.uid(device_id),
                    serial,
                    gid,
                    json.dumps({"group": group, "target": "group", "name": serial}),
                    group,
                )
        for i in range(200_000):
            site = SITES[i % len(SITES)]
            yield (
                rng.choice(["claim.rejected", "claim.expired", "claim.failed"]),
                ids.at(start + timedelta(seconds=span * i / 200_000)),
                f"user:tech{i % len(SITES)}@kanarra.example",
                None,
                f"70B3D57E{rng.randrange(n):08X}",
                group_ids[site],
                "{}",
                site,
            )

    kanarra = [*SITES, *DEPOTS]
    sealed = "v1." + "A" * 80  # a webhook's sealed secret: never opened by the pages read
    at = ids.at(NOW - timedelta(days=30))
    people = [
        (
            ids.uid(uuid.uuid4()),
            f"person{i}@kanarra.example",
            password_hash[ADMIN],
            rng.choice(["installer", "viewer", "admin"]),
            group_ids[kanarra[i % len(kanarra)]],
            at,
        )
        for i in range(PEOPLE)
    ]
    profiles = [
        (
            ids.uid(uuid.uuid4()),
            f"line-{i}",
            f"key-{i:04d}-" + uuid.uuid4().hex,
            uuid.uuid4().hex * 2,
            "allow-create",
            group_ids[kanarra[i % len(kanarra)]],
            rng.choice(model_ids),
            "access-token",
            600,
            60,
            True,
            at,
            at,
            at,
        )
        for i in range(PROFILES)
    ]
    tokens = [
        (
            ids.uid(uuid.uuid4()),
            f"script-{i}",
            uuid.uuid4().hex * 2,
            at,
            at,
            rng.choice(["admin", "installer", "viewer"]),
            group_ids[kanarra[i % len(kanarra)]],
        )
        for i in range(TOKENS)
    ]
    hook_ids = [uuid.uuid4() for _ in range(WEBHOOKS)]
    hooks = [
        (
            ids.uid(h),
            group_ids["Kanarra" if i == 0 else SITES[i]],
            f"https://hooks{i}.kanarra.example/provisiond",
            sealed,
            '["device.registered", "device.provisioned", "device.claimed"]',
            True,
            at,
        )
        for i, h in enumerate(hook_ids)
    ]

    def deliveries() -> Iterator[tuple]:
        """The busy webhook's log: every event of the subtree over the log's 14 days
        (--rows/2 deliveries, 2 % failed); a few hundred for each other."""
        for i in range(n // 2 + 300 * (WEBHOOKS - 1)):
            hook = hook_ids[0] if i < n // 2 else hook_ids[1 + i % (WEBHOOKS - 1)]
            made = NOW - timedelta(days=14) + timedelta(seconds=14 * 86400 * i / (n // 2 + 1))
            fate = rng.random()
            # none pending: the server under measure would try to deliver them
            status = "delivered" if fate < 0.98 else "failed"
            yield (
                ids.uid(hook),
                i + 1,
                "device.claimed",
                '{"type": "device.claimed", "serial": "70B3D57E00000001"}',
                status,
                0 if status == "pending" else 1 if status == "delivered" else 8,
                ids.at(made) if status == "pending" else None,
                200 if status == "delivered" else 503 if status == "failed" else None,
                "503 Service Unavailable" if status == "failed" else None,
                ids.at(made),
                None if status == "pending" else ids.at(made + timedelta(seconds=1)),
            )

    invitations = [
        (
            ids.uid(uuid.uuid4()),
            uuid.uuid4().hex * 2,
            "invitation",
            f"invited{i}@kanarra.example",
            "installer",
            group_ids[kanarra[i % len(kanarra)]],
            ids.at(NOW - timedelta(hours=1)),
            ids.at(NOW + timedelta(days=2)),
            f"user:{ADMIN}",
        )
        for i in range(INVITATIONS)
    ]
    waiting = [("broker", ids.uid(life[2]), 0, None, None) for life in lives[-1000:]]
    return [
        ("devices", DEVICE_COLUMNS, devices),
        ("claims", CLAIM_COLUMNS, claims),
        ("events", EVENT_COLUMNS, events()),
        ("users", USER_COLUMNS, people),
        ("provision_profiles", PROFILE_COLUMNS, profiles),
        ("api_tokens", TOKEN_COLUMNS, tokens),
        ("webhooks", WEBHOOK_COLUMNS, hooks),
        ("webhook_deliveries", DELIVERY_COLUMNS, deliveries()),
        ("invitations", INVITATION_COLUMNS, invitations),
        ("pending_work", WORK_COLUMNS, waiting),
    ]


# The events' trigger queued each device's events for the integrations (migration 0008): a
# running instance acted on them long ago. Left, `serve` would fan them out to the webhooks
# while it is measured.
DRAIN_OUTBOX = "DELETE FROM outbox"


def load(database: str, backend: str, n: int) -> dict[str, float]:
    started = time.perf_counter()
    tables = rows(database, backend, n)
    built = time.perf_counter()
    if backend == "sqlite":
        conn = sqlite3.connect(database.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN")
        for table, columns, values in tables:
            marks = ", ".join("?" * len(columns.split(",")))
            conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
        conn.execute(DRAIN_OUTBOX)
        conn.execute("COMMIT")
        conn.close()
    else:
        with psycopg.connect(database) as conn:
            for table, columns, values in tables:
                with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            conn.execute(DRAIN_OUTBOX)
            conn.commit()
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # what autovacuum does (off on the benchmark machine)
    return {"build_s": round(built - started, 1), "insert_s": round(time.perf_counter() - built, 1)}


def found_ids(database: str) -> dict[str, str]:
    """What the URLs name: a device of the subtree, the busy webhook, a profile, a user."""
    hook = lookup(database, "SELECT url, id FROM webhooks")[
        "https://hooks0.kanarra.example/provisiond"
    ]
    return {
        "serial": "70B3D57E0000000A",
        "webhook": str(uuid.UUID(hook)),
        "profile": "line-7",
        "email": "person7@kanarra.example",
    }


def operator_account(database: str, backend: str) -> None:
    """An operator-wide admin (``users.group_id`` NULL), with Kanarra's admin's password."""
    sql = (
        "INSERT INTO users (id, email, password_hash, role, group_id, created_at)"
        f" SELECT '{Ids(backend).uid(uuid.uuid4())}', '{OPERATOR}', password_hash, 'admin',"
        f" NULL, created_at FROM users WHERE email = '{ADMIN}'"
        f" AND NOT EXISTS (SELECT 1 FROM users WHERE email = '{OPERATOR}')"
    )
    if backend == "sqlite":
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            conn.execute(sql)
    else:
        with psycopg.connect(database) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def session_cookie(client: httpx.Client, email: str = ADMIN) -> None:
    form = client.get("/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form)
    assert token is not None
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "login_csrf": token.group(1), "next": "/"},
    )
    assert answer.status_code == 303, answer.text[:500]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@contextmanager
def serve(database: str) -> Iterator[int]:
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    port = free_port()
    server = subprocess.Popen(
        [*PROVISIOND, "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_until_serving(port, "/readyz")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench(
    database: str, backend: str, requests: int, rounds: int, only: str = "", operator: bool = False
) -> None:
    if operator:
        operator_account(database, backend)
    with (
        serve(database) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        session_cookie(client, OPERATOR if operator else ADMIN)
        pages = {
            f"operator {k}" if operator else k: v
            for k, v in urls(found_ids(database)).items()
            if only in k
        }
        found: dict[str, dict[str, list[float]]] = {
            label: {"p50": [], "p99": []} for label in pages
        }
        for _ in range(rounds):
            for label, url in pages.items():
                for _ in range(10):
                    client.get(url).raise_for_status()
                ms = []
                for _ in range(requests):
                    began = time.perf_counter()
                    client.get(url).raise_for_status()
                    ms.append((time.perf_counter() - began) * 1000)
                found[label]["p50"].append(round(pct(ms, 50), 1))
                found[label]["p99"].append(round(pct(ms, 99), 1))
        for label, runs in found.items():
            print(
                json.dumps(
                    {
                        "backend": backend,
                        "url": label,
                        "p50_ms": statistics.median(runs["p50"]),
                        "p99_ms": statistics.median(runs["p99"]),
                        "rounds_p50": runs["p50"],
                        "rounds_p99": runs["p99"],
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", default="", help="measure only the URLs whose label has this")
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    parser.add_argument("--build-only", action="store_true", help="make the databases only")
    parser.add_argument(
        "--operator",
        action="store_true",
        help="sign in as an operator-wide admin (every customer and the stock) instead",
    )
    args = parser.parse_args()
    print(json.dumps(machine()), flush=True)
    for backend in args.backends.split(","):
        name = f"bench_console_{backend}"
        if args.reuse:
            database = (
                f"sqlite:///{DATA / name}.db" if backend == "sqlite" else f"{PG_SERVER}/{name}"
            )
            provisiond("db", "upgrade", database=database)  # this tree's migrations
        else:
            database = fresh_database(backend, name)
            provisiond("db", "upgrade", database=database)
            asyncio.run(catalogue(database))
            timing = load(database, backend, args.rows)
            print(json.dumps({"backend": backend, "rows": args.rows, **timing}), flush=True)
        if not args.build_only:
            bench(database, backend, args.requests, args.rounds, args.only, args.operator)


if __name__ == "__main__":
    main()
