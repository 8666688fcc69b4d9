"""The credentials file's lines (LF: shell scripts read them): written directly when no
field needs quoting, and always the same text the csv module writes, cells a spreadsheet
would run neutralised."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from provisiond.protocols.csv_cells import csv_lines, is_risky
from provisiond.services.registration import credential_csv


def csv_module(rows: list[tuple[str, str, str, str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


field = st.text(alphabet=st.sampled_from("AZaz09-_.:,\"\r\n é=+@\t'"), max_size=8)


@given(st.lists(st.tuples(field, field, field, field), max_size=20))
def test_the_same_text_as_every_csv_writer(rows: list[tuple[str, str, str, str]]) -> None:
    assert credential_csv(rows) == csv_lines(rows, "\n")
    # (with LF lines the csv module leaves a CR in a cell unquoted; a CR is quoted here)
    if not any(is_risky(c) or "\r" in c for row in rows for c in row):
        assert credential_csv(rows) == csv_module(rows)
    assert list(csv.reader(io.StringIO(credential_csv(rows), newline=""))) == [
        [("'" + c if is_risky(c) else c) for c in row] for row in rows
    ]


def test_a_serial_that_starts_with_a_dash_is_neutralised_in_any_row() -> None:
    plain = (
        "70B3D57E00000001",
        "0190c1c8-0000-7000-8000-000000000001",
        "access-token",
        "AZDByAAAcACAAAAAAAAAAQ.abc-_def",
    )
    for rows in ([("-A1", *plain[1:])], [plain, ("-A1", *plain[1:])], [(*plain[:3], "-secret")]):
        assert list(csv.reader(io.StringIO(credential_csv(rows)))) == [
            ["'" + c if c.startswith("-") else c for c in row] for row in rows
        ]


def test_plain_rows_and_rows_that_need_quoting() -> None:
    plain = [
        (
            "70B3D57E00000001",
            "0190c1c8-0000-7000-8000-000000000001",
            "access-token",
            "AZDByAAAcACAAAAAAAAAAQ.abc-_def",
        )
    ]
    assert credential_csv(plain) == ",".join(plain[0]) + "\n"
    quoted = [*plain, ("S2", "id", "claim-code", 'a,"b"')]
    assert credential_csv(quoted).endswith('S2,id,claim-code,"a,""b"""\n')
    assert list(csv.reader(io.StringIO(credential_csv(quoted)))) == [list(r) for r in quoted]
