"""`provisiond backup` and `provisiond restore` on SQLite: an online backup taken while a real
writer (another process) registers devices holds a consistent prefix of its transactions;
the files are 0600 and not overwritten without --force; a restore checks the backup (a
provisiond database, its schema revision, the passphrase of its sealed secrets) before it
replaces anything, and records its event in the restored database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from provisiond.cli.app import app
from provisiond.store.migrate import head_revision
from tests.support.processes import Instance

runner = CliRunner()
PASSPHRASE = "correct horse battery staple"

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from provisiond.bootstrap import open_container
    from provisiond.domain.device import DeviceSpec
    from provisiond.domain.scope import Scope
    from provisiond.services import devices
    from provisiond.settings import load_settings

    async def main(url: str, stop: Path) -> None:
        async with open_container(load_settings(database_url=url)) as c:
            i = 0
            while not stop.exists():
                await devices.create_device(
                    c.uow(), scope=Scope.operator(), spec=DeviceSpec(f"W-{i:05d}"),
                    actor="writer", now=c.now(),
                )
                i += 1
                if i == 1:
                    print("writing", flush=True)

    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
    """
)


def cli(*args: str, code: int = 0, passphrase: str | None = PASSPHRASE) -> Result:
    env = {"PROVISIOND_DEVICE_KEY_PASSPHRASE": passphrase} if passphrase else {}
    if passphrase is None:
        os.environ.pop("PROVISIOND_DEVICE_KEY_PASSPHRASE", None)
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def database_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def test_an_online_backup_holds_a_consistent_prefix_of_a_concurrent_writer(
    sqlite_url: str, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, sqlite_url, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts: list[int] = []
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "writing\n", writer.stderr
        for n in range(4):
            out = tmp_path / f"backup-{n}.db"
            cli("backup", str(out), "--database", sqlite_url, "--json")
            assert out.stat().st_mode & 0o777 == 0o600
            assert rows(out, "PRAGMA integrity_check") == [("ok",)]
            (devices,) = rows(out, "SELECT count(*) FROM devices")[0]
            (events,) = rows(out, "SELECT count(*) FROM events WHERE type = 'device.registered'")[0]
            serials = {s for (s,) in rows(out, "SELECT serial FROM devices")}
            assert isinstance(devices, int)
            # every transaction whole or not at all, and each one before it: a prefix
            assert events == devices
            assert serials == {f"W-{i:05d}" for i in range(devices)}
            counts.append(devices)
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert counts[0] >= 1
    assert counts == sorted(counts)
    (total,) = rows(database_file(sqlite_url), "SELECT count(*) FROM devices")[0]
    assert isinstance(total, int)
    assert total >= counts[-1]


def test_backup_refuses_to_overwrite_without_force(sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    out.write_text("precious")
    refused = cli("backup", str(out), "--database", sqlite_url, code=5)
    assert "error[target-exists]" in refused.stderr
    assert out.read_text() == "precious"
    done = cli("backup", str(out), "--database", sqlite_url, "--force")
    assert "device_key_passphrase" in done.stderr  # the warning
    assert rows(out, "SELECT version_num FROM alembic_version")


def sealed_database(database_url: str) -> None:
    cli("profiles", "create", "line-1", "--database", database_url)
    if database_url.startswith("sqlite"):
        (value,) = rows(
            database_file(database_url), "SELECT jwt_key_sealed FROM provision_profiles"
        )[0]
    else:
        with psycopg.connect(database_url) as conn:
            (value,) = conn.execute("SELECT jwt_key_sealed FROM provision_profiles").fetchone() or (
                None,
            )
    assert isinstance(value, str)
    assert value.startswith("aesgcm1:")


def test_restore_with_another_passphrase_changes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    sealed_database(sqlite_url)
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--database", sqlite_url)
    cli("devices", "create", "AFTER-BACKUP", "--database", sqlite_url)
    before = database_file(sqlite_url).read_bytes()

    wrong = cli(
        "restore",
        str(backup),
        "--force",
        "--database",
        sqlite_url,
        "--json",
        code=3,
        passphrase="another passphrase",
    )
    assert json.loads(wrong.stdout)["code"] == "passphrase-mismatch"
    none = cli("restore", str(backup), "--force", "--database", sqlite_url, code=3, passphrase=None)
    assert "error[passphrase-mismatch]" in none.stderr
    assert database_file(sqlite_url).read_bytes() == before
    assert cli("devices", "show", "AFTER-BACKUP", "--database", sqlite_url)


def test_restore_puts_the_backup_in_place_with_its_event(sqlite_url: str, tmp_path: Path) -> None:
    sealed_database(sqlite_url)
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--database", sqlite_url)
    cli("devices", "create", "AFTER-BACKUP", "--database", sqlite_url)

    refused = cli("restore", str(backup), "--database", sqlite_url, code=5)
    assert "error[target-exists]" in refused.stderr
    done = json.loads(
        cli("restore", str(backup), "--force", "--database", sqlite_url, "--json").stdout
    )
    assert done["sealed_checked"] == 1
    cli("devices", "show", "AFTER-BACKUP", "--database", sqlite_url, code=4)
    events = rows(database_file(sqlite_url), "SELECT type, actor FROM events ORDER BY id")
    assert events[-1][0] == "database.restored"
    assert rows(database_file(sqlite_url), "PRAGMA integrity_check") == [("ok",)]
    assert database_file(sqlite_url).stat().st_mode & 0o777 == 0o600

    fresh = tmp_path / "new" / "provisiond.db"  # a new host: no database yet
    cli("restore", str(backup), "--database", f"sqlite:///{fresh}")
    assert rows(fresh, "SELECT name FROM provision_profiles") == [("line-1",)]


@pytest.mark.slow  # a real `provisiond serve` starts and stops
def test_restore_refuses_a_database_a_server_is_using(sqlite_url: str, tmp_path: Path) -> None:
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--database", sqlite_url)
    cli("devices", "create", "AFTER-BACKUP", "--database", sqlite_url)
    server = Instance(sqlite_url)
    try:
        busy = cli("restore", str(backup), "--force", "--database", sqlite_url, code=5)
        assert "error[database-in-use]" in busy.stderr
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()
    cli("devices", "show", "AFTER-BACKUP", "--database", sqlite_url)
    cli("restore", str(backup), "--force", "--database", sqlite_url)  # stopped: it may
    cli("devices", "show", "AFTER-BACKUP", "--database", sqlite_url, code=4)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.write_text("not a database"), "not a readable SQLite database"),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(),
            "not a provisiond database",
        ),
    ],
)
def test_restore_refuses_what_is_not_a_provisiond_backup(
    sqlite_url: str, tmp_path: Path, make: object, why: str
) -> None:
    bad = tmp_path / "bad.db"
    make(bad)  # type: ignore[operator]
    before = database_file(sqlite_url).read_bytes()
    refused = cli("restore", str(bad), "--force", "--database", sqlite_url, code=2)
    assert "error[backup-invalid]" in refused.stderr
    assert why in refused.stderr
    assert database_file(sqlite_url).read_bytes() == before


