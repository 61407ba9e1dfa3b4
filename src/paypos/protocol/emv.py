"""EMV chip data for the host and the software card: pure functions over ``bytes``.

- Field 55 (ICC data) is BER-TLV (EMV 4.4 Book 3 Annex B), carried in our ISO 8583 profile
  as hex characters. :func:`decode_tlv` / :func:`encode_tlv` wrap ``pyemv.tlv`` and accept
  only flat primitive tags, each once, in at most ``limits.emv_field_55_bytes_max`` bytes.
- ICC master key: EMV 4.4 Book 2 Annex A1.4.1 option A (``pyemv.kd.derive_icc_mk_a``).
  AC session key: Book 2 Annex A1.3.1 common session key derivation with
  R = ATC || '00 00 00 00 00 00' (``pyemv.kd.derive_common_sk``).
- Visa CVN 10: ARQC = ISO/IEC 9797-1 MAC algorithm 3, padding method 1, under the ICC master
  key, over the ten tags of :data:`CRYPTOGRAM_INPUT_TAGS` and the 4-byte CVR from 9F10;
  ARPC method 1 (Book 2 8.2.1) under the same key; tag 91 = ARPC (8) || ARC (2).
- Visa CVN 18: the same MAC with padding method 2 under the common session key, over the ten
  tags and the whole 9F10; ARPC method 2 (Book 2 8.2.2); tag 91 = ARPC (4) || CSU (4).

These are the computations of ``pyemv.cvn.VisaCVN10`` / ``VisaCVN18``, built here on
``pyemv.ac`` and ``pyemv.kd`` because those classes want the secure-messaging master keys
too, and ``VisaCVN18`` derives its ICC master key by option B, which differs from option A
for PANs of 17-19 digits, while the paypos profile (issue 3) names option A for both CVNs.
For PANs of at most 16 digits the two options are the same, and so are the results.

Every bad input raises :class:`EmvError`, whose ``field`` is "55" for the TLV structure, the
tag ("9F26", "9F10", "91", "8A", "5A", "5F34") for a data element, or "cvn" / "imk_ac".
Messages never echo keys or card numbers. ``verify_*`` return ``False`` only for a
cryptogram that does not match; comparisons are constant time.
"""

from __future__ import annotations

import functools
import hmac
import string
from collections.abc import Mapping
from typing import Literal

from pyemv import tlv as _tlv

from paypos import limits
from paypos.protocol._des import (
    adjust_odd_parity,
    mac_algorithm_3,
    pad_method_1,
    pad_method_2,
    tdes_ecb_encrypt,
    xor,
)
from paypos.protocol.card import CardDataError, validate_pan
from paypos.protocol.errors import KeepsFields

__all__ = [
    "CRYPTOGRAM_INPUT_TAGS",
    "CVN_10",
    "CVN_18",
    "CvmPerformed",
    "EmvError",
    "cryptogram_input",
    "ctq_consumer_device_cvm_performed",
    "cvm_performed",
    "cvm_results_cdcvm",
    "decode_field_55",
    "decode_tlv",
    "derive_common_sk_ac",
    "derive_icc_mk_a",
    "encode_field_55",
    "encode_tlv",
    "generate_arpc",
    "generate_arqc",
    "tag_9f02_amount",
    "tag_9f36_atc",
    "verify_arpc",
    "verify_arqc",
]

