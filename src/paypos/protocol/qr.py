"""EMVCo merchant-presented QR codes: pure functions over ``str``.

Standard: EMV QR Code Specification for Payment Systems (EMV QRCPS), Merchant-Presented
Mode (MPM), v1.1. A payload is a run of data objects, each "ID (2 digits) + length
(2 digits) + value", lengths counted in characters. ID 00 (payload format indicator)
comes first, ID 63 (CRC) last; the CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes of the
whole payload up to and including "6304". Templates hold data objects in the same form:
IDs 26-51 (merchant account information), 62 (additional data field), 64 (merchant
information - language template).

Amounts (ID 54) are decimal strings in major units ("25.50", JPY "500") and become an
``int`` of minor units here, with the exponent of the ISO 4217 currency in ID 53.

``QrError.field`` names the data object at fault: a top-level ID ("54"), a nested one as
"template.sub" ("62.05"), or "payload" for the payload as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from paypos.domain.money import Currency, MoneyError, currency
from paypos.protocol.errors import KeepsFields

__all__ = [
    "ADDITIONAL_DATA_TEMPLATE_ID",
    "LANGUAGE_TEMPLATE_ID",
    "MERCHANT_ACCOUNT_TEMPLATE_IDS",
    "MPM_PAYLOAD_CHARS_MAX",
    "POINT_OF_INITIATION_DYNAMIC",
    "POINT_OF_INITIATION_STATIC",
    "MpmPayload",
    "QrError",
    "append_crc",
    "build_mpm_payload",
    "crc16_ccitt_false",
    "decode_mpm",
    "decode_tlv",
    "encode_tlv",
    "parse_mpm_payload",
]

# EMV QRCPS MPM section 4.1: "the payload shall not exceed 512 characters".
MPM_PAYLOAD_CHARS_MAX = 512
PAYLOAD_FORMAT_INDICATOR = "01"
POINT_OF_INITIATION_STATIC = "11"
POINT_OF_INITIATION_DYNAMIC = "12"
MERCHANT_ACCOUNT_TEMPLATE_IDS = frozenset(f"{n:02d}" for n in range(26, 52))
# 02-25 are reserved for card networks and hold a primitive value, not a template.
MERCHANT_ACCOUNT_PRIMITIVE_IDS = frozenset(f"{n:02d}" for n in range(2, 26))
ADDITIONAL_DATA_TEMPLATE_ID = "62"
LANGUAGE_TEMPLATE_ID = "64"
TEMPLATE_IDS = MERCHANT_ACCOUNT_TEMPLATE_IDS | {ADDITIONAL_DATA_TEMPLATE_ID, LANGUAGE_TEMPLATE_ID}
CRC_ID = "63"
CRC_PREFIX = "6304"

_ID_CHARS = 2
_LENGTH_CHARS = 2
_VALUE_CHARS_MAX = 99
_DIGITS = re.compile(r"[0-9]+")
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]*))?")
_COUNTRY = re.compile(r"[A-Z]{2}")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_CONSUMER_DATA_REQUEST = re.compile(r"[AME]{1,3}")
_LANGUAGE = re.compile(r"[A-Za-z]{2}")

# Top-level primitive data objects: ID -> (min chars, max chars, name).
_PRIMITIVE_LIMITS: dict[str, tuple[int, int, str]] = {
    "00": (2, 2, "payload format indicator"),
    "01": (2, 2, "point of initiation method"),
    "52": (4, 4, "merchant category code"),
    "53": (3, 3, "transaction currency"),
    "54": (1, 13, "transaction amount"),
    "55": (2, 2, "tip or convenience indicator"),
    "56": (1, 13, "value of convenience fee fixed"),
    "57": (1, 5, "value of convenience fee percentage"),
    "58": (2, 2, "country code"),
    "59": (1, 25, "merchant name"),
    "60": (1, 15, "merchant city"),
    "61": (1, 10, "postal code"),
    "63": (4, 4, "CRC"),
}
# Additional data field template (ID 62) sub-objects: sub-ID -> max chars.
_ADDITIONAL_DATA_MAX = {f"{n:02d}": 25 for n in range(1, 9)} | {"09": 3, "10": 20, "11": 3}
_REQUIRED_IDS = ("52", "53", "58", "59", "60")
_GUI_CHARS_MAX = 32


class QrError(KeepsFields, ValueError):
    """A QR payload broke an EMV QRCPS rule; ``field`` names the data object ("54", "62.05")."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"ID {field}: {message}")
        self.field = field


