"""paypos.protocol.iso8583: the paypos ISO 8583 profile v1 on pyiso8583's default_ascii.

Known-answer sources:
- pyiso8583 4.0.1 documentation: the README ("Encoding & Decoding", pypi.org/project/pyiso8583)
  and the docstrings of ``iso8583``, ``iso8583.encode`` and ``iso8583.decode``, all on
  ``iso8583.specs.default_ascii``.
- ISO 8583:1987 bitmap layout: bit 1 is the most significant bit of the first bitmap
  byte, a set bit 1 announces the secondary bitmap (fields 65-128); with default_ascii each
  8-byte bitmap travels as 16 hex characters. The 0800 and 0210 vectors below are derived
  by hand from that rule.
- The MAC function in these tests is ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC),
  padding method 1, from psec, under a fixed demonstration key: placement is what is under
  test here, not the key derivation.
"""

from __future__ import annotations

import hmac
import warnings
from datetime import UTC, datetime, timedelta, timezone

import iso8583
import iso8583.specs
import psec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paypos import limits
from paypos.protocol.iso8583 import (
    FIELD_FORMATS,
    MAC_HEX_CHARS,
    RESPONSE_CODES,
    SPEC,
    AdditionalAmount,
    FrameBuffer,
    FrameError,
    MessageClass,
    MessageError,
    OriginalData,
    PanEntryMode,
    PosEntryMode,
    Routing,
    TransmissionDateTime,
    business_fields,
    decode_message,
    encode_message,
    encode_with_mac,
    format_additional_amounts,
    format_amount,
    format_count,
    format_icc_data,
    format_original_data_elements,
    format_transmission_datetime,
    frame,
    is_request,
    mac_field,
    mac_input_and_value,
    mti_class,
    parse_additional_amounts,
    parse_amount,
    parse_count,
    parse_icc_data,
    parse_ksn,
    parse_original_data_elements,
    parse_pin_block,
    parse_pos_entry_mode,
    parse_transmission_datetime,
    peek_routing,
    response_echo,
    response_mti,
)

