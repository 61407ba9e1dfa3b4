"""paypos.adapters.qrimage: QR codes as PNG, SVG and terminal text; payment codes as Code 128.

Every drawing is read back by an independent decoder (zxing-cpp) to the exact text it
was drawn from; the SVG and text drawings are rasterised here with Pillow to do so.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from PIL import Image, ImageDraw

from paypos.adapters.qrimage import (
    PAYMENT_CODE_DIGITS,
    QR_QUIET_ZONE_MODULES,
    QR_SCALE_MAX,
    RenderError,
    render_code128_svg,
    render_qr_png,
    render_qr_svg,
    render_qr_text,
)
from paypos.protocol.qr import MPM_PAYLOAD_CHARS_MAX, QrError, build_mpm_payload
from tests.qr_vectors import BCB_STATIC_SAMPLE, EMVCO_SAMPLE

# --- known answers -----------------------------------------------------------------------

# [emvco] and [bcb]: the published payloads in tests/qr_vectors.py.
PAYPOS_PAYLOAD = build_mpm_payload(
    dynamic=True, merchant_account={"26": {"00": "dev.paypos", "01": "M0001"}}, mcc="5812", currency="156",
    amount_minor=2550, country="CN", merchant_name="Noodle House", merchant_city="Hangzhou",
    additional_data={"05": "ORDER-1"},
)
PAYLOADS = pytest.mark.parametrize("payload", [EMVCO_SAMPLE, BCB_STATIC_SAMPLE, PAYPOS_PAYLOAD],
                                   ids=["emvco", "bcb", "paypos"])
SVG_NS = "{http://www.w3.org/2000/svg}"


def read_code(image: Image.Image, barcode_format: zxingcpp.BarcodeFormat) -> zxingcpp.Barcode:
    """The one barcode of ``barcode_format`` in ``image``, read as drawn (no inverted retry)."""
    result = zxingcpp.read_barcode(image, formats=barcode_format, try_invert=False)
    assert result is not None, "zxing-cpp found no barcode"
    return result


def image_of_modules(rows: list[list[bool]], pixels: int = 4) -> Image.Image:
    """A greyscale image with each module ``pixels`` wide: True black, False white."""
    image = Image.new("L", (len(rows[0]) * pixels, len(rows) * pixels), 255)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                draw.rectangle((x * pixels, y * pixels, (x + 1) * pixels - 1, (y + 1) * pixels - 1), fill=0)
    return image


# --- PNG ---------------------------------------------------------------------------------


@PAYLOADS
def test_png_decodes_back_to_the_exact_payload_at_level_m(payload):
    png = render_qr_png(payload)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    result = read_code(Image.open(io.BytesIO(png)), zxingcpp.BarcodeFormat.QRCode)
    assert result.text == payload
    assert result.ec_level == "M"


@pytest.mark.parametrize("level", ["L", "M", "Q", "H"])
def test_png_is_drawn_at_exactly_the_level_asked_for(level):
    png = render_qr_png(BCB_STATIC_SAMPLE, error=level)
    assert read_code(Image.open(io.BytesIO(png)), zxingcpp.BarcodeFormat.QRCode).ec_level == level


def test_png_has_scale_pixels_per_module_and_a_4_module_quiet_zone():
    small, large = (Image.open(io.BytesIO(render_qr_png(PAYPOS_PAYLOAD, scale=s))) for s in (1, 10))
    assert large.size == (small.size[0] * 10, small.size[1] * 10)
    modules = small.convert("L")
    width = modules.size[0]
    border = [modules.getpixel((x, y)) for y in range(width) for x in range(width)
              if min(x, y) < QR_QUIET_ZONE_MODULES or max(x, y) >= width - QR_QUIET_ZONE_MODULES]
    assert set(border) == {255}
    assert modules.getpixel((QR_QUIET_ZONE_MODULES, QR_QUIET_ZONE_MODULES)) == 0  # finder pattern corner


# --- SVG ---------------------------------------------------------------------------------

_PATH_COMMAND = re.compile(r"([MmHh])\s*(-?[0-9.]+)(?:[\s,]+(-?[0-9.]+))?")


def modules_of_svg(svg: str) -> list[list[bool]]:
    """Rebuild the module grid from segno's path: "M x y" / "m dx dy" moves, "h dx" draws a run."""
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG_NS}svg"
    paths = root.findall(f"{SVG_NS}path")
    assert len(paths) == 1
    scale = float(re.fullmatch(r"scale\(([0-9.]+)\)", paths[0].get("transform", "scale(1)")).group(1))
    size = round(float(root.get("width")) / scale)
    assert size == round(float(root.get("height")) / scale)
    rows = [[False] * size for _ in range(size)]
    x = y = 0.0
    d = paths[0].get("d")
    commands = _PATH_COMMAND.findall(d)
    assert "".join(c[0] + c[1] + (" " + c[2] if c[2] else "") for c in commands).replace(" ", "") == d.replace(" ", "")
    for command, first, second in commands:
        if command in "Mm":
            x, y = (float(first), float(second)) if command == "M" else (x + float(first), y + float(second))
        else:
            run = float(first)
            for column in range(round(x), round(x + run)):
                rows[int(y)][column] = True  # a stroke of width 1 centred on y covers row floor(y)
            x += run
    return rows