# --- CRC ---------------------------------------------------------------------------------


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR."""
    if not isinstance(data, (bytes, bytearray)):
        raise QrError(f"CRC input must be bytes, not {type(data).__name__}", field=CRC_ID)
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def append_crc(body: str) -> str:
    """Append ID 63: "6304" and the CRC over ``body + "6304"`` as 4 upper-case hex digits."""
    with_prefix = body + CRC_PREFIX
    return f"{with_prefix}{crc16_ccitt_false(with_prefix.encode('utf-8')):04X}"


# --- TLV ---------------------------------------------------------------------------------


def _sub_field(parent: str | None, data_id: str) -> str:
    return data_id if parent is None else f"{parent}.{data_id}"


def decode_tlv(text: str, *, parent: str | None = None) -> dict[str, str]:
    """Split "ID + length + value" data objects into ``{ID: value}``, in payload order.

    ``parent`` is the template ID when ``text`` is a template's value; errors then name
    the nested object ("62.05"). Rejects truncation, non-digit IDs or lengths, length 00
    and a repeated ID.
    """
    where = "payload" if parent is None else parent
    if not isinstance(text, str):
        raise QrError(f"data objects must be a str, not {type(text).__name__}", field=where)
    objects: dict[str, str] = {}
    position = 0
    while position < len(text):
        header = text[position : position + _ID_CHARS + _LENGTH_CHARS]
        data_id, length_text = header[:_ID_CHARS], header[_ID_CHARS:]
        if len(data_id) < _ID_CHARS or not _DIGITS.fullmatch(data_id):
            raise QrError(f"data object ID must be 2 digits at character {position}", field=where)
        name = _sub_field(parent, data_id)
        if len(length_text) < _LENGTH_CHARS:
            raise QrError("truncated: length missing", field=name)
        if not _DIGITS.fullmatch(length_text):
            raise QrError(f"length must be 2 digits, got {length_text!r}", field=name)
        length = int(length_text)
        if length == 0:
            raise QrError("length must be 01 to 99", field=name)
        start = position + _ID_CHARS + _LENGTH_CHARS
        value = text[start : start + length]
        if len(value) < length:
            raise QrError(f"truncated: length {length} but {len(value)} characters left", field=name)
        if data_id in objects:
            raise QrError("data object appears twice", field=name)
        objects[data_id] = value
        position = start + length
    return objects


def encode_tlv(objects: Mapping[str, str], *, parent: str | None = None) -> str:
    """Join ``{ID: value}`` into "ID + length + value" data objects, in mapping order."""
    parts = []
    for data_id, value in objects.items():
        name = _sub_field(parent, str(data_id))
        if not isinstance(data_id, str) or len(data_id) != _ID_CHARS or not _DIGITS.fullmatch(data_id):
            raise QrError("data object ID must be 2 digits", field=name)
        if not isinstance(value, str):
            raise QrError(f"value must be a str, not {type(value).__name__}", field=name)
        if not 1 <= len(value) <= _VALUE_CHARS_MAX:
            raise QrError(f"value must be 1 to {_VALUE_CHARS_MAX} characters", field=name)
        parts.append(f"{data_id}{len(value):02d}{value}")
    return "".join(parts)


# --- payload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MpmPayload:
    """A merchant-presented payload. ``amount_minor`` is None when the buyer types it.

    ``extra`` keeps every top-level data object this model does not name (02-25 card
    network accounts, 55-57 tip/convenience fee, 65-99) as its raw value.
    """

    dynamic: bool
    merchant_account: dict[str, dict[str, str]]
    mcc: str
    currency: str
    country: str
    merchant_name: str
    merchant_city: str
    amount_minor: int | None = None
    postal_code: str | None = None
    additional_data: dict[str, str] = field(default_factory=dict)
    language: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


def _check_primitive(data_id: str, value: str) -> None:
    low, high, name = _PRIMITIVE_LIMITS[data_id]
    if not low <= len(value) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        raise QrError(f"{name} must be {size} characters, got {len(value)}", field=data_id)


def _currency_of(value: str) -> Currency:
    if not _DIGITS.fullmatch(value):
        raise QrError("transaction currency must be an ISO 4217 numeric code", field="53")
    try:
        return currency(value)
    except MoneyError as error:
        raise QrError(str(error), field="53") from error


def _amount_minor(text: str, exponent: int) -> int:
    """ID 54 "25.50" -> 2550 at exponent 2; at most ``exponent`` decimals."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise QrError(f"transaction amount must be digits and '.', got {text!r}", field="54")
    units, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise QrError(f"transaction amount has {len(fraction)} decimals, currency has {exponent}", field="54")
    return int(units + fraction.ljust(exponent, "0"))


