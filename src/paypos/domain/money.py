"""Money: an ``int`` of minor units plus an ISO 4217 currency. Never a float.

ISO 4217 gives every currency an alphabetic code ("CNY"), a numeric code ("156") and a
minor unit, the number of decimal places between the major and the minor unit (2 for
CNY, 0 for JPY, 3 for BHD). We call the minor unit the *exponent*: one major unit is
``10 ** exponent`` minor units. The table comes from the ``iso4217`` package, which
tracks the list published by the ISO 4217 maintenance agency.

Amounts only change representation at the edges: :func:`parse_major` and
:meth:`Money.to_major_str` for people and REST, :func:`to_iso_amount_field` and
:func:`from_iso_amount_field` for ISO 8583 field 4.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import iso4217

__all__ = [
    "AMOUNT_MINOR_DIGITS_MAX",
    "AMOUNT_TEXT_CHARS_MAX",
    "ISO_AMOUNT_FIELD_DIGITS",
    "Currency",
    "Money",
    "MoneyError",
    "currency",
    "from_iso_amount_field",
    "money",
    "parse_major",
    "to_iso_amount_field",
]

# 38 digits is the widest exact decimal most SQL databases store (NUMERIC(38)) and fits
# a signed 128-bit integer; no real amount comes near it.
AMOUNT_MINOR_DIGITS_MAX = 38
# Longest decimal string parse_major reads: a guard on input size, not a money rule.
AMOUNT_TEXT_CHARS_MAX = 64
# ISO 8583 field 4 (amount, transaction): n 12, minor units, right-justified, zero-filled.
ISO_AMOUNT_FIELD_DIGITS = 12

_AMOUNT_MINOR_LIMIT = 10**AMOUNT_MINOR_DIGITS_MAX
_ISO_AMOUNT_FIELD_LIMIT = 10**ISO_AMOUNT_FIELD_DIGITS
_ALPHA_CODE = re.compile(r"[A-Z]{3}")
_NUMERIC_CODE = re.compile(r"[0-9]{3}")
_MAJOR_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_ISO_AMOUNT_FIELD = re.compile(r"[0-9]{12}")
_FLOAT_RULE = "amounts must be strings or ints of minor units, not float"


class MoneyError(ValueError):
    """An amount or currency broke a money rule; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, 3-digit numeric code, minor unit."""

    alpha: str
    numeric: str
    exponent: int

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, str) or not _ALPHA_CODE.fullmatch(self.alpha):
            raise MoneyError("currency alpha code must be 3 letters A-Z", field="currency")
        if not isinstance(self.numeric, str) or not _NUMERIC_CODE.fullmatch(self.numeric):
            raise MoneyError("currency numeric code must be 3 digits", field="currency")
        if type(self.exponent) is not int or not 0 <= self.exponent <= 9:
            raise MoneyError("currency exponent must be an int from 0 to 9", field="currency")


@functools.cache
def _iso4217_index() -> dict[str, iso4217.Currency]:
    """Every ISO 4217 entry keyed by alpha code and by zero-padded numeric code."""
    index: dict[str, iso4217.Currency] = {}
    for entry in iso4217.Currency:
        index[entry.code] = entry
        index[f"{entry.number:03d}"] = entry
    return index


@functools.cache
def _currency_of(entry: iso4217.Currency) -> Currency:
    if entry.exponent is None:
        raise MoneyError(f"currency {entry.code} has no minor unit", field="currency")
    return Currency(alpha=entry.code, numeric=f"{entry.number:03d}", exponent=entry.exponent)


def currency(code: str) -> Currency:
    """Look up an ISO 4217 currency by alpha code ("CNY", any case) or numeric code ("156").

    Entries without a minor unit (gold XAU, SDR XDR, testing XTS, ...) cannot hold an
    amount of minor units and are rejected.
    """
    if not isinstance(code, str):
        raise MoneyError(
            f"currency code must be a str, not {type(code).__name__}", field="currency"
        )
    if len(code) != 3:
        raise MoneyError("currency code must be 3 letters or 3 digits", field="currency")
    entry = _iso4217_index().get(code.upper())
    if entry is None:
        raise MoneyError(f"unknown ISO 4217 currency {code!r}", field="currency")
    return _currency_of(entry)


def _as_currency(value: Currency | str) -> Currency:
    if isinstance(value, Currency):
        return value
    return currency(value)


def _require_minor_units(amount: object) -> None:
    if isinstance(amount, float):
        raise MoneyError(_FLOAT_RULE)
    if type(amount) is not int:
        raise MoneyError(f"amount_minor must be an int of minor units, not {type(amount).__name__}")
    if not -_AMOUNT_MINOR_LIMIT < amount < _AMOUNT_MINOR_LIMIT:
        raise MoneyError(f"amount_minor must have at most {AMOUNT_MINOR_DIGITS_MAX} digits")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``amount_minor`` minor units of ``currency`` (CNY 12.30 is 1230)."""

    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        _require_minor_units(self.amount_minor)
        if not isinstance(self.currency, Currency):
            raise MoneyError(
                "currency must be a Currency; look one up with currency()", field="currency"
            )

    def _same_currency(self, other: Money, operation: str) -> None:
        if other.currency != self.currency:
            raise MoneyError(
                f"cannot {operation} {other.currency.alpha} and {self.currency.alpha}: "
                "currencies differ",
                field="currency",
            )

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "add")
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "subtract")
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount_minor < other.amount_minor

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount_minor <= other.amount_minor

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount_minor > other.amount_minor

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other, "compare")
        return self.amount_minor >= other.amount_minor

    def is_zero(self) -> bool:
        """True when the amount is zero minor units."""
        return self.amount_minor == 0

    def to_major_str(self) -> str:
        """Major units with exactly ``exponent`` decimals: "12.30", "-0.05", JPY "1234"."""
        exponent = self.currency.exponent
        sign = "-" if self.amount_minor < 0 else ""
        units, fraction = divmod(abs(self.amount_minor), 10**exponent)
        if exponent == 0:
            return f"{sign}{units}"
        return f"{sign}{units}.{fraction:0{exponent}d}"

    def __str__(self) -> str:
        return f"{self.currency.alpha} {self.to_major_str()}"