@PAYLOADS
def test_svg_is_xml_whose_module_path_decodes_back_to_the_exact_payload(payload):
    rows = modules_of_svg(render_qr_svg(payload))
    assert not any(rows[0]) and not any(row[0] for row in rows)  # quiet zone
    assert read_code(image_of_modules(rows), zxingcpp.BarcodeFormat.QRCode).text == payload


def test_svg_size_is_modules_times_scale():
    svg = ET.fromstring(render_qr_svg(BCB_STATIC_SAMPLE, scale=7).encode("utf-8"))
    modules = len(modules_of_svg(render_qr_svg(BCB_STATIC_SAMPLE, scale=1)))
    assert (float(svg.get("width")), float(svg.get("height"))) == (modules * 7, modules * 7)


def test_a_scalable_svg_has_a_view_box_and_no_fixed_size_so_css_shrinks_it_whole():
    svg = ET.fromstring(render_qr_svg(BCB_STATIC_SAMPLE, scale=7, scalable=True).encode("utf-8"))
    modules = len(modules_of_svg(render_qr_svg(BCB_STATIC_SAMPLE, scale=1)))
    assert svg.get("width") is None and svg.get("height") is None
    assert [float(v) for v in svg.get("viewBox").split()] == [0, 0, modules * 7, modules * 7]


# --- text --------------------------------------------------------------------------------

_UPPER = {"█": True, "▀": True, "▄": False, " ": False}
_LOWER = {"█": True, "▀": False, "▄": True, " ": False}


def modules_of_text(text: str, *, light_on_dark: bool) -> list[list[bool]]:
    """Rebuild the grid (True = dark) from half blocks, as the terminal would show them."""
    rows = []
    for line in text.splitlines():
        rows.append([_UPPER[char] for char in line])
        rows.append([_LOWER[char] for char in line])
    return [[not ink if light_on_dark else ink for ink in row] for row in rows]


@PAYLOADS
@pytest.mark.parametrize("light_on_dark", [True, False], ids=["light-on-dark", "dark-on-light"])
def test_text_block_shown_in_its_colours_decodes_back_to_the_exact_payload(payload, light_on_dark):
    text = render_qr_text(payload, light_on_dark=light_on_dark)
    lines = text.split("\n")
    assert lines[-1] == "" and len({len(line) for line in lines[:-1]}) == 1
    assert set(text) <= set("▀▄█ \n")
    rows = modules_of_text(text, light_on_dark=light_on_dark)
    assert read_code(image_of_modules(rows), zxingcpp.BarcodeFormat.QRCode).text == payload


def test_text_block_draws_the_same_modules_as_the_png():
    rows = modules_of_text(render_qr_text(PAYPOS_PAYLOAD), light_on_dark=True)
    png = Image.open(io.BytesIO(render_qr_png(PAYPOS_PAYLOAD, scale=1))).convert("L")
    width = png.size[0]
    assert [[png.getpixel((x, y)) == 0 for x in range(width)] for y in range(width)] == rows[:width]
    assert rows[width:] == [[True] * width]  # the padding half-row below: background, no ink


# --- bad input ---------------------------------------------------------------------------

RENDERERS = pytest.mark.parametrize("render", [render_qr_png, render_qr_svg, render_qr_text],
                                    ids=["png", "svg", "text"])


@RENDERERS
@pytest.mark.parametrize(
    ("payload", "fragment"),
    [("", "payload is empty"), ("0" * (MPM_PAYLOAD_CHARS_MAX + 1), "at most 512"), (None, "must be a str"),
     (b"000201", "must be a str")],
    ids=["empty", "513-chars", "none", "bytes"],
)
def test_empty_oversized_or_non_text_payloads_are_refused_by_name(render, payload, fragment):
    with pytest.raises(RenderError, match=fragment) as error:
        render(payload)
    assert error.value.field == "payload"
    assert isinstance(error.value, ValueError)


@RENDERERS
@pytest.mark.parametrize(
    ("payload", "field"),
    [(EMVCO_SAMPLE[:-4] + "A13B", "63"), (EMVCO_SAMPLE[:-2], "63"), ("hello", "payload")],
    ids=["wrong-crc", "truncated", "not-emvco"],
)
def test_a_payload_that_is_not_valid_emvco_is_never_drawn(render, payload, field):
    with pytest.raises(QrError) as error:
        render(payload)
    assert error.value.field == field