def _amount_text(amount_minor: int, exponent: int) -> str:
    """2550 at exponent 2 -> "25.50"; 500 at exponent 0 -> "500"."""
    units, fraction = divmod(amount_minor, 10**exponent)
    return f"{units}" if exponent == 0 else f"{units}.{fraction:0{exponent}d}"


def _check_merchant_account(data_id: str, template: Mapping[str, str]) -> None:
    gui = template.get("00")
    if gui is None:
        raise QrError("merchant account template needs a globally unique identifier", field=f"{data_id}.00")
    if len(gui) > _GUI_CHARS_MAX:
        raise QrError(f"globally unique identifier must be at most {_GUI_CHARS_MAX} characters", field=f"{data_id}.00")


def _check_additional_data(template: Mapping[str, str]) -> None:
    for sub_id, value in template.items():
        limit = _ADDITIONAL_DATA_MAX.get(sub_id)
        if limit is not None and len(value) > limit:
            raise QrError(f"must be at most {limit} characters", field=f"62.{sub_id}")
    if "09" in template and not _CONSUMER_DATA_REQUEST.fullmatch(template["09"]):
        raise QrError("additional consumer data request must be letters A, M, E", field="62.09")
    if "11" in template and len(template["11"]) != 3:
        raise QrError("merchant channel must be 3 characters", field="62.11")


def _check_language(template: Mapping[str, str]) -> None:
    if not _LANGUAGE.fullmatch(template.get("00", "")):
        raise QrError("language preference must be 2 letters (ISO 639-1)", field="64.00")
    if not 1 <= len(template.get("01", "")) <= 25:
        raise QrError("merchant name alternate language must be 1 to 25 characters", field="64.01")
    if len(template.get("02", "")) > 15:
        raise QrError("merchant city alternate language must be at most 15 characters", field="64.02")


def _check_templates(objects: Mapping[str, str | dict[str, str]]) -> None:
    for data_id, value in objects.items():
        if data_id in MERCHANT_ACCOUNT_TEMPLATE_IDS:
            _check_merchant_account(data_id, value)  # type: ignore[arg-type]
        elif data_id == ADDITIONAL_DATA_TEMPLATE_ID:
            _check_additional_data(value)  # type: ignore[arg-type]
        elif data_id == LANGUAGE_TEMPLATE_ID:
            _check_language(value)  # type: ignore[arg-type]
        elif data_id in _PRIMITIVE_LIMITS:
            _check_primitive(data_id, value)  # type: ignore[arg-type]


