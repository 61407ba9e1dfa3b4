"""paypos.protocol.card: Luhn (ISO/IEC 7812-1), PAN masking, expiry, track 2 (ISO/IEC 7813, EMV tag 57)."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.protocol.card import (
    TRACK2_CHARS_MAX,
    CardDataError,
    Track2,
    build_track2,
    is_expired,
    luhn_check_digit,
    luhn_valid,
    mask_pan,
    parse_track2,
    validate_expiry,
    validate_pan,
    validate_service_code,
)

DIGITS = "0123456789"
VISA_TEST_PAN = "4761739001010010"


# --- Luhn --------------------------------------------------------------------------------

# Sources: "79927398713" is the worked example of ISO/IEC 7812-1 Annex B used in
# Wikipedia's "Luhn algorithm" article; the others are card-network test PANs published
# in Stripe's testing documentation (docs.stripe.com/testing).
@pytest.mark.parametrize(
    "pan",
    [
        "79927398713",
        "4111111111111111",
        "4242424242424242",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3566002020360505",
        VISA_TEST_PAN,
    ],
)
def test_luhn_accepts_published_valid_numbers(pan):
    assert luhn_valid(pan)
    assert luhn_check_digit(pan[:-1]) == pan[-1]


@pytest.mark.parametrize("pan", ["4111111111111112", "79927398710", "79927398714", "5555555555554443"])
def test_luhn_rejects_a_wrong_check_digit(pan):
    assert not luhn_valid(pan)


@pytest.mark.parametrize("pan", ["", "0", "4111 1111 1111 1111", "4111-1111", "４１１１１１", None, 4111111111111111])
def test_luhn_valid_is_false_for_anything_but_two_or_more_ascii_digits(pan):
    assert luhn_valid(pan) is False


@pytest.mark.parametrize("partial", ["", "12a", " 1", "１２", None])
def test_luhn_check_digit_rejects_non_digits(partial):
    with pytest.raises(CardDataError, match="Luhn input must be ASCII digits") as error:
        luhn_check_digit(partial)
    assert error.value.field == "pan"


@given(st.text(alphabet=DIGITS, min_size=1, max_size=30), st.data())
def test_luhn_check_digit_makes_a_valid_number_and_catches_any_single_digit_error(partial, data):
    pan = partial + luhn_check_digit(partial)
    assert luhn_valid(pan)
    position = data.draw(st.integers(min_value=0, max_value=len(pan) - 1))
    replacement = data.draw(st.sampled_from([d for d in DIGITS if d != pan[position]]))
    assert not luhn_valid(pan[:position] + replacement + pan[position + 1 :])


# --- PAN ---------------------------------------------------------------------------------

def test_validate_pan_returns_a_valid_pan():
    assert validate_pan(VISA_TEST_PAN) == VISA_TEST_PAN


@pytest.mark.parametrize(
    ("pan", "rule"),
    [
        ("41111111111", "PAN must be 12-19 digits"),
        ("41111111111111111111", "PAN must be 12-19 digits"),
        ("4111-1111-1111-1111", "PAN must be 12-19 digits"),
        ("４１１１１１１１１１１１１１１１", "PAN must be 12-19 digits"),
        ("", "PAN must be 12-19 digits"),
        (4111111111111111, "PAN must be 12-19 digits"),
        ("4111111111111112", "PAN fails the Luhn check"),
    ],
)
def test_validate_pan_names_the_rule_and_the_field(pan, rule):
    with pytest.raises(CardDataError, match=f"^{rule}$") as error:
        validate_pan(pan)
    assert error.value.field == "pan"


def test_validate_pan_can_skip_luhn_for_algorithms_defined_over_any_account_number():
    assert validate_pan("4111111111111112", luhn=False) == "4111111111111112"
    with pytest.raises(CardDataError, match="12-19 digits"):
        validate_pan("41111111111", luhn=False)


# Source: PCI DSS v4.0 requirement 3.4.1 (show at most the first six and last four digits).
@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        (VISA_TEST_PAN, "476173******0010"),
        ("4111111111111111", "411111******1111"),
        ("1234567890123456789", "123456*********6789"),
        ("123456789012", "123456**9012"),
    ],
)
def test_mask_pan_keeps_the_first_six_and_last_four_digits(pan, masked):
    assert mask_pan(pan) == masked


@pytest.mark.parametrize("pan", ["12345678901", "12345678901234567890", "4111-1111-1111", None])
def test_mask_pan_rejects_what_is_not_a_pan(pan):
    with pytest.raises(CardDataError) as error:
        mask_pan(pan)
    assert error.value.field == "pan"


# --- expiry and service code -------------------------------------------------------------

@pytest.mark.parametrize("yymm", ["2512", "0001", "9912", "3006"])
def test_validate_expiry_accepts_yymm_with_a_real_month(yymm):
    assert validate_expiry(yymm) == yymm


@pytest.mark.parametrize(
    ("yymm", "rule"),
    [
        ("2513", "expiry month must be 01-12"),
        ("2500", "expiry month must be 01-12"),
        ("251", "expiry must be 4 digits YYMM"),
        ("25122", "expiry must be 4 digits YYMM"),
        ("25/1", "expiry must be 4 digits YYMM"),
        ("", "expiry must be 4 digits YYMM"),
        (2512, "expiry must be 4 digits YYMM"),
    ],
)
def test_validate_expiry_names_the_rule_and_the_field(yymm, rule):
    with pytest.raises(CardDataError, match=f"^{rule}$") as error:
        validate_expiry(yymm)
    assert error.value.field == "expiry"


@pytest.mark.parametrize(
    ("yymm", "today", "expired"),
    [
        ("2512", datetime.date(2025, 12, 1), False),
        ("2512", datetime.date(2025, 12, 31), False),
        ("2512", datetime.date(2026, 1, 1), True),
        ("2512", datetime.date(2025, 1, 15), False),
        ("2501", datetime.date(2025, 1, 31), False),
        ("2412", datetime.date(2025, 1, 1), True),
        ("2502", datetime.date(2025, 3, 1), True),
    ],
)
def test_a_card_is_valid_through_the_last_day_of_its_expiry_month(yymm, today, expired):
    assert is_expired(yymm, today) is expired


def test_is_expired_rejects_a_malformed_expiry():
    with pytest.raises(CardDataError) as error:
        is_expired("2513", datetime.date(2025, 1, 1))
    assert error.value.field == "expiry"


def test_is_expired_needs_a_date():
    with pytest.raises(TypeError, match="datetime.date"):
        is_expired("2512", "2025-12-31")


@pytest.mark.parametrize("code", ["20", "2011", "2a1", "", 201])
def test_validate_service_code_requires_three_digits(code):
    with pytest.raises(CardDataError, match="service code must be 3 digits") as error:
        validate_service_code(code)
    assert error.value.field == "service_code"


# --- track 2 -----------------------------------------------------------------------------

TRACK = Track2(pan=VISA_TEST_PAN, expiry="2512", service_code="201", discretionary="1234567890")


def test_build_track2_writes_pan_separator_expiry_service_code_discretionary():
    assert build_track2(TRACK) == "4761739001010010=25122011234567890"


@pytest.mark.parametrize(
    "text",
    [
        "4761739001010010=25122011234567890",
        "4761739001010010D25122011234567890",
        "4761739001010010d25122011234567890",
    ],
)
def test_parse_track2_accepts_equals_or_d_separator(text):
    assert parse_track2(text) == TRACK


def test_parse_track2_strips_the_f_pad_nibble_of_emv_tag_57():
    # 33 nibbles of data padded to 17 bytes with a trailing 'F' (EMV Book 3, tag 57).
    expected = Track2(pan=VISA_TEST_PAN, expiry="2512", service_code="201", discretionary="123456789")
    assert parse_track2("4761739001010010D2512201123456789F") == expected
    assert parse_track2("4761739001010010d2512201123456789f") == expected


def test_parse_track2_accepts_empty_discretionary_data():
    assert parse_track2("4761739001010010=2512201") == Track2(VISA_TEST_PAN, "2512", "201", "")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("4761739001010010", "track2"),
        ("", "track2"),
        ("4761739001010010=2512201=1", "track2"),
        ("4761739001010010=2512D2011", "track2"),
        ("4761739001010010=25122", "track2"),
        ("4761739001010010=2512201X", "track2"),
        ("4761739001010010=2512201F", "track2"),
        ("4761739001010010D2512201FF", "track2"),
        (";4761739001010010=2512201?", "track2"),
        ("4761739001010010=2512201" + "1" * 14, "track2"),
        ("1" * 1000, "track2"),
        ("4761739001010011=2512201", "pan"),
        ("12345=2512201", "pan"),
        ("4761739001010010=2513201", "expiry"),
        ("4761739001010010=2500201", "expiry"),
    ],
)
def test_parse_track2_rejects_malformed_data_and_names_the_field(text, field):
    with pytest.raises(CardDataError) as error:
        parse_track2(text)
    assert error.value.field == field


def test_parse_track2_rejects_a_non_string():
    with pytest.raises(CardDataError) as error:
        parse_track2(b"4761739001010010=2512201")
    assert error.value.field == "track2"


def test_track2_errors_do_not_echo_card_data():
    with pytest.raises(CardDataError) as error:
        parse_track2("4761739001010011=2512201999")
    assert "4761739001010011" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"discretionary": "12a"}, "discretionary"),
        ({"discretionary": None}, "discretionary"),
        ({"discretionary": "1" * 14}, "track2"),
        ({"service_code": "20"}, "service_code"),
        ({"expiry": "2513"}, "expiry"),
        ({"pan": "4761739001010011"}, "pan"),
    ],
)
def test_track2_validates_its_fields_on_construction(kwargs, field):
    fields = {"pan": VISA_TEST_PAN, "expiry": "2512", "service_code": "201", "discretionary": ""} | kwargs
    with pytest.raises(CardDataError) as error:
        Track2(**fields)
    assert error.value.field == field


def test_track2_repr_masks_the_pan_and_hides_discretionary_data():
    text = repr(TRACK)
    assert VISA_TEST_PAN not in text and "1234567890" not in text
    assert "476173******0010" in text


def test_build_track2_rejects_a_non_track2():
    with pytest.raises(CardDataError):
        build_track2("4761739001010010=2512201")


@st.composite
def track2s(draw):
    body = draw(st.text(alphabet=DIGITS, min_size=11, max_size=18))
    pan = body + luhn_check_digit(body)
    expiry = f"{draw(st.integers(0, 99)):02d}{draw(st.integers(1, 12)):02d}"
    service_code = draw(st.text(alphabet=DIGITS, min_size=3, max_size=3))
    room = TRACK2_CHARS_MAX - len(pan) - 1 - 7
    discretionary = draw(st.text(alphabet=DIGITS, max_size=room))
    return Track2(pan=pan, expiry=expiry, service_code=service_code, discretionary=discretionary)


@given(track2s())
def test_parse_track2_inverts_build_track2(track):
    text = build_track2(track)
    assert len(text) <= TRACK2_CHARS_MAX
    assert parse_track2(text) == track


@given(track2s())
def test_parse_track2_reads_the_emv_tag_57_form_of_any_track(track):
    text = build_track2(track).replace("=", "D")
    if len(text) % 2:
        text += "F"
    assert parse_track2(text) == track