def test_restore_refuses_a_newer_schema_and_migrates_an_older_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.db"
    cli("backup", str(newer), "--database", sqlite_url)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    refused = cli("restore", str(newer), "--force", "--database", sqlite_url, code=2)
    assert "revision 9999" in refused.stderr

    older_db = tmp_path / "older-source.db"
    cli("db", "upgrade", "0015", "--database", f"sqlite:///{older_db}")
    older = tmp_path / "older.db"
    cli("backup", str(older), "--database", f"sqlite:///{older_db}")
    done = json.loads(
        cli("restore", str(older), "--force", "--database", sqlite_url, "--json").stdout
    )
    assert (done["revision"], done["head"]) == ("0015", head_revision())
    assert rows(database_file(sqlite_url), "SELECT version_num FROM alembic_version") == [
        (head_revision(),)
    ]


def test_postgresql_backup_and_restore_use_pg_dump_and_check_the_passphrase(
    postgres_url: str, tmp_path: Path
) -> None:
    sealed_database(postgres_url)
    backup = tmp_path / "b.dump"
    cli("backup", str(backup), "--database", postgres_url)
    assert backup.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format
    assert backup.stat().st_mode & 0o777 == 0o600
    cli("devices", "create", "AFTER-BACKUP", "--database", postgres_url)

    wrong = cli(
        "restore", str(backup), "--force", "--database", postgres_url, code=3, passphrase="other"
    )
    assert "error[passphrase-mismatch]" in wrong.stderr
    cli("devices", "show", "AFTER-BACKUP", "--database", postgres_url)
    refused = cli("restore", str(backup), "--database", postgres_url, code=5)
    assert "error[target-exists]" in refused.stderr

    done = json.loads(
        cli("restore", str(backup), "--force", "--database", postgres_url, "--json").stdout
    )
    assert done["sealed_checked"] == 1
    cli("devices", "show", "AFTER-BACKUP", "--database", postgres_url, code=4)
    with psycopg.connect(postgres_url) as conn:
        last = conn.execute("SELECT type FROM events ORDER BY id DESC LIMIT 1").fetchone()
        profiles = conn.execute("SELECT name FROM provision_profiles").fetchall()
    assert last == ("database.restored",)
    assert profiles == [("line-1",)]


def test_the_database_password_never_reaches_a_command_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump and pg_restore get the password in their environment: a command line is
    readable by every user of the machine (ps, /proc/PID/cmdline)."""
    password = "s3cret-Database-Pw"  # trust authentication here: any password is accepted
    url = postgres_url.replace("postgres@", f"postgres:{password}@", 1)
    assert password in url
    sealed_database(url)
    shims = tmp_path / "bin"
    shims.mkdir()
    seen = tmp_path / "seen.txt"
    for tool in ("pg_dump", "pg_restore"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True)
        shim = shims / tool
        shim.write_text(
            "#!/bin/sh\n"
            f'printf "argv %s\\n" "$*" >> {seen}\n'
            f'printf "env %s\\n" "$PGPASSWORD" >> {seen}\n'
            f'exec {real.stdout.strip()} "$@"\n'
        )
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    backup = tmp_path / "b.dump"
    cli("backup", str(backup), "--database", url)
    cli("restore", str(backup), "--force", "--database", url)
    lines = seen.read_text().splitlines()
    command_lines = [line for line in lines if line.startswith("argv ")]
    assert any("pg_dump" not in c and "--dbname=" in c for c in command_lines)  # both ran
    assert [c for c in command_lines if password in c] == []
    assert f"env {password}" in lines  # the tools still had it
