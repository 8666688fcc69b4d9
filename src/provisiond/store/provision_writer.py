"""The self-provisioning write path: one writer thread per process, with group commit.

Every provisioning is a small transaction whose answer must wait for a durable commit. One
commit per request would cap a process at the disk's fsyncs per second (about 130 here), and
a dozen SQLAlchemy statements per request cost more CPU than the rest of the request. So
provisioning runs as *jobs* on one dedicated thread with its own driver connection:

- a job is a plain function of a :class:`ProvisionTx` (a handful of prepared statements),
  written by the services layer, which decides everything before it writes;
- the thread takes every job waiting (up to ``max_batch``), runs them one after another in
  one transaction, commits once, and only then answers each job's caller: every answer still
  follows a durable commit of its own writes (group commit);
- if anything in a batch fails (a constraint another process won, a bug), the batch is
  rolled back and each of its jobs runs again alone, in its own transaction, so one job's
  failure is its own and never another's.

SQLite has one writer at a time anyway; PostgreSQL gets the same one transaction per batch,
which saves its commits and round trips too. Reads and the other writers keep using the
SQLAlchemy engine.

On SQLite the writer never copies its write-ahead log back into the database file itself
(SQLite's automatic checkpoint would make the commit that crosses 1,000 pages wait, about
0.1-0.2 s, for every device in the batches behind it): a :class:`WalCheckpointer` does it
on its own thread and connection, a passive checkpoint shortly after commits, while the
writer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType, SimpleNamespace
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy.engine import URL

from provisiond.domain.credentials import Credential, CredentialKind, CredentialType, types_where
from provisiond.domain.device import Device
from provisiond.domain.events import NewEvent
from provisiond.domain.profiles import Profile
from provisiond.errors import Unavailable
from provisiond.store.aws import PendingCertificate
from provisiond.store.certificates import IssuedCertificate, RevocationReason
from provisiond.store.database import DatabaseOptions, sqlite_pragmas, unavailable
from provisiond.store.profiles import StoredCa, ca_from_row, profile_from_row
from provisiond.store.types import sqlite_timestamp, utc_datetime

WARN_EVERY = 30.0  # seconds between warnings while the database refuses writes
WAL_LIMIT = 16384  # pages in SQLite's write-ahead log before the writer checkpoints itself
CHECKPOINT_EVERY = 0.5  # seconds: at most one checkpoint per interval, and only after commits
log = logging.getLogger("provisiond.store")

T = TypeVar("T")

_PROFILE = (
    "SELECT p.id, p.name, p.key, p.secret_hash, p.strategy, p.group_id, g.path, p.model_id,"
    " m.name, p.credential_types, p.rate_per_minute, p.source_rate_per_minute, p.enabled,"
    " p.created_at, p.updated_at, p.secret_rotated_at, p.jwt_public_key, p.ca_id, c.name,"
    " p.certificate_days, p.claim_proof, p.claim_window_seconds, p.release_policy,"
    " p.reprovision_policy, p.device_secret_min_length, p.device_ca_id, dc.name"
    " FROM provision_profiles p"
    " LEFT JOIN groups g ON g.id = p.group_id"
    " LEFT JOIN device_models m ON m.id = p.model_id"
    " LEFT JOIN certificate_authorities c ON c.id = p.ca_id"
    " LEFT JOIN certificate_authorities dc ON dc.id = p.device_ca_id"
    " WHERE p.key = ?"
)
_STATE = (
    "SELECT d.id, d.serial, d.profile_id, d.provisioned_at, c.id, c.type, c.created_at,"
    " c.revoked_at, c.first_used_at, c.lookup, c.client_id, c.secret_hash, d.group_id,"
    " d.provision_retry_hash, d.provision_answer_sealed"
    " FROM devices d LEFT JOIN credentials c ON c.id = d.provision_credential_id"
    " WHERE d.serial = ?"
)


def _types_sql(wanted: Callable[[CredentialKind], bool]) -> str:
    """The stored values of the types whose row (domain/credentials.py) satisfies ``wanted``,
    as an SQL list of literals: enum values, never input."""
    return ", ".join(f"'{t.value}'" for t in types_where(wanted))


_ACTIVE = (
    "SELECT id, type FROM credentials WHERE device_id = ? AND revoked_at IS NULL"  # noqa: S608
    f" AND type IN ({_types_sql(lambda k: k.revoke)}) ORDER BY created_at"
)
_CERTIFICATE = (
    "SELECT certificate_pem FROM issued_certificates WHERE credential_id = ? AND revoked_at IS NULL"
)
_CA = (
    "SELECT id, name, certificate_pem, private_key_pem, key_encrypted, created_at"
    " FROM certificate_authorities WHERE id = ?"
)
_LOOKUP_TAKEN = "SELECT 1 FROM credentials WHERE type = ? AND lookup = ? LIMIT 1"
_SERIAL_TAKEN = "SELECT 1 FROM devices WHERE serial = ?"
_EVENT_COLUMNS = "type, at, actor, device_id, serial, group_id, group_path, data"
# group_path: the one given, else the path of group_id now (the event keeps it)
_EVENT_VALUES = "?, ?, ?, ?, ?, ?, COALESCE(?, (SELECT path FROM groups WHERE id = ?)), {data}"
_ADD_EVENT = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({_EVENT_VALUES.format(data='?')})"  # noqa: S608
_ADD_EVENT_PG = (
    f"INSERT INTO events ({_EVENT_COLUMNS})"  # noqa: S608
    f" VALUES ({_EVENT_VALUES.format(data='?::jsonb')})"
)
_DEVICE_COLUMNS = (
    "id, serial, name, model_id, state, group_id, owner_user_id, created_at, updated_at,"
    " claimed_at, profile_id, provisioned_at, provision_credential_id, provision_retry_hash,"
    " provision_answer_sealed, registered_event_id"
)
_ADD_DEVICE = (
    f"INSERT INTO devices ({_DEVICE_COLUMNS})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADD_CREDENTIAL = (
    "INSERT INTO credentials (id, device_id, type, lookup, secret_hash, client_id,"
    " secret_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A revoked MQTT secret is no longer kept (the broker account's record says what to remove).
_REVOKE = (
    "UPDATE credentials SET revoked_at = ?, secret_sealed = CASE WHEN type IN"  # noqa: S608
    f" ({_types_sql(lambda k: k.sealed_for_broker)}) THEN NULL ELSE secret_sealed END"
    " WHERE id = ? AND revoked_at IS NULL"
)
_REVOKE_CERTIFICATE = (
    "UPDATE issued_certificates SET revoked_at = ?, revocation_reason = ?"
    " WHERE credential_id = ? AND revoked_at IS NULL"
)
_ADD_CERTIFICATE = (
    "INSERT INTO issued_certificates (ca_id, serial_number, credential_id, device_id,"
    " device_serial, certificate_pem, not_before, not_after)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADD_TAG = "INSERT INTO device_tags (device_id, key, value, serial) VALUES (?, ?, ?, ?)"
_AWS_PENDING_COLUMNS = (
    "token_hash, certificate_id, ca_id, serial_number, certificate_pem, not_before,"
    " not_after, claim, expires_at"
)
_AWS_PENDING_ADD = (
    f"INSERT INTO aws_pending_certificates ({_AWS_PENDING_COLUMNS})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_AWS_PENDING = (
    f"SELECT {_AWS_PENDING_COLUMNS} FROM aws_pending_certificates"  # noqa: S608
    " WHERE token_hash = ?"
)
_AWS_PENDING_TAKE = "DELETE FROM aws_pending_certificates WHERE token_hash = ? RETURNING token_hash"
# Only over the credential the job read (another instance may have provisioned the device
# since): no row updated is a lost race, and the job runs again.
_MARK_PROVISIONED = (
    "UPDATE devices SET profile_id = ?, provisioned_at = ?, provision_credential_id = ?,"
    " provision_retry_hash = ?, provision_answer_sealed = ?, updated_at = ?"
    " WHERE id = ? AND provision_credential_id IS ? RETURNING id"
)


def _pg(sql: str) -> str:
    return sql.replace("?", "%s").replace(" IS %s", " IS NOT DISTINCT FROM %s")


class ProvisionConflict(Exception):
    """A job's write found the row changed since it read it (another process provisioned
    the same device): the writer runs the job again, and it reads what the other wrote."""


@dataclass(frozen=True, slots=True)
class ProvisionState:
    """What self-provisioning needs to know of a registered device."""

    device_id: uuid.UUID
    serial: str
    profile_id: uuid.UUID | None
    provisioned_at: datetime | None
    credential: Credential | None  # the credential provisioning gave it, if any
    credential_lookup: str | None
    credential_client_id: str | None
    credential_secret_hash: str | None
    group_id: uuid.UUID | None = None
    retry_hash: str | None = None  # of the retry key its first request carried
    answer_sealed: str | None = None  # that answer, sealed with the retry key


@dataclass(slots=True)
class Provisioned:
    """How a device stands after provisioning: what :meth:`ProvisionTx.mark_provisioned`
    writes."""

    profile_id: uuid.UUID
    credential_id: uuid.UUID
    retry_hash: str | None = None
    answer_sealed: str | None = None


class ProvisionTx:
    """The statements a provisioning job may run, inside the batch's transaction.

    The base class speaks SQLite (ids as 32 hex digits, naive UTC timestamps as text, JSON as
    text); :class:`_PostgresTx` overrides the conversions and the statements that differ.
    """

    _add_event = _ADD_EVENT

    def __init__(self, conn: Any) -> None:
        self._cur = conn.cursor()
        self._profiles: dict[str, tuple[Profile, str] | None] = {}
        self._cas: dict[uuid.UUID, StoredCa | None] = {}
        self._events: list[tuple[Any, ...]] = []  # written by flush(), all in one statement
        self._certificates: list[tuple[Any, ...]] = []  # likewise
        # What the batch's jobs worked out once for all of them (the batch is one
        # transaction): e.g. that a profile's key and secret match.
        self.memo: dict[Any, Any] = {}

    # conversions -------------------------------------------------------------------------
    @staticmethod
    def _id_in(value: uuid.UUID | None) -> Any:
        return value.hex if value is not None else None

    @staticmethod
    def _id_out(value: Any) -> uuid.UUID | None:
        return uuid.UUID(hex=value) if value is not None else None

    @staticmethod
    def _ts_in(value: datetime | None) -> Any:
        return sqlite_timestamp(value) if value is not None else None

    def _at(self, value: Any) -> datetime:
        """A timestamp from a NOT NULL column."""
        moment = utc_datetime(value)
        if moment is None:
            raise ValueError("a NOT NULL timestamp column held NULL")
        return moment

    def _uid(self, value: Any) -> uuid.UUID:
        """An id from a NOT NULL column."""
        found = self._id_out(value)
        if found is None:
            raise ValueError("a NOT NULL id column held NULL")
        return found

    @staticmethod
    def _json_in(value: dict[str, Any]) -> Any:
        return orjson.dumps(value).decode()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self._cur.execute(sql, params).fetchone()

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        self._cur.execute(sql, params)

    def flush(self) -> None:
        """Write what is buffered (events, certificates); the writer calls it before every
        commit."""
        self._flush_certificates()
        if self._events:
            self._cur.executemany(self._add_event, self._events)
            self._events.clear()

    def _flush_certificates(self) -> None:
        """Write the buffered certificates (also before anything reads or revokes one)."""
        if self._certificates:
            self._cur.executemany(self._sql(_ADD_CERTIFICATE), self._certificates)
            self._certificates.clear()

    # reads -------------------------------------------------------------------------------
    def prefetch(self, serials: list[str]) -> None:
        """Read the provisioning state of these serials ahead, in one query, where a query
        is a round trip (PostgreSQL); SQLite reads one row in microseconds and skips this."""

    def profile_by_key(self, key: str) -> tuple[Profile, str] | None:
        """The profile with this provision key and the SHA-256 of its secret (read once per
        batch: the batch is one transaction)."""
        if key in self._profiles:
            return self._profiles[key]
        row = self._one(_PROFILE, (key,))
        found = None
        if row is not None:
            at, ids = self._at, self._id_out
            profile = profile_from_row(
                SimpleNamespace(
                    id=self._uid(row[0]),
                    name=row[1],
                    key=row[2],
                    strategy=row[4],
                    group_id=ids(row[5]),
                    group_path=row[6],
                    model_id=ids(row[7]),
                    model=row[8],
                    credential_types=row[9],
                    rate_per_minute=row[10],
                    source_rate_per_minute=row[11],
                    enabled=bool(row[12]),
                    created_at=at(row[13]),
                    updated_at=at(row[14]),
                    secret_rotated_at=at(row[15]),
                    jwt_public_key=row[16],
                    ca_id=ids(row[17]),
                    ca_name=row[18],
                    certificate_days=row[19],
                    claim_proof=row[20],
                    claim_window_seconds=row[21],
                    release_policy=row[22],
                    reprovision_policy=row[23],
                    device_secret_min_length=row[24],
                    device_ca_id=ids(row[25]),
                    device_ca_name=row[26],
                )
            )
            found = (profile, str(row[3]))
        self._profiles[key] = found
        return found

    def ca(self, ca_id: uuid.UUID) -> StoredCa | None:
        """A certificate authority (read once per batch)."""
        if ca_id not in self._cas:
            row = self._one(_CA, (self._id_in(ca_id),))
            self._cas[ca_id] = (
                None
                if row is None
                else ca_from_row(
                    SimpleNamespace(
                        id=self._uid(row[0]),
                        name=row[1],
                        certificate_pem=row[2],
                        private_key_pem=row[3],
                        key_encrypted=bool(row[4]),
                        created_at=self._at(row[5]),
                    )
                )
            )
        return self._cas[ca_id]

    def provision_state(self, serial: str) -> ProvisionState | None:
        return self._state(self._one(_STATE, (serial,)))

    def _state(self, row: Any) -> ProvisionState | None:
        if row is None:
            return None
        ids, ts = self._id_out, utc_datetime
        device_id = self._uid(row[0])
        credential = None
        if row[4] is not None:
            credential = Credential(
                self._uid(row[4]),
                device_id,
                CredentialType(row[5]),
                self._at(row[6]),
                ts(row[7]),
                ts(row[8]),
            )
        return ProvisionState(
            device_id,
            row[1],
            ids(row[2]),
            ts(row[3]),
            credential,
            row[9],
            row[10],
            row[11],
            ids(row[12]),
            row[13],
            row[14],
        )

    def active_credentials(self, device_id: uuid.UUID) -> list[tuple[uuid.UUID, CredentialType]]:
        """The device's credentials that are not revoked (LoRaWAN root keys aside)."""
        rows = self._cur.execute(self._sql(_ACTIVE), (self._id_in(device_id),)).fetchall()
        return [(self._uid(r[0]), CredentialType(r[1])) for r in rows]

    def certificate(self, credential_id: uuid.UUID) -> str | None:
        """A credential's certificate (PEM) from its CA's register, while not revoked."""
        self._flush_certificates()
        row = self._one(_CERTIFICATE, (self._id_in(credential_id),))
        return None if row is None else str(row[0])

    def lookup_taken(self, ctype: CredentialType, lookup: str) -> bool:
        """Whether any credential of this type, revoked or not, has this lookup value."""
        return self._one(_LOOKUP_TAKEN, (ctype.value, lookup)) is not None

    def serial_taken(self, serial: str) -> bool:
        """Whether a device has exactly this serial."""
        return self._one(_SERIAL_TAKEN, (serial,)) is not None

    # writes ------------------------------------------------------------------------------
    def _event_params(self, event: NewEvent) -> tuple[Any, ...]:
        group_id = self._id_in(event.group_id)
        return (
            event.type.value,
            self._ts_in(event.at),
            event.actor,
            self._id_in(event.device_id),
            event.serial,
            group_id,
            event.group_path,
            group_id,
            self._json_in(event.data),
        )

    def add_event(self, event: NewEvent) -> None:
        """An event, written at the end of the batch (ids still follow each device's order:
        only the device.registered event of add_device is written at once)."""
        self._events.append(self._event_params(event))

    def _device_params(
        self, device: Device, model_id: uuid.UUID | None, provisioned: Provisioned | None
    ) -> tuple[Any, ...]:
        i, t = self._id_in, self._ts_in
        p = provisioned
        return (
            i(device.id),
            device.serial,
            device.name,
            i(model_id),
            device.state.value,
            i(device.group_id),
            t(device.created_at),
            t(device.updated_at),
            t(device.claimed_at),
            i(p.profile_id) if p else None,
            t(device.created_at) if p else None,
            i(p.credential_id) if p else None,
            p.retry_hash if p else None,
            p.answer_sealed if p else None,
        )

    def add_device(
        self,
        device: Device,
        *,
        model_id: uuid.UUID | None,
        registered: NewEvent,
        provisioned: Provisioned | None = None,
    ) -> None:
        """A new device (no tags, no owner) with its ``device.registered`` event; with
        ``provisioned``, already provisioned (at its creation)."""
        self._run(_ADD_EVENT, self._event_params(registered))
        self._run(
            _ADD_DEVICE, (*self._device_params(device, model_id, provisioned), self._cur.lastrowid)
        )

    def add_credential(
        self,
        credential: Credential,
        *,
        lookup: str | None,
        secret_hash: str | None,
        client_id: str | None = None,
        secret_sealed: str | None = None,
    ) -> None:
        self._run(
            _ADD_CREDENTIAL,
            (
                self._id_in(credential.id),
                self._id_in(credential.device_id),
                credential.type.value,
                lookup,
                secret_hash,
                client_id,
                secret_sealed,
                self._ts_in(credential.created_at),
            ),
        )

    def revoke_credential(
        self,
        credential_id: uuid.UUID,
        now: datetime,
        reason: RevocationReason = RevocationReason.SUPERSEDED,
    ) -> None:
        """Revoke a credential (and its certificate in its CA's register)."""
        self._flush_certificates()
        self._run(_REVOKE, (self._ts_in(now), self._id_in(credential_id)))
        self._run(_REVOKE_CERTIFICATE, (self._ts_in(now), reason.value, self._id_in(credential_id)))

    def add_certificate(self, cert: IssuedCertificate) -> None:
        """A certificate one of provisiond's CAs just issued, in that CA's register (written
        with the batch's others, in one statement)."""
        i, t = self._id_in, self._ts_in
        self._certificates.append(
            (
                i(cert.ca_id),
                cert.serial_number,
                i(cert.credential_id),
                i(cert.device_id),
                cert.device_serial,
                cert.certificate_pem,
                t(cert.not_before),
                t(cert.not_after),
            )
        )

    def mark_provisioned(
        self,
        device_id: uuid.UUID,
        provisioned: Provisioned,
        *,
        replacing: uuid.UUID | None,
        now: datetime,
    ) -> None:
        """The device is provisioned with ``provisioned.credential_id`` in place of
        ``replacing`` (the credential it had when the job read it, or None);
        :class:`ProvisionConflict` if it has another by now."""
        t, i, p = self._ts_in, self._id_in, provisioned
        row = self._one(
            _MARK_PROVISIONED,
            (
                i(p.profile_id),
                t(now),
                i(p.credential_id),
                p.retry_hash,
                p.answer_sealed,
                t(now),
                i(device_id),
                i(replacing),
            ),
        )
        if row is None:
            raise ProvisionConflict(f"device {device_id} was provisioned meanwhile")

    # AWS IoT fleet provisioning (services/aws_fleet.py) ------------------------------------

    def add_tags(self, device: Device) -> None:
        """The tags of a device just added."""
        for key, value in device.tags.items():
            self._run(_ADD_TAG, (self._id_in(device.id), key, value, device.serial))

    def add_aws_pending(self, pending: PendingCertificate) -> None:
        t = self._ts_in
        self._run(
            _AWS_PENDING_ADD,
            (
                pending.token_hash,
                pending.certificate_id,
                self._id_in(pending.ca_id),
                pending.serial_number,
                pending.certificate_pem,
                t(pending.not_before),
                t(pending.not_after),
                pending.claim,
                t(pending.expires_at),
            ),
        )

    def aws_pending(self, token_hash: str) -> PendingCertificate | None:
        row = self._one(_AWS_PENDING, (token_hash,))
        if row is None:
            return None
        return PendingCertificate(
            row[0],
            row[1],
            self._uid(row[2]),
            row[3],
            row[4],
            self._at(row[5]),
            self._at(row[6]),
            row[7],
            self._at(row[8]),
        )

    def take_aws_pending(self, token_hash: str) -> bool:
        """Remove the pending certificate: False if another transaction did first."""
        return self._one(_AWS_PENDING_TAKE, (token_hash,)) is not None


