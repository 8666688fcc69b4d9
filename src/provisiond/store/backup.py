"""A SQLite database file copied whole: an online backup, inspecting a backup, putting one
in place of the database. PostgreSQL's are ``pg_dump`` and ``pg_restore``
(services/backup.py runs them).

The copy is SQLite's online backup API in one step: it reads one snapshot (a read
transaction; in WAL mode writers go on meanwhile) and never a half-written transaction.
Every file is written beside its destination, flushed, given mode 0600 (it holds hashed and
sealed secrets) and renamed over it: a reader sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, create_engine, inspect, pool

from provisiond.errors import BackupInvalid, ConfigurationError, DatabaseInUse, Unavailable
from provisiond.store.database import sync_url

#: Where provisiond keeps values sealed with device_key_passphrase (services/sealing.py).
SEALED_COLUMNS = (
    ("credentials", "secret_sealed"),
    ("credentials", "nwk_key_sealed"),
    ("provision_profiles", "jwt_key_sealed"),
    ("webhooks", "secret_sealed"),
    ("broker_accounts", "username_sealed"),
)
SEALED_PREFIX = "aesgcm1:"
_MARK_TABLES = ("alembic_version", "devices", "events", "credentials")


@dataclass(frozen=True, slots=True)
class BackupFile:
    """What a backup file holds that restoring it depends on."""

    revision: str
    sealed: list[str]  # one sealed value per column that has any


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _temp_beside(path: Path) -> Path:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)  # mkstemp makes it 0600
    return Path(temp)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _copy(source: Path, temp: Path, *, check: bool) -> str | None:
    """SQLite's online backup of ``source`` into ``temp`` in one step (one snapshot), as a
    single file (no -wal beside it); with ``check``, the copy's integrity problem, if any."""
    src = _connect(source, read_only=True)
    try:
        dst = sqlite3.connect(temp, isolation_level=None)
        try:
            src.backup(dst)  # pages=-1: one step, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            return _integrity(dst) if check else None
        finally:
            dst.close()
    finally:
        src.close()


def copy_database(source: Path, out: Path) -> None:
    """An online, consistent copy of the SQLite database ``source`` as ``out`` (replaced
    atomically; mode 0600). Unavailable if it cannot be read or written."""
    if not source.exists():
        raise Unavailable(f"no database at {source}")
    temp = _temp_beside(out)
    try:
        problem = _copy(source, temp, check=True)
        if problem is not None:
            raise Unavailable(f"the copy of {source} fails its integrity check: {problem}")
        os.chmod(temp, 0o600)
        _fsync(temp)
        os.replace(temp, out)
    except sqlite3.Error as err:
        raise Unavailable(f"cannot back up {source}: {err}") from err
    finally:
        _remove(temp)


def _integrity(conn: sqlite3.Connection) -> str | None:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return None if rows == ["ok"] else "; ".join(map(str, rows[:5]))


def inspect_backup(path: Path) -> BackupFile:
    """The schema revision and sealed values of a backup (BackupInvalid if it is not an
    intact provisiond SQLite database)."""
    if not path.is_file():
        raise BackupInvalid(f"{path}: no such file")
    try:
        conn = _connect(path, read_only=True)
    except sqlite3.Error as err:
        raise BackupInvalid(f"{path}: cannot be opened as a SQLite database ({err})") from err
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _MARK_TABLES if t not in tables]
        if missing:
            raise BackupInvalid(
                f"{path}: not a provisiond database (no table {', '.join(missing)})"
            )
        problem = _integrity(conn)
        if problem is not None:
            raise BackupInvalid(f"{path}: fails SQLite's integrity check: {problem}")
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None:
            raise BackupInvalid(f"{path}: has no schema revision (alembic_version is empty)")
        sealed = []
        for table, column in SEALED_COLUMNS:
            if table not in tables:
                continue
            with contextlib.suppress(sqlite3.OperationalError):  # not in an older schema
                row = conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} LIKE ? LIMIT 1",  # noqa: S608 - names from SEALED_COLUMNS
                    (SEALED_PREFIX + "%",),
                ).fetchone()
                if row is not None:
                    sealed.append(str(row[0]))
        return BackupFile(str(revision[0]), sealed)
    except sqlite3.DatabaseError as err:
        raise BackupInvalid(f"{path}: not a readable SQLite database ({err})") from err
    finally:
        conn.close()


def stage_restore(backup: Path, target: Path) -> Path:
    """A copy of ``backup`` beside ``target`` (mode 0600), to be migrated and given its
    event before :func:`put_in_place`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_beside(target)
    try:
        _copy(backup, temp, check=False)  # checked already (inspect_backup)
    except sqlite3.Error as err:
        _remove(temp)
        raise Unavailable(f"cannot copy {backup} beside {target}: {err}") from err
    os.chmod(temp, 0o600)
    return temp


def discard(staged: Path) -> None:
    _remove(staged)


@contextlib.contextmanager
def database_to_itself(target: Path) -> Iterator[None]:
    """Hold ``target`` so that nobody else has it open (DatabaseInUse if someone does: a
    running `provisiond serve` keeps its connections open). A missing file: nothing held."""
    if not target.exists():
        yield
        return
    conn = sqlite3.connect(target, isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError as err:
        conn.close()
        raise DatabaseInUse(
            f"{target} is open in another process (a running `provisiond serve`?): stop it, "
            "then restore"
        ) from err
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def put_in_place(staged: Path, target: Path) -> None:
    """Rename the staged database over ``target``, and drop the old one's WAL files (they
    would otherwise be read as the new one's). Call it inside :func:`database_to_itself`."""
    conn = sqlite3.connect(staged, isolation_level=None)
    try:  # in WAL mode, as `provisiond db upgrade` leaves a database, and all in the file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()  # the last connection: the -wal file goes
    if Path(f"{staged}-wal").exists():
        raise Unavailable(f"{staged}: its write-ahead log was not folded into it; try again")
    _fsync(staged)
    os.replace(staged, target)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}{suffix}")