def _check_objects(objects: Mapping[str, str | dict[str, str]]) -> None:
    """The MPM rules every payload meets, whether we built it or parsed it."""
    _check_templates(objects)
    if objects.get("00") != PAYLOAD_FORMAT_INDICATOR:
        raise QrError(f"payload format indicator must be {PAYLOAD_FORMAT_INDICATOR!r}", field="00")
    if objects.get("01", POINT_OF_INITIATION_STATIC) not in (POINT_OF_INITIATION_STATIC, POINT_OF_INITIATION_DYNAMIC):
        raise QrError("point of initiation method must be '11' (static) or '12' (dynamic)", field="01")
    if not any(data_id in MERCHANT_ACCOUNT_PRIMITIVE_IDS | MERCHANT_ACCOUNT_TEMPLATE_IDS for data_id in objects):
        raise QrError("at least one merchant account information (02-51) is required", field="02-51")
    for data_id in _REQUIRED_IDS:
        if data_id not in objects:
            raise QrError(f"{_PRIMITIVE_LIMITS[data_id][2]} is required", field=data_id)
    if not _DIGITS.fullmatch(objects["52"]):  # type: ignore[arg-type]
        raise QrError("merchant category code must be 4 digits (ISO 18245)", field="52")
    if not _COUNTRY.fullmatch(objects["58"]):  # type: ignore[arg-type]
        raise QrError("country code must be ISO 3166-1 alpha-2, upper case", field="58")
    exponent = _currency_of(objects["53"]).exponent  # type: ignore[arg-type]
    if "54" in objects:
        _amount_minor(objects["54"], exponent)  # type: ignore[arg-type]


# --- decode ------------------------------------------------------------------------------


def _check_crc(text: str, objects: Mapping[str, str]) -> None:
    if next(iter(objects), None) != "00":
        raise QrError("payload format indicator must be the first data object", field="00")
    if CRC_ID not in objects:
        raise QrError("CRC is required", field=CRC_ID)
    if next(reversed(objects)) != CRC_ID:
        raise QrError("CRC must be the last data object", field=CRC_ID)
    stated = objects[CRC_ID]
    if not _HEX4.fullmatch(stated):
        raise QrError("CRC must be 4 hexadecimal digits", field=CRC_ID)
    computed = crc16_ccitt_false(text[:-4].encode("utf-8"))
    if int(stated, 16) != computed:
        raise QrError(f"CRC mismatch: payload says {stated}, computed {computed:04X}", field=CRC_ID)


def decode_mpm(text: str) -> dict[str, str | dict[str, str]]:
    """Validate an MPM payload and return its data objects by ID, templates as dicts.

    Checks the length limit, TLV structure, ID 00 first, ID 63 last with a matching CRC,
    the nesting of templates 26-51, 62 and 64, and the mandatory data objects. Unknown
    IDs are kept as raw strings.
    """
    if not isinstance(text, str):
        raise QrError(f"payload must be a str, not {type(text).__name__}", field="payload")
    if len(text) > MPM_PAYLOAD_CHARS_MAX:
        raise QrError(f"payload must be at most {MPM_PAYLOAD_CHARS_MAX} characters", field="payload")
    flat = decode_tlv(text)
    _check_crc(text, flat)
    objects: dict[str, str | dict[str, str]] = {
        data_id: decode_tlv(value, parent=data_id) if data_id in TEMPLATE_IDS else value
        for data_id, value in flat.items()
    }
    _check_objects(objects)
    return objects


_MODELLED_IDS = frozenset({"00", "01", "52", "53", "54", "58", "59", "60", "61", "62", "63", "64"})


def parse_mpm_payload(text: str) -> MpmPayload:
    """Parse and validate an MPM payload (see :func:`decode_mpm`) into an :class:`MpmPayload`."""
    objects = decode_mpm(text)
    exponent = _currency_of(objects["53"]).exponent  # type: ignore[arg-type]
    amount = objects.get("54")
    postal_code = objects.get("61")
    return MpmPayload(
        dynamic=objects.get("01") == POINT_OF_INITIATION_DYNAMIC,
        merchant_account={
            k: v for k, v in objects.items() if k in MERCHANT_ACCOUNT_TEMPLATE_IDS  # type: ignore[misc]
        },
        mcc=objects["52"],  # type: ignore[arg-type]
        currency=objects["53"],  # type: ignore[arg-type]
        country=objects["58"],  # type: ignore[arg-type]
        merchant_name=objects["59"],  # type: ignore[arg-type]
        merchant_city=objects["60"],  # type: ignore[arg-type]
        amount_minor=None if amount is None else _amount_minor(amount, exponent),  # type: ignore[arg-type]
        postal_code=postal_code,  # type: ignore[arg-type]
        additional_data=dict(objects.get("62", {})),  # type: ignore[arg-type]
        language=dict(objects.get("64", {})),  # type: ignore[arg-type]
        extra={
            k: v  # type: ignore[misc]
            for k, v in objects.items()
            if k not in _MODELLED_IDS and k not in MERCHANT_ACCOUNT_TEMPLATE_IDS
        },
    )


