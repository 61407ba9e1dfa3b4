"""paypos.domain.money: ISO 4217 lookups, minor-unit arithmetic, decimal text, field 4.

Currency known answers come from the ISO 4217 list (alpha, numeric, minor unit) as
shipped in the ``iso4217`` package.
"""

from decimal import Decimal

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos.domain.money import (
    AMOUNT_MINOR_DIGITS_MAX,
    AMOUNT_TEXT_CHARS_MAX,
    Currency,
    Money,
    MoneyError,
    currency,
    from_iso_amount_field,
    money,
    parse_major,
    to_iso_amount_field,
)

CODES_WITH_MINOR_UNIT = sorted(entry.code for entry in iso4217.Currency if entry.exponent is not None)
LARGEST_MINOR = 10**AMOUNT_MINOR_DIGITS_MAX - 1


# --- currency lookup ---------------------------------------------------------------------

# Source: ISO 4217 list (alphabetic code, numeric code, minor unit).
@pytest.mark.parametrize(
    ("code", "alpha", "numeric", "exponent"),
    [
        ("CNY", "CNY", "156", 2),
        ("cny", "CNY", "156", 2),
        ("156", "CNY", "156", 2),
        ("USD", "USD", "840", 2),
        ("840", "USD", "840", 2),
        ("JPY", "JPY", "392", 0),
        ("392", "JPY", "392", 0),
        ("BHD", "BHD", "048", 3),
        ("048", "BHD", "048", 3),
        ("CLF", "CLF", "990", 4),
    ],
)
def test_currency_is_found_by_alpha_or_numeric_code(code, alpha, numeric, exponent):
    assert currency(code) == Currency(alpha=alpha, numeric=numeric, exponent=exponent)


def test_currency_lookups_are_cached_so_alpha_and_numeric_give_the_same_object():
    assert currency("CNY") is currency("156")


@pytest.mark.parametrize(("code", "alpha"), [("XAU", "XAU"), ("959", "XAU"), ("XDR", "XDR"), ("XTS", "XTS")])
def test_currency_without_a_minor_unit_is_rejected(code, alpha):
    with pytest.raises(MoneyError, match=f"currency {alpha} has no minor unit") as error:
        currency(code)
    assert error.value.field == "currency"


@pytest.mark.parametrize("code", ["ABC", "000", "", "CN", "CNYY", "15", "1560", " CNY", "CN1", "４８"])
def test_unknown_or_malformed_currency_code_is_rejected(code):
    with pytest.raises(MoneyError) as error:
        currency(code)
    assert error.value.field == "currency"


@pytest.mark.parametrize("code", [156, None, b"CNY"])
def test_currency_code_must_be_a_string(code):
    with pytest.raises(MoneyError, match="currency code must be a str"):
        currency(code)


@pytest.mark.parametrize(
    ("alpha", "numeric", "exponent"),
    [("cny", "156", 2), ("CNY", "15", 2), ("CNY", 156, 2), ("CNY", "156", -1), ("CNY", "156", 2.0), ("CNY", "156", True)],
)
def test_currency_rejects_malformed_fields(alpha, numeric, exponent):
    with pytest.raises(MoneyError):
        Currency(alpha=alpha, numeric=numeric, exponent=exponent)


# --- Money -------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", [12.3, 1.0, float("nan")])
def test_money_rejects_a_float_amount(amount):
    with pytest.raises(MoneyError, match="amounts must be strings or ints of minor units, not float"):
        Money(amount, currency("CNY"))


@pytest.mark.parametrize("amount", [True, False, "1230", Decimal("12.30"), None])
def test_money_rejects_anything_but_an_int_of_minor_units(amount):
    with pytest.raises(MoneyError, match="amount_minor must be an int of minor units"):
        Money(amount, currency("CNY"))


@pytest.mark.parametrize("amount", [LARGEST_MINOR + 1, -LARGEST_MINOR - 1])
def test_money_rejects_amounts_wider_than_the_digit_limit(amount):
    with pytest.raises(MoneyError, match=f"at most {AMOUNT_MINOR_DIGITS_MAX} digits"):
        money(amount, "CNY")


