"""paypos.protocol.qr: EMVCo merchant-presented QR (EMV QRCPS MPM v1.1) payloads.

Every known-answer vector below was run against this code and cites where it was published.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.qr_vectors import BCB_STATIC_SAMPLE, EMVCO_SAMPLE, KHQR_SAMPLE

from paypos.protocol.qr import (
    MPM_PAYLOAD_CHARS_MAX,
    MpmPayload,
    QrError,
    append_crc,
    build_mpm_payload,
    crc16_ccitt_false,
    decode_mpm,
    decode_tlv,
    encode_tlv,
    parse_mpm_payload,
)

# --- known answers -----------------------------------------------------------------------

# Sources:
#   [crc]   CRC RevEng "Catalogue of parametrised CRC algorithms", CRC-16/IBM-3740
#           (alias CRC-16/CCITT-FALSE): check value 0x29B1 over "123456789".
#   [emvco], [bcb], [khqr]: the published payloads in tests/qr_vectors.py.


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", 0x29B1),  # [crc]
        (EMVCO_SAMPLE[:-4].encode("utf-8"), 0xA13A),  # [emvco]
        (BCB_STATIC_SAMPLE[:-4].encode("utf-8"), 0x1D3D),  # [bcb]
        (KHQR_SAMPLE[:-4].encode("utf-8"), 0x1FF2),  # [khqr]
    ],
)
def test_crc16_ccitt_false_matches_published_check_values(data, expected):
    assert crc16_ccitt_false(data) == expected


def test_crc16_ccitt_false_refuses_text():
    with pytest.raises(QrError) as error:
        crc16_ccitt_false("123456789")
    assert error.value.field == "63"


def test_emvco_specification_sample_parses_with_nested_templates_and_unknown_ids_kept():
    parsed = parse_mpm_payload(EMVCO_SAMPLE)  # [emvco]
    assert parsed == MpmPayload(
        dynamic=True,
        merchant_account={
            "29": {"00": "D15600000000", "05": "A93FO3230Q"},
            "31": {"00": "D15600000001", "03": "12345678"},
        },
        mcc="4111",
        currency="156",
        country="CN",
        merchant_name="BEST TRANSPORT",
        merchant_city="BEIJING",
        amount_minor=2372,
        additional_data={"03": "1234", "06": "***", "07": "A6008667", "09": "ME"},
        language={"00": "ZH", "01": "最佳运输", "02": "北京"},
        extra={"55": "01", "91": "0016A011223344998877070812345678"},
    )


def test_bcb_pix_static_example_parses_as_a_static_code_without_amount():
    parsed = parse_mpm_payload(BCB_STATIC_SAMPLE)  # [bcb]
    assert parsed.dynamic is False
    assert parsed.amount_minor is None
    assert parsed.merchant_account == {
        "26": {"00": "br.gov.bcb.pix", "01": "123e4567-e12b-12d1-a456-426655440000"}
    }
    assert (parsed.mcc, parsed.currency, parsed.country) == ("0000", "986", "BR")
    assert (parsed.merchant_name, parsed.merchant_city) == ("Fulano de Tal", "BRASILIA")
    assert parsed.additional_data == {"05": "***"}


def test_published_payload_with_a_16_character_city_is_refused_despite_a_good_crc():
    # [khqr]: "Banteay Meanchey" breaks ID 60's limit of 15 characters.
    with pytest.raises(QrError) as error:
        parse_mpm_payload(KHQR_SAMPLE)
    assert error.value.field == "60"


def test_decode_mpm_returns_objects_by_id_with_templates_as_dicts():
    objects = decode_mpm(EMVCO_SAMPLE)
    assert list(objects)[0] == "00" and list(objects)[-1] == "63"
    assert objects["62"] == {"03": "1234", "06": "***", "07": "A6008667", "09": "ME"}
    assert objects["91"] == "0016A011223344998877070812345678"
    assert objects["63"] == "A13A"


# --- build -------------------------------------------------------------------------------

PAYPOS_ACCOUNT = {"26": {"00": "dev.paypos", "01": "M0001"}}
BUILD_ARGS = dict(
    dynamic=True,
    merchant_account=PAYPOS_ACCOUNT,
    mcc="5812",
    currency="156",
    amount_minor=2550,
    country="CN",
    merchant_name="Noodle House",
    merchant_city="Hangzhou",
    additional_data={"05": "ORDER-1", "07": "T001"},
)


def test_build_dynamic_payload_puts_00_first_63_last_and_ids_in_order():
    payload = build_mpm_payload(**BUILD_ARGS)
    assert payload[:-4] == (
        "000201010212"
        "26230010dev.paypos0105M0001"
        "520458125303156540525.505802CN5912Noodle House6008Hangzhou"
        "62190507ORDER-10704T001"
        "6304"
    )
    assert payload[-4:] == f"{crc16_ccitt_false(payload[:-4].encode('utf-8')):04X}"
    assert payload[-4:] == payload[-4:].upper()


@pytest.mark.parametrize(
    ("currency", "amount_minor", "field_54"),
    [("156", 2550, "25.50"), ("156", 5, "0.05"), ("392", 500, "500"), ("048", 1234, "1.234")],
)
def test_build_writes_amount_in_major_units_with_the_currency_exponent(currency, amount_minor, field_54):
    payload = build_mpm_payload(**{**BUILD_ARGS, "currency": currency, "amount_minor": amount_minor})
    assert decode_mpm(payload)["54"] == field_54
    assert parse_mpm_payload(payload).amount_minor == amount_minor


def test_build_static_payload_without_amount_lets_the_buyer_type_it():
    payload = build_mpm_payload(**{**BUILD_ARGS, "dynamic": False, "amount_minor": None})
    objects = decode_mpm(payload)
    assert objects["01"] == "11"
    assert "54" not in objects


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"merchant_name": "N" * 26}, "59"),
        ({"merchant_city": "C" * 16}, "60"),
        ({"postal_code": "P" * 11}, "61"),
        ({"mcc": "581"}, "52"),
        ({"mcc": "58A2"}, "52"),
        ({"currency": "999"}, "53"),
        ({"currency": "CNY"}, "53"),
        ({"country": "CHN"}, "58"),
        ({"country": "cn"}, "58"),
        ({"amount_minor": 25.5}, "54"),
        ({"amount_minor": 0}, "54"),
        ({"amount_minor": 10**13}, "54"),
        ({"dynamic": 1}, "01"),
        ({"merchant_account": {}}, "26-51"),
        ({"merchant_account": {"25": {"00": "dev.paypos"}}}, "25"),
        ({"merchant_account": {"26": {"01": "M0001"}}}, "26.00"),
        ({"merchant_account": {"26": {"00": "G" * 33}}}, "26.00"),
        ({"merchant_account": {"26": {"00": "dev.paypos", "01": "M" * 100}}}, "26.01"),
        ({"additional_data": {"05": "R" * 26}}, "62.05"),
        ({"merchant_name": "Café"}, "59"),
    ],
)
def test_build_refuses_what_the_specification_forbids_and_names_the_id(change, field):
    with pytest.raises(QrError) as error:
        build_mpm_payload(**{**BUILD_ARGS, **change})
    assert error.value.field == field


def test_build_refuses_a_payload_over_512_characters():
    accounts = {f"{n}": {"00": "G" * 32, "01": "M" * 55} for n in range(26, 32)}
    with pytest.raises(QrError) as error:
        build_mpm_payload(**{**BUILD_ARGS, "merchant_account": accounts})
    assert error.value.field == "payload"


# --- round trip --------------------------------------------------------------------------

ANS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def ans(min_size, max_size):
    return st.text(alphabet=ANS, min_size=min_size, max_size=max_size)


def sub_ids(low, high):
    return st.integers(low, high).map(lambda n: f"{n:02d}")


merchant_templates = st.dictionaries(
    sub_ids(26, 51),
    st.builds(
        lambda gui, rest: {"00": gui, **rest},
        ans(1, 32),
        st.dictionaries(sub_ids(1, 99), ans(1, 20), max_size=2),
    ),
    min_size=1,
    max_size=3,
)
CURRENCY_EXPONENTS = {"156": 2, "392": 0, "048": 3, "840": 2, "978": 2}


@given(
    dynamic=st.booleans(),
    merchant_account=merchant_templates,
    mcc=st.text("0123456789", min_size=4, max_size=4),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    amount_minor=st.none() | st.integers(1, 10**10 - 1),
    country=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    merchant_name=ans(1, 25),
    merchant_city=ans(1, 15),
    postal_code=st.none() | ans(1, 10),
    additional_data=st.dictionaries(sub_ids(1, 8), ans(1, 10), max_size=4),
)
def test_parse_of_build_gives_back_every_field(**fields):
    parsed = parse_mpm_payload(build_mpm_payload(**fields))
    assert parsed == MpmPayload(**fields)


@given(st.dictionaries(sub_ids(0, 99), st.text(min_size=1, max_size=99), max_size=5))
def test_decode_tlv_of_encode_tlv_is_identity(objects):
    assert decode_tlv(encode_tlv(objects)) == objects


@given(st.text(max_size=40))
def test_decode_mpm_of_any_text_returns_or_raises_qr_error(text):
    try:
        decode_mpm(text)
    except QrError:
        pass


# --- bad input ---------------------------------------------------------------------------

GOOD_OBJECTS = {
    "00": "01",
    "01": "12",
    "26": "0010dev.paypos0105M0001",
    "52": "5812",
    "53": "156",
    "54": "25.50",
    "58": "CN",
    "59": "Noodle House",
    "60": "Hangzhou",
}


def payload_of(objects):
    return append_crc(encode_tlv(objects))


def test_the_hand_made_good_payload_parses():
    assert parse_mpm_payload(payload_of(GOOD_OBJECTS)).amount_minor == 2550


def test_wrong_crc_is_refused_with_id_63():
    tampered = EMVCO_SAMPLE[:-4] + "A13B"
    with pytest.raises(QrError, match="CRC mismatch") as error:
        parse_mpm_payload(tampered)
    assert error.value.field == "63"


def test_a_changed_value_under_a_kept_crc_is_refused():
    tampered = BCB_STATIC_SAMPLE.replace("Fulano", "Fulana")
    with pytest.raises(QrError) as error:
        parse_mpm_payload(tampered)
    assert error.value.field == "63"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (EMVCO_SAMPLE[:-2], "63"),  # value shorter than its length
        ("000201010", "01"),  # length cut
        ("0002010", "payload"),  # ID cut
        ("00A201", "00"),  # non-digit length
        ("0000", "00"),  # length 00
        ("000201000201", "00"),  # repeated ID
    ],
)
def test_decode_tlv_refuses_malformed_data_objects(text, field):
    with pytest.raises(QrError) as error:
        decode_tlv(text)
    assert error.value.field == field


def test_non_digit_length_in_a_payload_is_refused():
    with pytest.raises(QrError) as error:
        parse_mpm_payload("00A201" + EMVCO_SAMPLE[6:])
    assert error.value.field == "00"


def test_truncated_template_is_refused_with_the_nested_id():
    objects = {**GOOD_OBJECTS, "26": "0010dev.paypos0109M0001"}
    with pytest.raises(QrError) as error:
        parse_mpm_payload(payload_of(objects))
    assert error.value.field == "26.01"


@pytest.mark.parametrize("missing", ["52", "53", "58", "59", "60"])
def test_missing_mandatory_data_object_is_refused(missing):
    objects = {k: v for k, v in GOOD_OBJECTS.items() if k != missing}
    with pytest.raises(QrError) as error:
        parse_mpm_payload(payload_of(objects))
    assert error.value.field == missing


def test_missing_merchant_account_is_refused():
    objects = {k: v for k, v in GOOD_OBJECTS.items() if k != "26"}
    with pytest.raises(QrError) as error:
        parse_mpm_payload(payload_of(objects))
    assert error.value.field == "02-51"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"54": "25.505"}, "54"),  # CNY has 2 decimals
        ({"53": "392", "54": "500.5"}, "54"),  # JPY has none
        ({"54": "25,50"}, "54"),
        ({"54": "-25.50"}, "54"),
        ({"54": "12345678901.23"}, "54"),  # 14 characters
        ({"59": "N" * 26}, "59"),
        ({"60": "C" * 16}, "60"),
        ({"61": "P" * 11}, "61"),
        ({"52": "58122"}, "52"),
        ({"53": "999"}, "53"),
        ({"58": "C"}, "58"),
        ({"00": "02"}, "00"),
        ({"01": "13"}, "01"),
        ({"26": "0105M0001"}, "26.00"),
        ({"62": "0526" + "R" * 26}, "62.05"),
        ({"62": "0902XY"}, "62.09"),
        ({"64": "0002ZH"}, "64.01"),
    ],
)
def test_parse_refuses_a_data_object_that_breaks_its_rule(change, field):
    with pytest.raises(QrError) as error:
        parse_mpm_payload(payload_of({**GOOD_OBJECTS, **change}))
    assert error.value.field == field


def test_id_63_not_last_is_refused():
    payload = payload_of(GOOD_OBJECTS) + "6105" + "12345"
    with pytest.raises(QrError, match="last") as error:
        parse_mpm_payload(payload)
    assert error.value.field == "63"


def test_id_00_not_first_is_refused():
    objects = {"01": "12", **{k: v for k, v in GOOD_OBJECTS.items() if k != "01"}}
    with pytest.raises(QrError, match="first") as error:
        parse_mpm_payload(payload_of(objects))
    assert error.value.field == "00"


def test_missing_crc_is_refused():
    with pytest.raises(QrError) as error:
        parse_mpm_payload(encode_tlv(GOOD_OBJECTS))
    assert error.value.field == "63"


def test_payload_over_512_characters_is_refused():
    with pytest.raises(QrError) as error:
        parse_mpm_payload("0" * (MPM_PAYLOAD_CHARS_MAX + 1))
    assert error.value.field == "payload"


@pytest.mark.parametrize("value", [None, b"000201", 12])
def test_parse_refuses_anything_but_a_str(value):
    with pytest.raises(QrError) as error:
        parse_mpm_payload(value)
    assert error.value.field == "payload"


@pytest.mark.parametrize(
    ("objects", "field"),
    [({"0": "x"}, "0"), ({"00": ""}, "00"), ({"00": "x" * 100}, "00"), ({"00": 1}, "00")],
)
def test_encode_tlv_refuses_bad_ids_and_values(objects, field):
    with pytest.raises(QrError) as error:
        encode_tlv(objects)
    assert error.value.field == field
