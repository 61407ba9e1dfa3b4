"""Card numbers and track 2 data: pure functions over ``str``.

Standards:

- ISO/IEC 7812-1: the primary account number (PAN) and its Luhn check digit (Annex B).
- ISO/IEC 7813: track 2 of a financial card, ``PAN=YYMMSSS<discretionary>``.
- EMV Book 3, tag 57 "Track 2 Equivalent Data": the same fields in packed BCD with 'D'
  as the separator and an 'F' nibble padding an odd length.
- PCI DSS v4.0 requirement 3.4.1: at most the first six and last four PAN digits shown.

Error messages never echo card data; ``CardDataError.field`` names the field at fault.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from paypos.protocol.errors import KeepsFields

__all__ = [
    "PAN_DIGITS_MAX",
    "PAN_DIGITS_MIN",
    "TRACK2_CHARS_MAX",
    "CardDataError",
    "Track2",
    "build_track2",
    "is_expired",
    "luhn_check_digit",
    "luhn_valid",
    "mask_pan",
    "parse_track2",
    "validate_expiry",
    "validate_pan",
    "validate_service_code",
]

PAN_DIGITS_MIN = 12
PAN_DIGITS_MAX = 19
# ISO/IEC 7813 track 2 holds 40 characters; the start sentinel, end sentinel and LRC
# leave 37 for PAN, separator, expiry, service code and discretionary data.
TRACK2_CHARS_MAX = 37
_EXPIRY_AND_SERVICE_CODE_CHARS = 7
_TRACK2_SEPARATOR = "="
_TAG_57_SEPARATOR = "D"
_TAG_57_PAD = "F"
_TRACK2_TOO_LONG = f"track 2 must be at most {TRACK2_CHARS_MAX} characters"


class CardDataError(KeepsFields, ValueError):
    """Card data broke a format rule; ``field`` names the field ("pan", "expiry", ...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _is_digits(text: object) -> bool:
    return isinstance(text, str) and text.isascii() and text.isdigit()


def _luhn_sum(digits: str) -> int:
    """ISO/IEC 7812-1 Annex B: from the right, double every second digit, add digit sums."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - ord("0")
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total


def luhn_check_digit(partial: str) -> str:
    """The Luhn check digit (ISO/IEC 7812-1 Annex B) to append to ``partial``."""
    if not _is_digits(partial):
        raise CardDataError("Luhn input must be ASCII digits", field="pan")
    return str(-_luhn_sum(partial + "0") % 10)


def luhn_valid(pan: str) -> bool:
    """True when ``pan`` is 2 or more ASCII digits whose last digit is a correct Luhn check digit.

    Anything else (non-digits, too short, not a str) is simply not Luhn-valid.
    """
    return _is_digits(pan) and len(pan) >= 2 and _luhn_sum(pan) % 10 == 0


def _require_pan_format(pan: object) -> str:
    if not _is_digits(pan) or not PAN_DIGITS_MIN <= len(pan) <= PAN_DIGITS_MAX:
        raise CardDataError(f"PAN must be {PAN_DIGITS_MIN}-{PAN_DIGITS_MAX} digits", field="pan")
    return pan


def validate_pan(pan: str, *, luhn: bool = True) -> str:
    """Return ``pan`` if it is 12-19 ASCII digits and, unless ``luhn=False``, passes Luhn.

    ``luhn=False`` is for algorithms defined over any account number (CVV, IBM 3624),
    whose published test vectors use PANs without a valid check digit.
    """
    _require_pan_format(pan)
    if luhn and not luhn_valid(pan):
        raise CardDataError("PAN fails the Luhn check", field="pan")
    return pan


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits, the rest '*' (PCI DSS v4.0 req. 3.4.1): "476173******0010"."""
    _require_pan_format(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def validate_expiry(yymm: str) -> str:
    """Return ``yymm`` if it is an ISO/IEC 7813 expiry date: 4 digits YYMM, month 01-12."""
    if not _is_digits(yymm) or len(yymm) != 4:
        raise CardDataError("expiry must be 4 digits YYMM", field="expiry")
    if not 1 <= int(yymm[2:]) <= 12:
        raise CardDataError("expiry month must be 01-12", field="expiry")
    return yymm


def is_expired(yymm: str, today: datetime.date) -> bool:
    """True once ``today`` is past the expiry month; a card is valid through its last day.

    YY is read as 20YY: track data carries two digits, and cards in use expire this century.
    """
    validate_expiry(yymm)
    if not isinstance(today, datetime.date):
        raise TypeError(f"today must be a datetime.date, not {type(today).__name__}")
    expiry_month = (2000 + int(yymm[:2]), int(yymm[2:]))
    return (today.year, today.month) > expiry_month


def validate_service_code(service_code: str) -> str:
    """Return ``service_code`` if it is the 3 digits ISO/IEC 7813 puts after the expiry."""
    if not _is_digits(service_code) or len(service_code) != 3:
        raise CardDataError("service code must be 3 digits", field="service_code")
    return service_code


@dataclass(frozen=True, repr=False)
class Track2:
    """ISO/IEC 7813 track 2 fields, validated on construction.

    ``repr`` masks the PAN and hides the discretionary data (it carries the CVV).
    """

    pan: str
    expiry: str
    service_code: str
    discretionary: str = ""

    def __post_init__(self) -> None:
        validate_pan(self.pan)
        validate_expiry(self.expiry)
        validate_service_code(self.service_code)
        if not isinstance(self.discretionary, str) or not (
            self.discretionary == "" or _is_digits(self.discretionary)
        ):
            raise CardDataError("discretionary data must be digits", field="discretionary")
        length = len(self.pan) + 1 + _EXPIRY_AND_SERVICE_CODE_CHARS + len(self.discretionary)
        if length > TRACK2_CHARS_MAX:
            raise CardDataError(_TRACK2_TOO_LONG, field="track2")

    def __repr__(self) -> str:
        return (
            f"Track2(pan={mask_pan(self.pan)!r}, expiry={self.expiry!r}, "
            f"service_code={self.service_code!r}, discretionary=<{len(self.discretionary)} digits>)"
        )


def build_track2(track: Track2) -> str:
    """ISO/IEC 7813 track 2 without sentinels or LRC: "PAN=YYMMSSS<discretionary>"."""
    if not isinstance(track, Track2):
        raise CardDataError(f"expected Track2, not {type(track).__name__}", field="track2")
    return f"{track.pan}{_TRACK2_SEPARATOR}{track.expiry}{track.service_code}{track.discretionary}"


def _track2_body(text: str) -> tuple[str, str]:
    """Split off the separator: '=' (ISO/IEC 7813) or 'D' (EMV tag 57, one 'F' pad stripped)."""
    body = text.upper()
    if _TAG_57_SEPARATOR in body and body.endswith(_TAG_57_PAD):
        body = body[:-1]
    separators = [sep for sep in (_TRACK2_SEPARATOR, _TAG_57_SEPARATOR) if sep in body]
    if len(separators) != 1 or body.count(separators[0]) != 1:
        raise CardDataError("track 2 must have exactly one '=' or 'D' separator", field="track2")
    if len(body) > TRACK2_CHARS_MAX:
        raise CardDataError(_TRACK2_TOO_LONG, field="track2")
    return body, separators[0]


def parse_track2(text: str) -> Track2:
    """Parse "PAN=YYMMSSS<discretionary>" or EMV tag 57 "PANDYYMMSSS<discretionary>[F]"."""
    if not isinstance(text, str):
        raise CardDataError(f"track 2 must be a str, not {type(text).__name__}", field="track2")
    if len(text) > TRACK2_CHARS_MAX + len(_TAG_57_PAD):
        raise CardDataError(_TRACK2_TOO_LONG, field="track2")
    body, separator = _track2_body(text)
    pan, _, rest = body.partition(separator)
    if len(rest) < _EXPIRY_AND_SERVICE_CODE_CHARS or not _is_digits(rest):
        raise CardDataError(
            "track 2 must carry YYMM, a 3-digit service code and digits after the separator",
            field="track2",
        )
    return Track2(
        pan=pan,
        expiry=rest[:4],
        service_code=rest[4:_EXPIRY_AND_SERVICE_CODE_CHARS],
        discretionary=rest[_EXPIRY_AND_SERVICE_CODE_CHARS:],
    )