class _PostgresTx(ProvisionTx):
    """PostgreSQL, in pipeline mode: writes are sent without waiting for their results; only
    reads wait (and with them, errors of the writes before them surface)."""

    _add_event = _pg(_ADD_EVENT_PG)

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self._states: dict[str, Any] = {}

    def prefetch(self, serials: list[str]) -> None:
        if not serials:
            return
        rows = self._cur.execute(
            _pg(_STATE.replace("d.serial = ?", "d.serial = ANY(?)")), (serials,)
        ).fetchall()
        self._states = {row[1]: row for row in rows}
        for serial in serials:
            self._states.setdefault(serial, None)

    def provision_state(self, serial: str) -> ProvisionState | None:
        # A prefetched state is good for the batch's first reader of that serial only: it
        # was read before any job of the batch wrote (and every job reads before it writes).
        if serial in self._states:
            return self._state(self._states.pop(serial))
        return super().provision_state(serial)

    @staticmethod
    def _id_in(value: uuid.UUID | None) -> Any:
        return value

    @staticmethod
    def _id_out(value: Any) -> uuid.UUID | None:
        return value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(value)

    @staticmethod
    def _ts_in(value: datetime | None) -> Any:
        return value

    @staticmethod
    def _sql(sql: str) -> str:
        return _pg(sql)

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self._cur.execute(_pg(sql), params).fetchone()

    def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        self._cur.execute(_pg(sql), params)

    def add_device(
        self,
        device: Device,
        *,
        model_id: uuid.UUID | None,
        registered: NewEvent,
        provisioned: Provisioned | None = None,
    ) -> None:
        # One statement, one round trip: the event's id goes straight into the device row.
        self._run(
            f"WITH e AS ({_ADD_EVENT_PG}"  # noqa: S608
            f" RETURNING id) INSERT INTO devices ({_DEVICE_COLUMNS})"
            " SELECT ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, e.id FROM e",
            (*self._event_params(registered), *self._device_params(device, model_id, provisioned)),
        )


