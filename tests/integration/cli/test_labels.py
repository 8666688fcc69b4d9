"""`provisiond labels`: PDFs whose every QR code decodes back (pypdfium2 renders, zxing-cpp
reads), claim codes printed, sheets and single labels, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
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
    cli("devices", "import", str(write(tmp_path / "d.csv", rows)), "--credentials-out",
        str(creds), "--profile", "labelled")
    out = tmp_path / "labels.pdf"
    result = cli("labels", "--out", str(out), "--serial-prefix", "LBL-", "--codes",
                 str(creds), "--base-url", "https://prov.example.com", "--json")
    assert '"labels": 30' in result.stdout
    pages, texts, words = decode_pdf(out)
    assert pages == 2  # 24 labels on an A4 3x8 sheet
    assert sorted(texts) == [f"https://prov.example.com/d/LBL-{n:03d}" for n in range(30)]
    codes = {r["serial"]: r["secret"] for r in read_creds(creds)
             if r["credential_type"] == "claim-code"}
    for serial, code in codes.items():
        assert serial in words
        assert f"Claim {code}" in words
    assert "UNO-2483G" in words


def test_other_sheets_and_formats(cli: Cli, tmp_path: Path) -> None:
    cli("devices", "import", str(write(tmp_path / "d.csv", "serial\n70B3D57ED0000001\n"
                                       "70B3D57ED0000002\n70B3D57ED0000003\n")),
        "--credentials-out", str(tmp_path / "c.csv"))
    single = tmp_path / "single.pdf"
    cli("labels", "--out", str(single), "--sheet", "single-62mm", "--format", "lorawan",
        "--join-eui", "70B3D57ED0000010")
    pages, texts, _ = decode_pdf(single)
    assert pages == 3
    assert texts == [f"LW:D0:70B3D57ED0000010:70B3D57ED000000{n}:00000000" for n in (1, 2, 3)]
    letter = tmp_path / "letter.pdf"
    cli("labels", "--out", str(letter), "--sheet", "letter-3x10", "--format", "serial")
    assert decode_pdf(letter)[:2] == (1, [f"70B3D57ED000000{n}" for n in (1, 2, 3)])
    png = tmp_path / "one.png"
    cli("labels", "--out", str(png), "--serial", "70b3d57ed0000002", "--base-url",
        "https://p.example")
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(png))] == [
        "https://p.example/d/70B3D57ED0000002"]


def test_labels_refuse_clearly_and_leave_no_file(cli: Cli, tmp_path: Path) -> None:
    cli("devices", "import", str(write(tmp_path / "d.csv", "serial\nGEN-1\n")),
        "--credentials-out", str(tmp_path / "c.csv"))
    out = tmp_path / "x.pdf"
    err = cli("labels", "--out", str(out), "--sheet", "a5", "--format", "matter",
              code=2).stderr
    assert "--sheet" in err
    assert "--format" in err
    assert "secret" in err
    err = cli("labels", "--out", str(out), "--format", "lorawan", code=2).stderr
    assert "GEN-1" in err
    assert "DevEUI" in err
    assert not out.exists()
    assert list(tmp_path.glob(".x.pdf.*")) == []  # no temporary file left behind
    assert "--serial" in cli("labels", "--out", str(tmp_path / "a.svg"), code=2).stderr
