"""Settlement rules (issue 7, docs/settlement.md): cycles, cut-offs, holidays, reserve and
instant-fee arithmetic, bank account numbers, micro-deposits, and the clearing file and bank
statement formats. Pure: no I/O, the clock and randomness are passed in.

Rounding (integer minor units, never floats):
- the rolling reserve is ``gross * bps // 10_000`` (rounded down: in the merchant's favour);
- the T+0 instant fee is ``(net * bps + 5_000) // 10_000`` (rounded half up, like sale fees).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stdnum import iban as stdnum_iban
from stdnum import luhn

from paypos import limits


class SettlementError(ValueError):
    """Bad settlement input; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Cycle(StrEnum):
    T0 = "T0"  # instant: the window closes at today's cut-off, paid today, at an extra rate
    T1 = "T1"  # the window closes at yesterday's cut-off, paid today
    WEEKLY = "WEEKLY"  # like T1, on one weekday (or the first working day after it)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The start of a merchant's first window: everything posted before its first cut-off settles.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SettlementSettings:
    merchant_id: str
    cycle: Cycle = Cycle.T1
    weekday: int = 4  # 0 = Monday; used by WEEKLY only
    cutoff_local: str = limits.settlement_cutoff_local_default  # "HH:MM" in time_zone
    time_zone: str = limits.settlement_time_zone_default  # IANA name
    reserve_bps: int = 0  # rolling reserve, basis points of the window's gross sales
    reserve_hold_days: int = 0
    instant_rate_bps: int = limits.settlement_instant_rate_bps_default  # T0 only
    payout_minor_min: int = limits.settlement_payout_minor_min_default


def check_settings(settings: SettlementSettings) -> SettlementSettings:
    """The settings, or a ``SettlementError`` naming the bad field."""
    if not 0 <= settings.weekday <= 6:
        raise SettlementError("weekday", "weekday must be 0 (Monday) .. 6 (Sunday)")
    parse_cutoff(settings.cutoff_local)
    zone(settings.time_zone)
    for name in ("reserve_bps", "instant_rate_bps"):
        if not 0 <= getattr(settings, name) <= limits.settlement_rate_bps_max:
            raise SettlementError(name, f"{name} must be 0..{limits.settlement_rate_bps_max}")
    if not 0 <= settings.reserve_hold_days <= limits.settlement_reserve_hold_days_max:
        raise SettlementError("reserve_hold_days",
                              f"reserve_hold_days must be 0..{limits.settlement_reserve_hold_days_max}")
    if settings.payout_minor_min < 1:
        raise SettlementError("payout_minor_min", "payout_minor_min must be at least 1")
    return settings


