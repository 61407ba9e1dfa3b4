"""Buyer-presented payment codes: one-time 18-digit codes, derived like TOTP.

The wallet shows the code as a QR code and a Code 128 barcode; the merchant's terminal
scans it and the host verifies it. Standards:

- RFC 4226 (HOTP): HMAC over an 8-byte big-endian counter, *dynamic truncation*
  (section 5.3) to a 31-bit number, reduced modulo ``10 ** digits``. :func:`hotp` is that
  function, exactly, so it can be checked against Appendix D.
- RFC 6238 (TOTP): the counter is the time step ``T = floor((unix time - T0) / X)`` with
  ``T0 = 0``; section 1.2 allows HMAC-SHA-256. :func:`time_step` computes ``T``.
- ISO/IEC 7812-1 Annex B: the Luhn check digit (:mod:`paypos.protocol.card`).

Layout of a code (18 ASCII digits)::

    digits  1-2   prefix, 25-30      marks a paypos wallet code; = 25 + device_no // 10**7
    digits  3-9   device, 7 digits   = device_no % 10**7, zero-padded
    digits 10-17  OTP, 8 digits      HOTP truncation of HMAC-SHA-256(secret, message)
    digit  18     Luhn check digit   over digits 1-17

``device_no`` is the short public number the wallet gets at enrolment (0 to 59,999,999):
it tells the host whose secret to use without trying every secret. The HMAC message is
the 8-byte big-endian device number followed by the 8-byte big-endian time step, so a
code is bound to its device as well as to its step.

Security: eight OTP digits leave a guess a chance of about 1e-8 per accepted step
(truncation makes some values 22/2**31 likely instead of 1e-8: at most 1.03e-8); the host
accepts ``2 * skew_steps + 1`` steps, so 3e-8 per attempt with the defaults. The
host must also limit failed attempts per device (a service concern). The check digit
costs one digit of device space and lets a terminal reject a mistyped code (any single
wrong digit, most swapped neighbours) before it reaches the host, without counting as a
failed attempt; QR and Code 128 carry their own error detection, manual entry does not.

Single use: :func:`authenticate` returns the time step that matched; the caller stores
it per device and passes it back as ``last_used_step``, and no step at or before it is
accepted again. A second payment within the same step therefore needs the next step's
code: a wallet that has just paid can show ``code_for_step(secret, device_no, step + 1)``,
which the host accepts while that step is within its skew window.

Time and secrets are passed in; nothing here reads the clock or draws randomness.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from paypos import limits
from paypos.protocol.card import luhn_check_digit, luhn_valid
from paypos.protocol.errors import KeepsFields

__all__ = [
    "CODE_DIGITS",
    "DEVICE_NO_MAX",
    "OTP_DIGITS",
    "PREFIX_MAX",
    "PREFIX_MIN",
    "SECRET_BYTES_MIN",
    "Digest",
    "PayCode",
    "PayCodeError",
    "PayCodeExpiredError",
    "PayCodeFormatError",
    "PayCodeRejectedError",
    "PayCodeReusedError",
    "PayCodeUnknownError",
    "authenticate",
    "code_for_step",
    "dynamic_truncation",
    "generate",
    "hotp",
    "parse",
    "time_step",
    "verify",
]

CODE_DIGITS = 18
PREFIX_MIN = 25
PREFIX_MAX = 30
PREFIX_DIGITS = 2
DEVICE_DIGITS = 7
OTP_DIGITS = 8
# The prefix carries the high part of the device number: six prefixes x 10**7.
DEVICE_NO_MAX = (PREFIX_MAX - PREFIX_MIN + 1) * 10**DEVICE_DIGITS - 1
# RFC 4226 section 4, requirement R6: the shared secret is at least 128 bits.
SECRET_BYTES_MIN = 16
# RFC 4226 section 5.3: at least 6 digits; 8 is the most the 31-bit value serves well.
HOTP_DIGITS_MIN = 6
HOTP_DIGITS_MAX = 8
# HMAC-SHA-1 output, the shortest digest: dynamic truncation reads up to byte 15 + 3.
_MAC_BYTES_MIN = 20
_COUNTER_LIMIT = 2**64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_OTP_DIGEST = "sha256"
_DEVICE_END = PREFIX_DIGITS + DEVICE_DIGITS
_OTP_END = _DEVICE_END + OTP_DIGITS

Digest = Literal["sha1", "sha256", "sha512"]
_DIGESTS = frozenset({"sha1", "sha256", "sha512"})


class PayCodeError(KeepsFields, ValueError):
    """A payment code or an OTP input broke a rule; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PayCodeFormatError(PayCodeError):
    """The code is not a well-formed payment code (length, digits, prefix, check digit)."""