CVN_10 = 10
CVN_18 = 18
# EMV 4.4 Book 2 Annex D (recommended minimum set of data elements for the application
# cryptogram), in order, with their lengths from Book 3 Annex A.
CRYPTOGRAM_INPUT_TAGS: tuple[tuple[str, int], ...] = (
    ("9F02", 6),  # Amount, Authorised (n 12)
    ("9F03", 6),  # Amount, Other (n 12)
    ("9F1A", 2),  # Terminal Country Code (n 3)
    ("95", 5),  # Terminal Verification Results
    ("5F2A", 2),  # Transaction Currency Code (n 3)
    ("9A", 3),  # Transaction Date (n 6, YYMMDD)
    ("9C", 1),  # Transaction Type (n 2)
    ("9F37", 4),  # Unpredictable Number
    ("82", 2),  # Application Interchange Profile
    ("9F36", 2),  # Application Transaction Counter
)
_SUPPORTED_CVNS = (CVN_10, CVN_18)
_KEY_BYTES = 16  # double-length TDES
_ARQC_BYTES = 8
_ARC_BYTES = 2
_CSU_BYTES = 4
_ARPC_METHOD_1_BYTES = 8
_ARPC_METHOD_2_BYTES = 4
_PROPRIETARY_AUTH_DATA_BYTES_MAX = 8
# Visa Issuer Application Data (formats 0/1/3): length indicator, DKI, CVN, CVR (4 bytes,
# the first being the CVR length), then optional issuer discretionary data; 9F10 is at
# most 32 bytes (Book 3 Annex A).
_IAD_BYTES_MIN = 7
_IAD_BYTES_MAX = 32
_IAD_CVN_INDEX = 2
_IAD_CVR = slice(3, 7)
_HEX_DIGITS = frozenset(string.hexdigits)
# ISO/IEC 7816-4 5.2.2.1: '00' and 'FF' are invalid first bytes of a tag.
_INVALID_TAG_FIRST_BYTES = (0x00, 0xFF)
_CONSTRUCTED = 0x20

# CVM Results (9F34), EMV 4.4 Book 4 Annex A4: byte 1 the CVM code performed (Book 3 Annex
# C3 table 43; b7 "apply succeeding rule" is masked off), byte 2 the condition, byte 3 the
# result.
_CVM_CODE_MASK = 0x3F
_CVM_FAIL_PROCESSING = 0x00
_CVM_OFFLINE_PLAINTEXT_PIN = 0x01
_CVM_ONLINE_PIN = 0x02
_CVM_OFFLINE_PLAINTEXT_PIN_AND_SIGNATURE = 0x03
_CVM_OFFLINE_ENCIPHERED_PIN = 0x04
_CVM_OFFLINE_ENCIPHERED_PIN_AND_SIGNATURE = 0x05
_CVM_SIGNATURE = 0x1E
_CVM_NO_CVM_REQUIRED = 0x1F
_CVM_NOT_PERFORMED = 0x3F
_CVM_RESULT_UNKNOWN = 0x00
_CVM_RESULT_FAILED = 0x01
_CVM_RESULT_SUCCESSFUL = 0x02
_OFFLINE_PIN_CODES = frozenset({_CVM_OFFLINE_PLAINTEXT_PIN, _CVM_OFFLINE_ENCIPHERED_PIN})
_OFFLINE_PIN_AND_SIGNATURE_CODES = frozenset(
    {_CVM_OFFLINE_PLAINTEXT_PIN_AND_SIGNATURE, _CVM_OFFLINE_ENCIPHERED_PIN_AND_SIGNATURE}
)
# Card Transaction Qualifiers (9F6C), EMV Contactless Book C-3 Annex A: byte 2 b8.
_CTQ_CONSUMER_DEVICE_CVM_PERFORMED = 0x80

CvmPerformed = Literal["online_pin", "cdcvm", "signature", "no_cvm", "offline_pin", "failed"]


class EmvError(KeepsFields, ValueError):
    """EMV data broke a rule; ``field`` is "55", a tag such as "9F26", "cvn" or "imk_ac"."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class _RejectedTagError(Exception):
    """Raised from inside pyemv's decoder, which has no hook to refuse a tag otherwise."""

    def __init__(self, tag: str, rule: str) -> None:
        super().__init__(tag)
        self.tag = tag
        self.rule = rule




# --- TLV (field 55) ------------------------------------------------------------------------


def _require_tlv_size(size: int) -> None:
    if size > limits.emv_field_55_bytes_max:
        raise EmvError(
            f"field 55: at most {limits.emv_field_55_bytes_max} bytes of TLV data, got {size}",
            field="55",
        )