class _Job(Generic[T]):
    __slots__ = ("failed", "fn", "future", "loop", "outcome", "serial")

    def __init__(
        self,
        fn: Callable[[ProvisionTx], T],
        future: asyncio.Future[T],
        loop: asyncio.AbstractEventLoop,
        serial: str | None,
    ) -> None:
        self.fn = fn
        self.serial = serial
        self.future = future
        self.loop = loop
        self.outcome: Any = None
        self.failed = False


_STOP = object()


def _deliver(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():  # the caller gave up (cancelled): the work stands
            continue
        if job.failed:
            job.future.set_exception(job.outcome)
        else:
            job.future.set_result(job.outcome)


def _sqlite_connect(path: str, options: DatabaseOptions) -> sqlite3.Connection:
    """A driver connection of this module's threads (autocommit: they BEGIN themselves),
    with provisiond's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in sqlite_pragmas(options):
        conn.execute(pragma)
    return conn


class WalCheckpointer:
    """Passive checkpoints of a SQLite file's write-ahead log, on a thread of their own.

    :meth:`committed` says there is something to copy; the thread then checkpoints, at most
    once per ``interval``. A passive checkpoint copies what it can without taking the write
    lock or waiting for readers, so the writer keeps committing meanwhile (the driver
    releases the GIL for the copy and its fsync); once a checkpoint has copied everything,
    the writer's next transaction starts the log again from its beginning.
    """

    def __init__(
        self, path: str, options: DatabaseOptions, *, interval: float = CHECKPOINT_EVERY
    ) -> None:
        self._path = path
        self._options = options
        self._interval = interval
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="provisiond-checkpoint", daemon=True
        )
        self._done = threading.Condition()
        self._warned_at = -WARN_EVERY
        self.commits = 0  # commits the writer reported
        self.copied = 0  # how many of them are in the database file (all their log copied)
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer thread after each commit."""
        self.commits += 1
        self._due.set()

    def wait(self, timeout: float) -> None:
        """Until the next checkpoint ends (or ``timeout`` seconds)."""
        with self._done:
            self._done.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        self._thread.join()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait()
                if self._stop.is_set():
                    return
                self._due.clear()
                try:
                    if conn is None:
                        conn = _sqlite_connect(self._path, self._options)
                    commits = self.commits
                    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if busy == 0 and frames == copied:
                        self.copied = commits
                except sqlite3.Error as err:
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn = None
                    now = time.monotonic()
                    if now - self._warned_at >= WARN_EVERY:
                        self._warned_at = now
                        log.warning(
                            "cannot checkpoint the SQLite write-ahead log: %s",
                            err,
                            extra={"event": "checkpoint-failing"},
                        )
                    self._due.set()  # try again after the interval
                with self._done:
                    self._done.notify_all()
                # one checkpoint per interval at most, however often the writer commits
                self._stop.wait(self._interval)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()


class ProvisionWriter:
    """The writer thread. ``await writer.run(job)`` returns what ``job(tx)`` returned, after
    the transaction that ran it committed; or raises what it raised (the job's transaction
    then rolled back), or :class:`~provisiond.errors.Unavailable` when the database is."""

    def __init__(self, url: URL, options: DatabaseOptions, *, max_batch: int = 256) -> None:
        self._url = url
        self._options = options
        self._sqlite = url.get_backend_name() == "sqlite"
        # the DB-API module: its IntegrityError and OperationalError classify failures
        self._driver: ModuleType = sqlite3 if self._sqlite else importlib.import_module("psycopg")
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: Any = None
        self._pipeline: Any = None
        self._checkpointer: WalCheckpointer | None = None
        self._closed = False
        self._warned_at = -WARN_EVERY  # when a failing database was last logged
        self.batches = 0  # transactions committed, and the jobs in them: how well group
        self.jobs = 0  # commit works (tests, and a look from a debugger)

    @property
    def checkpointer(self) -> WalCheckpointer | None:
        """On a SQLite file, once the writer has connected."""
        return self._checkpointer

    async def run(self, fn: Callable[[ProvisionTx], T], *, serial: str | None = None) -> T:
        """``serial``: the device the job will probably read (a hint, for prefetching)."""
        return await self.submit(fn, serial=serial)

    def submit(
        self, fn: Callable[[ProvisionTx], T], *, serial: str | None = None
    ) -> asyncio.Future[T]:
        """Queue the job now; the future completes as :meth:`run` returns."""
        if self._closed:
            raise Unavailable("the service is shutting down", retry_after=5)
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop, serial))
        return future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="provisiond-writer", daemon=True
                )
                self._thread.start()

    async def close(self) -> None:
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.close)

    # the thread --------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Job[Any]] = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                self._run_batch(batch)
                if stop:
                    return
        finally:
            self._fail_waiting()
            self._disconnect()

    def _fail_waiting(self) -> None:
        left: list[_Job[Any]] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job.outcome, job.failed = (
                    Unavailable("the service is shutting down", retry_after=5),
                    True,
                )
                left.append(job)
        self._answer(left)

    def _answer(self, jobs: list[_Job[Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, mine in by_loop.items():
            # a closed loop: nobody waits for these answers any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, mine)

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        try:
            tx = self._begin()
        except Exception as err:
            # No transaction (the database is down, or another process held SQLite's lock
            # for the whole busy timeout): running the jobs one by one would only wait that
            # long again for each. They all get the error.
            self._rollback()
            failure = self._translate(err)
            for job in batch:
                job.outcome, job.failed = failure, True
            self._answer(batch)
            return
        try:
            tx.prefetch([job.serial for job in batch if job.serial is not None])
            for job in batch:
                job.outcome, job.failed = job.fn(tx), False
            tx.flush()
            self._commit()
        except Exception as err:
            self._rollback()
            if len(batch) == 1 and not self._is_conflict(err):
                batch[0].outcome, batch[0].failed = self._translate(err), True
            else:
                # a lone job's conflict gets one more try; a batch's jobs two each
                for job in batch:
                    self._alone(job, tries=1 if len(batch) == 1 else 2)
        else:
            self.batches += 1
            self.jobs += len(batch)
        self._answer(batch)

    def _alone(self, job: _Job[Any], tries: int) -> None:
        """Run one job in its own transaction. A constraint violation (another process wrote
        the same row between this job's read and its write) is tried again, up to ``tries``
        runs: the job then reads what the other wrote."""
        error: Exception = RuntimeError("the job did not run")
        for _ in range(tries):
            try:
                tx = self._begin()
                outcome = job.fn(tx)
                tx.flush()
                self._commit()
            except Exception as err:
                self._rollback()
                error = err
                if not self._is_conflict(err):
                    break
            else:
                job.outcome, job.failed = outcome, False
                self.batches += 1
                self.jobs += 1
                return
        job.outcome, job.failed = self._translate(error), True

    def _is_conflict(self, err: Exception) -> bool:
        return isinstance(err, self._driver.IntegrityError | ProvisionConflict)

    def _translate(self, err: Exception) -> Exception:
        if isinstance(err, self._driver.OperationalError | OSError):
            failure = unavailable(str(err))
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:  # once in a while, not per request
                self._warned_at = now
                log.warning(
                    "provisioning cannot write: %s (%s); devices are answered 503 until it can",
                    failure.detail,
                    str(err).strip(),
                    extra={"event": "database-failing"},
                )
            return failure
        return err

    # the connection ----------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._sqlite:
            path = self._url.database or ":memory:"
            conn = _sqlite_connect(path, self._options)
            if path != ":memory:":
                # The checkpointer copies the log; the writer checkpoints itself only when the
                # log has not started again for WAL_LIMIT pages (it never catches the writer
                # between two commits), and what is left to copy then is little.
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT}")
                if self._checkpointer is None:
                    self._checkpointer = WalCheckpointer(path, self._options)
            return conn
        dsn = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        return self._driver.connect(dsn, autocommit=True)

    def _begin(self) -> ProvisionTx:
        if self._conn is None:
            self._conn = self._connect()
        if self._sqlite:
            self._conn.execute("BEGIN IMMEDIATE")
            return ProvisionTx(self._conn)
        self._pipeline = self._conn.pipeline()
        self._pipeline.__enter__()
        self._conn.execute("BEGIN")
        return _PostgresTx(self._conn)

    def _commit(self) -> None:
        self._conn.execute("COMMIT")
        if self._checkpointer is not None:
            self._checkpointer.committed()
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)  # waits for every result: errors raise here

    def _rollback(self) -> None:
        """After a failure. On PostgreSQL the connection is dropped (which rolls back): a
        failed pipeline can leave psycopg's prepared-statement cache naming statements the
        aborted transaction took with it."""
        conn = self._conn
        if conn is None:
            return
        if not self._sqlite:
            self._disconnect()
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:  # the connection is gone: make a new one next time
            log.warning("provisioning writer lost its database connection", exc_info=True)
            self._disconnect()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with contextlib.suppress(Exception):  # the error is already being handled
                pipeline.__exit__(None, None, None)
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()
