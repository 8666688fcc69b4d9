"""Blynk-style LoRaWAN static tokens through `provisiond devices import`, on both backends:
DevEUIs become serials, AppKeys are sealed at rest, TR005 codes go to the credentials file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from provisiond.cli.app import app
from provisiond.protocols import codes
from provisiond.services.sealing import Sealer
from provisiond.store.database import sync_url
from tests.integration.cli.conftest import Cli, read_creds, write
from tests.integration.cli.test_labels import decode_pdf

PASSPHRASE = "correct horse battery staple"
BLYNK = (
    "Device EUI, Join EUI, Application Key\n"
    "0018B20000000101, 70B3D57ED0000010, 2B7E151628AED2A6ABF7158809CF4F3C\n"
    "0018b2 0000000102, 70B3D57ED0000010, 000102030405060708090A0B0C0D0E0F\n"
)


def sealed_keys(url: str) -> dict[str, str]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT lookup, secret_sealed FROM credentials WHERE type = 'lorawan'")
            ).all()
    finally:
        engine.dispose()
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def sealed_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("PROVISIOND_DEVICE_KEY_PASSPHRASE", PASSPHRASE)
    return cli


def test_static_tokens_become_devices_with_sealed_keys(sealed_cli: Cli, tmp_path: Path) -> None:
    cli = sealed_cli
    creds = tmp_path / "creds.csv"
    result = cli(
        "devices",
        "import",
        str(write(tmp_path / "blynk.csv", BLYNK)),
        "--credentials-out",
        str(creds),
        "--model",
        "UNO-2483G",
        "--json",
    )
    assert '"imported": 2' in result.stdout
    rows = read_creds(creds)
    assert [(r["serial"], r["credential_type"]) for r in rows] == [
        ("0018B20000000101", "lorawan-tr005"),
        ("0018B20000000102", "lorawan-tr005"),
    ]
    code = codes.parse(rows[0]["secret"])
    assert isinstance(code, codes.LoRaWanCode)
    assert (code.join_eui, code.dev_eui) == ("70B3D57ED0000010", "0018B20000000101")
    shown = cli.json("devices", "show", "0018b20000000102")
    assert isinstance(shown, dict)
    assert shown["tags"] == {"join_eui": "70B3D57ED0000010"}
    assert shown["model"] == "UNO-2483G"
    sealed = sealed_keys(cli.url)
    assert set(sealed) == {"0018B20000000101", "0018B20000000102"}
    for value in sealed.values():
        assert value.startswith("aesgcm1:")
        assert "2B7E1516" not in value
        assert "00010203" not in value
    opener = Sealer(PASSPHRASE, production=True)
    assert opener.unseal(sealed["0018B20000000101"]) == "2B7E151628AED2A6ABF7158809CF4F3C"
    # the labels carry the device's own JoinEUI
    out = tmp_path / "labels.pdf"
    cli("labels", "--out", str(out), "--format", "lorawan", "--serial-prefix", "0018B2")
    assert decode_pdf(out)[1] == [r["secret"] for r in rows]


def test_a_bad_token_file_lists_every_problem_and_imports_nothing(
    sealed_cli: Cli, tmp_path: Path
) -> None:
    cli = sealed_cli
    bad = (
        "devEUI;appEUI;appKey\n".replace(";", ",")
        + "0018B20000000101,70B3D57ED0000010,2B7E151628AED2A6ABF7158809CF4F3C\n"
        + "0018B2000000010,70B3D57ED0000010,2B7E151628AED2A6ABF7158809CF4F3C\n"
        + "0018B20000000101,70B3D57ED0000010,2B7E1516\n"
        + "0018B20000000103,XYZ,2B7E151628AED2A6ABF7158809CF4F3C\n"
        + "0018B20000000101,70B3D57ED0000010,2B7E151628AED2A6ABF7158809CF4F3C\n"
    )
    err = cli(
        "devices",
        "import",
        str(write(tmp_path / "bad.csv", bad)),
        "--credentials-out",
        str(tmp_path / "c.csv"),
        code=2,
    ).stderr
    assert "4 problems found; nothing was imported" in err
    for needle in (
        "line 3",
        "Device EUI",
        "line 4",
        "Application Key",
        "line 5",
        "Join EUI",
        "line 6",
        "also on line 2",
    ):
        assert needle in err
    assert sealed_keys(cli.url) == {}
    assert not (tmp_path / "c.csv").exists()


def test_production_refuses_keys_it_could_not_seal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISIOND_ENVIRONMENT", "production")
    result = CliRunner().invoke(
        app,
        [
            "devices",
            "import",
            str(write(tmp_path / "b.csv", BLYNK)),
            "--credentials-out",
            str(tmp_path / "c.csv"),
            "--database",
            cli.url,
        ],
    )
    assert result.exit_code == 3, result.stderr
    assert "device_key_passphrase" in result.stderr
    assert sealed_keys(cli.url) == {}


def test_claim_code_length_is_a_setting(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISIOND_CLAIMS__CODE_LENGTH", "20")
    cli("profiles", "create", "long-codes", "--claim-proof", "code")
    out = tmp_path / "c.csv"
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", "serial\nLONG-1\n")),
        "--credentials-out",
        str(out),
        "--profile",
        "long-codes",
    )
    code = next(r["secret"] for r in read_creds(out) if r["credential_type"] == "claim-code")
    assert len(code.replace("-", "")) == 20
    assert isinstance(codes.parse(code), codes.ClaimCode)
