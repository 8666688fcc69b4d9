"""QR matrices for label runs, in worker processes.

Encoding a QR code in pure Python (segno) is the cost of a label run; the codes are
independent, so a run hands them to worker processes in chunks. This module imports nothing
but segno, so a worker starts light.
"""

from __future__ import annotations

import segno

ERROR = "q"  # a quarter of the symbol may be scratched off


def best_mask(text: str) -> int:
    """The mask segno chooses (by scoring all eight) for ``text``."""
    return int(segno.make(text, error=ERROR, micro=False, boost_error=False).mask)


def matrices(texts: list[str], mask: int) -> list[list[bytes]]:
    """The module rows (1 = dark, without quiet zone) of each text's QR code."""
    out = []
    for text in texts:
        qr = segno.make(text, error=ERROR, micro=False, mask=mask, boost_error=False)
        out.append([bytes(row) for row in qr.matrix])
    return out
