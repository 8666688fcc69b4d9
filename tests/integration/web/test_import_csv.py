"""The REST import's credentials answer: as CSV, a serial a spreadsheet would run is
neutralised ('-A1, quoted); as JSON, the same rows carry the values themselves."""

from __future__ import annotations

import csv
import io

import httpx

BODY = "serial,name\n-A1,first\nB-2,second\n"


def test_the_credentials_csv_is_neutralised_and_the_json_is_exact(api: httpx.Client) -> None:
    r = api.post("/api/v1/devices/import", content=BODY, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert [row[0] for row in rows] == ["serial", "'-A1", "B-2"]
    assert '"\'-A1",' in r.text
    assert all(row[3][0].isalnum() for row in rows[1:])  # secrets are never touched
    r = api.post(
        "/api/v1/devices/import",
        content=BODY.replace("A1", "C3").replace("B-2", "D4"),
        headers={"Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert [c["serial"] for c in r.json()["credentials"]] == ["-C3", "D4"]