class PayCodeRejectedError(PayCodeError):
    """A well-formed code that does not pay; ``reason`` is "expired", "reused" or "unknown"."""

    reason = "rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="code")


class PayCodeExpiredError(PayCodeRejectedError):
    """The code was right for a time step older than the accepted window."""

    reason = "expired"


class PayCodeReusedError(PayCodeRejectedError):
    """The code was right for a step at or before the device's last used step."""

    reason = "reused"


class PayCodeUnknownError(PayCodeRejectedError):
    """The code matches no recent step of this device (or the device does not exist)."""

    reason = "unknown"


@dataclass(frozen=True, slots=True)
class PayCode:
    """A parsed payment code: ``prefix`` 25-30, the device number, the 8 OTP digits."""

    prefix: int
    device_no: int
    otp: str


# --- RFC 4226 / RFC 6238 -----------------------------------------------------------------


def _require_int(value: object, field: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise PayCodeError(f"must be an int from {low} to {high}", field=field)
    return value


def _require_secret(secret: object) -> bytes:
    if not isinstance(secret, (bytes, bytearray)):
        raise PayCodeError(f"must be bytes, not {type(secret).__name__}", field="secret")
    if not SECRET_BYTES_MIN <= len(secret) <= limits.otp_secret_bytes_max:
        raise PayCodeError(
            f"must be {SECRET_BYTES_MIN}-{limits.otp_secret_bytes_max} bytes (RFC 4226 R6: "
            "at least 128 bits)",
            field="secret",
        )
    return bytes(secret)


def time_step(now: datetime, step_s: int) -> int:
    """RFC 6238 section 4.2: ``T = floor((unix time - T0) / X)``, ``T0 = 0``, ``X = step_s``.

    ``now`` must carry a time zone (a naive datetime has no defined Unix time) and must
    not be before 1970. Integer arithmetic throughout: whole seconds, rounded down.
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise PayCodeError("must be a datetime with a time zone", field="now")
    _require_int(step_s, "step_s", 1, _COUNTER_LIMIT - 1)
    seconds = (now - _EPOCH) // _ONE_SECOND
    if seconds < 0:
        raise PayCodeError("must not be before 1970-01-01T00:00:00Z", field="now")
    return seconds // step_s


def dynamic_truncation(mac: bytes) -> int:
    """RFC 4226 section 5.3 DT: the low 4 bits of the last byte pick 4 bytes; drop the top bit.

    Returns the 31-bit number (``Snum``) before it is reduced modulo ``10 ** digits``.
    """
    if not isinstance(mac, (bytes, bytearray)) or len(mac) < _MAC_BYTES_MIN:
        raise PayCodeError(f"must be at least {_MAC_BYTES_MIN} bytes of HMAC", field="mac")
    offset = mac[-1] & 0x0F
    return int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF


def _decimal(mac: bytes, digits: int) -> str:
    return f"{dynamic_truncation(mac) % 10**digits:0{digits}d}"


def hotp(secret: bytes, counter: int, digits: int = 6, digest: Digest = "sha1") -> str:
    """RFC 4226 HOTP (HMAC-SHA-1) or its RFC 6238 variants (SHA-256, SHA-512).

    ``counter`` is an unsigned 64-bit int, hashed as 8 big-endian bytes; the result is
    ``digits`` (6-8) decimal digits, zero-padded on the left.
    """
    key = _require_secret(secret)
    _require_int(counter, "counter", 0, _COUNTER_LIMIT - 1)
    _require_int(digits, "digits", HOTP_DIGITS_MIN, HOTP_DIGITS_MAX)
    if digest not in _DIGESTS:
        raise PayCodeError(f"must be one of {sorted(_DIGESTS)}", field="digest")
    return _decimal(hmac.new(key, counter.to_bytes(8, "big"), digest).digest(), digits)


# --- payment codes -----------------------------------------------------------------------


def _otp(secret: bytes, device_no: int, step: int) -> str:
    message = device_no.to_bytes(8, "big") + step.to_bytes(8, "big")
    return _decimal(hmac.new(secret, message, _OTP_DIGEST).digest(), OTP_DIGITS)


def _require_device_no(device_no: object) -> int:
    return _require_int(device_no, "device_no", 0, DEVICE_NO_MAX)


def _require_step_s(step_s: object) -> int:
    return _require_int(step_s, "step_s", 1, limits.paycode_step_s_max)


def code_for_step(secret: bytes, device_no: int, step: int) -> str:
    """The 18-digit code of ``device_no`` for time step ``step`` (see the module's layout)."""
    key = _require_secret(secret)
    _require_device_no(device_no)
    _require_int(step, "step", 0, _COUNTER_LIMIT - 1)
    high, low = divmod(device_no, 10**DEVICE_DIGITS)
    body = f"{PREFIX_MIN + high:02d}{low:0{DEVICE_DIGITS}d}{_otp(key, device_no, step)}"
    return body + luhn_check_digit(body)


def generate(
    secret: bytes, device_no: int, now: datetime, *, step_s: int = limits.paycode_step_s
) -> str:
    """The code a wallet shows at ``now``: :func:`code_for_step` of the current time step."""
    return code_for_step(secret, device_no, time_step(now, _require_step_s(step_s)))


def parse(code: str) -> PayCode:
    """Split a code into prefix, device number and OTP, checking length, digits, prefix, Luhn.

    Error messages never repeat the code.
    """
    if not isinstance(code, str):
        raise PayCodeFormatError(f"must be a str, not {type(code).__name__}", field="code")
    if len(code) != CODE_DIGITS:
        raise PayCodeFormatError(f"must be {CODE_DIGITS} digits, got {len(code)}", field="code")
    if not (code.isascii() and code.isdigit()):
        raise PayCodeFormatError("must be ASCII digits 0-9 only", field="code")
    prefix = int(code[:PREFIX_DIGITS])
    if not PREFIX_MIN <= prefix <= PREFIX_MAX:
        raise PayCodeFormatError(
            f"prefix must be {PREFIX_MIN}-{PREFIX_MAX}, got {prefix:02d}", field="prefix"
        )
    if not luhn_valid(code):
        raise PayCodeFormatError("fails the Luhn check digit (mistyped?)", field="check_digit")
    low = int(code[PREFIX_DIGITS:_DEVICE_END])
    device_no = (prefix - PREFIX_MIN) * 10**DEVICE_DIGITS + low
    return PayCode(prefix=prefix, device_no=device_no, otp=code[_DEVICE_END:_OTP_END])


def _matching_steps(secret: bytes, code: PayCode, steps: range) -> list[int]:
    """Every step in ``steps`` whose OTP equals the code's; constant-time, no early exit."""
    matches = []
    for step in steps:
        if hmac.compare_digest(_otp(secret, code.device_no, step), code.otp):
            matches.append(step)
    return matches


def authenticate(
    secret: bytes,
    code: str,
    now: datetime,
    *,
    step_s: int = limits.paycode_step_s,
    skew_steps: int = limits.paycode_skew_steps,
    last_used_step: int | None = None,
    expired_lookback_steps: int = limits.paycode_expired_lookback_steps,
) -> int:
    """Check ``code`` against the device's ``secret`` at ``now``; return the time step used.

    Accepted: a step within ``skew_steps`` of the current one and after ``last_used_step``
    (the earliest such step if several match). Otherwise, in this order of precedence:
    :class:`PayCodeReusedError` (right for a step in the window, but at or before the last
    used one), :class:`PayCodeExpiredError` (right for one of the ``expired_lookback_steps``
    steps before the window), :class:`PayCodeUnknownError`. A malformed code raises
    :class:`PayCodeFormatError` before any HMAC is computed.
    """
    parsed = parse(code)
    key = _require_secret(secret)
    current = time_step(now, _require_step_s(step_s))
    _require_int(skew_steps, "skew_steps", 0, limits.paycode_skew_steps_max)
    lookback = _require_int(
        expired_lookback_steps, "expired_lookback_steps", 0, limits.paycode_expired_lookback_steps
    )
    if last_used_step is not None:
        _require_int(last_used_step, "last_used_step", 0, _COUNTER_LIMIT - 1)
    window_first = max(0, current - skew_steps)
    steps = range(max(0, window_first - lookback), current + skew_steps + 1)
    matches = _matching_steps(key, parsed, steps)
    fresh = [step for step in matches if step >= window_first]
    unused = [step for step in fresh if last_used_step is None or step > last_used_step]
    if unused:
        return unused[0]
    if fresh:
        raise PayCodeReusedError("was already used, or is older than a code this device has used")
    if matches:
        raise PayCodeExpiredError("has expired; the wallet shows a new code every step")
    raise PayCodeUnknownError("matches no recent code of this device")


def verify(
    secret: bytes,
    code: str,
    now: datetime,
    *,
    step_s: int = limits.paycode_step_s,
    skew_steps: int = limits.paycode_skew_steps,
    last_used_step: int | None = None,
) -> int | None:
    """:func:`authenticate` as a yes/no: the time step used, or ``None`` if the code does not pay.

    A malformed code still raises :class:`PayCodeFormatError`.
    """
    try:
        return authenticate(
            secret,
            code,
            now,
            step_s=step_s,
            skew_steps=skew_steps,
            last_used_step=last_used_step,
            expired_lookback_steps=0,
        )
    except PayCodeRejectedError:
        return None