# --- build -------------------------------------------------------------------------------


def _check_ans(data_id: str, value: object) -> None:
    """EMV QRCPS format "ans": characters of the Common Character Set (printable ASCII)."""
    if not isinstance(value, str) or not (value.isascii() and value.isprintable()):
        raise QrError("must be printable ASCII (format ans)", field=data_id)


def _template(data_id: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise QrError(f"template must be a mapping of sub-ID to value, not {type(value).__name__}", field=data_id)
    for sub_id, sub_value in value.items():
        _check_ans(f"{data_id}.{sub_id}", sub_value)
    return {sub_id: value[sub_id] for sub_id in sorted(value)}


def _amount_object(amount_minor: int | None, currency_numeric: str) -> dict[str, str]:
    if amount_minor is None:
        return {}
    if type(amount_minor) is not int:
        raise QrError(f"amount_minor must be an int of minor units, not {type(amount_minor).__name__}", field="54")
    if amount_minor < 1:
        raise QrError("amount_minor must be positive", field="54")
    return {"54": _amount_text(amount_minor, _currency_of(currency_numeric).exponent)}


def build_mpm_payload(
    *,
    dynamic: bool,
    merchant_account: Mapping[str, Mapping[str, str]],
    mcc: str,
    currency: str,
    country: str,
    merchant_name: str,
    merchant_city: str,
    amount_minor: int | None = None,
    postal_code: str | None = None,
    additional_data: Mapping[str, str] | None = None,
    language: Mapping[str, str] | None = None,
) -> str:
    """Build an MPM payload: 00 first, then IDs in ascending order, then the 63 CRC.

    ``currency`` is the ISO 4217 numeric code; ``amount_minor`` becomes ID 54 in major
    units with the currency's exponent ("25.50"), or is left out so the buyer types it.
    """
    if type(dynamic) is not bool:
        raise QrError("dynamic must be a bool", field="01")
    if not isinstance(merchant_account, Mapping) or not merchant_account:
        raise QrError("at least one merchant account template (26-51) is required", field="26-51")
    for data_id in merchant_account:
        if data_id not in MERCHANT_ACCOUNT_TEMPLATE_IDS:
            raise QrError("merchant account template ID must be 26 to 51", field=str(data_id))
    primitives = {"52": mcc, "53": currency, "58": country, "59": merchant_name, "60": merchant_city}
    if postal_code is not None:
        primitives["61"] = postal_code
    for data_id, value in primitives.items():
        _check_ans(data_id, value)
    objects: dict[str, str | dict[str, str]] = {
        "00": PAYLOAD_FORMAT_INDICATOR,
        "01": POINT_OF_INITIATION_DYNAMIC if dynamic else POINT_OF_INITIATION_STATIC,
    }
    objects |= {data_id: _template(data_id, merchant_account[data_id]) for data_id in sorted(merchant_account)}
    objects |= primitives | _amount_object(amount_minor, currency)
    if additional_data:
        objects["62"] = _template("62", additional_data)
    if language:
        objects["64"] = {sub_id: language[sub_id] for sub_id in sorted(language)}
    objects = {data_id: objects[data_id] for data_id in sorted(objects)}
    _check_objects(objects)
    body = encode_tlv(
        {k: encode_tlv(v, parent=k) if isinstance(v, dict) else v for k, v in objects.items()}
    )
    payload = append_crc(body)
    if len(payload) > MPM_PAYLOAD_CHARS_MAX:
        raise QrError(f"payload must be at most {MPM_PAYLOAD_CHARS_MAX} characters", field="payload")
    return payload
