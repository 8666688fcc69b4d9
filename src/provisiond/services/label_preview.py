"""One label as an SVG image: the console's preview of what `provisiond labels` prints.

The layout is the PDF's (:func:`provisiond.services.labels.draw_label`): the QR code with its
quiet zone on the left, the serial in bold and the model beside it, on the sheet's label
size; the code is the one the PDF carries (:func:`~provisiond.services.labels.device_code`).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from provisiond.domain.device import Device
from provisiond.protocols import qr
from provisiond.protocols.pdf import MM
from provisiond.services.labels import LabelOptions, check_options, device_code, label_note

SVG_TYPE = "image/svg+xml"
_DARK_RUN = re.compile(rb"[\x01-\xff]+")  # a run of dark modules in a matrix row


def _qr_path(matrix: list[bytes], x: float, y: float, size: float) -> str:
    """The dark modules as one SVG path, a rectangle per horizontal run (y grows down)."""
    module = size / (len(matrix) + 8)
    parts = []
    for r, row in enumerate(matrix):
        top = y + (r + 4) * module
        for run in _DARK_RUN.finditer(row):
            left = x + (run.start() + 4) * module
            width = (run.end() - run.start()) * module
            parts.append(f"M{left:.2f} {top:.2f}h{width:.2f}v{module:.2f}h{-width:.2f}z")
    return "".join(parts)


def label_svg(device: Device, options: LabelOptions) -> str:
    """The device's label on ``options.sheet``'s label size, as an SVG document. Raises what
    the PDF would (a sheet or format that does not exist, no public_url for url codes)."""
    sheet = check_options(options)
    code = device_code(device, options)
    text = code.render()
    matrix = qr.matrices([text], qr.best_mask(text))[0]
    w, h = sheet.label_width, sheet.label_height
    pad = min(w, h) * 0.06
    size = h - 2 * pad
    tx = 2 * pad + size
    room = w - tx - pad
    big = max(5.0, min(9.0, room / (0.62 * max(len(device.serial), 8))))
    small = big * 0.8
    line = pad + big
    lines = [
        f'<text x="{tx:.2f}" y="{line:.2f}" font-size="{big:.2f}" '
        f'font-weight="bold">{escape(device.serial)}</text>'
    ]
    for extra in (device.model or "", label_note(code)):
        if extra:
            line += small * 1.5
            lines.append(
                f'<text x="{tx:.2f}" y="{line:.2f}" font-size="{small:.2f}">'
                f"{escape(extra[: int(room / (0.5 * small)) or 1])}</text>"
            )
    title = quoteattr(f"Label of {device.serial}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label={title} '
        f'width="{w / MM:.1f}mm" height="{h / MM:.1f}mm" viewBox="0 0 {w:.2f} {h:.2f}" '
        'font-family="Helvetica, Arial, sans-serif">'
        f'<rect width="{w:.2f}" height="{h:.2f}" fill="#fff" stroke="#bbb" stroke-width="0.5"/>'
        f'<path fill="#000" d="{_qr_path(matrix, pad, pad, size)}"/>'
        f"{''.join(lines)}</svg>"
    )
