"""Merchant onboarding rules (issue 7, docs/merchant-lifecycle.md): the application's and the
merchant's state machines, the application's field validation, the document type check by
magic bytes, and the terminal's states. Pure: no I/O, no clock, no randomness.

Application:  draft → submitted → approved | rejected;  rejected → draft (edited again).
Merchant:     approved → active ⇄ suspended;  approved | active | suspended → closed.
Terminal:     requested → provisioned → active ⇄ suspended;  active | suspended | provisioned → replaced.

Identity numbers are checked with python-stdnum: an individual seller's Chinese resident
identity number (GB 11643-1999, ``stdnum.cn.ric``); a business's unified social credit code
(GB 32100-2015, ``stdnum.cn.uscc``) plus its legal representative's resident identity number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from paypos import limits


class OnboardingError(ValueError):
    """Bad input: the message names the field (``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class IllegalTransition(Exception):
    """A state change the machine does not allow; names both states."""

    def __init__(self, subject: str, current: str, wanted: str) -> None:
        super().__init__(f"{subject} is {current}; it cannot become {wanted}")
        self.subject, self.current, self.wanted = subject, current, wanted


# --- state machines ------------------------------------------------------------------------

APPLICATION_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"draft", "submitted"}),  # draft → draft is an edit
    "submitted": frozenset({"approved", "rejected"}),
    "rejected": frozenset({"draft"}),  # edited again after a rejection, then resubmitted
    "approved": frozenset(),
}
MERCHANT_TRANSITIONS: dict[str, frozenset[str]] = {
    "approved": frozenset({"active", "closed"}),
    "active": frozenset({"suspended", "closed"}),
    "suspended": frozenset({"active", "closed"}),
    "closed": frozenset(),
}
TERMINAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"provisioned"}),
    "provisioned": frozenset({"active", "replaced"}),
    "active": frozenset({"suspended", "replaced"}),
    "suspended": frozenset({"active", "replaced"}),
    "replaced": frozenset(),
}


def _check(table: dict[str, frozenset[str]], subject: str, current: str, wanted: str) -> str:
    if wanted not in table.get(current, frozenset()):
        raise IllegalTransition(subject, current, wanted)
    return wanted


def application_transition(current: str, wanted: str) -> str:
    return _check(APPLICATION_TRANSITIONS, "the application", current, wanted)


def merchant_transition(current: str, wanted: str) -> str:
    return _check(MERCHANT_TRANSITIONS, "the merchant", current, wanted)


def terminal_transition(current: str, wanted: str) -> str:
    return _check(TERMINAL_TRANSITIONS, "the terminal", current, wanted)


# --- the application's fields ---------------------------------------------------------------

KINDS = ("individual", "business")

# ISO 18245 merchant category codes paypos onboards without manual risk review: common
# retail and services. Anything else (gambling 7995, money transfer 4829, ...) is refused.
MCC_ALLOWED: dict[str, str] = {
    "4121": "Taxicabs and limousines",
    "5311": "Department stores",
    "5331": "Variety stores",
    "5399": "Miscellaneous general merchandise",
    "5411": "Grocery stores and supermarkets",
    "5441": "Candy, nut and confectionery stores",
    "5462": "Bakeries",
    "5499": "Miscellaneous food stores",
    "5651": "Family clothing stores",
    "5661": "Shoe stores",
    "5732": "Electronics stores",
    "5812": "Eating places and restaurants",
    "5814": "Fast food restaurants",
    "5912": "Drug stores and pharmacies",
    "5942": "Book stores",
    "5992": "Florists",
    "5995": "Pet shops, pet food and supplies",
    "5999": "Miscellaneous and specialty retail stores",
    "7230": "Beauty and barber shops",
    "7210": "Laundry, cleaning and garment services",
    "7542": "Car washes",
    "8021": "Dentists and orthodontists",
}

_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_E164 = re.compile(r"\+\d{8,15}")
_FIELDS = ("kind", "legal_name", "id_number", "licence_number", "phone", "mcc", "city", "address")


@dataclass(frozen=True, slots=True)
class ApplicationFields:
    """A complete, valid application; ``licence_number`` is None for an individual seller and
    ``id_number`` is then the seller's own resident ID (a business's legal representative's)."""

    kind: str
    legal_name: str
    id_number: str
    licence_number: str | None
    phone: str
    mcc: str
    city: str
    address: str


