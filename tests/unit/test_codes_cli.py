"""`provisiond codes parse|make`: what people see, and QR images that scan back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from typer.testing import CliRunner

from provisiond.cli.app import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_parse_names_the_format_and_its_fields() -> None:
    doc = json.loads(run("codes", "parse", "MT:-8VJ0OMV172PX813210", "--json"))
    assert (doc["format"], doc["fields"]["passcode"], doc["fields"]["manual_code"]) == (
        "matter-qr",
        49910688,
        "32140830464",
    )
    assert "LoRaWAN device QR" in run(
        "codes", "parse", "URN:LW:DP:42FFFFFFFFFFFFFF:4242FFFFFFFFFFFF:42FFFF42"
    )
    err = run("codes", "parse", "MT:00000CQM00KA0648G0$", code=2)
    assert "'$' is not a base-38 character (at character 22)" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["GEN-7", "--base-url", "https://prov.example.com/"], "https://prov.example.com/d/GEN-7"),
        (["gen-7 ", "--format", "serial"], "GEN-7"),
        (
            ["70B3D57ED0000001", "--format", "lorawan", "--join-eui", "70b3d57ed0000010"],
            "LW:D0:70B3D57ED0000010:70B3D57ED0000001:00000000",
        ),
        (
            ["GW-001234", "--format", "esp", "--pop", "abcd1234"],
            '{"ver":"v1","name":"PROV_001234","pop":"abcd1234","transport":"softap"}',
        ),
        (
            [
                "GEN-7",
                "--format",
                "matter",
                "--discriminator",
                "3840",
                "--passcode",
                "20202021",
                "--vendor-id",
                "0",
                "--product-id",
                "0",
            ],
            "MT:00000CQM00KA0648G00",
        ),
    ],
)
def test_make_prints_the_code_and_writes_a_qr_that_scans_back(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    png = tmp_path / "code.png"
    out = run("codes", "make", *args, "--png", str(png), "--svg", str(tmp_path / "code.svg"))
    assert out.strip() == expected
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(png))]
    assert decoded == [expected]
    assert (tmp_path / "code.svg").read_text().startswith("<?xml")


def test_make_refuses_what_it_cannot_make() -> None:
    assert "--passcode" in run("codes", "make", "GEN-7", "--format", "matter", code=2)
    assert "not one of" in run("codes", "make", "GEN-7", "--format", "morse", code=2)
    assert "JoinEUI" in run(
        "codes", "make", "GEN-7", "--format", "lorawan", "--join-eui", "XYZ", code=2
    )
    assert "DevEUI" in run("codes", "make", "GEN-7", "--format", "lorawan", code=2)


def test_make_a_url_needs_the_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device URL starts with the configured public_url; with none, it is refused with the
    setting to set (not made with http://127.0.0.1:8000)."""
    monkeypatch.delenv("PROVISIOND_PUBLIC_URL", raising=False)
    err = run("codes", "make", "GEN-7", code=3)
    assert err.startswith("error[public-url-not-configured]: ")
    assert "PROVISIOND_PUBLIC_URL" in err
    assert run("codes", "make", "GEN-7", "--format", "serial").strip() == "GEN-7"
    monkeypatch.setenv("PROVISIOND_PUBLIC_URL", "https://provision.example.com")
    assert run("codes", "make", "gen-7").strip() == "https://provision.example.com/d/GEN-7"
