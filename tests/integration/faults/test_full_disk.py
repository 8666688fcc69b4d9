"""The disk under an SQLite database fills up: a clear error, nothing half-written, no
corrupted database, and the service works again once there is space — without a restart.

The disk is a real one: a small tmpfs mounted for the test (which needs root; without it
the test is skipped)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Instance
from tests.support.processes import provisiond as run_cli

pytestmark = pytest.mark.slow  # a fault

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small disk here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk but ``leave`` bytes."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def provisiond(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(f"sqlite:///{db}", *args)


def check(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        credentials = conn.execute("SELECT count(*) FROM credentials").fetchone()[0]
    return int(devices), int(credentials)


def test_a_full_disk_is_a_clear_error_and_corrupts_nothing(
    small_disk: Path, sqlite_url: str, tmp_path: Path
) -> None:
    db = small_disk / "provisiond.db"
    shutil.copy(sqlite_url.removeprefix("sqlite:///"), db)
    token = json.loads(provisiond(db, "tokens", "create", "ops", "--json").stdout)["secret"]
    instance = Instance(f"sqlite:///{db}", log=tmp_path / "serve.log")
    api = httpx.Client(
        base_url=instance.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        profile = api.post("/api/v1/profiles", json={"name": "gw"}).json()
        body = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
        assert (
            httpx.post(
                instance.url + "/api/v1/provision", json={**body, "deviceName": "FULL-0"}
            ).json()["status"]
            == "SUCCESS"
        )
        before = check(db)
        filler = fill(small_disk, leave=64 * 1024)

        # a bulk import that needs more than is left: refused whole, with the reason
        batch = tmp_path / "batch.csv"
        batch.write_text("serial\n" + "".join(f"FULL-{n:05d}\n" for n in range(1, 5_001)))
        imported = provisiond(
            db, "devices", "import", str(batch), "--credentials-out", str(tmp_path / "creds.csv")
        )
        assert imported.returncode != 0
        assert "disk is full" in imported.stderr, imported.stderr
        assert not (tmp_path / "creds.csv").exists()
        assert check(db) == before

        # the server: each provisioning that cannot be written is a 503 saying why
        answers = [
            httpx.post(
                instance.url + "/api/v1/provision", json={**body, "deviceName": f"FULL-X{n}"}
            )
            for n in range(200)
        ]
        refused = [a for a in answers if a.status_code == 503]
        assert refused, "the disk never filled up"
        assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
        assert "disk is full" in refused[0].json()["detail"]
        written = {
            f"FULL-X{n}"
            for n, a in enumerate(answers)
            if a.status_code == 200 and a.json()["status"] == "SUCCESS"
        }
        assert check(db) == (before[0] + len(written), before[1] + len(written))
        assert api.get("/readyz").status_code == 200  # it reads: still ready for that
        # the operator hears of it once, not once per refused device
        warnings = [
            line
            for line in (tmp_path / "serve.log").read_text().splitlines()
            if "provisioning cannot write" in line
        ]
        assert len(warnings) == 1, warnings
        assert "disk is full" in warnings[0]

        # space again: it works without a restart, and nothing refused was half-made
        filler.unlink()
        later = httpx.post(
            instance.url + "/api/v1/provision", json={**body, "deviceName": "FULL-AFTER"}
        )
        assert later.json()["status"] == "SUCCESS"
        assert check(db) == (before[0] + len(written) + 1, before[1] + len(written) + 1)
        again = provisiond(
            db, "devices", "import", str(batch), "--credentials-out", str(tmp_path / "creds.csv")
        )
        assert again.returncode == 0, again.stderr
    finally:
        api.close()
        instance.stop()
    assert check(db)[0] == before[0] + len(written) + 1 + 5_000
    assert os.path.getsize(tmp_path / "creds.csv") > 0