def decode_tlv(data: bytes) -> dict[str, bytes]:
    """Decode flat BER-TLV into {upper-case hex tag: value}, e.g. {"9F26": b"..."}.

    Rejects (as :class:`EmvError`, field "55") data over the field 55 limit, truncated or
    malformed TLV, a tag that appears twice, a tag starting '00' or 'FF', and constructed
    (template) tags, which have no place in a field 55 request.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise EmvError("field 55: TLV data must be bytes", field="55")
    _require_tlv_size(len(data))
    seen: set[str] = set()

    def keep_once(tag: str, value: bytes | bytearray) -> bytes:
        if int(tag[:2], 16) in _INVALID_TAG_FIRST_BYTES:
            raise _RejectedTagError(tag, "is not a valid tag")
        if tag in seen:
            raise _RejectedTagError(tag, "appears more than once")
        seen.add(tag)
        return bytes(value)

    try:
        decoded = _tlv.decode(bytes(data), convert=keep_once)
    except _tlv.DecodeError as error:
        where = f"tag {error.tag}" if error.tag else "a tag"
        raise EmvError(f"field 55: {error.msg} at {where}, offset {error.offset}", field="55") from None
    except _RejectedTagError as error:
        raise EmvError(f"field 55: tag {error.tag} {error.rule}", field="55") from None
    for tag, value in decoded.items():
        if int(tag[:2], 16) in _INVALID_TAG_FIRST_BYTES:
            raise EmvError(f"field 55: tag {tag} is not a valid tag", field="55")
        if not isinstance(value, bytes):
            raise EmvError(f"field 55: constructed tag {tag} is not allowed", field="55")
    return decoded


def _tag_name(tag: object) -> str:
    """An upper-case primitive tag name, checked for form; pyemv checks the tag's length."""
    if not isinstance(tag, str) or not tag or len(tag) % 2 or not _HEX_DIGITS.issuperset(tag):
        raise EmvError(f"field 55: tag {tag!r} must be an even number of hex characters", field="55")
    name = tag.upper()
    first = int(name[:2], 16)
    if first in _INVALID_TAG_FIRST_BYTES:
        raise EmvError(f"field 55: tag {name} is not a valid tag", field=name)
    if first & _CONSTRUCTED:
        raise EmvError(f"field 55: constructed tag {name} is not allowed", field=name)
    return name


def encode_tlv(tags: Mapping[str, bytes]) -> bytes:
    """Encode {hex tag: value} as BER-TLV, in the mapping's order; the inverse of decode_tlv."""
    if not isinstance(tags, Mapping):
        raise EmvError("field 55: tags must be a mapping of tag to bytes", field="55")
    normalised: dict[str, bytes] = {}
    for tag, value in tags.items():
        name = _tag_name(tag)
        if not isinstance(value, (bytes, bytearray)):
            raise EmvError(f"{name}: value must be bytes", field=name)
        if name in normalised:
            raise EmvError(f"field 55: tag {name} appears more than once", field=name)
        normalised[name] = bytes(value)
    try:
        encoded = _tlv.encode(normalised)
    except _tlv.EncodeError as error:
        raise EmvError(f"field 55: {error.msg} at tag {error.tag}", field=str(error.tag).upper()) from None
    _require_tlv_size(len(encoded))
    return encoded