def test_money_rejects_a_currency_code_in_place_of_a_currency():
    with pytest.raises(MoneyError, match="currency must be a Currency") as error:
        Money(1230, "CNY")
    assert error.value.field == "currency"


@pytest.mark.parametrize(
    ("amount", "code", "major"),
    [
        (1230, "CNY", "12.30"),
        (-5, "CNY", "-0.05"),
        (0, "CNY", "0.00"),
        (100, "USD", "1.00"),
        (1234, "JPY", "1234"),
        (-1234, "JPY", "-1234"),
        (1, "BHD", "0.001"),
        (12345, "BHD", "12.345"),
        (1, "CLF", "0.0001"),
        (-10001, "CLF", "-1.0001"),
    ],
)
def test_to_major_str_writes_exactly_the_currency_exponent_decimals(amount, code, major):
    assert money(amount, code).to_major_str() == major


def test_str_is_the_alpha_code_then_the_major_amount():
    assert str(money(1230, "CNY")) == "CNY 12.30"
    assert str(money(1234, "JPY")) == "JPY 1234"


def test_money_adds_subtracts_and_negates_within_a_currency():
    a, b = money(1230, "CNY"), money(70, "CNY")
    assert a + b == money(1300, "CNY")
    assert a - b == money(1160, "CNY")
    assert -a == money(-1230, "CNY")


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_money_of_different_currencies_cannot_be_combined_or_ordered(operation):
    with pytest.raises(MoneyError, match="currencies differ") as error:
        operation(money(100, "CNY"), money(100, "USD"))
    assert error.value.field == "currency"


def test_money_of_different_currencies_is_never_equal():
    assert money(100, "CNY") != money(100, "USD")


def test_money_compares_within_a_currency():
    small, large = money(5, "CNY"), money(500, "CNY")
    assert small < large and small <= large and large > small and large >= small
    assert small <= money(5, "CNY") and small >= money(5, "CNY")


def test_money_does_not_add_plain_numbers():
    with pytest.raises(TypeError):
        money(100, "CNY") + 1


def test_addition_past_the_digit_limit_is_an_error_not_a_silent_overflow():
    with pytest.raises(MoneyError, match="digits"):
        money(LARGEST_MINOR, "CNY") + money(1, "CNY")


def test_is_zero_is_true_only_for_zero_minor_units():
    assert money(0, "CNY").is_zero()
    assert not money(1, "CNY").is_zero()
    assert not money(-1, "CNY").is_zero()


def test_money_accepts_a_currency_or_a_code():
    assert money(1230, "cny") == money(1230, currency("156")) == Money(1230, currency("CNY"))


# --- parse_major -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("12.30", "CNY", 1230),
        ("12.3", "CNY", 1230),
        ("12", "CNY", 1200),
        ("-1.5", "CNY", -150),
        ("0.05", "CNY", 5),
        ("-0.05", "CNY", -5),
        ("-0", "CNY", 0),
        ("007.50", "USD", 750),
        ("1234", "JPY", 1234),
        ("1.234", "BHD", 1234),
        ("0.0001", "CLF", 1),
    ],
)
def test_parse_major_reads_a_plain_decimal_into_minor_units(text, code, minor):
    assert parse_major(text, code) == money(minor, code)


def test_parse_major_rejects_decimals_for_a_currency_without_them():
    with pytest.raises(MoneyError, match=r"^JPY has 0 decimal places; got '12\.3'$"):
        parse_major("12.3", "JPY")


@pytest.mark.parametrize(("text", "code"), [("1.234", "USD"), ("12.000", "CNY"), ("0.0001", "BHD"), ("1.0", "JPY")])
def test_parse_major_rejects_more_decimals_than_the_currency_exponent(text, code):
    with pytest.raises(MoneyError, match=f"{code} has"):
        parse_major(text, code)


