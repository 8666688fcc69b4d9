"""`provisiond labels`: PDFs whose every QR code decodes back (pypdfium2 renders, zxing-cpp
reads), claim codes printed, sheets and single labels, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from tests.integration.cli.conftest import Cli, read_creds, write


def decode_pdf(path: Path) -> tuple[int, list[str], str]:
    """Pages, every QR text (page order), and all text of the document."""
    pdf = pdfium.PdfDocument(str(path))
    texts: list[str] = []
    words = []
    for page in pdf:
        texts += [r.text for r in zxingcpp.read_barcodes(page.render(scale=3).to_pil())]
        words.append(page.get_textpage().get_text_range())
    count = len(pdf)
    pdf.close()
    return count, texts, "\n".join(words)


def test_labels_pdf_scans_back_with_claim_codes(cli: Cli, tmp_path: Path) -> None:
    cli("profiles", "create", "labelled", "--claim-proof", "code")
    rows = "serial,model\n" + "".join(f"LBL-{n:03d},UNO-2483G\n" for n in range(30))
    creds = tmp_path / "creds.csv"
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", rows)),
        "--credentials-out",
        str(creds),
        "--profile",
        "labelled",
    )
    out = tmp_path / "labels.pdf"
    result = cli(
        "labels",
        "--out",
        str(out),
        "--serial-prefix",
        "LBL-",
        "--codes",
        str(creds),
        "--base-url",
        "https://prov.example.com",
        "--json",
    )
    assert '"labels": 30' in result.stdout
    pages, texts, words = decode_pdf(out)
    assert pages == 2  # 24 labels on an A4 3x8 sheet
    assert sorted(texts) == [f"https://prov.example.com/d/LBL-{n:03d}" for n in range(30)]
    codes = {
        r["serial"]: r["secret"] for r in read_creds(creds) if r["credential_type"] == "claim-code"
    }
    for serial, code in codes.items():
        assert serial in words
        assert f"Claim {code}" in words
    assert "UNO-2483G" in words


def test_other_sheets_and_formats(cli: Cli, tmp_path: Path) -> None:
    cli(
        "devices",
        "import",
        str(
            write(
                tmp_path / "d.csv", "serial\n70B3D57ED0000001\n70B3D57ED0000002\n70B3D57ED0000003\n"
            )
        ),
        "--credentials-out",
        str(tmp_path / "c.csv"),
    )
    single = tmp_path / "single.pdf"
    cli(
        "labels",
        "--out",
        str(single),
        "--sheet",
        "single-62mm",
        "--format",
        "lorawan",
        "--join-eui",
        "70B3D57ED0000010",
    )
    pages, texts, _ = decode_pdf(single)
    assert pages == 3
    assert texts == [f"LW:D0:70B3D57ED0000010:70B3D57ED000000{n}:00000000" for n in (1, 2, 3)]
    letter = tmp_path / "letter.pdf"
    cli("labels", "--out", str(letter), "--sheet", "letter-3x10", "--format", "serial")
    assert decode_pdf(letter)[:2] == (1, [f"70B3D57ED000000{n}" for n in (1, 2, 3)])
    png = tmp_path / "one.png"
    cli(
        "labels",
        "--out",
        str(png),
        "--serial",
        "70b3d57ed0000002",
        "--base-url",
        "https://p.example",
    )
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(png))] == [
        "https://p.example/d/70B3D57ED0000002"
    ]


def test_labels_refuse_clearly_and_leave_no_file(cli: Cli, tmp_path: Path) -> None:
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", "serial\nGEN-1\n")),
        "--credentials-out",
        str(tmp_path / "c.csv"),
    )
    out = tmp_path / "x.pdf"
    err = cli("labels", "--out", str(out), "--sheet", "a5", "--format", "matter", code=2).stderr
    assert "--sheet" in err
    assert "--secrets" in err  # matter labels need the manufacturing file
    assert "secret" in err
    err = cli("labels", "--out", str(out), "--format", "qr-ish", code=2).stderr
    assert "--format" in err
    err = cli("labels", "--out", str(out), "--format", "lorawan", code=2).stderr
    assert "GEN-1" in err
    assert "DevEUI" in err
    assert not out.exists()
    assert list(tmp_path.glob(".x.pdf.*")) == []  # no temporary file left behind
    assert "--serial" in cli("labels", "--out", str(tmp_path / "a.svg"), code=2).stderr


def test_esp_and_matter_labels_from_the_manufacturing_file(cli: Cli, tmp_path: Path) -> None:
    from provisiond.protocols.codes import EspProvCode, MatterQr

    rows = "serial,model\n" + "".join(f"NODE-{n:02d},UNO-2483G\n" for n in range(5))
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", rows)),
        "--credentials-out",
        str(tmp_path / "c.csv"),
    )
    esp = write(
        tmp_path / "esp.csv",
        "serial,pop,transport\n"
        + "".join(f"node-{n:02d},pop-{n}-x7Qe,{'ble' if n == 4 else 'softap'}\n" for n in range(5)),
    )
    out = tmp_path / "esp.pdf"
    cli("labels", "--out", str(out), "--format", "esp", "--secrets", str(esp))
    _, texts, words = decode_pdf(out)
    parsed = sorted((EspProvCode.parse(t) for t in texts), key=lambda c: c.name)
    assert [(c.name, c.pop, c.transport) for c in parsed] == [
        (f"PROV_ODE-0{n}", f"pop-{n}-x7Qe", "ble" if n == 4 else "softap") for n in range(5)
    ]
    assert "pop-1-x7Qe" not in words  # the secret is in the QR only

    matter = write(
        tmp_path / "matter.csv",
        "serial,passcode,discriminator,vendor_id,product_id,discovery\n"
        + "".join(
            f"NODE-{n:02d},{20202021 + n},{3840 + n},0xFFF1,0x8000,ble+on-network\n"
            for n in range(5)
        ),
    )
    out = tmp_path / "matter.pdf"
    cli(
        "labels",
        "--out",
        str(out),
        "--format",
        "matter",
        "--secrets",
        str(matter),
        "--sheet",
        "letter-3x10",
    )
    _, texts, words = decode_pdf(out)
    codes = sorted((MatterQr.parse(t) for t in texts), key=lambda c: c.passcode)
    assert [
        (c.passcode, c.discriminator, c.vendor_id, c.product_id, c.discovery) for c in codes
    ] == [(20202021 + n, 3840 + n, 0xFFF1, 0x8000, 6) for n in range(5)]
    manual = codes[0].manual().render()  # printed for typing: 4-3-4 digits
    assert f"Setup {manual[:4]}-{manual[4:7]}-{manual[7:]}" in words
    png = tmp_path / "one.png"
    cli(
        "labels",
        "--out",
        str(png),
        "--serial",
        "NODE-03",
        "--format",
        "matter",
        "--secrets",
        str(matter),
    )
    (decoded,) = [r.text for r in zxingcpp.read_barcodes(Image.open(png))]
    assert MatterQr.parse(decoded).passcode == 20202024


def test_esp_and_matter_labels_refuse_bad_secrets_whole(cli: Cli, tmp_path: Path) -> None:
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", "serial\nNODE-1\nNODE-2\n")),
        "--credentials-out",
        str(tmp_path / "c.csv"),
    )
    out = tmp_path / "x.pdf"
    err = cli("labels", "--out", str(out), "--format", "esp", code=2).stderr
    assert "--secrets" in err
    assert "proof of possession" in err
    bad = write(
        tmp_path / "bad.csv",
        "serial,passcode,discriminator,vendor_id,product_id\n"
        "NODE-1,11111111,3840,65521,32768\n"  # a passcode the spec forbids
        "NODE-2,20202021,5000,65521,32768\n"  # discriminator over 12 bits
        "NODE/3,20202021,3840,65521,32768\n"  # not a serial
        "NODE-1,20202021,3840,65521,32768\n",
    )  # twice
    err = cli(
        "labels", "--out", str(out), "--format", "matter", "--secrets", str(bad), code=2
    ).stderr
    for expected in ("line 2", "line 3", "discriminator", "line 4", "line 5", "twice"):
        assert expected in err, (expected, err)
    assert not out.exists()
    partial = write(tmp_path / "one.csv", "serial,pop\nNODE-1,abcd1234\n")
    err = cli(
        "labels", "--out", str(out), "--format", "esp", "--secrets", str(partial), code=2
    ).stderr
    assert "NODE-2 has no row in the --secrets file" in err
    assert not out.exists()  # nothing half-printed
    missing = write(tmp_path / "cols.csv", "serial,name\nNODE-1,PROV_1\n")
    err = cli(
        "labels", "--out", str(out), "--format", "esp", "--secrets", str(missing), code=2
    ).stderr
    assert "no column pop" in err
    # and an import never keeps those secrets as tags
    leak = cli(
        "devices",
        "import",
        str(write(tmp_path / "leak.csv", "serial,pop\nNODE-9,x\n")),
        "--credentials-out",
        str(tmp_path / "leak-creds.csv"),
        code=2,
    ).stderr
    assert "column 'pop' holds a device secret" in leak


def test_url_labels_need_the_public_url(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without public_url a URL label is refused, saying which setting to set (it used to
    point at http://127.0.0.1:8000, useless on a phone); labels without a URL need none."""
    monkeypatch.delenv("PROVISIOND_PUBLIC_URL", raising=False)
    cli(
        "devices",
        "import",
        str(write(tmp_path / "d.csv", "serial\nGEN-1\nGEN-2\n")),
        "--credentials-out",
        str(tmp_path / "c.csv"),
    )
    out = tmp_path / "x.pdf"
    err = cli("labels", "--out", str(out), code=3).stderr
    assert err.startswith("error[public-url-not-configured]: ")
    assert "public_url" in err
    assert "PROVISIOND_PUBLIC_URL" in err
    assert "--base-url" in err
    assert not out.exists()
    assert list(tmp_path.glob(".x.pdf.*")) == []
    one = tmp_path / "one.png"
    problem = json.loads(
        cli("labels", "--out", str(one), "--serial", "GEN-1", "--json", code=3).stdout
    )
    assert (problem["code"], problem["errors"][0]["field"]) == (
        "public-url-not-configured",
        "public_url",
    )
    assert not one.exists()
    cli("labels", "--out", str(tmp_path / "serial.pdf"), "--format", "serial")
    assert decode_pdf(tmp_path / "serial.pdf")[1] == ["GEN-1", "GEN-2"]

    monkeypatch.setenv("PROVISIOND_PUBLIC_URL", "https://provision.example.com/")
    cli("labels", "--out", str(out))
    assert decode_pdf(out)[1] == [
        "https://provision.example.com/d/GEN-1",
        "https://provision.example.com/d/GEN-2",
    ]
