"""Draw payment codes: EMVCo QR payloads as PNG, SVG or terminal text, and the buyer's
18-digit payment code as a Code 128 barcode (SVG).

QR codes (ISO/IEC 18004) are drawn by segno at error correction level M, exactly M
(segno's "boost" to a higher level is off, so the level is what the caller asked for),
with the 4-module quiet zone the standard requires. A payload is checked as an EMVCo
merchant-presented payload (:func:`paypos.protocol.qr.decode_mpm`) before it is drawn,
so a code that no wallet could pay is never shown.

Code 128 (ISO/IEC 15417) is drawn by python-barcode; an all-digit value is encoded in
code set C (two digits per symbol character), with a quiet zone of 10 modules. Its
bitmap writer needs Pillow, so only SVG is offered here.
"""

from __future__ import annotations

import io
import re

import segno

from paypos.protocol import paycode
from paypos.protocol.qr import MPM_PAYLOAD_CHARS_MAX, decode_mpm

__all__ = [
    "PAYMENT_CODE_DIGITS",
    "QR_ERROR_LEVELS",
    "QR_QUIET_ZONE_MODULES",
    "QR_SCALE_MAX",
    "RenderError",
    "render_code128_svg",
    "render_qr_png",
    "render_qr_svg",
    "render_qr_text",
]

# ISO/IEC 18004 (quiet zone): 4 modules wide on every side.
QR_QUIET_ZONE_MODULES = 4
QR_ERROR_LEVELS = frozenset("LMQH")
# Pixels (PNG) or user units (SVG) per module; a version-40 symbol at 40 is 7,400 px wide.
QR_SCALE_MAX = 40
# A customer-presented payment code (issue 5): 18 digits, shown as QR and Code 128.
PAYMENT_CODE_DIGITS = paycode.CODE_DIGITS
_PAYMENT_CODE = re.compile(rf"[0-9]{{{PAYMENT_CODE_DIGITS}}}")
# Code 128 drawing, in millimetres: ISO/IEC 15417 asks for a quiet zone of at least
# 10 modules (10X) on each side.
_CODE128_MODULE_MM = 0.25
_CODE128_HEIGHT_MM = 15.0
_CODE128_QUIET_ZONE_MM = 10 * _CODE128_MODULE_MM

# Half-block characters: (upper module inked, lower module inked) -> character.
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


class RenderError(ValueError):
    """A payload or payment code that cannot be drawn; ``field`` names what is at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


# --- QR ----------------------------------------------------------------------------------


def _qr(payload: object, error: str) -> segno.QRCode:
    """Check ``payload`` (non-empty, at most 512 characters, a valid MPM payload) and encode it."""
    if not isinstance(payload, str):
        raise RenderError(f"must be a str, not {type(payload).__name__}", field="payload")
    if not payload:
        raise RenderError("is empty", field="payload")
    if len(payload) > MPM_PAYLOAD_CHARS_MAX:
        raise RenderError(
            f"is {len(payload)} characters; EMV QRCPS MPM allows at most {MPM_PAYLOAD_CHARS_MAX}", field="payload"
        )
    if not isinstance(error, str) or error.upper() not in QR_ERROR_LEVELS:
        raise RenderError(f"must be one of L, M, Q, H, not {error!r}", field="error")
    decode_mpm(payload)  # raises QrError (a ValueError) naming the data object at fault
    try:
        return segno.make_qr(payload, error=error.lower(), boost_error=False)
    except segno.DataOverflowError as overflow:
        raise RenderError(f"does not fit in a QR code at level {error.upper()}", field="payload") from overflow


def _check_scale(scale: object) -> int:
    if type(scale) is not int or not 1 <= scale <= QR_SCALE_MAX:
        raise RenderError(f"must be an int from 1 to {QR_SCALE_MAX}, got {scale!r}", field="scale")
    return scale


def render_qr_png(payload: str, *, scale: int = 8, error: str = "M") -> bytes:
    """The payload as a QR code in a PNG image, ``scale`` pixels per module."""
    qr = _qr(payload, error)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=_check_scale(scale), border=QR_QUIET_ZONE_MODULES)
    return buffer.getvalue()


def render_qr_svg(payload: str, *, scale: int = 4, error: str = "M", scalable: bool = False) -> str:
    """The payload as a QR code in an SVG document: one ``<path>`` drawing the dark modules.
    ``scalable`` gives a ``viewBox`` instead of a fixed width and height, so CSS can size it
    (a fixed size in a smaller box is clipped, not shrunk)."""
    qr = _qr(payload, error)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=_check_scale(scale), border=QR_QUIET_ZONE_MODULES, xmldecl=True,
            omitsize=scalable)
    return buffer.getvalue().decode("utf-8")


def render_qr_text(payload: str, *, light_on_dark: bool = True, error: str = "M") -> str:
    """The payload as a QR code in half-block characters (▀ ▄ █), two module rows per line.

    For a terminal, a Textual or a Rich widget: print it as plain text (no markup). With
    ``light_on_dark`` (most terminals) the light modules and the quiet zone are drawn in
    ink and the dark modules left as the background; pass False for dark ink on a light
    background. Lines end with "\\n"; all lines have the same width.
    """
    rows = [[not dark if light_on_dark else bool(dark) for dark in row]
            for row in _qr(payload, error).matrix_iter(scale=1, border=QR_QUIET_ZONE_MODULES)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # below the symbol: background, no ink
    return "".join(
        "".join(_HALF_BLOCKS[pair] for pair in zip(upper, lower)) + "\n"
        for upper, lower in zip(rows[0::2], rows[1::2])
    )


# --- Code 128 ----------------------------------------------------------------------------


def render_code128_svg(payment_code: str, *, human_readable: bool = True) -> str:
    """An 18-digit payment code as a Code 128 (code set C) barcode in an SVG document.

    Bars are ``<rect>`` elements in millimetres, 0.25 mm per module; ``human_readable``
    prints the digits under the bars.
    """
    if not isinstance(payment_code, str):
        raise RenderError(f"must be a str, not {type(payment_code).__name__}", field="payment_code")
    if len(payment_code) != PAYMENT_CODE_DIGITS:
        raise RenderError(f"must be {PAYMENT_CODE_DIGITS} digits, got {len(payment_code)}", field="payment_code")
    if not _PAYMENT_CODE.fullmatch(payment_code):
        raise RenderError("must be digits 0-9 only", field="payment_code")
    # Imported here: python-barcode loads Pillow when it is imported, which the QR paths do not need.
    from barcode.codex import Code128
    from barcode.writer import SVGWriter

    options = {
        "module_width": _CODE128_MODULE_MM,
        "module_height": _CODE128_HEIGHT_MM,
        "quiet_zone": _CODE128_QUIET_ZONE_MM,
        "write_text": human_readable,
    }
    return Code128(payment_code, writer=SVGWriter()).render(writer_options=options).decode("utf-8")
