"""The console's import (/import): a dry run that lists every problem by line and writes
nothing, the import whose answer is the credentials file, refusals (a file with problems, a
file too large, another customer's group, no CSRF token, not an admin). httpx against a real
server on both backends; one walk in Chromium (upload progress, the download)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.web.browsing import Audit, organisation, routes_of, screenshot, sign_in
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import Browser

SITE = "Kanarra/Sadler-Isberg/West/Anaheim"
GOOD = "serial,name,model\nKP-0001,Pump 1,UNO-2483G\nKP-0002,Pump 2,\nKP-0003,Pump 3,uno-2483g\n"
BAD = (
    "serial,name,model\n"
    "KP-0101,Pump 1,UNO-2483G\n"
    "KP-0101,Pump 1 again,\n"  # line 3: repeated
    "KP-0103,Pump 3,NO-SUCH-MODEL\n"  # line 4: no such model
    "KP-0104,Pump 4\n"  # line 5: a cell short
)


def admin(server: Server) -> Browser:
    browser = Browser(server)
    assert browser.sign_in("boss@kanarra.example").status_code == 303
    assert browser.get("/import").status_code == 200
    return browser


def post_file(
    browser: Browser,
    content: str | bytes,
    action: str = "import",
    name: str = "devices.csv",
    **fields: str,
) -> httpx.Response:
    data = {"csrf": browser.csrf, "action": action, **fields}
    kind = "text/csv" if name.endswith(".csv") else "application/octet-stream"  # as browsers do
    return browser.http.post("/import", data=data, files={"file": (name, content, kind)})


def devices_named(api: httpx.Client, prefix: str) -> list[str]:
    r = api.get("/api/v1/devices", params={"serial_prefix": prefix, "limit": 500})
    assert r.status_code == 200, r.text
    return [d["serial"] for d in r.json()["items"]]


def event_count(api: httpx.Client) -> int:
    r = api.get("/api/v1/events", params={"limit": 500})
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def problem_rows(html: str) -> list[tuple[str, str]]:
    """(line, field) of each row of the problems table."""
    table = html.split('id="import-problems"', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r'<tr><td class="font-monospace">([^<]*)</td><td>([^<]*)</td><td>', table)
    return [(line, field) for line, field in cells]


def test_a_dry_run_lists_problems_and_writes_nothing_then_the_import_answers_with_the_credentials(
    server: Server, api: httpx.Client
) -> None:
    organisation(api)
    browser = admin(server)
    events = event_count(api)

    r = post_file(browser, BAD, action="check", group=SITE)
    assert r.status_code == 422
    assert "3 problems found; nothing was imported" in r.text
    assert "Checked only: nothing was written" in r.text
    assert problem_rows(r.text) == [("3", "serial"), ("4", "model"), ("5", "")]
    r = post_file(browser, GOOD, action="check", group=SITE)
    assert r.status_code == 200, r.text
    assert "An import would register 3 devices" in r.text
    assert "Nothing was written" in r.text
    # a dry run writes nothing: no device, no audit event
    assert devices_named(api, "KP-") == []
    assert event_count(api) == events

    r = post_file(browser, GOOD, group=SITE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="credentials-')
    assert r.headers["x-provisiond-imported"] == "3"
    assert r.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["serial"] for row in rows} == {"KP-0001", "KP-0002", "KP-0003"}
    assert all(len(row["secret"]) >= 20 for row in rows)
    assert devices_named(api, "KP-") == ["KP-0001", "KP-0002", "KP-0003"]
    imported = api.get("/api/v1/events", params={"kind": "devices.imported", "limit": 500})
    assert imported.json()["items"][0]["actor"] == "user:boss@kanarra.example"
    assert event_count(api) == events + 1
    device = api.get("/api/v1/devices/KP-0001").json()
    assert (device["group"], device["model"]) == (SITE, "UNO-2483G")

    # the secrets are nowhere to be read again: importing again is refused, line by line
    r = post_file(browser, GOOD, group=SITE)
    assert r.status_code == 422
    assert "KP-0001 is already registered" in r.text
    assert problem_rows(r.text)[0] == ("2", "serial")
    r = post_file(browser, GOOD, action="check", group=SITE, skip_existing="on")
    assert "3 already registered skipped" in r.text


def test_a_file_with_problems_imports_nothing(server: Server, api: httpx.Client) -> None:
    organisation(api)
    browser = admin(server)
    events = event_count(api)
    r = post_file(browser, BAD, group=SITE)
    assert r.status_code == 422
    assert 'id="import-problems"' in r.text
    assert "Checked only" not in r.text
    assert problem_rows(r.text) == [("3", "serial"), ("4", "model"), ("5", "")]
    assert devices_named(api, "KP-") == []
    assert event_count(api) == events
    # JSON lines, by the file's name
    r = post_file(browser, '{"serial": "KP-0200"}\n[1]\n', name="devices.jsonl", group=SITE)
    assert r.status_code == 422
    assert problem_rows(r.text) == [("2", "")]
    assert "is not a JSON object" in r.text
    # no file
    r = browser.http.post("/import", data={"csrf": browser.csrf, "action": "check"})
    assert r.status_code == 422
    assert 'id="file-error"' in r.text
    assert "Choose a CSV or JSON lines file." in r.text


def test_a_file_too_large_is_refused_with_the_setting_to_change(
    server: Server, api: httpx.Client
) -> None:
    organisation(api)
    browser = admin(server)
    limit = server.settings.limits.http_max_body_bytes
    page = browser.get("/import").text
    assert f'data-max-bytes="{limit - 4096}"' in page
    assert "limits.http_max_body_bytes" in page
    big = "serial\n" + "".join(f"KP-{i:08d}\n" for i in range(limit // 10))
    r = post_file(browser, big, action="check", group=SITE)
    assert r.status_code == 413
    assert "http_max_body_bytes" in r.json()["detail"]
    assert devices_named(api, "KP-") == []


def test_another_customers_group_is_not_a_choice(server: Server, api: httpx.Client) -> None:
    organisation(api)
    assert api.post("/api/v1/groups", json={"path": "Tamarack/North"}).status_code == 201
    browser = admin(server)
    page = browser.get("/import").text
    assert SITE in page
    assert "Tamarack" not in page
    r = post_file(browser, GOOD, group="Tamarack/North")
    assert r.status_code == 422
    assert 'id="group-error"' in r.text
    r = post_file(browser, "serial,group\nKP-0300,Tamarack/North\n", group=SITE)
    assert r.status_code == 422
    assert problem_rows(r.text) == [("2", "group")]
    assert devices_named(api, "KP-") == []


def test_only_admins_with_a_form_token_import(server: Server, api: httpx.Client) -> None:
    organisation(api)
    anonymous = Browser(server)
    assert anonymous.get("/import").headers["location"] == "/login?next=/import"
    for email in ("tech@kanarra.example", "viewer@kanarra.example"):
        browser = Browser(server)
        assert browser.sign_in(email).status_code == 303
        assert browser.get("/import").status_code == 403
        assert post_file(browser, GOOD, group=SITE).status_code == 403
    browser = admin(server)
    r = browser.http.post(
        "/import",
        data={"action": "import", "group": SITE},
        files={"file": ("devices.csv", GOOD, "text/csv")},
    )
    assert r.status_code == 403
    assert "Form expired" in r.text
    assert devices_named(api, "KP-") == []


@pytest.mark.slow  # a real browser
@pytest.mark.sqlite_only  # the page is backend-agnostic; the service is tested on both above
def test_console_import_in_a_browser(
    server: Server, api: httpx.Client, browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    organisation(api)
    page, url = browser_page, server.url
    check = Audit(page, routes_of("imports"), size="desktop")

    def checked(what: str) -> None:
        # The pointer off the buttons: a button it rests on after a click (the layout moves
        # under it at each size) is checked mid-way through its hover transition otherwise.
        page.mouse.move(0, 0)
        check(what)

    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, url, "boss@kanarra.example")
    page.wait_for_url("**/devices")
    page.goto(f"{url}/import")
    check("import: the form")

    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text(BAD)
    good.write_text(GOOD)
    page.select_option("#group", SITE)

    # too large: refused before it is sent
    limit = server.settings.limits.http_max_body_bytes
    page.set_input_files(
        "#file", files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": b"x" * limit}]
    )
    page.click("#check-button")
    expect(page.locator("#file-error")).to_contain_text("provisiond devices import")
    checked("import: file too large")

    # a file with problems: listed by line, the file still chosen
    page.set_input_files("#file", str(bad))
    page.click("#import-button")
    expect(page.locator("#import-problems")).to_be_visible()
    expect(page.locator("#import-problems tbody tr")).to_have_count(3)
    expect(page.locator("#import-problems")).to_contain_text("KP-0101 is also on line 2")
    assert page.eval_on_selector("#file", "f => f.files.length") == 1
    checked("import: problems by line")
    screenshot(page, "console-import-problems")

    # a dry run, then the import: the credentials file is downloaded
    page.set_input_files("#file", str(good))
    page.click("#check-button")
    expect(page.locator("#import-checked")).to_contain_text("would register 3 devices")
    checked("import: dry run, no problems")
    with page.expect_download() as download_info:
        page.click("#import-button")
    download = download_info.value
    assert download.suggested_filename.startswith("credentials-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert {r["serial"] for r in rows} == {"KP-0001", "KP-0002", "KP-0003"}
    assert all(r["credential_type"] == "access-token" and r["secret"] for r in rows)
    expect(page.locator("#import-done")).to_contain_text(f"3 devices imported into {SITE}")
    expect(page.locator("#import-done")).to_contain_text("it is not shown again")
    checked("import: done")
    screenshot(page, "console-import-done")
    assert devices_named(api, "KP-") == ["KP-0001", "KP-0002", "KP-0003"]

    # without JavaScript the form still works: the browser downloads the answer itself
    context = page.context.browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        sign_in(plain, url, "boss@kanarra.example")
        plain.wait_for_url("**/devices")
        plain.goto(f"{url}/import")
        plain.select_option("#group", SITE)
        again = tmp_path / "again.csv"
        again.write_text("serial\nKP-0010\n")
        plain.set_input_files("#file", str(again))
        with plain.expect_download() as download_info:
            plain.click("#import-button")
        text = Path(download_info.value.path()).read_text()
        assert "KP-0010," in text
    finally:
        context.close()

    check.assert_clean()