@pytest.mark.parametrize(
    "text",
    [
        "", "-", ".5", "5.", "+1.00", "--1", "1.2.3",
        "1e3", "1E3", "1.5e-2",
        " 12.30", "12.30 ", "12 30", "12.30\n", "\t1",
        "NaN", "nan", "inf", "-inf", "Infinity",
        "1,000.00", "1_000", "1'000", "12,30",
        "0x10", "１２", "١٢",
    ],
)
def test_parse_major_rejects_anything_but_a_plain_decimal(text):
    with pytest.raises(MoneyError, match="plain decimal"):
        parse_major(text, "CNY")


def test_parse_major_rejects_a_float():
    with pytest.raises(MoneyError, match="^amounts must be strings or ints of minor units, not float$"):
        parse_major(12.3, "CNY")


@pytest.mark.parametrize("value", [1230, Decimal("12.30"), None, b"12.30"])
def test_parse_major_rejects_non_string_amounts(value):
    with pytest.raises(MoneyError, match="parse_major takes a decimal string"):
        parse_major(value, "CNY")


def test_parse_major_rejects_overlong_text():
    with pytest.raises(MoneyError, match=f"at most {AMOUNT_TEXT_CHARS_MAX} characters"):
        parse_major("1" * (AMOUNT_TEXT_CHARS_MAX + 1), "CNY")


def test_parse_major_rejects_an_unknown_currency():
    with pytest.raises(MoneyError) as error:
        parse_major("1.00", "ZZZ")
    assert error.value.field == "currency"


@given(st.integers(min_value=-LARGEST_MINOR, max_value=LARGEST_MINOR), st.sampled_from(CODES_WITH_MINOR_UNIT))
def test_parse_major_inverts_to_major_str_for_every_amount_and_currency(amount, code):
    m = money(amount, code)
    assert parse_major(m.to_major_str(), m.currency) == m


# --- ISO 8583 field 4 --------------------------------------------------------------------

# Source: ISO 8583 field 4, n 12, minor units, right-justified and zero-filled.
@pytest.mark.parametrize(
    ("amount", "code", "field"),
    [
        (1230, "CNY", "000000001230"),
        (0, "CNY", "000000000000"),
        (1234, "JPY", "000000001234"),
        (12345, "BHD", "000000012345"),
        (999_999_999_999, "USD", "999999999999"),
    ],
)
def test_field_4_is_twelve_zero_padded_digits_of_minor_units(amount, code, field):
    assert to_iso_amount_field(money(amount, code)) == field
    assert from_iso_amount_field(field, code) == money(amount, code)


def test_field_4_rejects_a_negative_amount():
    with pytest.raises(MoneyError, match="^field 4: amount must not be negative$") as error:
        to_iso_amount_field(money(-1, "CNY"))
    assert error.value.field == "4"


def test_field_4_rejects_an_amount_wider_than_twelve_digits():
    with pytest.raises(MoneyError, match="^field 4: amount must fit in 12 digits$"):
        to_iso_amount_field(money(10**12, "CNY"))


def test_field_4_rejects_something_other_than_money():
    with pytest.raises(MoneyError, match="field 4"):
        to_iso_amount_field(1230)


@pytest.mark.parametrize(
    "text",
    [
        "", "1230", "0000000012300", "00000000123a", "-00000001230", " 00000001230",
        "000000001230\n", "０００００００００１２３", b"000000001230", 1230, None,
    ],
)
def test_field_4_reader_rejects_anything_but_twelve_ascii_digits(text):
    with pytest.raises(MoneyError, match="^field 4: amount must be 12 digits$") as error:
        from_iso_amount_field(text, "CNY")
    assert error.value.field == "4"


@given(st.integers(min_value=0, max_value=999_999_999_999), st.sampled_from(CODES_WITH_MINOR_UNIT))
def test_field_4_round_trips_every_amount_it_can_carry(amount, code):
    m = money(amount, code)
    assert from_iso_amount_field(to_iso_amount_field(m), m.currency) == m
