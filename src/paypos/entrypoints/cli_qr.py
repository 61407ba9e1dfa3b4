"""`paypos qr …` — check and draw EMVCo merchant-presented QR payloads.

``decode`` validates any network's payload (ours, Pix, UPI, …): CRC, lengths, nesting;
unknown IDs are kept. ``render`` draws one as PNG, SVG or terminal text. An invalid
payload exits 1 with the reason on stderr; a usage error exits 2. segno and
python-barcode are imported only when something is drawn.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from paypos.protocol.qr import QrError, decode_mpm, decode_tlv

qr_app = typer.Typer(help="EMVCo merchant-presented QR payloads: decode and check one, or draw it.",
                     no_args_is_help=True)
out = Console()
err = Console(stderr=True)

# EMV QRCPS MPM: IDs 80-99 are unreserved templates (sub-ID 00 a globally unique identifier). protocol.qr keeps
# them as raw values (it nests 26-51, 62 and 64), so they are nested here for display.
UNRESERVED_TEMPLATE_IDS = frozenset(f"{n:02d}" for n in range(80, 100))
RENDER_SUFFIXES = (".png", ".svg")

# Names for the table, as EMV QRCPS MPM gives them; other IDs are shown without one.
_NAMES = {
    "00": "payload format indicator", "01": "point of initiation method", "52": "merchant category code",
    "53": "transaction currency", "54": "transaction amount", "55": "tip or convenience indicator",
    "56": "convenience fee fixed", "57": "convenience fee percentage", "58": "country code",
    "59": "merchant name", "60": "merchant city", "61": "postal code", "62": "additional data field",
    "63": "CRC", "64": "merchant information - language",
}
_ADDITIONAL_DATA_NAMES = {
    "01": "bill number", "02": "mobile number", "03": "store label", "04": "loyalty number",
    "05": "reference label", "06": "customer label", "07": "terminal label", "08": "purpose of transaction",
    "09": "additional consumer data request", "10": "merchant tax ID", "11": "merchant channel",
}
_LANGUAGE_NAMES = {"00": "language preference", "01": "merchant name (alternate)", "02": "merchant city (alternate)"}

Payload = Annotated[str, typer.Argument(help="The payload text, as read from the QR code.")]


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr (never wrapped, never read as markup), then exit ``code``."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code) from None


def _decode(payload: str) -> dict[str, str | dict[str, str]]:
    """The payload's data objects by ID, every template (26-51, 62, 64, 80-99) nested."""
    objects = decode_mpm(payload)
    return {
        data_id: decode_tlv(value, parent=data_id)
        if data_id in UNRESERVED_TEMPLATE_IDS and isinstance(value, str) else value
        for data_id, value in objects.items()
    }


def _name(data_id: str, sub_id: str | None = None) -> str:
    if sub_id is None:
        if 2 <= int(data_id) <= 51:
            return "merchant account information"
        return "unreserved template" if data_id in UNRESERVED_TEMPLATE_IDS else _NAMES.get(data_id, "")
    if sub_id == "00" and (2 <= int(data_id) <= 51 or data_id in UNRESERVED_TEMPLATE_IDS):
        return "globally unique identifier"
    return {"62": _ADDITIONAL_DATA_NAMES, "64": _LANGUAGE_NAMES}.get(data_id, {}).get(sub_id, "")


def _objects_table(objects: dict[str, str | dict[str, str]]) -> Table:
    table = Table(title="EMVCo merchant-presented payload", title_justify="left")
    for column in ("ID", "name", "value"):
        table.add_column(column, overflow="fold")
    for data_id, value in objects.items():
        if isinstance(value, dict):
            table.add_row(data_id, _name(data_id), Text("(template)", style="dim"))
            for sub_id, sub_value in value.items():
                table.add_row(f"{data_id}.{sub_id}", _name(data_id, sub_id), Text(sub_value))
        else:
            table.add_row(data_id, _name(data_id), Text(value))
    return table


@qr_app.command()
def decode(
    payload: Payload,
    as_json: Annotated[bool, typer.Option("--json", help="Print the data objects as JSON to stdout.")] = False,
) -> None:
    """Check a payload (CRC, lengths, nesting, mandatory IDs) and show its data objects by ID."""
    try:
        objects = _decode(payload)
    except QrError as error:
        _fail(f"invalid payload: {error}", 1)
    if as_json:
        sys.stdout.write(json.dumps(objects, indent=2, ensure_ascii=False) + "\n")
    else:
        out.print(_objects_table(objects))


@qr_app.command()
def render(
    payload: Payload,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the QR code here; .png or .svg chooses the format.")
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="Print the QR code as text blocks to stdout.")] = False,
    scale: Annotated[int, typer.Option("--scale", min=1, help="Pixels (PNG) or units (SVG) per module.")] = 8,
) -> None:
    """Draw a payload as a QR code (error correction level M): --out code.png|code.svg, or --text."""
    if text == (out_file is not None):
        _fail("give either --out FILE (.png or .svg) or --text", 2)
    if out_file is not None and out_file.suffix.lower() not in RENDER_SUFFIXES:
        _fail(f"--out {out_file}: unknown image format {out_file.suffix or '(no suffix)'!r}; use .png or .svg", 2)
    from paypos.adapters import qrimage

    try:
        if out_file is None:
            sys.stdout.write(qrimage.render_qr_text(payload))
        elif out_file.suffix.lower() == ".png":
            out_file.write_bytes(qrimage.render_qr_png(payload, scale=scale))
        else:
            out_file.write_text(qrimage.render_qr_svg(payload, scale=scale), encoding="utf-8")
    except QrError as error:
        _fail(f"invalid payload: {error}", 1)
    except qrimage.RenderError as error:
        _fail(f"cannot draw: {error}", 2 if error.field == "scale" else 1)
    except UnicodeEncodeError:
        _fail("this terminal's encoding cannot show block characters; set PYTHONIOENCODING=utf-8", 1)
    except OSError as error:
        _fail(f"cannot write {out_file}: {error.strerror or error}", 1)
    if out_file is not None:
        err.print(f"wrote {escape(str(out_file))}")