def parse_cutoff(text: str) -> time:
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text)
    if match is None:
        raise SettlementError("cutoff", f"cut-off must be HH:MM (24 h), got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettlementError("time_zone", f"unknown IANA time zone {name!r}") from None


def parse_weekday(text: str) -> int:
    key = text.strip().lower()[:3]
    if key not in WEEKDAYS:
        raise SettlementError("weekday", f"weekday must be one of {', '.join(WEEKDAYS)}, got {text!r}")
    return WEEKDAYS.index(key)


# --- cycles, cut-offs, holidays ------------------------------------------------------------------

def cutoff_at(settings: SettlementSettings, local_day: date) -> datetime:
    """The cut-off of ``local_day`` in the merchant's zone, as a UTC instant."""
    moment = datetime.combine(local_day, parse_cutoff(settings.cutoff_local), tzinfo=zone(settings.time_zone))
    return moment.astimezone(UTC)


def is_due(settings: SettlementSettings, business_date: date, holidays: frozenset[date]) -> bool:
    """Whether the run of ``business_date`` (a working day) settles this merchant.

    T0 and T1 settle on every working day. WEEKLY settles on its weekday, or — when that day
    and every day after it up to ``business_date`` were holidays — on the first working day
    after it (a holiday rolls the settlement to the next working day).
    """
    if business_date in holidays:
        return False
    if settings.cycle is not Cycle.WEEKLY:
        return True
    back = (business_date.weekday() - settings.weekday) % 7
    return all(business_date - timedelta(days=d) in holidays for d in range(1, back + 1))


def window_end(settings: SettlementSettings, business_date: date) -> datetime:
    """Where the window settled on ``business_date`` closes: today's cut-off for T0,
    yesterday's for T1 and WEEKLY (the window opens where the merchant's last one closed)."""
    day = business_date if settings.cycle is Cycle.T0 else business_date - timedelta(days=1)
    return cutoff_at(settings, day)


def reserve_minor(gross_minor: int, bps: int) -> int:
    """Rolling reserve held from a window: rounded down (the merchant's favour)."""
    return max(gross_minor, 0) * bps // 10_000


def instant_fee_minor(net_minor: int, bps: int) -> int:
    """The T+0 extra fee on a window's net sales: rounded half up."""
    return (max(net_minor, 0) * bps + 5_000) // 10_000


# --- bank accounts ----------------------------------------------------------------------------------

class AccountKind(StrEnum):
    CARD = "card"  # a CN bank card number, 16..19 digits with a Luhn check digit
    IBAN = "iban"


def account_number(text: str) -> tuple[str, AccountKind]:
    """The compact account number and its kind, or a ``SettlementError``."""
    compact = re.sub(r"[\s-]", "", text or "").upper()
    if compact.isdigit():
        if not 16 <= len(compact) <= 19:
            raise SettlementError("account_number", "a bank card number has 16 to 19 digits")
        if not luhn.is_valid(compact):
            raise SettlementError("account_number", "the bank card number fails its Luhn check digit")
        return compact, AccountKind.CARD
    if stdnum_iban.is_valid(compact):
        return compact, AccountKind.IBAN
    raise SettlementError("account_number", "not a bank card number (16-19 digits, Luhn) nor a valid IBAN")


def mask_account(number: str) -> str:
    """First 6 and last 4 of a card number, last 4 of an IBAN (its country and check digits kept)."""
    if number.isdigit():
        return number[:6] + "*" * (len(number) - 10) + number[-4:]
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def normalise_name(text: str) -> str:
    """Names compare after NFKC, case folding and collapsing white space."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def holder_matches(holder_name: str, registered_name: str) -> bool:
    return bool(normalise_name(holder_name)) and normalise_name(holder_name) == normalise_name(registered_name)


def micro_deposits_match(expected: tuple[int, int], given: tuple[int, int]) -> bool:
    """Both amounts, in either order."""
    return sorted(expected) == sorted(given)


# --- the clearing file and the bank statement --------------------------------------------------------

class FileError(ValueError):
    """A clearing file or statement refused as a whole; the message says why."""


@dataclass(frozen=True, slots=True)
class CsvFile:
    """A header record, detail records and a control record (count, sum, SHA-256)."""

    header: list[str]
    details: list[list[str]] = field(default_factory=list)


def render(kind: str, csv_file: CsvFile, amount_column: int) -> bytes:
    """``kind`` is the header's record type ("H" for both formats); the control record is
    ``T,<detail count>,<sum of amount_column>,<sha256 hex of every preceding byte>``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([kind, *csv_file.header])
    for row in csv_file.details:
        writer.writerow(["D", *row])
    body = buffer.getvalue().encode()
    total = sum(int(row[amount_column]) for row in csv_file.details)
    digest = hashlib.sha256(body).hexdigest()
    return body + f"T,{len(csv_file.details)},{total},{digest}\n".encode()


def parse(data: bytes, header_fields: int, detail_fields: int, amount_column: int) -> CsvFile:
    """Verify the control record and the layout; a ``FileError`` refuses the whole file."""
    if len(data) > limits.clearing_file_bytes_max:
        raise FileError(f"file larger than {limits.clearing_file_bytes_max} bytes")
    if not data.endswith(b"\n"):
        raise FileError("file does not end with its control record")
    cut = data.rstrip(b"\n").rfind(b"\n") + 1
    body, control = data[:cut], data[cut:].decode("utf-8", "replace").strip().split(",")
    if len(control) != 4 or control[0] != "T":
        raise FileError("last record is not a control record T,count,sum,sha256")
    if hashlib.sha256(body).hexdigest() != control[3].lower():
        raise FileError("control record hash does not match the file's contents")
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise FileError(f"not a UTF-8 CSV file: {error}") from None
    if not rows or rows[0][:1] != ["H"] or len(rows[0]) != header_fields + 1:
        raise FileError(f"first record must be a header H with {header_fields} fields")
    details = rows[1:]
    for number, row in enumerate(details, start=2):
        if row[:1] != ["D"] or len(row) != detail_fields + 1:
            raise FileError(f"record {number}: a detail record D has {detail_fields} fields")
        if not row[amount_column + 1].isdigit():
            raise FileError(f"record {number}: amount must be digits")
    if str(len(details)) != control[1]:
        raise FileError(f"control record counts {control[1]} details, the file has {len(details)}")
    total = sum(int(row[amount_column + 1]) for row in details)
    if str(total) != control[2]:
        raise FileError(f"control record sums {control[2]}, the details sum {total}")
    return CsvFile(rows[0][1:], [row[1:] for row in details])


# Clearing file (paypos → bank): H,file_id,business_date,created_at,originator
# D,payout_id,merchant_id,account_number,holder_name,amount_minor,currency
CLEARING_HEADER_FIELDS, CLEARING_DETAIL_FIELDS, CLEARING_AMOUNT = 4, 6, 4
# Bank statement (bank → paypos): H,statement_id,file_id,created_at
# D,payout_id,status(paid|returned),reason_code,reason,amount_minor,currency
STATEMENT_HEADER_FIELDS, STATEMENT_DETAIL_FIELDS, STATEMENT_AMOUNT = 3, 6, 4

RETURN_REASONS = {"R02": "account closed", "R03": "no account or holder name mismatch"}


def clearing_file_id(business_date: date) -> str:
    return f"CF{business_date:%Y%m%d}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