MAC_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def retail_mac(data: bytes) -> bytes:
    """ISO 9797-1 algorithm 3, padding 1 (psec), under the demonstration key MAC_KEY."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return psec.mac.generate_retail_mac(MAC_KEY[:8], MAC_KEY[8:], data, padding=1)


# EMV tags of a CVN 10 ARQC request: 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10 9F26 9F27.
ICC_REQUEST = (
    "9F0206000000001230" "9F0306000000000000" "9F1A020276" "950500000000" "00" "5F2A020978"
    "9A03261122" "9C0100" "9F37041A2B3C4D" "82021800" "9F36020027" "9F100706010A03A00000"
    "9F26088E19A2B3C4D5E6F7" "9F270180"
)
ICC_RESPONSE = "910A11223344556677883030"  # tag 91: ARPC (8) + ARC "00" (2)
KSN = "FFFF9876543210E00001"

PURCHASE_CHIP_PIN_0200 = {
    "t": "0200", "3": "000000", "4": "000000001230", "7": "1122090000", "11": "000123",
    "12": "100000", "13": "1122", "22": "051", "23": "001",
    "35": "4761739001010010=28122011234567890", "41": "TERM0001", "42": "MERCHANT0000001",
    "49": "978", "52": "0123456789ABCDEF", "55": ICC_REQUEST, "62": KSN,
}  # fmt: skip
PURCHASE_MANUAL_0200 = {
    "t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000000500",
    "7": "1122090001", "11": "000124", "12": "100001", "13": "1122", "14": "2812",
    "22": "012", "41": "TERM0001", "42": "MERCHANT0000001", "49": "978",
}  # fmt: skip
APPROVED_0210 = {
    "t": "0210", "3": "000000", "4": "000000001230", "7": "1122090000", "11": "000123",
    "37": "633209000001", "38": "A1B2C3", "39": "00", "41": "TERM0001",
    "42": "MERCHANT0000001", "49": "978", "55": ICC_RESPONSE,
}  # fmt: skip
BALANCE_0210 = {
    "t": "0210", "3": "310000", "7": "1122090002", "11": "000125", "37": "633209000002",
    "39": "00", "41": "TERM0001", "42": "MERCHANT0000001", "49": "978",
    "54": "0002978C000000012345",
}  # fmt: skip
PREAUTH_CONTACTLESS_0100 = {
    "t": "0100", "3": "000000", "4": "000000020000", "7": "1122090003", "11": "000126",
    "12": "100003", "13": "1122", "22": "072", "23": "000",
    "35": "4761739001010010D28122011234567890F", "41": "TERM0001",
    "42": "MERCHANT0000001", "49": "978", "55": ICC_REQUEST, "62": KSN,
}  # fmt: skip
REVERSAL_0400 = {
    "t": "0400", "3": "000000", "4": "000000001230", "7": "1122090100", "11": "000127",
    "41": "TERM0001", "42": "MERCHANT0000001", "49": "978", "62": KSN,
    "90": "0200" "000123" "1122090000" "00000000000" "00000000000",
}  # fmt: skip
RECONCILIATION_0500 = {
    "t": "0500", "7": "1122180000", "11": "000128", "41": "TERM0001",
    "42": "MERCHANT0000001", "49": "978", "62": KSN, "74": "0000000001",
    "76": "0000000002", "86": "0000000000000500", "88": "0000000000001730",
}  # fmt: skip
ECHO_0800 = {"t": "0800", "7": "1122090000", "11": "000001", "41": "TERM0001", "70": "301"}
ECHO_0810 = dict(ECHO_0800, t="0810", **{"39": "00"})

MESSAGES = {
    "0200 chip + online PIN": PURCHASE_CHIP_PIN_0200,
    "0200 manual PAN": PURCHASE_MANUAL_0200,
    "0210 approved with tag 91": APPROVED_0210,
    "0210 balance inquiry with 54": BALANCE_0210,
    "0100 contactless pre-authorization": PREAUTH_CONTACTLESS_0100,
    "0400 reversal": REVERSAL_0400,
    "0500 reconciliation": RECONCILIATION_0500,
    "0800 echo": ECHO_0800,
    "0810 echo response": ECHO_0810,
}


# --- the spec ----------------------------------------------------------------------------


def test_spec_is_an_unchanged_copy_of_pyiso8583_default_ascii():
    assert SPEC == iso8583.specs.default_ascii
    assert SPEC is not iso8583.specs.default_ascii
    assert SPEC["4"] is not iso8583.specs.default_ascii["4"]


# The layout docs/iso8583.md and the module docstring state, checked against pyiso8583.
@pytest.mark.parametrize(
    ("field", "len_type", "max_len"),
    [
        ("t", 0, 4), ("p", 0, 16), ("1", 0, 16), ("2", 2, 19), ("3", 0, 6), ("4", 0, 12),
        ("7", 0, 10), ("11", 0, 6), ("12", 0, 6), ("13", 0, 4), ("14", 0, 4), ("22", 0, 3),
        ("23", 0, 3), ("35", 2, 37), ("37", 0, 12), ("38", 0, 6), ("39", 0, 2), ("41", 0, 8),
        ("42", 0, 15), ("49", 0, 3), ("52", 0, 16), ("54", 3, 240), ("55", 3, 510),
        ("62", 3, 999), ("64", 0, 16), ("70", 0, 3), ("74", 0, 10), ("76", 0, 10),
        ("86", 0, 16), ("88", 0, 16), ("90", 0, 42), ("128", 0, 16),
    ],
)  # fmt: skip
def test_default_ascii_defines_the_profile_fields_as_documented(field, len_type, max_len):
    spec = SPEC[field]
    assert (spec["data_enc"], spec["len_enc"]) == ("ascii", "ascii")
    assert (spec["len_type"], spec["max_len"]) == (len_type, max_len)
    assert spec.get("len_count", "bytes") == "bytes"


def test_default_ascii_has_no_header_and_no_fields_above_128():
    assert SPEC["h"]["max_len"] == 0
    assert set(SPEC) == {"h", "t", "p"} | {str(n) for n in range(1, 129)}


def test_every_formatted_field_exists_in_the_spec():
    assert set(FIELD_FORMATS) <= set(SPEC)


# --- known answers -------------------------------------------------------------------------

KNOWN_ANSWERS = [
    # pyiso8583 README, "Encoding & Decoding": decode example.
    pytest.param(
        b"02004000000000000000101234567890", {"t": "0200", "2": "1234567890"}, id="readme-decode"
    ),
    # pyiso8583 README, "Encoding & Decoding": the 0210 response re-encoded.
    pytest.param(b"0210000000000200000005", {"t": "0210", "39": "05"}, id="readme-encode"),
    # pyiso8583 ``iso8583`` package docstring (encode example).
    pytest.param(
        b"0200400000000200000010123456789000",
        {"t": "0200", "2": "1234567890", "39": "00"},
        id="package-docstring",
    ),
    # pyiso8583 ``iso8583.encode`` docstring.
    pytest.param(
        b"0210200000000200000011111105",
        {"t": "0210", "3": "111111", "39": "05"},
        id="encode-docstring",
    ),
    # pyiso8583 ``iso8583.decode`` docstring.
    pytest.param(
        b"02004010100000000000161234567890123456123456111",
        {"t": "0200", "2": "1234567890123456", "12": "123456", "20": "111"},
        id="decode-docstring",
    ),
    # By hand (ISO 8583:1987 bitmaps): bits 1, 7, 11, 41 -> 82 20 00 00 00 80 00 00;
    # secondary bit 70 -> 04 00 00 00 00 00 00 00; then 7, 11, 41, 70 in order.
    pytest.param(
        b"0800" b"8220000000800000" b"0400000000000000" b"1122090000" b"000001" b"TERM0001" b"301",
        ECHO_0800,
        id="0800-echo-by-hand",
    ),
    # By hand: bits 3, 4, 7, 11, 39, 41 -> 32 20 00 00 02 80 00 00 (no secondary bitmap).
    pytest.param(
        b"0810" b"3220000002800000"
        b"000000" b"000000001230" b"1122090000" b"000123" b"00" b"TERM0001",
        {"t": "0810", "3": "000000", "4": "000000001230", "7": "1122090000", "11": "000123",
         "39": "00", "41": "TERM0001"},
        id="fixed-fields-by-hand",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("raw", "fields"), KNOWN_ANSWERS)
def test_encode_message_produces_the_known_bytes(raw, fields):
    assert encode_message(fields) == raw


@pytest.mark.parametrize(("raw", "fields"), KNOWN_ANSWERS)
def test_decode_message_reads_the_known_bytes(raw, fields):
    assert decode_message(raw) == fields


def test_an_llvar_field_carries_a_two_digit_length_and_an_lllvar_field_three():
    raw = encode_message({"t": "0200", "2": "4761739001010010", "55": "9F2701"})
    # bits 2 and 55 -> 40 00 00 00 00 00 02 00 (byte 7 holds bits 49-56; 55 is its 0x02)
    assert raw == b"0200" b"4000000000000200" b"16" b"4761739001010010" b"006" b"9F2701"


def test_a_third_party_encoding_with_plain_pyiso8583_decodes_to_the_same_fields():
    third_party, _ = iso8583.encode(dict(PURCHASE_CHIP_PIN_0200), iso8583.specs.default_ascii)
    assert decode_message(bytes(third_party)) == PURCHASE_CHIP_PIN_0200
    assert encode_message(PURCHASE_CHIP_PIN_0200) == bytes(third_party)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fields", MESSAGES.values(), ids=MESSAGES.keys())
def test_realistic_messages_round_trip(fields):
    raw = encode_message(fields)
    assert decode_message(raw) == fields
    assert iso8583.decode(raw, iso8583.specs.default_ascii)[0]["t"] == fields["t"]


@pytest.mark.parametrize("fields", MESSAGES.values(), ids=MESSAGES.keys())
def test_realistic_messages_round_trip_with_a_mac_in_64_or_128(fields):
    raw = encode_with_mac(fields, retail_mac)
    decoded = decode_message(raw)
    placement = "128" if any(int(k) > 64 for k in fields if k != "t") else "64"
    assert decoded.pop(placement) == retail_mac(raw[:-16]).hex().upper()
    assert decoded == fields


def test_encode_message_does_not_touch_the_callers_dict():
    fields = dict(REVERSAL_0400)
    encode_message(fields)
    assert fields == REVERSAL_0400  # iso8583.encode would have added "p" and "1"


def test_encode_message_derives_the_bitmap_and_ignores_given_bitmap_keys():
    stale = dict(ECHO_0800, p="FFFFFFFFFFFFFFFF", **{"1": "0000000000000000"})
    assert encode_message(stale) == encode_message(ECHO_0800)


def test_decode_message_does_not_return_bitmap_keys():
    assert not {"p", "1"} & set(decode_message(encode_message(REVERSAL_0400)))


# --- bad input: decode -----------------------------------------------------------------------

GOOD = encode_message(PURCHASE_MANUAL_0200)
PAN_FIELD = b"164761739001010010"  # field 2 of GOOD: LL prefix "16" and the PAN


def replace(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) == 1, old
    return raw.replace(old, new)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b"", "t", "MTI: must be 4 digits"),
        (b"020", "t", "MTI: must be 4 digits"),
        (b"02A0" + GOOD[4:], "t", "MTI: must be 4 digits"),
        (b"0200", "p", "primary bitmap: must be 16 upper-case hex"),
        (GOOD[:4] + GOOD[4:20].lower() + GOOD[20:], "p", "primary bitmap: must be 16 upper"),
        (GOOD[:4] + b"72380000 0C08000" + GOOD[20:], "p", "primary bitmap"),
        (b"0800" + b"8220000000800000" + b"04000000", "1", "secondary bitmap: must be 16"),
        (b"0800" + b"8" + b"0" * 15 + b"8" + b"0" * 15 + b"0" * 16, "1", "bit 65"),
        (b"0800" + b"8" + b"0" * 15 + b"0" * 16, "1", "no field 65-128"),
        (GOOD[:-3], "49", "field 49: Field data is 0 bytes, expecting 3"),
        (GOOD + b"X", None, "1 bytes of extra data after the last field"),
        (replace(GOOD, PAN_FIELD, b" 9476173900"), "2", "length prefix must be ASCII digits"),
        (replace(GOOD, PAN_FIELD, b"+9476173900"), "2", "length prefix must be ASCII digits"),
        (replace(GOOD, PAN_FIELD, b"2047617390010100100000"), "2", "larger than maximum 19"),
        (replace(GOOD, PAN_FIELD, b"00"), "2", "field 2: must be digits (format n)"),
        (replace(GOOD, b"000000000500", b"00000000050O"), "4", "field 4: must be digits"),
        (replace(GOOD, b"TERM0001", b"TERM\x00001"), "41", "field 41: must be printable ASCII"),
        (replace(GOOD, b"TERM0001", b"TERM\xff001"), "41", "field 41: Failed to decode field"),
    ],
)  # fmt: skip
def test_decode_message_rejects_malformed_messages_naming_the_field(raw, field, message):
    with pytest.raises(MessageError) as error:
        decode_message(raw)
    assert error.value.field == field
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("52", "0123456789ABCDEG", "field 52: must be an even number of hex characters"),
        ("62", "FFFF9876543210E0000", "field 62: must be an even number of hex characters"),
        ("55", "9F27018", "field 55: must be an even number of hex characters"),
        ("35", "4761739001010010?2812201", "field 35: must be track 2 characters"),
        ("39", "0 ", "field 39: must be letters and digits"),
    ],
)
def test_decode_message_checks_the_iso_character_class_of_profile_fields(field, value, message):
    fields = dict(PURCHASE_CHIP_PIN_0200, **{field: value})
    raw, _ = iso8583.encode(fields, iso8583.specs.default_ascii)
    with pytest.raises(MessageError, match=message) as error:
        decode_message(bytes(raw))
    assert error.value.field == field


def test_decode_message_passes_fields_outside_the_profile_through():
    raw, _ = iso8583.encode(dict(ECHO_0800, **{"63": "any text\x01", "48": ""}), SPEC)
    decoded = decode_message(bytes(raw))
    assert (decoded["63"], decoded["48"]) == ("any text\x01", "")


def test_decode_message_rejects_text():
    with pytest.raises(TypeError):
        decode_message("0800")  # type: ignore[arg-type]


# --- bad input: encode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"3": "000000"}, "t", "MTI: is required"),
        ({"t": "200"}, "t", "MTI: must be 4 digits"),
        ({"t": "02OO"}, "t", "MTI: must be 4 digits"),
        ({"t": "0200", "04": "000000000100"}, None, "'04' is not a field of profile v1"),
        ({"t": "0200", "65": "0" * 16}, None, "'65' is not a field"),
        ({"t": "0200", "129": "x"}, None, "'129' is not a field"),
        ({"t": "0200", "bm": "x"}, None, "'bm' is not a field"),
        ({"t": "0200", "4": 100}, "4", "field 4: must be a str, not int"),
        ({"t": "0200", "4": "00000000100"}, "4", "field 4: Field data is 11 bytes, expecting 12"),
        ({"t": "0200", "4": "0000000001.0"}, "4", "field 4: must be digits"),
        ({"t": "0200", "2": "47617390010100101234"}, "2", "larger than maximum 19"),
        ({"t": "0200", "55": "9F2"}, "55", "field 55: must be an even number of hex"),
        ({"t": "0200", "63": "\u00e9"}, "63", "field 63: Failed to encode field"),
    ],
)
def test_encode_message_rejects_bad_fields_naming_the_field(fields, field, message):
    with pytest.raises(MessageError) as error:
        encode_message(fields)
    assert error.value.field == field
    assert message in str(error.value)


def test_message_error_is_a_value_error_with_field_and_reason():
    error = MessageError("amount must be 12 digits", field="4")
    assert isinstance(error, ValueError)
    assert (error.field, error.reason) == ("4", "amount must be 12 digits")
    assert str(error) == "field 4: amount must be 12 digits"
    assert str(MessageError("trailing data", field=None)) == "trailing data"
    assert MessageError("trailing data").field is None


# --- MAC placement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "placement"),
    [
        ({"t": "0200"}, "64"),
        (PURCHASE_CHIP_PIN_0200, "64"),
        (dict(PURCHASE_CHIP_PIN_0200, **{"64": "0" * 16}), "64"),
        (dict(PURCHASE_CHIP_PIN_0200, **{"128": "0" * 16}), "64"),  # a stale MAC does not count
        (ECHO_0800, "128"),  # field 70
        (REVERSAL_0400, "128"),  # field 90
        (RECONCILIATION_0500, "128"),  # fields 74-88
        (dict(APPROVED_0210, p="F" * 16, **{"1": "0" * 16}), "64"),  # bitmap keys ignored
    ],
)
def test_mac_field_is_128_when_any_field_above_64_is_present_else_64(fields, placement):
    assert mac_field(fields) == placement


def test_encode_with_mac_puts_the_mac_of_everything_before_it_in_field_64():
    raw = encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac)
    assert raw[-MAC_HEX_CHARS:] == retail_mac(raw[:-MAC_HEX_CHARS]).hex().upper().encode()
    assert int(raw[4:20], 16) & 1  # bit 64 is the last bit of the primary bitmap
    assert not int(raw[4:20], 16) >> 63  # no secondary bitmap
    zero_mac = encode_message(dict(PURCHASE_CHIP_PIN_0200, **{"64": "0" * 16}))
    assert raw[:-MAC_HEX_CHARS] + b"0" * 16 == zero_mac


# docs/iso8583.md, "Worked example": the framed 0200 shown there, byte for byte.
WORKED_EXAMPLE = bytes.fromhex("0166") + (
    b"0200" b"3238060020C09205" b"000000" b"000000001230" b"1122090000" b"000123" b"100000"
    b"1122" b"051" b"001" b"34" b"4761739001010010=28122011234567890" b"TERM0001"
    b"MERCHANT0000001" b"978" b"0123456789ABCDEF" b"168" + ICC_REQUEST.encode() + b"020"
    b"FFFF9876543210E00001" b"86C210985EFD0C21"
)


def test_the_worked_example_of_the_profile_document():
    assert frame(encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac)) == WORKED_EXAMPLE
    assert FrameBuffer().feed(WORKED_EXAMPLE) == [WORKED_EXAMPLE[2:]]
    assert mac_input_and_value(WORKED_EXAMPLE[2:]) == (
        WORKED_EXAMPLE[2:-16], bytes.fromhex("86C210985EFD0C21")
    )


def test_encode_with_mac_uses_field_128_when_a_field_above_64_is_present():
    raw = encode_with_mac(REVERSAL_0400, retail_mac)
    decoded = decode_message(raw)
    assert "64" not in decoded
    assert decoded["128"] == retail_mac(raw[:-16]).hex().upper()
    assert int(raw[20:36], 16) & 1  # bit 128 is the last bit of the secondary bitmap


def test_encode_with_mac_replaces_a_stale_mac_in_either_field():
    stale = dict(REVERSAL_0400, **{"64": "1" * 16, "128": "2" * 16})
    assert encode_with_mac(stale, retail_mac) == encode_with_mac(REVERSAL_0400, retail_mac)


def test_encode_with_mac_rejects_a_mac_function_that_does_not_return_8_bytes():
    with pytest.raises(ValueError, match="8 bytes"):
        encode_with_mac(ECHO_0800, lambda data: b"\x00" * 4)


@pytest.mark.parametrize("fields", [PURCHASE_CHIP_PIN_0200, REVERSAL_0400, RECONCILIATION_0500])
def test_mac_input_and_value_returns_the_bytes_before_the_mac_and_the_mac(fields):
    raw = encode_with_mac(fields, retail_mac)
    mac_input, mac = mac_input_and_value(raw)
    assert mac_input == raw[:-16]
    assert hmac.compare_digest(retail_mac(mac_input), mac)


def test_a_tampered_amount_is_detected_by_recomputing_the_mac():
    raw = encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac)
    start = raw.index(b"000000001230")  # field 4 comes before 55's 9F02, which repeats it
    tampered = raw[:start] + b"000000991230" + raw[start + 12 :]
    mac_input, mac = mac_input_and_value(tampered)
    assert not hmac.compare_digest(retail_mac(mac_input), mac)


def test_a_tampered_mac_is_detected():
    raw = encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac)
    flipped = raw[:-1] + (b"0" if raw[-1:] != b"0" else b"1")
    mac_input, mac = mac_input_and_value(flipped)
    assert not hmac.compare_digest(retail_mac(mac_input), mac)


def test_mac_input_and_value_is_none_without_a_mac():
    assert mac_input_and_value(encode_message(PURCHASE_CHIP_PIN_0200)) is None


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (dict(ECHO_0800, **{"64": "0" * 16}), "64", "belongs in field 128"),
        (dict(PURCHASE_CHIP_PIN_0200, **{"128": "0" * 16}), "128", "belongs in field 64"),
        (dict(ECHO_0800, **{"64": "0" * 16, "128": "0" * 16}), "64", "must be absent"),
    ],
)
def test_mac_input_and_value_rejects_a_mac_in_the_wrong_field(fields, field, message):
    with pytest.raises(MessageError, match=message) as error:
        mac_input_and_value(encode_message(fields))
    assert error.value.field == field


def test_mac_input_and_value_rejects_a_message_where_the_mac_is_not_last():
    raw = encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac)
    with pytest.raises(MessageError, match="extra data"):
        mac_input_and_value(raw + b"00")


# --- framing ---------------------------------------------------------------------------------


def test_frame_prefixes_the_length_as_two_bytes_big_endian():
    payload = encode_message(ECHO_0800)
    assert frame(payload) == b"\x00\x3f" + payload  # 63 bytes
    assert frame(b"x" * 300)[:2] == b"\x01\x2c"
    assert frame(b"x" * limits.iso_frame_bytes_max)[:2] == b"\x20\x00"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "frame length 0"),
        (b"x" * (limits.iso_frame_bytes_max + 1), "exceeds the 8192-byte limit"),
    ],
)
def test_frame_rejects_empty_and_oversize_payloads(payload, message):
    with pytest.raises(FrameError, match=message):
        frame(payload)


def test_frame_buffer_returns_every_complete_frame_of_one_feed():
    first, second = encode_message(ECHO_0800), encode_message(APPROVED_0210)
    buffer = FrameBuffer()
    assert buffer.feed(frame(first) + frame(second)) == [first, second]
    assert buffer.buffered_bytes == 0


def test_frame_buffer_reassembles_a_frame_fed_one_byte_at_a_time():
    payload = encode_message(PURCHASE_CHIP_PIN_0200)
    buffer, out = FrameBuffer(), []
    for byte in frame(payload):
        out += buffer.feed(bytes([byte]))
    assert out == [payload]


def test_frame_buffer_keeps_a_partial_frame_and_a_split_length_prefix():
    payload = encode_message(ECHO_0800)
    wire = frame(payload) + frame(payload)
    buffer = FrameBuffer()
    assert buffer.feed(wire[:10]) == []
    assert buffer.buffered_bytes == 10
    assert buffer.feed(wire[10 : len(payload) + 3]) == [payload]  # ends inside the 2nd prefix
    assert buffer.buffered_bytes == 1
    assert buffer.feed(wire[len(payload) + 3 :]) == [payload]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [(b"\x20\x01", "frame length 8193 exceeds"), (b"\x00\x00", "frame length 0")],
)
def test_frame_buffer_rejects_a_declared_length_that_is_oversize_or_zero(prefix, message):
    good = encode_message(ECHO_0800)
    buffer = FrameBuffer()
    with pytest.raises(FrameError, match=message) as error:
        buffer.feed(frame(good) + prefix)
    assert error.value.frames == (good,)  # what came before the bad prefix is kept
    with pytest.raises(FrameError, match="out of step"):
        buffer.feed(frame(good))


def test_frame_buffer_rejects_an_oversize_length_before_the_body_arrives():
    buffer = FrameBuffer(frame_bytes_max=100)
    with pytest.raises(FrameError, match="frame length 101 exceeds the 100-byte limit"):
        buffer.feed(b"\x00\x65")


@pytest.mark.parametrize("frame_bytes_max", [0, 65536])
def test_frame_buffer_needs_a_limit_a_two_byte_prefix_can_express(frame_bytes_max):
    with pytest.raises(ValueError, match="1-65535"):
        FrameBuffer(frame_bytes_max)


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
)
def test_frame_buffer_returns_the_same_payloads_however_the_stream_is_split(payloads, cuts):
    wire = b"".join(frame(p) for p in payloads)
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    buffer, out = FrameBuffer(), []
    for start, end in zip(points, points[1:], strict=False):
        out += buffer.feed(wire[start:end])
    assert out == payloads
    assert buffer.buffered_bytes == 0


@given(st.lists(st.binary(max_size=200), max_size=10), st.integers(min_value=1, max_value=400))
def test_frame_buffer_raises_nothing_but_frame_error_on_arbitrary_bytes(chunks, frame_bytes_max):
    buffer = FrameBuffer(frame_bytes_max)
    for chunk in chunks:
        try:
            frames = buffer.feed(chunk)
        except FrameError:
            continue
        assert all(1 <= len(f) <= frame_bytes_max for f in frames)
        assert buffer.buffered_bytes < 2 + frame_bytes_max


# --- peek_routing ----------------------------------------------------------------------------

ROUTING = Routing(mti="0200", stan="000124", terminal_id="TERM0001")


def test_peek_routing_reads_a_well_formed_message():
    assert peek_routing(GOOD) == ROUTING


def test_peek_routing_reads_a_message_truncated_after_field_41():
    end_of_41 = GOOD.index(b"TERM0001") + 8
    for cut in (end_of_41, end_of_41 + 3, len(GOOD) - 1):
        with pytest.raises(MessageError):
            decode_message(GOOD[:cut])
        assert peek_routing(GOOD[:cut]) == ROUTING


def test_peek_routing_is_none_for_a_message_truncated_before_field_41_ends():
    end_of_41 = GOOD.index(b"TERM0001") + 8
    assert all(peek_routing(GOOD[:cut]) is None for cut in range(end_of_41))


@pytest.mark.parametrize(
    ("raw", "routing"),
    [
        # garbage inside fixed fields before 41 does not move 41
        (replace(GOOD, b"000000000500", b"AMOUNT??????"), ROUTING),
        # garbage after 41
        (replace(GOOD, b"MERCHANT0000001", b"\xff" * 15), ROUTING),
        # a lower-case bitmap is malformed for decode_message, readable here
        (GOOD[:4] + GOOD[4:20].lower() + GOOD[20:], ROUTING),
        # an unreadable length prefix before 11
        (replace(GOOD, PAN_FIELD, b"1X4761739001010010"), None),
        # a length prefix is not trusted when the data it delimits breaks the field's class
        (replace(GOOD, PAN_FIELD, b"204761739001010010"), None),  # above max 19
        (replace(encode_message(PREAUTH_CONTACTLESS_0100), b"35476173", b"37476173"), None),
        (b"02A0" + GOOD[4:], None),
        (GOOD[:4] + b"ZZ" + GOOD[6:], None),
        (replace(GOOD, b"000124", b"0001X4"), None),  # STAN is not 6 digits
        (replace(GOOD, b"TERM0001", b"TERM\x00001"), None),  # 41 not printable
        (encode_message({"t": "0200", "11": "000124"}), None),  # no 41
        (encode_message({"t": "0200", "41": "TERM0001"}), None),  # no 11
        (b"", None),
    ],
)  # fmt: skip
def test_peek_routing_on_garbled_messages(raw, routing):
    assert peek_routing(raw) == routing


def test_peek_routing_reads_past_a_secondary_and_a_tertiary_bitmap():
    raw = encode_message(REVERSAL_0400)
    assert peek_routing(raw) == Routing("0400", "000127", "TERM0001")
    # bit 65 set in the secondary bitmap: pyiso8583's layout puts a tertiary bitmap next
    with_tertiary = raw[:20] + b"8" + raw[21:36] + b"0" * 16 + raw[36:]
    with pytest.raises(MessageError, match="bit 65"):
        decode_message(with_tertiary)
    assert peek_routing(with_tertiary) == Routing("0400", "000127", "TERM0001")


@given(st.binary(max_size=200))
def test_peek_routing_never_raises_on_arbitrary_bytes(raw):
    routing = peek_routing(b"0200" + raw)
    assert routing is None or (len(routing.stan), len(routing.terminal_id)) == (6, 8)


@given(st.sampled_from(list(MESSAGES.values())), st.data())
def test_peek_routing_on_any_prefix_is_none_or_the_true_routing(fields, data):
    raw = encode_message(fields)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    assert peek_routing(raw[:cut]) in (None, Routing(fields["t"], fields["11"], fields["41"]))


# --- fuzzing -----------------------------------------------------------------------------------


@given(st.binary(max_size=400))
def test_decode_message_returns_fields_or_raises_message_error_on_arbitrary_bytes(raw):
    try:
        fields = decode_message(raw)
    except MessageError:
        return
    assert encode_message(fields) == raw


# Structured inputs reach deeper than random bytes: a valid MTI and bitmap, then noise.
@given(
    st.sampled_from(["0200", "0800", "0400"]),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(max_size=300),
)
def test_decode_message_survives_valid_bitmaps_followed_by_noise(mti, primary, secondary, tail):
    raw = mti.encode() + f"{primary:016X}".encode() + f"{secondary:016X}".encode() + tail
    try:
        fields = decode_message(raw)
    except MessageError:
        return
    assert encode_message(fields) == raw


@st.composite
def mutated_messages(draw):
    raw = bytearray(encode_with_mac(draw(st.sampled_from(list(MESSAGES.values()))), retail_mac))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(raw)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = draw(st.sampled_from(list(b"0123456789ABCDEF=D \xff\x00")))
        if action == "replace" and position < len(raw):
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        elif action == "delete" and position < len(raw):
            del raw[position]
        elif action == "truncate":
            del raw[position:]
    return bytes(raw)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_decode_message_and_the_mac_reader_survive_mutated_messages(raw):
    try:
        fields = decode_message(raw)
    except MessageError:
        assert peek_routing(raw) is None or isinstance(peek_routing(raw), Routing)
        return
    assert encode_message(fields) == raw  # whatever decodes is in canonical form
    try:
        found = mac_input_and_value(raw)
    except MessageError:
        return
    assert found is None or found[0] == raw[: len(raw) - 16]


_ALPHABETS = {
    "n": "0123456789",
    "an": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "ans": "".join(chr(c) for c in range(0x20, 0x7F)),
    "z": "0123456789=DF",
    "b": "0123456789ABCDEF",
}


@st.composite
def field_values(draw, key):
    spec = SPEC[key]
    fmt = FIELD_FORMATS.get(key, "ans")
    if spec["len_type"] == 0:
        size = spec["max_len"]
    else:
        size = draw(st.integers(min_value=1, max_value=min(spec["max_len"], 60)))
    if fmt == "b":
        size_bytes = max(1, size // 2)
        return draw(st.binary(min_size=size_bytes, max_size=size_bytes)).hex().upper()
    return draw(st.text(alphabet=_ALPHABETS[fmt], min_size=size, max_size=size))


@st.composite
def valid_messages(draw):
    keys = draw(st.sets(st.sampled_from([str(n) for n in range(2, 129) if n != 65]), max_size=14))
    fields = {"t": draw(st.text(alphabet="0123456789", min_size=4, max_size=4))}
    for key in sorted(keys, key=int):
        fields[key] = draw(field_values(key))
    return fields


@given(valid_messages())
def test_decode_of_encode_is_the_identity_on_valid_field_dicts(fields):
    raw = encode_message(fields)
    assert decode_message(raw) == fields
    assert peek_routing(raw) == (
        Routing(fields["t"], fields["11"], fields["41"]) if {"11", "41"} <= set(fields) else None
    )


@given(valid_messages())
def test_mac_is_always_the_last_16_characters_of_a_valid_message(fields):
    raw = encode_with_mac(fields, retail_mac)
    mac_input, mac = mac_input_and_value(raw)
    assert (mac_input, mac) == (raw[:-16], retail_mac(raw[:-16]))
    placement = mac_field(fields)
    other = {"64": "128", "128": "64"}[placement]
    decoded = decode_message(raw)
    assert placement in decoded and other not in decoded


# --- message type indicator ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_mti", "response"),
    [("0100", "0110"), ("0200", "0210"), ("0220", "0230"), ("0400", "0410"), ("0420", "0430"),
     ("0500", "0510"), ("0800", "0810")],
)  # fmt: skip
def test_response_mti_answers_each_request_and_advice_of_the_profile(request_mti, response):
    assert response_mti(request_mti) == response
    assert is_request(request_mti)
    assert not is_request(response)


@pytest.mark.parametrize(
    ("mti", "message"),
    [("0210", "not a request"), ("0300", "not a request"),
     ("02", "4 digits"), ("02a0", "4 digits")],
)  # fmt: skip
def test_response_mti_rejects_responses_and_unknown_types(mti, message):
    with pytest.raises(MessageError, match=message) as error:
        response_mti(mti)
    assert error.value.field == "t"


@pytest.mark.parametrize(
    ("mti", "message_class"),
    [("0100", MessageClass.AUTHORIZATION), ("0210", MessageClass.FINANCIAL),
     ("0420", MessageClass.REVERSAL), ("0500", MessageClass.RECONCILIATION),
     ("0810", MessageClass.NETWORK_MANAGEMENT)],
)  # fmt: skip
def test_mti_class_is_the_second_digit(mti, message_class):
    assert mti_class(mti) == message_class


@pytest.mark.parametrize("mti", ["0000", "0900", "x200", ""])
def test_mti_class_rejects_reserved_classes_and_bad_mtis(mti):
    with pytest.raises(MessageError):
        mti_class(mti)


def test_response_echo_copies_the_echo_fields_and_sets_the_response_mti():
    assert response_echo(PURCHASE_CHIP_PIN_0200) == {
        "t": "0210", "3": "000000", "4": "000000001230", "7": "1122090000", "11": "000123",
        "41": "TERM0001", "42": "MERCHANT0000001", "49": "978",
    }  # fmt: skip
    assert response_echo(ECHO_0800) == {k: v for k, v in ECHO_0810.items() if k != "39"}


def test_response_echo_needs_a_request_mti():
    with pytest.raises(MessageError):
        response_echo(APPROVED_0210)


def test_business_fields_drop_only_the_security_envelope():
    signed = decode_message(encode_with_mac(PURCHASE_CHIP_PIN_0200, retail_mac))
    envelope = {"52": "FEDCBA9876543210", "62": "FFFF9876543210E00002", "64": "0" * 16}
    resent = dict(signed, **envelope)
    assert business_fields(signed) == business_fields(resent)
    assert set(business_fields(signed)) == set(PURCHASE_CHIP_PIN_0200) - {"52", "62"}


def test_response_codes_cover_the_profile_table():
    assert list(RESPONSE_CODES) == [
        "00", "05", "09", "12", "13", "14", "21", "25", "30", "51", "54", "55", "57", "58", "62", "63",
        "65", "75", "91", "94", "95", "96",
    ]  # fmt: skip


# --- amounts and counts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "minor"),
    [("000000001230", "4", 1230), ("000000000000", "4", 0), ("999999999999", "4", 10**12 - 1),
     ("0000000000001730", "88", 1730), ("0000000000000500", "86", 500)],
)  # fmt: skip
def test_amounts_parse_and_format_as_zero_filled_minor_units(text, field, minor):
    assert parse_amount(text, field) == minor
    assert format_amount(minor, field) == text


@pytest.mark.parametrize(
    "text", ["1230", "00000000123O", "0000000012300", " 00000001230", "", None, "１２３４５６７８９０１２"]
)
def test_parse_amount_rejects_anything_but_12_digits(text):
    with pytest.raises(MessageError, match="field 4: amount must be 12 digits"):
        parse_amount(text)


@pytest.mark.parametrize("minor", [-1, 10**12, 12.3, "1230", True])
def test_format_amount_rejects_negative_oversize_and_non_int_amounts(minor):
    with pytest.raises(MessageError, match="field 4: amount must be an int from 0 to 999999999999"):
        format_amount(minor)


def test_counts_are_10_digit_fields_74_and_76():
    assert format_count(2, "76") == "0000000002"
    assert parse_count("0000000001", "74") == 1
    with pytest.raises(MessageError, match="field 74: count must be 10 digits"):
        parse_count("1", "74")
    with pytest.raises(MessageError, match="field 76: count must be an int"):
        format_count(10**10, "76")


def test_amount_and_count_helpers_refuse_other_fields():
    with pytest.raises(ValueError, match="field must be one of 4, 86, 88"):
        parse_amount("000000001230", "5")
    with pytest.raises(ValueError, match="field must be one of 74, 76"):
        format_count(1, "4")


# --- field 7 -----------------------------------------------------------------------------------


def test_transmission_datetime_parses_mmddhhmmss():
    assert parse_transmission_datetime("1122090510") == TransmissionDateTime(11, 22, 9, 5, 10)
    assert parse_transmission_datetime("0229235959") == TransmissionDateTime(2, 29, 23, 59, 59)


@pytest.mark.parametrize(
    "text",
    ["1322090000", "0230090000", "1100090000", "1122240000", "1122096000", "1122090060",
     "112209000", "11220900OO"],
)  # fmt: skip
def test_transmission_datetime_rejects_impossible_values(text):
    with pytest.raises(MessageError) as error:
        parse_transmission_datetime(text)
    assert error.value.field == "7"


def test_transmission_datetime_picks_the_year_nearest_now():
    now = datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC)
    last_year = TransmissionDateTime(12, 31, 23, 59, 50).to_datetime(now)
    assert last_year == datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)
    this_year = TransmissionDateTime(1, 1, 0, 1, 0).to_datetime(now)
    assert this_year == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)
    leap_day = TransmissionDateTime(2, 29, 0, 0, 0).to_datetime(now)
    assert leap_day == datetime(2028, 2, 29, tzinfo=UTC)
    with pytest.raises(MessageError, match="0229"):
        TransmissionDateTime(2, 29, 0, 0, 0).to_datetime(datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        TransmissionDateTime(1, 1, 0, 1, 0).to_datetime(datetime(2027, 1, 1))


def test_transmission_datetime_cannot_be_built_invalid():
    with pytest.raises(MessageError, match="field 7: transmission date and time must be a valid"):
        TransmissionDateTime(13, 1, 0, 0, 0)


def test_format_transmission_datetime_is_utc():
    moment = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert format_transmission_datetime(moment) == "1122090000"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_transmission_datetime(datetime(2026, 11, 22))


# --- field 90 ----------------------------------------------------------------------------------


def test_original_data_elements_layout_is_mti_stan_datetime_and_two_11_digit_ids():
    text = "0200" "000123" "1122090000" "00000012345" "00000000000"
    original = parse_original_data_elements(text)
    assert original == OriginalData("0200", "000123", "1122090000", "12345", "")
    assert (original.acquirer_id, original.forwarding_id) == ("00000012345", "00000000000")
    assert format_original_data_elements(original) == text


@given(
    st.text("0123456789", min_size=4, max_size=4),
    st.text("0123456789", min_size=6, max_size=6),
    st.datetimes(timezones=st.just(UTC)),
    st.text("0123456789", max_size=11),
    st.text("0123456789", max_size=11),
)
def test_original_data_elements_round_trip(mti, stan, moment, acquirer, forwarding):
    original = OriginalData(mti, stan, format_transmission_datetime(moment), acquirer, forwarding)
    text = format_original_data_elements(original)
    assert len(text) == 42
    assert parse_original_data_elements(text) == original


@pytest.mark.parametrize(
    ("text", "message"),
    [("0" * 41, "original data elements must be 42 digits"),
     ("0200000123112209000000000000000000000000000X", "must be 42 digits"),
     ("0200" "000123" "1322090000" + "0" * 22, "transmission date and time must be a valid"),
     ("020A" + "0" * 38, "must be 42 digits")],
)  # fmt: skip
def test_parse_original_data_elements_rejects_bad_field_90(text, message):
    with pytest.raises(MessageError, match=message) as error:
        parse_original_data_elements(text)
    assert error.value.field == "90"


@pytest.mark.parametrize(
    "kwargs",
    [{"mti": "200"}, {"stan": "12345"}, {"transmission_datetime": "1122"},
     {"acquirer_id": "123456789012"}, {"forwarding_id": "12a"}],
)  # fmt: skip
def test_original_data_rejects_bad_parts(kwargs):
    parts = {"mti": "0200", "stan": "000123", "transmission_datetime": "1122090000"} | kwargs
    with pytest.raises(MessageError) as error:
        OriginalData(**parts)
    assert error.value.field == "90"


# --- field 54 ----------------------------------------------------------------------------------


def test_additional_amounts_are_20_character_entries():
    available = AdditionalAmount("00", "02", "978", "C", 12345)
    ledger = AdditionalAmount("00", "01", "978", "D", 7)
    text = format_additional_amounts([available, ledger])
    assert text == "0002978C000000012345" "0001978D000000000007"
    assert parse_additional_amounts(text) == (available, ledger)


@pytest.mark.parametrize(
    "text",
    ["", "0002978C00000001234", "0002978X000000012345", "0002978C00000001234A", "0" * 140],
)
def test_parse_additional_amounts_rejects_bad_field_54(text):
    with pytest.raises(MessageError) as error:
        parse_additional_amounts(text)
    assert error.value.field == "54"


def test_format_additional_amounts_needs_one_to_six_valid_entries():
    with pytest.raises(MessageError, match="1 to 6"):
        format_additional_amounts([])
    with pytest.raises(MessageError, match="sign must be C or D"):
        AdditionalAmount("00", "02", "978", "+", 1)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="field 54: amount must be an int") as error:
        AdditionalAmount("00", "02", "978", "C", -5)
    assert error.value.field == "54"


# --- field 22 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [("051", PosEntryMode(PanEntryMode.ICC, True)), ("052", PosEntryMode(PanEntryMode.ICC, False)),
     ("071", PosEntryMode(PanEntryMode.CONTACTLESS_ICC, True)),
     ("072", PosEntryMode(PanEntryMode.CONTACTLESS_ICC, False)),
     ("021", PosEntryMode(PanEntryMode.MAGNETIC_STRIPE, True)),
     ("012", PosEntryMode(PanEntryMode.MANUAL, False))],
)  # fmt: skip
def test_pos_entry_mode_reads_pan_entry_and_pin_digit(text, mode):
    assert parse_pos_entry_mode(text) == mode


@pytest.mark.parametrize(
    ("text", "message"),
    [("091", "PAN entry mode"), ("050", "PIN entry digit"),
     ("05", "3 digits"), ("0S1", "3 digits")],
)  # fmt: skip
def test_pos_entry_mode_rejects_modes_outside_the_profile(text, message):
    with pytest.raises(MessageError, match=message) as error:
        parse_pos_entry_mode(text)
    assert error.value.field == "22"


# --- fields 52, 55, 62 ---------------------------------------------------------------------------


def test_binary_fields_are_read_from_hex():
    assert parse_pin_block("0123456789abcdef") == bytes.fromhex("0123456789ABCDEF")
    assert parse_ksn(KSN) == bytes.fromhex(KSN)
    assert parse_icc_data(ICC_RESPONSE) == bytes.fromhex(ICC_RESPONSE)
    assert format_icc_data(bytes.fromhex(ICC_RESPONSE)) == ICC_RESPONSE


@pytest.mark.parametrize(
    ("parse", "text", "field", "message"),
    [(parse_pin_block, "0123456789ABCDE", "52", "PIN block must be 16 hex characters"),
     (parse_pin_block, "0123456789ABCDEF00", "52", "PIN block must be 16 hex"),
     (parse_ksn, "FFFF9876543210E0000", "62", "KSN must be 20 hex characters"),
     (parse_ksn, "FFFF9876543210E0000G", "62", "KSN must be 20 hex"),
     (parse_icc_data, "9F2", "55", "ICC data must be an even number of hex characters"),
     (parse_icc_data, "", "55", "ICC data must be an even number"),
     (parse_icc_data, "00" * 256, "55", "at most 255 bytes")],
)  # fmt: skip
def test_binary_fields_reject_bad_hex(parse, text, field, message):
    with pytest.raises(MessageError, match=message) as error:
        parse(text)
    assert error.value.field == field


@pytest.mark.parametrize("data", [b"", b"\x00" * 256])
def test_format_icc_data_rejects_empty_and_oversize_data(data):
    with pytest.raises(MessageError, match="1 to 255 bytes"):
        format_icc_data(data)
