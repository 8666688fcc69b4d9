"""The API's import answer is the credentials file: LF line ends, so a shell script that
saved it (`curl -o`) reads each token without a carriage return."""

from __future__ import annotations

import re

import httpx

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$")


def test_the_import_answer_has_lf_line_ends(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/devices/import",
        content="serial\nLF-1\nLF-2\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    assert b"\r" not in r.content
    header, *rows = r.content.decode().splitlines()
    assert header == "serial,device_id,credential_type,secret"
    assert [row.split(",")[0] for row in rows] == ["LF-1", "LF-2"]
    assert all(TOKEN.match(row.split(",")[3]) for row in rows), rows