def validate_fields(values: dict[str, Any]) -> ApplicationFields:
    """Check every field of an application (a create, or the merge of an update into it)."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise OnboardingError(unknown[0], "unknown field")
    kind = _text(values, "kind", 16)
    if kind not in KINDS:
        raise OnboardingError("kind", "must be individual or business")
    licence = values.get("licence_number")
    if kind == "business":
        licence = validate_licence_number(_text(values, "licence_number", 18))
    elif licence:
        raise OnboardingError("licence_number", "only a business has a business licence number")
    return ApplicationFields(
        kind=kind,
        legal_name=_text(values, "legal_name", limits.application_legal_name_chars_max),
        id_number=validate_id_number(_text(values, "id_number", 18)),
        licence_number=licence or None,
        phone=validate_phone(_text(values, "phone", 16)),
        mcc=validate_mcc(_text(values, "mcc", 4)),
        city=_text(values, "city", limits.application_city_chars_max),
        address=_text(values, "address", limits.application_address_chars_max),
    )


def _text(values: dict[str, Any], field: str, chars_max: int) -> str:
    value = values.get(field)
    if not isinstance(value, str) or not value.strip():
        raise OnboardingError(field, "is required")
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > chars_max:
        raise OnboardingError(field, f"must be at most {chars_max} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise OnboardingError(field, "must not hold control characters")
    return value


def validate_id_number(value: str) -> str:
    """A Chinese resident identity number (18 characters, ISO 7064 MOD 11-2 check character)."""
    try:
        return str(ric.validate(value.upper()))
    except stdnum_errors.ValidationError as error:
        raise OnboardingError("id_number", f"not a valid resident identity number ({error})") from None


def validate_licence_number(value: str) -> str:
    """A unified social credit code (18 characters, GB 32100-2015 check character)."""
    try:
        return str(uscc.validate(value.upper()))
    except stdnum_errors.ValidationError as error:
        raise OnboardingError("licence_number", f"not a valid unified social credit code ({error})") from None


def validate_phone(value: str) -> str:
    """A Chinese mobile number (1[3-9] and 9 digits) or an E.164 number (+ and 8-15 digits)."""
    compact = re.sub(r"[ \-]", "", value)
    if _CN_MOBILE.fullmatch(compact) or _E164.fullmatch(compact):
        return compact
    raise OnboardingError("phone", "must be a Chinese mobile number (1[3-9] + 9 digits) or E.164 (+ and 8-15 digits)")


def validate_mcc(value: str) -> str:
    if not re.fullmatch(r"\d{4}", value):
        raise OnboardingError("mcc", "must be 4 digits (ISO 18245)")
    if value not in MCC_ALLOWED:
        raise OnboardingError("mcc", f"{value} is not an MCC paypos onboards (see docs/merchant-lifecycle.md)")
    return value


def mask_id_number(value: str) -> str:
    """First 6 (the region), last 4; the birth date and sequence hidden."""
    return value[:6] + "*" * (len(value) - 10) + value[-4:] if len(value) > 10 else "*" * len(value)


# --- rejections ----------------------------------------------------------------------------

REJECT_CODES: dict[str, str] = {
    "id_mismatch": "The identity document does not match the application",
    "id_invalid": "The identity document is unreadable, expired or invalid",
    "licence_invalid": "The business licence is unreadable, expired or invalid",
    "documents_missing": "A required document is missing",
    "mcc_mismatch": "The business does not match the merchant category",
    "high_risk": "The business is outside paypos's risk appetite",
    "other": "Another reason, given in the text",
}


def validate_rejection(codes: list[str], text: str) -> tuple[list[str], str]:
    if not codes:
        raise OnboardingError("reasons", "give at least one reason code")
    if len(codes) > limits.application_reject_reasons_max:
        raise OnboardingError("reasons", f"at most {limits.application_reject_reasons_max} reason codes")
    unknown = [c for c in codes if c not in REJECT_CODES]
    if unknown:
        raise OnboardingError("reasons", f"unknown reason code {unknown[0]!r} (one of {', '.join(REJECT_CODES)})")
    text = text.strip()
    if len(text) > limits.application_reject_text_chars_max:
        raise OnboardingError("text", f"must be at most {limits.application_reject_text_chars_max} characters")
    if "other" in codes and not text:
        raise OnboardingError("text", "reason 'other' needs a text")
    return list(dict.fromkeys(codes)), text


# --- documents -----------------------------------------------------------------------------

MEDIA_TYPES: dict[str, bytes] = {  # the allow-list, by the file's leading magic bytes
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


def sniff_media_type(content: bytes) -> str | None:
    return next((media for media, magic in MEDIA_TYPES.items() if content.startswith(magic)), None)


def check_document(content: bytes, declared: str) -> str:
    """The document's media type, when it is allowed, not empty, within the size limit, and
    its content is what it claims to be."""
    declared = declared.split(";", 1)[0].strip().lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    if declared not in MEDIA_TYPES:
        raise OnboardingError("media_type", f"must be one of {', '.join(MEDIA_TYPES)}, not {declared or 'none'}")
    if not content:
        raise OnboardingError("file", "is empty")
    if len(content) > limits.document_bytes_max:
        raise OnboardingError("file", f"must be at most {limits.document_bytes_max} bytes")
    sniffed = sniff_media_type(content)
    if sniffed != declared:
        raise OnboardingError("file", f"content is {sniffed or 'not an allowed type'}, declared {declared}")
    return declared


def sanitise_file_name(name: str) -> str:
    """The base name, for display only: letters, digits, '.', '-', '_' and spaces; others '_'."""
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    cleaned = "".join(ch if ch.isalnum() or ch in ".-_ " else "_" for ch in base).strip(" .")
    return cleaned[: limits.document_file_name_chars_max] or "document"
