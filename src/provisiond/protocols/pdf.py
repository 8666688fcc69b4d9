"""A PDF writer that streams: each page is written to the file as it is finished, so a sheet
of 10,000 labels takes the memory of one page (and a list of object offsets).

PDF libraries for Python (reportlab, fpdf2) keep every page in memory until the document is
saved; label runs are long, so this module writes the few object kinds labels need: pages
with one compressed content stream, and the two standard fonts Helvetica and Helvetica-Bold
(not embedded, WinAnsi encoding). The page tree and cross-reference table are written at
the end, from the offsets recorded on the way.
"""

from __future__ import annotations

import zlib
from types import TracebackType
from typing import BinaryIO, Self

MM = 72 / 25.4  # points per millimetre

_CATALOG, _PAGES, _FONT, _BOLD = 1, 2, 3, 4


def pdf_text(text: str) -> bytes:
    """A PDF string literal in WinAnsi (characters outside it become '?')."""
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


class Page:
    """The drawing operations of one page, in points from the bottom-left corner."""

    def __init__(self) -> None:
        self._ops: list[bytes] = []

    def rects(self, rects: list[tuple[float, float, float, float]]) -> None:
        """Fill rectangles (x, y, width, height) in black."""
        self._ops.append(
            b"0 g\n" + b"".join(b"%.2f %.2f %.2f %.2f re\n" % r for r in rects) + b"f\n"
        )

    def text(self, x: float, y: float, size: float, text: str, *, bold: bool = False) -> None:
        font = b"/F2" if bold else b"/F1"
        self._ops.append(
            b"BT %s %.1f Tf %.2f %.2f Td %s Tj ET\n" % (font, size, x, y, pdf_text(text))
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, gray: float = 0.8) -> None:
        self._ops.append(b"%.2f G 0.3 w %.2f %.2f m %.2f %.2f l S\n" % (gray, x1, y1, x2, y2))

    def content(self) -> bytes:
        return b"".join(self._ops)


class StreamingPdf:
    def __init__(self, out: BinaryIO, width: float, height: float) -> None:
        self._out = out
        self._width = width
        self._height = height
        self._offsets: dict[int, int] = {}
        self._next_id = 5
        self._pages: list[int] = []
        self._pos = 0
        self._closed = False
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        for oid, name in ((_FONT, b"Helvetica"), (_BOLD, b"Helvetica-Bold")):
            self._object(
                oid,
                b"<< /Type /Font /Subtype /Type1 /BaseFont /"
                + name
                + b" /Encoding /WinAnsiEncoding >>",
            )

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._pos += len(data)

    def _object(self, oid: int, body: bytes) -> None:
        self._offsets[oid] = self._pos
        self._write(b"%d 0 obj\n" % oid + body + b"\nendobj\n")

    def _new_id(self) -> int:
        oid = self._next_id
        self._next_id += 1
        return oid

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def add_page(self, page: Page) -> None:
        """Write one page now."""
        data = zlib.compress(page.content(), 6)
        content_id = self._new_id()
        self._object(
            content_id,
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
        )
        page_id = self._new_id()
        self._object(
            page_id,
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] "
            b"/Contents %d 0 R /Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>"
            % (_PAGES, self._width, self._height, content_id, _FONT, _BOLD),
        )
        self._pages.append(page_id)

    def close(self) -> None:
        """Write the page tree, catalogue, cross-reference table and trailer."""
        if self._closed:
            return
        self._closed = True
        kids = b" ".join(b"%d 0 R" % p for p in self._pages)
        self._object(
            _PAGES, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(self._pages)
        )
        self._object(_CATALOG, b"<< /Type /Catalog /Pages %d 0 R >>" % _PAGES)
        xref_at = self._pos
        count = self._next_id
        rows = [b"0000000000 65535 f \n"]
        rows += [b"%010d 00000 n \n" % self._offsets[oid] for oid in range(1, count)]
        self._write(b"xref\n0 %d\n" % count + b"".join(rows))
        self._write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (count, _CATALOG, xref_at)
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
