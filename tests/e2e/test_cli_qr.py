"""`paypos qr decode` and `paypos qr render`, run as a subprocess: any network's EMVCo
merchant-presented payload decoded by ID, invalid ones refused in one line on stderr,
and drawings that decode back to the payload."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import zxingcpp
from PIL import Image

from paypos.protocol.qr import append_crc, build_mpm_payload, encode_tlv
from tests.qr_vectors import EMVCO_SAMPLE

if TYPE_CHECKING:
    from conftest import PayposCli

# [emvco]: the published payload in tests/qr_vectors.py.
PAYPOS_PAYLOAD = build_mpm_payload(
    dynamic=True, merchant_account={"26": {"00": "dev.paypos", "01": "M0001"}}, mcc="5812", currency="156",
    amount_minor=2550, country="CN", merchant_name="Noodle House", merchant_city="Hangzhou",
    additional_data={"05": "ORDER-1"},
)


def payload_of(objects: dict[str, str]) -> str:
    """A payload with a correct CRC (templates given as their encoded value)."""
    return append_crc(encode_tlv(objects))


# Another network's payload: a card network's primitive account (02), a wallet's template
# (27), an ID reserved for EMVCo (70) and an unreserved template (80) that paypos knows nothing of.
FOREIGN_OBJECTS = {
    "00": "01",
    "01": "11",
    "02": "4000123456789012",
    "27": encode_tlv({"00": "com.example.wallet", "01": "SHOP42"}),
    "52": "5411",
    "53": "840",
    "58": "US",
    "59": "Corner Store",
    "60": "Austin",
    "62": encode_tlv({"01": "INV-7", "99": "opaque"}),
    "70": "RFU",
    "80": encode_tlv({"00": "com.example.loyalty", "01": "GOLD"}),
}
FOREIGN_PAYLOAD = payload_of(FOREIGN_OBJECTS)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- decode ------------------------------------------------------------------------------


def test_decode_json_gives_our_payload_by_id_with_templates_as_objects(cli: PayposCli):
    result = cli.run("qr", "decode", PAYPOS_PAYLOAD, "--json")
    assert result.returncode == 0, result.stderr
    objects = json.loads(result.stdout)
    crc = PAYPOS_PAYLOAD[-4:]
    assert objects == {
        "00": "01", "01": "12", "26": {"00": "dev.paypos", "01": "M0001"}, "52": "5812", "53": "156",
        "54": "25.50", "58": "CN", "59": "Noodle House", "60": "Hangzhou", "62": {"05": "ORDER-1"}, "63": crc,
    }
    assert list(objects) == sorted(objects)  # payload order: ours is built in ID order


def test_decode_json_keeps_another_networks_unknown_ids_and_nests_its_templates(cli: PayposCli):
    result = cli.run("qr", "decode", FOREIGN_PAYLOAD, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "00": "01", "01": "11", "02": "4000123456789012",
        "27": {"00": "com.example.wallet", "01": "SHOP42"},
        "52": "5411", "53": "840", "58": "US", "59": "Corner Store", "60": "Austin",
        "62": {"01": "INV-7", "99": "opaque"},
        "70": "RFU",
        "80": {"00": "com.example.loyalty", "01": "GOLD"},
        "63": FOREIGN_PAYLOAD[-4:],
    }


def test_decode_json_of_the_emvco_sample_nests_29_31_62_64_and_91(cli: PayposCli):
    result = cli.run("qr", "decode", EMVCO_SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    objects = json.loads(result.stdout)
    assert list(objects) == ["00", "01", "29", "31", "52", "58", "59", "60", "64", "54", "53", "55", "62", "91", "63"]
    assert objects["64"] == {"00": "ZH", "01": "最佳运输", "02": "北京"}
    assert objects["91"] == {"00": "A011223344998877", "07": "12345678"}
    assert objects["55"] == "01"


def test_decode_without_json_prints_a_table_of_ids_names_and_values(cli: PayposCli):
    result = cli.run("qr", "decode", EMVCO_SAMPLE, env=cli.env(COLUMNS="160"))
    assert result.returncode == 0, result.stderr
    for row in (["59", "merchant name", "BEST TRANSPORT"], ["62.07", "terminal label", "A6008667"],
                ["91.00", "globally unique identifier", "A011223344998877"], ["64.01", "最佳运输"]):
        assert any(all(cell in line for cell in row) for line in result.stdout.splitlines()), row


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        (EMVCO_SAMPLE[:-4] + "A13B", ["ID 63", "CRC mismatch", "A13B", "A13A"]),
        (EMVCO_SAMPLE.replace("BEST", "BETS"), ["ID 63", "CRC mismatch"]),
        (EMVCO_SAMPLE[:-2], ["ID 63", "truncated"]),
        ("00A2" + EMVCO_SAMPLE[4:], ["ID 00", "length must be 2 digits"]),
        (payload_of({**FOREIGN_OBJECTS, "59": "N" * 26}), ["ID 59", "1 to 25 characters"]),
        (payload_of({**FOREIGN_OBJECTS, "27": "0018com.example.wallet0109SHOP42"}), ["ID 27.01", "truncated"]),
        (payload_of({**FOREIGN_OBJECTS, "80": "loyalty"}), ["ID 80", "2 digits"]),
        (payload_of({**FOREIGN_OBJECTS, "62": "01AB"}), ["ID 62.01", "length must be 2 digits"]),
        ("", ["ID 00"]),
    ],
    ids=["wrong-crc", "changed-value", "truncated", "bad-length", "too-long-value", "bad-nesting-27",
         "bad-nesting-80", "bad-nesting-62", "empty"],
)
def test_decode_refuses_an_invalid_payload_with_exit_1_and_the_reason(cli: PayposCli, payload, fragments):
    for result in cli.run_many([["qr", "decode", payload, "--json"], ["qr", "decode", payload]]):
        assert_one_line_error(result, 1, "invalid payload", *fragments)


# --- render ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [EMVCO_SAMPLE, FOREIGN_PAYLOAD], ids=["emvco", "foreign"])
def test_render_png_file_decodes_back_to_the_payload(cli: PayposCli, tmp_path: Path, payload):
    out = tmp_path / "code.png"
    result = cli.run("qr", "render", payload, "--out", str(out))
    assert result.returncode == 0, result.stderr
    barcode = zxingcpp.read_barcode(Image.open(out), formats=zxingcpp.BarcodeFormat.QRCode)
    assert barcode is not None and barcode.text == payload
    assert barcode.ec_level == "M"


def test_render_svg_file_is_an_svg_document_with_the_module_path(cli: PayposCli, tmp_path: Path):
    out = tmp_path / "code.SVG"
    result = cli.run("qr", "render", PAYPOS_PAYLOAD, "--out", str(out), "--scale", "3")
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    (path,) = root.findall("{http://www.w3.org/2000/svg}path")
    assert path.get("d").startswith("M4 4.5h7")  # the top-left finder pattern, inside the quiet zone
    assert path.get("transform") == "scale(3)"


def test_render_text_prints_half_blocks_to_stdout(cli: PayposCli):
    result = cli.run("qr", "render", PAYPOS_PAYLOAD, "--text")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1 and len(lines) > 10
    assert set(result.stdout) <= set("▀▄█ \n")


@pytest.mark.parametrize(
    ("name", "fragments"),
    [("code.gif", ["'.gif'", ".png or .svg"]), ("code", ["no suffix", ".png or .svg"]),
     ("code.png.txt", ["'.txt'"])],
)
def test_render_refuses_an_unknown_suffix_with_exit_2(cli: PayposCli, tmp_path: Path, name, fragments):
    out = tmp_path / name
    assert_one_line_error(cli.run("qr", "render", PAYPOS_PAYLOAD, "--out", str(out)), 2, *fragments)
    assert not out.exists()


def test_render_needs_exactly_one_of_out_or_text(cli: PayposCli, tmp_path: Path):
    neither = ["qr", "render", PAYPOS_PAYLOAD]
    both = ["qr", "render", PAYPOS_PAYLOAD, "--text", "--out", str(tmp_path / "code.png")]
    for result in cli.run_many([neither, both]):
        assert_one_line_error(result, 2, "--out", "--text")
    assert not (tmp_path / "code.png").exists()


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [(EMVCO_SAMPLE[:-4] + "A13B", ["invalid payload", "CRC mismatch"]), ("", ["payload is empty"]),
     ("0" * 513, ["at most 512"])],
    ids=["wrong-crc", "empty", "oversized"],
)
def test_render_refuses_an_invalid_payload_with_exit_1_and_writes_nothing(
    cli: PayposCli, tmp_path: Path, payload, fragments
):
    out = tmp_path / "code.png"
    assert_one_line_error(cli.run("qr", "render", payload, "--out", str(out)), 1, *fragments)
    assert not out.exists()


def test_render_refuses_a_scale_over_40_with_exit_2(cli: PayposCli, tmp_path: Path):
    assert_one_line_error(cli.run("qr", "render", PAYPOS_PAYLOAD, "--out", str(tmp_path / "c.png"),
                                  "--scale", "41"), 2, "scale")


def test_render_into_a_missing_directory_fails_in_one_line(cli: PayposCli, tmp_path: Path):
    assert_one_line_error(cli.run("qr", "render", PAYPOS_PAYLOAD, "--out", str(tmp_path / "no" / "c.png")),
                          1, "cannot write")
