"""The console's labels (/labels): choose devices, preview one label (SVG), download the PDF
(whose every QR decodes back); URL labels without public_url say which setting to set; another
customer's devices are refused like missing ones; only admins. httpx against a real server on
both backends; one walk in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.cli.test_labels import decode_pdf
from tests.integration.web.browsing import Audit, organisation, routes_of, screenshot, sign_in
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import Browser

SITE = "Kanarra/Sadler-Isberg/West/Anaheim"
PUBLIC_URL = "https://provision.example.com"


@pytest.fixture
def public_url() -> str | None:
    return PUBLIC_URL


@pytest.fixture
def server_settings(database_url: str, public_url: str | None) -> Settings:
    return load_settings(database_url=database_url, log_level="warning", public_url=public_url)


def fleet(api: httpx.Client) -> None:
    """Kanarra's organisation with three devices at a site, and another customer's device."""
    organisation(api)
    for group, rows in (
        (SITE, "serial,model\nLB-0001,UNO-2483G\nLB-0002,\nLB-0003,\n"),
        ("Tamarack", "serial\nTM-0001\n"),
    ):
        if group == "Tamarack":
            assert api.post("/api/v1/groups", json={"path": group}).status_code == 201
        r = api.post(
            "/api/v1/devices/import",
            params={"group": group},
            content=rows,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 201, r.text


def admin(server: Server) -> Browser:
    browser = Browser(server)
    assert browser.sign_in("boss@kanarra.example").status_code == 303
    return browser


def labels(*serials: str, **options: str) -> str:
    return urlencode([("serial", s) for s in serials] + list(options.items()))


def test_the_pdf_and_the_preview_of_the_chosen_devices(
    server: Server, api: httpx.Client, tmp_path: Path
) -> None:
    fleet(api)
    browser = admin(server)
    page = browser.get("/labels")
    assert page.status_code == 200
    assert "LB-0001" in page.text
    assert "TM-0001" not in page.text  # another customer's
    page = browser.get(f"/labels?{labels('LB-0002', 'LB-0001')}")
    assert page.status_code == 200
    assert 'id="label-preview"' in page.text
    assert "2 labels on 1 page" in page.text
    assert "/labels/preview.svg?serial=LB-0002&amp;sheet=a4-3x8&amp;format=url" in page.text

    svg = browser.get("/labels/preview.svg?serial=LB-0001&sheet=a4-3x8&format=url")
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert svg.text.startswith("<svg ")
    assert ">LB-0001</text>" in svg.text
    assert ">UNO-2483G</text>" in svg.text

    r = browser.get(f"/labels/pdf?{labels('LB-0002', 'LB-0001', sheet='a4-3x8', format='url')}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith('attachment; filename="labels-')
    assert r.headers["x-provisiond-labels"] == "2"
    (tmp_path / "labels.pdf").write_bytes(r.content)
    pages, codes, text = decode_pdf(tmp_path / "labels.pdf")
    assert pages == 1
    assert sorted(codes) == [f"{PUBLIC_URL}/d/LB-0001", f"{PUBLIC_URL}/d/LB-0002"]
    assert "LB-0001" in text
    assert "UNO-2483G" in text

    three = labels("LB-0001", "LB-0002", "LB-0003", sheet="single-62mm", format="serial")
    r = browser.get(f"/labels/pdf?{three}")
    assert r.headers["x-provisiond-labels"] == "3"
    (tmp_path / "single.pdf").write_bytes(r.content)
    pages, codes, _ = decode_pdf(tmp_path / "single.pdf")
    assert (pages, codes) == (3, ["LB-0001", "LB-0002", "LB-0003"])


@pytest.mark.parametrize("public_url", [None])
def test_url_labels_without_public_url_name_the_setting(server: Server, api: httpx.Client) -> None:
    fleet(api)
    browser = admin(server)
    page = browser.get(f"/labels?{labels('LB-0001')}")
    assert page.status_code == 200
    assert 'id="format-error"' in page.text
    assert "PROVISIOND_PUBLIC_URL" in page.text
    assert 'id="label-preview"' not in page.text
    r = browser.get(f"/labels/pdf?{labels('LB-0001', format='url')}")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="format-error"' in r.text
    assert "PROVISIOND_PUBLIC_URL" in r.text
    svg = browser.get("/labels/preview.svg?serial=LB-0001&format=url")
    assert svg.status_code == 422
    assert "PROVISIOND_PUBLIC_URL" in svg.text
    # codes without a URL need none
    r = browser.get(f"/labels/pdf?{labels('LB-0001', format='serial')}")
    assert (r.status_code, r.headers["content-type"]) == (200, "application/pdf")


def test_another_customers_devices_are_refused_as_missing_ones(
    server: Server, api: httpx.Client
) -> None:
    fleet(api)
    browser = admin(server)
    assert "TM-0001" not in browser.get("/labels?q=TM").text
    theirs = browser.get(f"/labels/pdf?{labels('LB-0001', 'TM-0001')}")
    missing = browser.get(f"/labels/pdf?{labels('LB-0001', 'NO-SUCH-1')}")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers["content-type"].startswith("text/html")
    assert 'id="serial-error"' in theirs.text
    assert "no device TM-0001 that you may see" in theirs.text
    assert "nothing was printed" in theirs.text
    assert theirs.text.replace("TM-0001", "NO-SUCH-1") == missing.text
    # the page with the selection says it too, and shows no preview
    page = browser.get(f"/labels?{labels('TM-0001')}")
    assert "no device TM-0001 that you may see" in page.text
    assert 'id="label-preview"' not in page.text
    theirs = browser.get("/labels/preview.svg?serial=TM-0001&format=serial")
    missing = browser.get("/labels/preview.svg?serial=NO-SUCH-1&format=serial")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


def test_bad_choices_are_refused_on_their_fields(server: Server, api: httpx.Client) -> None:
    fleet(api)
    browser = admin(server)
    r = browser.get(f"/labels/pdf?{labels('LB-0001', sheet='a5-1x1', format='matter')}")
    assert r.status_code == 422
    assert 'id="sheet-error"' in r.text
    assert 'id="format-error"' in r.text
    assert "provisiond labels --secrets" in r.text
    r = browser.get("/labels/preview.svg?serial=LB-0001&format=esp")
    assert r.status_code == 422
    r = browser.get("/labels/pdf?sheet=a4-3x8&format=serial")
    assert r.status_code == 422
    assert "choose at least one device" in r.text
    many = [f"LB-{i:04d}" for i in range(501)]
    r = browser.get(f"/labels/pdf?{labels(*many, format='serial')}")
    assert r.status_code == 422
    assert "at most 500 at once" in r.text


def test_only_admins_print_labels(server: Server, api: httpx.Client) -> None:
    fleet(api)
    paths = (
        "/labels",
        f"/labels?{labels('LB-0001')}",
        "/labels/preview.svg?serial=LB-0001&format=serial",
        f"/labels/pdf?{labels('LB-0001', format='serial')}",
    )
    anonymous = Browser(server)
    for path in paths:
        assert anonymous.get(path).headers["location"].startswith("/login?next=/labels")
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        browser = Browser(server)
        assert browser.sign_in(email).status_code == 303
        for path in paths:
            r = browser.get(path)
            assert r.status_code == 403, path
            assert "application/pdf" not in r.headers["content-type"]


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the page is backend-agnostic; the services are tested on both above
def test_console_labels_in_a_browser(
    server: Server, api: httpx.Client, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    fleet(api)
    page, url = browser_page, server.url
    check = Audit(page, routes_of("labels"), size="desktop")
    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, url, "boss@kanarra.example")
    page.wait_for_url("**/devices")

    # a selection from the devices list's link, and a search adding one
    page.goto(f"{url}/labels?serial=LB-0001")
    expect(page.locator("#label-devices input:checked")).to_have_count(1)
    page.fill("#q", "LB-000")
    page.click("#search-button")
    page.check("#label-devices input[value=LB-0003]")
    page.select_option("#format", "url")
    page.click("#preview-button")
    expect(page.locator("#label-devices input:checked")).to_have_count(2)
    preview = page.locator("#label-preview img")
    expect(preview).to_have_attribute("alt", "Label of LB-0001")
    # the image loads (its request is the server's SVG): wait for it, then it has a size
    page.wait_for_function(
        "() => { const i = document.querySelector('#label-preview img');"
        " return i !== null && i.complete && i.naturalWidth > 0; }"
    )
    page.mouse.move(0, 0)
    check("labels: chosen, preview")
    screenshot(page, "console-labels")
    page.goto(f"{url}/labels/preview.svg?serial=LB-0001&sheet=a4-3x8&format=url")
    check("labels: a label's image")
    page.go_back()

    with page.expect_download() as download_info:
        page.click("#pdf-button")
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    pages, codes, _ = decode_pdf(Path(download.path()))
    assert (pages, sorted(codes)) == (1, [f"{PUBLIC_URL}/d/LB-0001", f"{PUBLIC_URL}/d/LB-0003"])

    # another customer's device: refused on the page, nothing downloaded
    page.goto(f"{url}/labels/pdf?serial=LB-0001&serial=TM-0001")
    expect(page.locator("#serial-error")).to_contain_text("no device TM-0001")
    check("labels: another customer's device refused")

    check.assert_clean()