# ----------------------------------------------------------------------------- PostgreSQL

_SEALED_VALUE = re.compile(re.escape(SEALED_PREFIX) + r"[A-Za-z0-9+/=]+")
_TIMEOUT = 3600.0


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL for PostgreSQL's own tools (libpq: no SQLAlchemy driver name), without the
    password, and the environment that gives it (``PGPASSWORD``): a command line is
    readable by every user of the machine (``ps``), the environment only by its owner."""
    url = sync_url(database_url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    bare = URL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(
            f"{name} is not on PATH: install PostgreSQL's client tools (postgresql-client), "
            "of the server's major version or newer"
        )
    return found


def _run(command: list[str], what: str, env: dict[str, str]) -> None:
    try:
        # provisiond's own arguments: the tool found on PATH, a URL and file names
        done = subprocess.run(  # noqa: S603
            command, capture_output=True, timeout=_TIMEOUT, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"{what} failed: {err}") from err
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-500:]
        raise Unavailable(f"{what} exited {done.returncode}: {message}")


def pg_dump(database_url: str, out: Path) -> None:
    """``pg_dump --format=custom`` of the database to ``out`` (atomically, mode 0600)."""
    tool = _tool("pg_dump")
    url, env = libpq_target(database_url)
    temp = _temp_beside(out)
    try:
        _run([tool, "--format=custom", "--no-owner", f"--file={temp}", url], "pg_dump", env)
        os.chmod(temp, 0o600)
        _fsync(temp)
        os.replace(temp, out)
    finally:
        _remove(temp)


def inspect_dump(path: Path) -> BackupFile:
    """The schema revision and sealed values of a ``pg_dump --format=custom`` file
    (BackupInvalid if it is not one of a provisiond database)."""
    if not path.is_file():
        raise BackupInvalid(f"{path}: no such file")
    tool = _tool("pg_restore")
    listing = subprocess.run(  # noqa: S603 - pg_restore from PATH, a file name
        [tool, "--list", str(path)], capture_output=True, timeout=_TIMEOUT, check=False
    )
    if listing.returncode != 0:
        raise BackupInvalid(f"{path}: not a pg_dump custom-format file")
    tables = set(re.findall(rb" TABLE DATA \S+ (\w+) ", listing.stdout))
    missing = [t for t in _MARK_TABLES if t.encode() not in tables]
    if missing:
        raise BackupInvalid(f"{path}: not a provisiond database (no table {', '.join(missing)})")
    revision = _table_data(tool, path, "alembic_version")
    rows = [
        line
        for line in revision.splitlines()
        if line and not line.startswith(("--", "\\", "COPY", "SET", "SELECT"))
    ]
    if not rows:
        raise BackupInvalid(f"{path}: has no schema revision (alembic_version is empty)")
    sealed: list[str] = []
    for table in dict.fromkeys(t for t, _ in SEALED_COLUMNS):
        if table.encode() in tables:
            found = _first_sealed(tool, path, table)
            if found is not None:
                sealed.append(found)
    return BackupFile(rows[0].strip(), sealed)


def _table_data(tool: str, path: Path, table: str) -> str:
    done = subprocess.run(  # noqa: S603 - pg_restore from PATH, a file name, a table of ours
        [tool, "--data-only", f"--table={table}", "--file=-", str(path)],
        capture_output=True,
        timeout=_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BackupInvalid(f"{path}: pg_restore cannot read table {table}")
    return done.stdout.decode(errors="replace")


def _first_sealed(tool: str, path: Path, table: str) -> str | None:
    """The first sealed value in a table of the dump, read line by line: a million devices'
    credentials are never held in memory, and the reading stops at the first one."""
    with subprocess.Popen(  # noqa: S603 - pg_restore from PATH, a file name, a table of ours
        [tool, "--data-only", f"--table={table}", "--file=-", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as reader:
        for line in reader.stdout or ():
            found = _SEALED_VALUE.search(line.decode(errors="replace"))
            if found is not None:
                reader.kill()
                return found.group(0)
        if reader.wait(timeout=_TIMEOUT) != 0:
            raise BackupInvalid(f"{path}: pg_restore cannot read table {table}")
    return None


def pg_has_tables(database_url: str) -> bool:
    """Whether the database has provisiond's tables already."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return "alembic_version" in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def pg_restore(database_url: str, backup: Path) -> None:
    """``pg_restore`` the file into the database in one transaction: the tables it holds are
    dropped and created again, or nothing changes."""
    url, env = libpq_target(database_url)
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={url}",
            str(backup),
        ],
        "pg_restore",
        env,
    )