def money(amount_minor: int, code: Currency | str) -> Money:
    """``Money`` from an int of minor units and a currency or its ISO 4217 code."""
    return Money(amount_minor, _as_currency(code))


def parse_major(text: str, currency: Currency | str) -> Money:
    """Parse a plain decimal string of major units ("12.30", "12.3", "12", "-1.5").

    Accepted: an optional '-', ASCII digits, and optionally '.' followed by at most
    ``exponent`` digits. Rejected: floats, exponent notation, spaces, '+', thousands
    separators, "NaN", "inf", the empty string, and more decimals than the currency has.
    """
    if isinstance(text, float):
        raise MoneyError(_FLOAT_RULE)
    if not isinstance(text, str):
        raise MoneyError(
            f"parse_major takes a decimal string, not {type(text).__name__}; "
            "use money() for minor units"
        )
    if len(text) > AMOUNT_TEXT_CHARS_MAX:
        raise MoneyError(f"amount text must be at most {AMOUNT_TEXT_CHARS_MAX} characters")
    match = _MAJOR_TEXT.fullmatch(text)
    if match is None:
        raise MoneyError(f"amount must be a plain decimal like '12.30'; got {text!r}")
    target = _as_currency(currency)
    sign, units, fraction = match.group(1), match.group(2), match.group(3) or ""
    if len(fraction) > target.exponent:
        raise MoneyError(f"{target.alpha} has {target.exponent} decimal places; got {text!r}")
    minor = int(units + fraction.ljust(target.exponent, "0"))
    return Money(-minor if sign else minor, target)


def to_iso_amount_field(m: Money) -> str:
    """ISO 8583 field 4: minor units as 12 zero-padded digits (CNY 12.30 -> "000000001230")."""
    if not isinstance(m, Money):
        raise MoneyError(f"field 4: amount must be Money, not {type(m).__name__}", field="4")
    if m.amount_minor < 0:
        raise MoneyError("field 4: amount must not be negative", field="4")
    if m.amount_minor >= _ISO_AMOUNT_FIELD_LIMIT:
        raise MoneyError("field 4: amount must fit in 12 digits", field="4")
    return f"{m.amount_minor:0{ISO_AMOUNT_FIELD_DIGITS}d}"


def from_iso_amount_field(text: str, currency: Currency | str) -> Money:
    """Read ISO 8583 field 4 (exactly 12 ASCII digits of minor units) in ``currency``."""
    if not isinstance(text, str) or not _ISO_AMOUNT_FIELD.fullmatch(text):
        raise MoneyError("field 4: amount must be 12 digits", field="4")
    return Money(int(text), _as_currency(currency))