def decode_field_55(hex_text: str) -> dict[str, bytes]:
    """ISO 8583 field 55 of our profile: the TLV bytes as hex characters (either case)."""
    if not isinstance(hex_text, str) or len(hex_text) % 2 or not _HEX_DIGITS.issuperset(hex_text):
        raise EmvError("field 55: must be an even number of hex characters", field="55")
    _require_tlv_size(len(hex_text) // 2)
    return decode_tlv(bytes.fromhex(hex_text))


def encode_field_55(tags: Mapping[str, bytes]) -> str:
    """Encode tags as field 55: the TLV bytes as upper-case hex characters."""
    return encode_tlv(tags).hex().upper()


# --- data elements -------------------------------------------------------------------------


def _bytes_of(value: object, field: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise EmvError(f"{field} must be bytes", field=field)
    return bytes(value)


def _exact(value: object, field: str, size: int) -> bytes:
    data = _bytes_of(value, field)
    if len(data) != size:
        raise EmvError(f"{field} must be {size} bytes, got {len(data)}", field=field)
    return data


def _tag(tags: Mapping[str, bytes], tag: str, size: int) -> bytes:
    if not isinstance(tags, Mapping):
        raise EmvError("field 55: tags must be a mapping of tag to bytes", field="55")
    if tag not in tags:
        raise EmvError(f"{tag} missing", field=tag)
    return _exact(tags[tag], tag, size)


def _bcd_digits(data: bytes, field: str) -> str:
    digits = data.hex()
    if not digits.isdigit():
        raise EmvError(f"{field} must be packed decimal digits", field=field)
    return digits


def tag_9f02_amount(tag_9f02: bytes) -> int:
    """Amount, Authorised (9F02, n 12: 6 bytes of packed BCD) in minor units."""
    return int(_bcd_digits(_exact(tag_9f02, "9F02", 6), "9F02"))


def tag_9f36_atc(tag_9f36: bytes) -> int:
    """Application Transaction Counter (9F36, 2 bytes binary) as an int."""
    return int.from_bytes(_exact(tag_9f36, "9F36", 2), "big")


def _require_cvn(cvn: object) -> int:
    if type(cvn) is not int or cvn not in _SUPPORTED_CVNS:
        raise EmvError(f"cvn must be {CVN_10} or {CVN_18}, got {cvn!r}", field="cvn")
    return cvn


def _issuer_application_data(tags: Mapping[str, bytes], cvn: int) -> bytes:
    if "9F10" not in tags:
        raise EmvError("9F10 missing", field="9F10")
    iad = _bytes_of(tags["9F10"], "9F10")
    if not _IAD_BYTES_MIN <= len(iad) <= _IAD_BYTES_MAX:
        raise EmvError(
            f"9F10 must be {_IAD_BYTES_MIN}-{_IAD_BYTES_MAX} bytes (Visa IAD), got {len(iad)}",
            field="9F10",
        )
    if iad[_IAD_CVN_INDEX] != cvn:
        raise EmvError(
            f"9F10: cryptogram version {iad[_IAD_CVN_INDEX]:02X} is not CVN {cvn} ({cvn:02X})",
            field="9F10",
        )
    return iad


def cryptogram_input(cvn: int, tags: Mapping[str, bytes]) -> bytes:
    """The bytes the ARQC is computed over: the :data:`CRYPTOGRAM_INPUT_TAGS` values, then
    for CVN 10 the 4-byte CVR from 9F10 (bytes 4-7 of the Visa IAD) and for CVN 18 the whole
    9F10. Byte 3 of 9F10 (the CVN) must name ``cvn``.
    """
    _require_cvn(cvn)
    parts = [_tag(tags, tag, size) for tag, size in CRYPTOGRAM_INPUT_TAGS]
    iad = _issuer_application_data(tags, cvn)
    parts.append(iad[_IAD_CVR] if cvn == CVN_10 else iad)
    return b"".join(parts)


# --- keys ----------------------------------------------------------------------------------


def _key(value: object, field: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != _KEY_BYTES:
        raise EmvError(f"{field} must be {_KEY_BYTES} bytes (a double-length TDES key)", field=field)
    return bytes(value)


def derive_icc_mk_a(imk: bytes, pan: str, psn: str) -> bytes:
    """ICC master key from the issuer master key: EMV 4.4 Book 2 Annex A1.4.1, option A.

    ``pan`` is 12-19 digits (no Luhn check: the derivation is defined over any PAN), ``psn``
    the 2-digit PAN sequence number (tag 5F34; ISO 8583 field 23 carries it as 3 digits).
    """
    key = _key(imk, "imk_ac")
    try:
        validate_pan(pan, luhn=False)
    except CardDataError as error:
        raise EmvError(f"5A: {error}", field="5A") from None
    if not isinstance(psn, str) or len(psn) != 2 or not (psn.isascii() and psn.isdigit()):
        raise EmvError("5F34: PAN sequence number must be 2 digits", field="5F34")
    return _icc_mk_a(key, pan, psn)


@functools.lru_cache(maxsize=limits.emv_icc_key_cache_entries_max)
def _icc_mk_a(imk: bytes, pan: str, psn: str) -> bytes:
    """Option A over validated inputs (what pyemv's ``kd.derive_icc_mk_a`` computes; the tests
    compare), memoised: a card's ICC master key never changes, so the host derives it once."""
    data_a = bytes.fromhex((pan + psn)[-16:].zfill(16))
    return adjust_odd_parity(tdes_ecb_encrypt(imk, data_a + xor(data_a, b"\xff" * 8)))


def derive_common_sk_ac(icc_mk_ac: bytes, tag_9f36: bytes) -> bytes:
    """AC session key: EMV 4.4 Book 2 Annex A1.3.1 with R = ATC || '00 00 00 00 00 00'."""
    key = _key(icc_mk_ac, "icc_mk_ac")
    atc = _exact(tag_9f36, "9F36", 2)
    # R = ATC || 00 * 6; left half from R with byte 2 = F0, right half with byte 2 = 0F.
    return adjust_odd_parity(tdes_ecb_encrypt(key, atc + b"\xf0" + bytes(5) + atc + b"\x0f" + bytes(5)))


def _ac_key(cvn: int, imk_ac: bytes, pan: str, psn: str, tags: Mapping[str, bytes]) -> bytes:
    """CVN 10 uses the ICC master key itself; CVN 18 the common session key of the ATC."""
    icc_mk_ac = derive_icc_mk_a(imk_ac, pan, psn)
    if cvn == CVN_10:
        return icc_mk_ac
    return derive_common_sk_ac(icc_mk_ac, _tag(tags, "9F36", 2))


# --- ARQC ----------------------------------------------------------------------------------


def ac_key(cvn: int, imk_ac: bytes, pan: str, psn: str, tags: Mapping[str, bytes]) -> bytes:
    """The key a CVN 10 / CVN 18 card's cryptograms are computed under (ICC master key, or
    its session key of the ATC in 9F36): derive it once when both the ARQC is checked and
    the ARPC computed (`arqc_under`, `arpc_under`)."""
    _require_cvn(cvn)
    return _ac_key(cvn, imk_ac, pan, psn, tags)


def arqc_under(cvn: int, key: bytes, tags: Mapping[str, bytes]) -> bytes:
    """The 8-byte ARQC over ``tags`` under the card's `ac_key`."""
    data = cryptogram_input(cvn, tags)
    # CVN 10: ISO/IEC 9797-1 padding method 1 (Visa); CVN 18: method 2 (EMV Book 2 A1.2.1).
    padded = pad_method_1(data) if cvn == CVN_10 else pad_method_2(data)
    return mac_algorithm_3(key, padded)[:_ARQC_BYTES]


def generate_arqc(cvn: int, imk_ac: bytes, pan: str, psn: str, tags: Mapping[str, bytes]) -> bytes:
    """The 8-byte ARQC (tag 9F26) a CVN 10 / CVN 18 card computes over ``tags``."""
    return arqc_under(cvn, _ac_key(cvn, imk_ac, pan, psn, tags), tags)


def verify_arqc_under(cvn: int, key: bytes, tags: Mapping[str, bytes]) -> bool:
    """True when tag 9F26 is the ARQC of ``tags`` under the card's `ac_key` (constant-time compare)."""
    _require_cvn(cvn)
    arqc = _tag(tags, "9F26", _ARQC_BYTES)
    return hmac.compare_digest(arqc_under(cvn, key, tags), arqc)


def verify_arqc(cvn: int, imk_ac: bytes, pan: str, psn: str, tags: Mapping[str, bytes]) -> bool:
    """True when tag 9F26 is the ARQC of ``tags`` (constant-time compare)."""
    _require_cvn(cvn)
    return verify_arqc_under(cvn, _ac_key(cvn, imk_ac, pan, psn, tags), tags)


# --- ARPC ----------------------------------------------------------------------------------


def _response_data(cvn: int, arc: bytes | None, csu: bytes | None) -> bytes:
    """The ARC (tag 8A, 2 bytes) for ARPC method 1, or the CSU (4 bytes) for method 2."""
    if cvn == CVN_10:
        if csu is not None:
            raise EmvError("91: CVN 10 uses ARPC method 1, which takes an ARC, not a CSU", field="91")
        if arc is None:
            raise EmvError("8A: an ARC is required for CVN 10 (ARPC method 1)", field="8A")
        return _exact(arc, "8A", _ARC_BYTES)
    if arc is not None:
        raise EmvError("8A: CVN 18 uses ARPC method 2, which takes a CSU, not an ARC", field="8A")
    if csu is None:
        raise EmvError("91: a CSU is required for CVN 18 (ARPC method 2)", field="91")
    return _exact(csu, "91", _CSU_BYTES)


def generate_arpc(
    cvn: int,
    imk_ac: bytes,
    pan: str,
    psn: str,
    tags: Mapping[str, bytes],
    *,
    arc: bytes | None = None,
    csu: bytes | None = None,
) -> bytes:
    """The Issuer Authentication Data (tag 91 value) answering the ARQC in tag 9F26.

    CVN 10: ARPC method 1 = TDES(ICC MK)[ARQC XOR (ARC || '00' * 6)]; returns ARPC (8) || ARC
    (2), with ``arc`` the 2-byte Authorisation Response Code (e.g. b"00").
    CVN 18: ARPC method 2 = MAC over ARQC || CSU under the session key, with no proprietary
    authentication data; returns ARPC (4) || CSU (4), with ``csu`` the Card Status Update.
    The caller verifies the ARQC first (:func:`verify_arqc`); this function does not.
    """
    _require_cvn(cvn)
    return arpc_under(cvn, _ac_key(cvn, imk_ac, pan, psn, tags), tags, arc=arc, csu=csu)


def arpc_under(cvn: int, key: bytes, tags: Mapping[str, bytes], *, arc: bytes | None = None,
               csu: bytes | None = None) -> bytes:
    """`generate_arpc` under the card's `ac_key`, derived once for the ARQC and the ARPC."""
    _require_cvn(cvn)
    arqc = _tag(tags, "9F26", _ARQC_BYTES)
    response = _response_data(cvn, arc, csu)
    if cvn == CVN_10:
        return _arpc_method_1(key, arqc, response) + response
    return _arpc_method_2(key, arqc, response, b"") + response


def _arpc_method_1(key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """EMV 4.4 Book 2 8.2.1: TDES(key)[ARQC XOR (ARC || '00' * 6)]."""
    return tdes_ecb_encrypt(key, xor(arqc, arc + bytes(6)))


def _arpc_method_2(key: bytes, arqc: bytes, csu: bytes, proprietary: bytes) -> bytes:
    """EMV 4.4 Book 2 8.2.2: MAC (ISO/IEC 9797-1 alg. 3, padding 2) over ARQC || CSU || PAD, 4 bytes."""
    return mac_algorithm_3(key, pad_method_2(arqc + csu + proprietary))[:_ARPC_METHOD_2_BYTES]


def verify_arpc(
    cvn: int, imk_ac: bytes, pan: str, psn: str, tags: Mapping[str, bytes], tag_91: bytes
) -> bool:
    """The card's check of the issuer's tag 91 against its own ARQC (9F26) and ATC (9F36).

    CVN 10: ``tag_91`` is ARPC (8) || ARC (2). CVN 18: ARPC (4) || CSU (4) || proprietary
    authentication data (0-8 bytes, EMV 4.4 Book 2 8.2.2). A wrong length is an EmvError; a
    wrong ARPC is ``False``.
    """
    _require_cvn(cvn)
    arqc = _tag(tags, "9F26", _ARQC_BYTES)
    data = _bytes_of(tag_91, "91")
    if cvn == CVN_10:
        if len(data) != _ARPC_METHOD_1_BYTES + _ARC_BYTES:
            raise EmvError(f"91 must be 10 bytes for CVN 10 (ARPC 8 + ARC 2), got {len(data)}", field="91")
        arpc, arc = data[:_ARPC_METHOD_1_BYTES], data[_ARPC_METHOD_1_BYTES:]
        key = _ac_key(cvn, imk_ac, pan, psn, tags)
        return hmac.compare_digest(_arpc_method_1(key, arqc, arc), arpc)
    fixed = _ARPC_METHOD_2_BYTES + _CSU_BYTES
    if not fixed <= len(data) <= fixed + _PROPRIETARY_AUTH_DATA_BYTES_MAX:
        raise EmvError(
            f"91 must be {fixed}-{fixed + _PROPRIETARY_AUTH_DATA_BYTES_MAX} bytes for CVN 18 "
            f"(ARPC 4 + CSU 4 + proprietary data 0-8), got {len(data)}",
            field="91",
        )
    arpc, csu, proprietary = data[:_ARPC_METHOD_2_BYTES], data[_ARPC_METHOD_2_BYTES:fixed], data[fixed:]
    key = _ac_key(cvn, imk_ac, pan, psn, tags)
    return hmac.compare_digest(_arpc_method_2(key, arqc, csu, proprietary), arpc)


# --- cardholder verification -----------------------------------------------------------------


def cvm_performed(tag_9f34: bytes, *, contactless: bool = False) -> CvmPerformed:
    """Which cardholder verification the CVM Results (9F34) report.

    Byte 1 is the CVM code performed (EMV 4.4 Book 3 Annex C3 table 43), byte 3 the result
    (Book 4 Annex A4: '00' unknown, '01' failed, '02' successful). Result '01' or code '00'
    (fail CVM processing) is "failed". '02' is "online_pin", '1E' "signature", '1F' (no CVM
    required) and '3F' (no CVM performed) "no_cvm". Offline PIN ('01', '04'; with signature
    '03', '05') is "offline_pin" when successful.

    Consumer device CVM has no code of its own: EMV Contactless Book C-2 (Kernel 2,
    Mastercard) reports it as '01 00 02', plaintext PIN verified by the ICC, successful.
    Contactless kernels never do offline PIN, so with ``contactless=True`` that value is
    "cdcvm". (Kernel 3, Visa, signals CDCVM in the CTQ instead: see
    :func:`ctq_consumer_device_cvm_performed`.) Any other code, e.g. a payment-system or
    biometric CVM, or a PIN whose result is unknown, is nothing the host counts: "no_cvm".
    """
    value = _exact(tag_9f34, "9F34", 3)
    code, result = value[0] & _CVM_CODE_MASK, value[2]
    if result not in (_CVM_RESULT_UNKNOWN, _CVM_RESULT_FAILED, _CVM_RESULT_SUCCESSFUL):
        raise EmvError(f"9F34: CVM Result {result:02X} is not 00, 01 or 02", field="9F34")
    if result == _CVM_RESULT_FAILED or code == _CVM_FAIL_PROCESSING:
        return "failed"
    if code == _CVM_ONLINE_PIN:
        return "online_pin"
    if code == _CVM_SIGNATURE:
        return "signature"
    if code == _CVM_OFFLINE_PLAINTEXT_PIN and contactless and result == _CVM_RESULT_SUCCESSFUL:
        return "cdcvm"
    pin_verified = (code in _OFFLINE_PIN_CODES and result == _CVM_RESULT_SUCCESSFUL) or (
        code in _OFFLINE_PIN_AND_SIGNATURE_CODES
    )
    return "offline_pin" if pin_verified else "no_cvm"


def cvm_results_cdcvm(tag_9f34: bytes) -> bool:
    """True when a contactless transaction's 9F34 reports consumer device CVM ('01 xx 02')."""
    return cvm_performed(tag_9f34, contactless=True) == "cdcvm"


def ctq_consumer_device_cvm_performed(tag_9f6c: bytes) -> bool:
    """Card Transaction Qualifiers (9F6C, 2 bytes), EMV Contactless Book C-3 Annex A: byte 2
    b8 "Consumer Device CVM Performed", how a Kernel 3 (Visa) phone reports CDCVM."""
    return bool(_exact(tag_9f6c, "9F6C", 2)[1] & _CTQ_CONSUMER_DEVICE_CVM_PERFORMED)