@pytest.mark.parametrize("render", [render_qr_png, render_qr_svg], ids=["png", "svg"])
@pytest.mark.parametrize("scale", [0, -1, QR_SCALE_MAX + 1, 2.0, True, "4"])
def test_scale_outside_1_to_40_is_refused(render, scale):
    with pytest.raises(RenderError) as error:
        render(BCB_STATIC_SAMPLE, scale=scale)
    assert error.value.field == "scale"


@RENDERERS
@pytest.mark.parametrize("level", ["X", "", "MM", None])
def test_unknown_error_correction_level_is_refused(render, level):
    with pytest.raises(RenderError) as error:
        render(BCB_STATIC_SAMPLE, error=level)
    assert error.value.field == "error"


# --- Code 128 ----------------------------------------------------------------------------

# ISO/IEC 15417 (Code 128) Table 1: bar/space widths in modules of the symbol characters
# used below, bar first (cross-checked with zxing's Code128Reader CODE_PATTERNS). 105 is
# Start C; the stop pattern includes the 2-module termination bar.
CODE128_WIDTHS = {
    0: "212222", 1: "222122", 12: "112232", 28: "322112", 34: "131123", 39: "211313",
    56: "331121", 78: "241112", 90: "214121", 105: "211232", "stop": "2331112",
}
CODE128_MODULE_MM = 0.25


def modules_of(widths: str) -> str:
    return "".join(("1" if i % 2 == 0 else "0") * int(w) for i, w in enumerate(widths))


def expected_modules(values: list[int | str]) -> str:
    return "".join(modules_of(CODE128_WIDTHS[value]) for value in values)


def bars_of_svg(svg: str) -> tuple[str, int, int]:
    """(bar modules from the first bar to the last, quiet zone left, quiet zone right) in modules."""
    root = ET.fromstring(svg.encode("utf-8"))
    total = round(float(root.get("width").removesuffix("mm")) / CODE128_MODULE_MM)
    bars = [
        (round(float(rect.get("x").removesuffix("mm")) / CODE128_MODULE_MM),
         round(float(rect.get("width").removesuffix("mm")) / CODE128_MODULE_MM))
        for rect in root.iter(f"{SVG_NS}rect") if rect.get("width") != "100%"
    ]
    row = ["0"] * total
    for start, width in bars:
        row[start : start + width] = ["1"] * width
    first, end = bars[0][0], bars[-1][0] + bars[-1][1]
    return "".join(row[first:end]), first, total - end


@pytest.mark.parametrize(
    ("payment_code", "values"),
    [
        # Start C, nine digit pairs, check = (105 + sum(i * value_i)) mod 103 = 0, stop.
        ("123456789012345678", [105, 12, 34, 56, 78, 90, 12, 34, 56, 78, 0, "stop"]),
        # check = (105 + 1 * 28 + 9 * 1) mod 103 = 39.
        ("280000000000000001", [105, 28, 0, 0, 0, 0, 0, 0, 0, 1, 39, "stop"]),
    ],
)
def test_code128_bars_match_the_iso_15417_patterns_in_code_set_c(payment_code, values):
    bars, quiet_left, quiet_right = bars_of_svg(render_code128_svg(payment_code))
    assert bars == expected_modules(values)
    assert quiet_left >= 10 and quiet_right >= 10


@pytest.mark.parametrize("payment_code", ["123456789012345678", "280000000000000001", "000000000000000000"])
def test_code128_svg_decodes_back_to_the_payment_code(payment_code):
    bars, quiet_left, quiet_right = bars_of_svg(render_code128_svg(payment_code))
    row = [False] * quiet_left + [module == "1" for module in bars] + [False] * quiet_right
    result = read_code(image_of_modules([row] * 20, pixels=3), zxingcpp.BarcodeFormat.Code128)
    assert result.text == payment_code


def test_code128_prints_the_digits_under_the_bars_only_when_asked():
    def texts(svg):
        return ["".join(t.itertext()) for t in ET.fromstring(svg.encode("utf-8")).iter(f"{SVG_NS}text")]

    assert texts(render_code128_svg("123456789012345678")) == ["123456789012345678"]
    assert texts(render_code128_svg("123456789012345678", human_readable=False)) == []


@pytest.mark.parametrize(
    ("payment_code", "fragment"),
    [
        ("", f"must be {PAYMENT_CODE_DIGITS} digits, got 0"),
        ("12345678901234567", "got 17"),
        ("1234567890123456789", "got 19"),
        ("12345678901234567A", "digits 0-9 only"),
        ("١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨", "digits 0-9 only"),  # Arabic-Indic digits: str.isdigit() says yes
        ("12345678901234567 ", "digits 0-9 only"),
        (123456789012345678, "must be a str"),
    ],
)
def test_code128_refuses_anything_but_18_ascii_digits(payment_code, fragment):
    with pytest.raises(RenderError, match=fragment) as error:
        render_code128_svg(payment_code)
    assert error.value.field == "payment_code"
