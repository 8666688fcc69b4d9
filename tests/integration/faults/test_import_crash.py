"""`provisiond devices import` killed (SIGKILL) in the middle, on SQLite: after it the
database is consistent and the import happened whole or not at all — with its credentials
file whole, or absent — and running it again finishes the job."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a fault

ROWS = 20_000


def database_file(sqlite_url: str) -> Path:
    return Path(sqlite_url.removeprefix("sqlite:///"))


def import_command(db: Path, spreadsheet: Path, creds: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "provisiond",
        "devices",
        "import",
        str(spreadsheet),
        "--credentials-out",
        str(creds),
        "--database",
        f"sqlite:///{db}",
        "--json",
        *extra,
    ]


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def temporary_credentials(creds: Path) -> list[Path]:
    return list(creds.parent.glob(f".{creds.name}.*.tmp"))


def committed(db: Path) -> bool:
    """The import's transaction is visible to a reader (WAL lets one read meanwhile)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return bool(conn.execute("SELECT count(*) FROM devices").fetchone()[0])


# When to kill: each waits for something the import does, then the kill lands mid-step.
TRIGGERS: dict[str, Callable[[Path, Path], bool]] = {
    "while writing the credentials file": lambda _, creds: any(
        size(t) > 200_000 for t in temporary_credentials(creds)
    ),
    "while writing the database": lambda db, _: size(db.with_name(db.name + "-wal")) > 2_000_000,
    "just after the commit": lambda db, _: committed(db),
}


@pytest.mark.parametrize("moment", list(TRIGGERS))
def test_an_import_killed_midway_happened_whole_or_not_at_all(
    moment: str, sqlite_url: str, tmp_path: Path
) -> None:
    db = database_file(sqlite_url)
    spreadsheet = tmp_path / "batch.csv"
    spreadsheet.write_text("serial,fw\n" + "".join(f"CRS-{n:06d},1.0\n" for n in range(ROWS)))
    creds = tmp_path / "creds.csv"
    trigger = TRIGGERS[moment]
    proc = subprocess.Popen(
        import_command(db, spreadsheet, creds), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not trigger(db, creds) and proc.poll() is None:
        assert time.monotonic() < deadline, "the import never got there"
        time.sleep(0.002)  # polling a file's size: there is nothing to wait on
    proc.kill()
    proc.wait(30)

    with sqlite3.connect(db) as conn:  # opening it recovers the WAL, as a restart would
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        credentials = conn.execute("SELECT count(*) FROM credentials").fetchone()[0]
        imported = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'devices.imported'"
        ).fetchone()[0]
    assert (devices, credentials, imported) in ((0, 0, 0), (ROWS, ROWS, 1)), moment
    assert (devices == ROWS) == (moment == "just after the commit")
    leftovers = temporary_credentials(creds)
    if devices == 0:
        assert not creds.exists()  # no credentials file for devices that do not exist
        for t in leftovers:  # what the killed import left: secrets of nothing
            t.unlink()
        again = subprocess.run(import_command(db, spreadsheet, creds), capture_output=True)
        assert again.returncode == 0, again.stderr
    else:
        # committed: its secrets are in the credentials file, or (killed between commit
        # and rename) in the temporary file beside it, complete
        written = creds if creds.exists() else leftovers[0]
        assert len(written.read_text().splitlines()) == ROWS + 1
        shutil.move(written, creds)
        again = subprocess.run(
            import_command(db, spreadsheet, tmp_path / "again.csv", "--skip-existing"),
            capture_output=True,
        )
        assert again.returncode == 0, again.stderr
    lines = creds.read_text().splitlines()
    assert len(lines) == ROWS + 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == ROWS
        assert conn.execute("SELECT count(DISTINCT serial) FROM devices").fetchone()[0] == ROWS
    assert os.path.getsize(creds) > 0
