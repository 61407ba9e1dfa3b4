"""ISO 8583 wire layer of the host: "paypos ISO 8583 profile v1" (``docs/iso8583.md``).

Pure functions over ``bytes``; no sockets, no clock, no keys. The dialect is data:
:data:`SPEC` is pyiso8583's ``iso8583.specs.default_ascii`` (ISO 8583:1987, ASCII MTI,
16-hex-character bitmaps, every field ASCII; binary elements travel as hex characters),
copied and never changed, so a third-party terminal built on that spec interoperates
unchanged. :data:`FIELD_FORMATS` adds the ISO 8583:1987 character class of each field
the profile uses; the bitmap is always derived.

What ``default_ascii`` says about the fields we use (``len_type`` 0 = fixed, 2 = LLVAR,
3 = LLLVAR; lengths count ASCII characters):

=====  =====================================  ==========  =======  =======================
field  default_ascii description              len_type    max_len  profile v1 use
=====  =====================================  ==========  =======  =======================
2      Primary Account Number (PAN)           LLVAR (2)   19       n..19 manual PAN
3      Processing Code                        fixed       6        n6
4      Amount, Transaction                    fixed       12       n12 minor units
7      Transmission Date and Time             fixed       10       n10 MMDDhhmmss, UTC
11     System Trace Audit Number              fixed       6        n6 STAN
12     Time, Local Transaction                fixed       6        n6 hhmmss
13     Date, Local Transaction                fixed       4        n4 MMDD
14     Date, Expiration                       fixed       4        n4 YYMM
22     Point-of-Service Entry Mode            fixed       3        n3
23     PAN Sequence Number                    fixed       3        n3
35     Track 2 Data                           LLVAR (2)   37       z..37
37     Retrieval Reference Number             fixed       12       an12
38     Authorization ID Response              fixed       6        an6
39     Response Code                          fixed       2        an2
41     Card Acceptor Terminal ID              fixed       8        ans8
42     Card Acceptor ID Code                  fixed       15       ans15
49     Currency Code, Transaction             fixed       3        n3 ISO 4217 numeric
52     PIN                                    fixed       16       b64 as 16 hex chars
54     Additional Amounts                     LLLVAR (3)  240      an, 20 chars per amount
55     ICC data                               LLLVAR (3)  510      b..255 as hex chars
62     Reserved Private                       LLLVAR (3)  999      DUKPT KSN, 20 hex chars
64     MAC                                    fixed       16       b64 as 16 hex chars
70     Network Management Information Code    fixed       3        n3
74     Credits, Number                        fixed       10       n10
76     Debits, Number                         fixed       10       n10
86     Credits, Amount                        fixed       16       n16 minor units
88     Debits, Amount                         fixed       16       n16 minor units
90     Original Data Elements                 fixed       42       n42 (see OriginalData)
128    MAC                                    fixed       16       b64 as 16 hex chars
=====  =====================================  ==========  =======  =======================

Every field of ``default_ascii`` is ``data_enc="ascii"``; none is binary. The binary
elements of ISO 8583:1987 (52, 55, 64, 128, and our KSN in 62) therefore travel as
hex characters and their ``max_len`` counts characters: 55 holds at most 510 hex
characters (255 bytes of TLV); 62 is a 999-character private field, which profile v1
fills with the 20 hex characters of the KSN. ``default_ascii`` defines fields 2-128
only: bit 65 (which pyiso8583 reads as "a tertiary bitmap follows") is rejected.

pyiso8583 itself checks lengths, not characters, and reads length prefixes with
``int()`` (which accepts " 5" and "1_0"); :func:`decode_message` also insists on ASCII
digit length prefixes, upper-case hex bitmaps, a secondary bitmap only when a field
65-128 is present, and the :data:`FIELD_FORMATS` character classes. Fields outside
:data:`FIELD_FORMATS` are passed through as ``default_ascii`` reads them.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

import iso8583
import iso8583.specs

from paypos import limits
from paypos.protocol.errors import KeepsFields

__all__ = [
    "FIELD_FORMATS",
    "LENGTH_PREFIX_BYTES",
    "MAC_HEX_CHARS",
    "NETWORK_MANAGEMENT_CODES",
    "PROCESSING_CODES",
    "RESPONSE_CODES",
    "RESPONSE_ECHO_FIELDS",
    "RESPONSE_MTI",
    "SECURITY_ENVELOPE_FIELDS",
    "SPEC",
    "AdditionalAmount",
    "FrameBuffer",
    "FrameError",
    "MessageClass",
    "MessageError",
    "OriginalData",
    "PanEntryMode",
    "PosEntryMode",
    "Routing",
    "TransmissionDateTime",
    "business_fields",
    "decode_message",
    "encode_message",
    "encode_with_mac",
    "format_additional_amounts",
    "format_amount",
    "format_count",
    "format_icc_data",
    "format_original_data_elements",
    "format_transmission_datetime",
    "frame",
    "is_request",
    "mac_field",
    "mac_input_and_value",
    "mti_class",
    "parse_additional_amounts",
    "parse_amount",
    "parse_count",
    "parse_icc_data",
    "parse_ksn",
    "parse_original_data_elements",
    "parse_pin_block",
    "parse_pos_entry_mode",
    "parse_transmission_datetime",
    "peek_routing",
    "response_echo",
    "response_mti",
]

# pyiso8583's ISO 8583:1987 ASCII spec, copied so nothing here can change the shared one.
SPEC: Final[dict[str, dict[str, Any]]] = copy.deepcopy(iso8583.specs.default_ascii)

# ISO 8583:1987 character classes: n digits, an letters and digits, ans printable ASCII,
# z track 2 characters, b binary (here: an even number of hex characters).
FIELD_FORMATS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "2": "n", "3": "n", "4": "n", "7": "n", "11": "n", "12": "n", "13": "n",
        "14": "n", "22": "n", "23": "n", "35": "z", "37": "an", "38": "an", "39": "an",
        "41": "ans", "42": "ans", "49": "n", "52": "b", "54": "an", "55": "b", "62": "b",
        "64": "b", "70": "n", "74": "n", "76": "n", "86": "n", "88": "n", "90": "n",
        "128": "b",
    }
)  # fmt: skip

LENGTH_PREFIX_BYTES: Final = 2
MAC_HEX_CHARS: Final = 16
_MAC_BYTES = 8
_MTI_CHARS = 4
_BITMAP_CHARS = 16
_KSN_HEX_CHARS = 20
_PIN_BLOCK_HEX_CHARS = 16
_BITMAP_KEYS = frozenset({"p", "1"})
_DATA_FIELD_KEYS = frozenset(str(number) for number in range(2, 129) if number != 65)
_LABELS = {"t": "MTI", "p": "primary bitmap", "1": "secondary bitmap", "h": "header"}

_DIGITS = frozenset(string.digits)
_HEX = frozenset(string.hexdigits)
_UPPER_HEX = frozenset("0123456789ABCDEF")
_ALNUM = frozenset(string.ascii_letters + string.digits)
_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))
_TRACK2 = frozenset("0123456789=DF")
_FORMAT_RULES: dict[str, tuple[frozenset[str], str]] = {
    "n": (_DIGITS, "must be digits (format n)"),
    "an": (_ALNUM, "must be letters and digits (format an)"),
    "ans": (_PRINTABLE, "must be printable ASCII (format ans)"),
    "z": (_TRACK2, "must be track 2 characters: digits, '=', 'D', 'F' (format z)"),
    "b": (_HEX, "must be an even number of hex characters (format b)"),
}

# Message type indicators the host answers, and their responses (ISO 8583:1987: the
# third digit goes from 0 request to 1 response, and from 2 advice to 3 advice response).
RESPONSE_MTI: Final[Mapping[str, str]] = MappingProxyType(
    {
        "0100": "0110",
        "0200": "0210",
        "0220": "0230",
        "0400": "0410",
        "0420": "0430",
        "0500": "0510",
        "0600": "0610",  # administrative: the status of a wallet payment (docs/iso8583.md §5.8)
        "0800": "0810",
    }
)
PROCESSING_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {"000000": "purchase", "200000": "refund", "310000": "balance inquiry"}
)
NETWORK_MANAGEMENT_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {"001": "sign-on", "002": "sign-off", "301": "echo test"}
)
# Field 39 of profile v1, with the meanings issue 3 gives them.
RESPONSE_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "00": "approved",
        "05": "do not honour",
        "09": "request in progress",  # a wallet payment waiting for its buyer
        "12": "invalid transaction",
        "13": "invalid amount",
        "14": "invalid card number",
        "21": "no action taken",
        "25": "unable to locate record",  # 0600 naming nothing of this terminal
        "30": "format error",
        "51": "insufficient funds",
        "54": "expired card",
        "55": "incorrect PIN",
        "57": "transaction not permitted to cardholder",
        "58": "transaction not permitted to terminal",
        "62": "restricted card",
        "63": "security violation",
        "65": "contactless limit exceeded / PIN required",
        "75": "PIN tries exceeded",
        "91": "issuer unavailable",
        "94": "duplicate transmission with different content",
        "95": "reconcile error",
        "96": "system malfunction",
    }
)
# Fields a response copies from its request (0810 also copies 70).
RESPONSE_ECHO_FIELDS: Final = ("3", "4", "7", "11", "41", "42", "49", "70")
# Fields a retransmission may change without being "different content" (idempotency).
SECURITY_ENVELOPE_FIELDS: Final = frozenset({"52", "62", "64", "128"})


class MessageError(KeepsFields, ValueError):
    """A message or field value broke a rule of profile v1: ``MessageError(reason, field="4")``.

    ``field`` is the pyiso8583 key at fault ("t" MTI, "p"/"1" bitmaps, "2".."128"), or
    ``None`` for the message as a whole; ``reason`` is the rule, and ``str(error)`` is
    "field 4: <reason>". Never carries card data.
    """

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{_label(field)}: {reason}" if field is not None else reason)


class FrameError(KeepsFields, ValueError):
    """A length prefix broke the framing rules; the stream cannot be trusted after it.

    ``frames`` holds the complete payloads that preceded the bad prefix in the same feed.
    """

    def __init__(self, reason: str, frames: Iterable[bytes] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frames = tuple(frames)


def _label(field: str) -> str:
    return _LABELS.get(field, f"field {field}")


# --- field values ---------------------------------------------------------------------


def _format_problem(fmt: str, value: object) -> str | None:
    allowed, rule = _FORMAT_RULES[fmt]
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if not value or not allowed.issuperset(value):
        return rule
    if fmt == "b" and len(value) % 2:
        return rule
    return None


def _check_formats(fields: Mapping[str, str]) -> None:
    for key, value in fields.items():
        fmt = FIELD_FORMATS.get(key)
        problem = _format_problem(fmt, value) if fmt is not None else None
        if problem is not None:
            raise MessageError(problem, field=key)


def _check_mti(mti: object) -> str:
    if not isinstance(mti, str) or len(mti) != _MTI_CHARS or not _DIGITS.issuperset(mti):
        raise MessageError("must be 4 digits", field="t")
    return mti


def _fixed_digits(value: object, field: str, digits: int, what: str) -> str:
    if not isinstance(value, str) or len(value) != digits or not _DIGITS.issuperset(value):
        raise MessageError(f"{what} must be {digits} digits", field=field)
    return value


# --- message type indicator -----------------------------------------------------------


class MessageClass(StrEnum):
    """ISO 8583:1987 message class, the second digit of the MTI."""

    AUTHORIZATION = "1"
    FINANCIAL = "2"
    FILE_ACTION = "3"
    REVERSAL = "4"
    RECONCILIATION = "5"
    ADMINISTRATIVE = "6"
    FEE_COLLECTION = "7"
    NETWORK_MANAGEMENT = "8"


def mti_class(mti: str) -> MessageClass:
    """The message class of ``mti`` ("0200" -> FINANCIAL); reserved classes are errors."""
    digit = _check_mti(mti)[1]
    try:
        return MessageClass(digit)
    except ValueError:
        reason = f"message class {digit} is reserved in ISO 8583:1987"
        raise MessageError(reason, field="t") from None


def is_request(mti: str) -> bool:
    """True for a request or an advice (message function 0 or 2): a message to answer."""
    return _check_mti(mti)[2] in "02"


def response_mti(mti: str) -> str:
    """The response MTI to a request or advice of profile v1 ("0200" -> "0210")."""
    try:
        return RESPONSE_MTI[_check_mti(mti)]
    except KeyError:
        raise MessageError(f"{mti} is not a request or advice of profile v1", field="t") from None


def response_echo(request: Mapping[str, str]) -> dict[str, str]:
    """The start of a response: its MTI and the :data:`RESPONSE_ECHO_FIELDS` the request has."""
    response = {"t": response_mti(request.get("t", ""))}
    response.update({key: request[key] for key in RESPONSE_ECHO_FIELDS if key in request})
    return response


def business_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` without the security envelope (52, 62, 64, 128): what a duplicate must match."""
    return {key: value for key, value in fields.items() if key not in SECURITY_ENVELOPE_FIELDS}


# --- encode and decode ----------------------------------------------------------------


def _read_mti(raw: bytes) -> str:
    mti = raw[:_MTI_CHARS]
    if len(mti) != _MTI_CHARS or not mti.isdigit():
        raise MessageError("must be 4 digits", field="t")
    return mti.decode("ascii")


def _bitmap_fields(chars: bytes, offset: int) -> set[int]:
    """Field numbers of one 64-bit bitmap: bit 1 is the most significant bit."""
    bits = f"{int(chars, 16):064b}"
    return {offset + position for position, bit in enumerate(bits, start=1) if bit == "1"}


def _read_bitmaps(raw: bytes, hex_chars: frozenset[str]) -> tuple[set[int], int]:
    """Fields named by the bitmaps after the MTI, and the index where field data starts.

    Layout as pyiso8583 reads it: the primary bitmap; a secondary one when bit 1 is set;
    a tertiary one when bit 65 is set.
    """
    present: set[int] = set()
    index = _MTI_CHARS
    for offset, key, flag in ((0, "p", None), (64, "1", 1), (128, "1", 65)):
        if flag is not None and flag not in present:
            break
        chars = raw[index : index + _BITMAP_CHARS]
        if len(chars) != _BITMAP_CHARS or not hex_chars.issuperset(chars.decode("latin-1")):
            raise MessageError("must be 16 upper-case hex characters", field=key)
        present |= _bitmap_fields(chars, offset)
        index += _BITMAP_CHARS
    return present, index


def _check_bitmap_rules(present: set[int]) -> None:
    if 65 in present:
        raise MessageError("bit 65 (a tertiary bitmap) is not used in profile v1", field="1")
    if 1 in present and not any(65 < number <= 128 for number in present):
        raise MessageError("secondary bitmap is present but no field 65-128 is", field="1")


def _from_decode_error(error: iso8583.DecodeError, raw: bytes) -> MessageError:
    if error.msg.startswith("Extra data after last field"):
        extra = len(raw) - error.pos
        return MessageError(f"{extra} bytes of extra data after the last field")
    return MessageError(f"{error.msg} (at byte {error.pos})", field=error.field)


def decode_message(raw: bytes) -> dict[str, str]:
    """Decode one message (the bytes after the length prefix) into {"t": MTI, "2": ...}.

    Bitmap keys are not returned (the bitmap is derived). Any malformation, including
    trailing data, raises :class:`MessageError` naming the field.
    """
    if not isinstance(raw, bytes | bytearray):
        raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    _read_mti(raw)
    present, _ = _read_bitmaps(raw, _UPPER_HEX)
    _check_bitmap_rules(present)
    try:
        decoded, encoded = iso8583.decode(raw, SPEC)
    except iso8583.DecodeError as error:
        raise _from_decode_error(error, raw) from None
    for key, parts in encoded.items():
        if parts["len"] and not parts["len"].isdigit():
            raise MessageError("length prefix must be ASCII digits", field=key)
    fields = {key: value for key, value in decoded.items() if key not in _BITMAP_KEYS}
    _check_formats(fields)
    return fields


def _checked_document(fields: Mapping[str, str]) -> dict[str, str]:
    """A fresh dict for pyiso8583 (``iso8583.encode`` writes into the dict it is given)."""
    document: dict[str, str] = {}
    for key, value in fields.items():
        if key in _BITMAP_KEYS:
            continue
        if key != "t" and key not in _DATA_FIELD_KEYS:
            raise MessageError(f"{key!r} is not a field of profile v1 (t, 2-64, 66-128)")
        document[key] = value
    if "t" not in document:
        raise MessageError("is required", field="t")
    _check_mti(document["t"])
    _check_formats(document)
    return document


def encode_message(fields: Mapping[str, str]) -> bytes:
    """Encode {"t": MTI, "2": ...} with :data:`SPEC`; bitmaps are derived ("p"/"1" ignored)."""
    document = _checked_document(fields)
    try:
        encoded, _ = iso8583.encode(document, SPEC)
    except iso8583.EncodeError as error:
        raise MessageError(error.msg, field=error.field) from None
    return bytes(encoded)


# --- routing of malformed messages ----------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """What a 39 = 30 answer needs: the MTI, field 11 (STAN) and field 41 (terminal id)."""

    mti: str
    stan: str
    terminal_id: str


def _field_extent(raw: bytes, index: int, number: int) -> tuple[int, int]:
    """(start, end) of field ``number``'s data at ``index``; MessageError when unreadable."""
    spec = SPEC[str(number)]
    len_type, max_len = int(spec["len_type"]), int(spec["max_len"])
    if len_type:
        prefix = raw[index : index + len_type]
        if len(prefix) != len_type or not prefix.isdigit() or int(prefix) > max_len:
            raise MessageError("unreadable length prefix", field=str(number))
        index, max_len = index + len_type, int(prefix)
    if index + max_len > len(raw):
        raise MessageError("message ends inside the field", field=str(number))
    return index, index + max_len


def _trusted_length(number: int, data: bytes) -> bool:
    """A variable field's length is trusted only if its data has the field's character class."""
    fmt = FIELD_FORMATS.get(str(number))
    return int(SPEC[str(number)]["len_type"]) == 0 or fmt is None or (
        _format_problem(fmt, data.decode("latin-1")) is None
    )


def _leading_fields(raw: bytes, last: int) -> dict[int, bytes]:
    """Data of the fields up to ``last`` (in wire order), stopping at the first unreadable one."""
    present, index = _read_bitmaps(raw, _HEX)
    values: dict[int, bytes] = {}
    for number in sorted(n for n in present if 2 <= n <= last):
        try:
            start, index = _field_extent(raw, index, number)
        except MessageError:
            break
        if not _trusted_length(number, raw[start:index]):
            break
        values[number] = raw[start:index]
    return values


def peek_routing(raw: bytes) -> Routing | None:
    """Best-effort MTI, STAN and terminal id of a message that may be malformed.

    Walks the bitmaps and the fields up to 41 by :data:`SPEC`'s lengths, stopping at a
    length prefix that is not digits, exceeds the field's maximum, runs past the end, or
    delimits data outside the field's character class. ``None`` when the MTI is not 4
    digits, a bitmap is not hex, or 11 (6 digits) or 41 (8 printable characters) cannot
    be read; then the host closes the connection instead of answering. Best effort: a
    wrong length before 41 whose data still looks right shifts what is read, and the
    answer then names a STAN/terminal the sender will not match.
    """
    try:
        mti = _read_mti(bytes(raw))
        values = _leading_fields(bytes(raw), 41)
    except MessageError:
        return None
    stan, terminal_id = values.get(11, b""), values.get(41, b"")
    if not stan.isdigit() or not terminal_id:
        return None
    text = terminal_id.decode("latin-1")
    if not _PRINTABLE.issuperset(text):
        return None
    return Routing(mti=mti, stan=stan.decode("ascii"), terminal_id=text)


# --- MAC placement --------------------------------------------------------------------


def mac_field(fields: Mapping[str, str]) -> Literal["64", "128"]:
    """Where the MAC goes: "128" when a field above 64 is present, else "64" (ISO 8583:1987).

    MAC fields already in ``fields`` do not count; bitmap keys are ignored.
    """
    numbers = {int(key) for key in fields if key in _DATA_FIELD_KEYS} - {64, 128}
    return "128" if any(number > 64 for number in numbers) else "64"


def encode_with_mac(fields: Mapping[str, str], mac_fn: Callable[[bytes], bytes]) -> bytes:
    """Encode ``fields`` with a MAC as the last 16 characters.

    The MAC field (:func:`mac_field`) is set to 16 zeros, the message is encoded, and
    ``mac_fn`` gets every byte before those 16 characters; its 8-byte result replaces
    them as upper-case hex. Any 64 or 128 already in ``fields`` is replaced.
    """
    document = {key: value for key, value in fields.items() if key not in ("64", "128")}
    placement = mac_field(document)
    document[placement] = "0" * MAC_HEX_CHARS
    encoded = encode_message(document)
    mac_input = encoded[:-MAC_HEX_CHARS]
    mac = mac_fn(mac_input)
    if not isinstance(mac, bytes) or len(mac) != _MAC_BYTES:
        raise ValueError(f"mac_fn must return {_MAC_BYTES} bytes")
    return mac_input + mac.hex().upper().encode("ascii")


def _mac_placement_problem(fields: Mapping[str, str]) -> MessageError | None:
    above_64 = any(int(key) > 64 for key in fields if key in _DATA_FIELD_KEYS and key != "128")
    if "128" in fields and "64" in fields:
        return MessageError("must be absent when the MAC is in field 128", field="64")
    if "128" in fields and not above_64:
        return MessageError("MAC belongs in field 64 when no other field is above 64", field="128")
    if "64" in fields and above_64:
        return MessageError("MAC belongs in field 128 when a field above 64 is present", field="64")
    return None


def mac_input_and_value(raw: bytes, fields: Mapping[str, str] | None = None) -> tuple[bytes, bytes] | None:
    """(MAC input, 8-byte MAC) of a received message, or ``None`` when it carries no MAC.

    The message is decoded first (:class:`MessageError` if malformed) unless ``fields``
    gives what :func:`decode_message` returned for ``raw``; the MAC must sit where
    :func:`mac_field` puts it, and it is then necessarily the last 16 characters: the
    input is every byte before them. Compare with ``hmac.compare_digest``.
    """
    if fields is None:
        fields = decode_message(raw)
    if "64" not in fields and "128" not in fields:
        return None
    problem = _mac_placement_problem(fields)
    if problem is not None:
        raise problem
    value = fields.get("128", fields.get("64", ""))
    if len(value) != MAC_HEX_CHARS or bytes(raw[-MAC_HEX_CHARS:]) != value.encode("ascii"):
        raise RuntimeError("decoded MAC field is not the last 16 characters of the message")
    return bytes(raw[:-MAC_HEX_CHARS]), bytes.fromhex(value)


# --- framing --------------------------------------------------------------------------


def _check_frame_bytes_max(frame_bytes_max: int) -> int:
    if not 1 <= frame_bytes_max <= 0xFFFF:
        raise ValueError("frame_bytes_max must be 1-65535 (a 2-byte length prefix)")
    return frame_bytes_max


def _frame_size_problem(size: int, frame_bytes_max: int) -> str | None:
    if size == 0:
        return "frame length 0: an empty message is not allowed"
    if size > frame_bytes_max:
        return f"frame length {size} exceeds the {frame_bytes_max}-byte limit"
    return None


def frame(payload: bytes, *, frame_bytes_max: int = limits.iso_frame_bytes_max) -> bytes:
    """``payload`` preceded by its length as a 2-byte unsigned big-endian integer."""
    problem = _frame_size_problem(len(payload), _check_frame_bytes_max(frame_bytes_max))
    if problem is not None:
        raise FrameError(problem)
    return len(payload).to_bytes(LENGTH_PREFIX_BYTES, "big") + bytes(payload)


class FrameBuffer:
    """Incremental reader of 2-byte-length-prefixed frames; no I/O.

    Feed it whatever the socket returned; it returns the complete payloads. It never
    holds more than one frame (at most ``frame_bytes_max`` + 2 bytes). A zero or oversize
    declared length raises :class:`FrameError`, and so does every later feed: the
    connection must be closed.
    """

    def __init__(self, frame_bytes_max: int = limits.iso_frame_bytes_max) -> None:
        self._frame_bytes_max = _check_frame_bytes_max(frame_bytes_max)
        self._buffer = bytearray()
        self._failure: str | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned as part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failure is not None:
            raise FrameError(f"stream out of step after an earlier error ({self._failure})")
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= LENGTH_PREFIX_BYTES:
            size = int.from_bytes(self._buffer[:LENGTH_PREFIX_BYTES], "big")
            problem = _frame_size_problem(size, self._frame_bytes_max)
            if problem is not None:
                self._failure = problem
                raise FrameError(problem, frames)
            end = LENGTH_PREFIX_BYTES + size
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[LENGTH_PREFIX_BYTES:end]))
            del self._buffer[:end]
        return frames


# --- amounts and counts (fields 4, 74, 76, 86, 88) ------------------------------------

_AMOUNT_FIELDS = ("4", "86", "88")
_COUNT_FIELDS = ("74", "76")


def _width(field: str, allowed: tuple[str, ...]) -> int:
    if field not in allowed:
        raise ValueError(f"field must be one of {', '.join(allowed)}, not {field!r}")
    return int(SPEC[field]["max_len"])


def _parse_number(value: str, field: str, allowed: tuple[str, ...], what: str) -> int:
    return int(_fixed_digits(value, field, _width(field, allowed), what))


def _format_number(number: int, field: str, allowed: tuple[str, ...], what: str) -> str:
    digits = _width(field, allowed)
    if type(number) is not int or not 0 <= number < 10**digits:
        raise MessageError(f"{what} must be an int from 0 to {10**digits - 1}", field=field)
    return f"{number:0{digits}d}"


def parse_amount(value: str, field: str = "4") -> int:
    """Minor units in field 4 (n12) or 86/88 (n16): "000000001230" -> 1230."""
    return _parse_number(value, field, _AMOUNT_FIELDS, "amount")


def format_amount(minor: int, field: str = "4") -> str:
    """Minor units as field 4 (12 digits) or 86/88 (16 digits), zero-filled."""
    return _format_number(minor, field, _AMOUNT_FIELDS, "amount")


def parse_count(value: str, field: str) -> int:
    """A transaction count of field 74 or 76 (n10)."""
    return _parse_number(value, field, _COUNT_FIELDS, "count")


def format_count(count: int, field: str) -> str:
    """A transaction count as field 74 or 76 (10 digits, zero-filled)."""
    return _format_number(count, field, _COUNT_FIELDS, "count")


# --- field 7 transmission date and time ----------------------------------------------


@dataclass(frozen=True)
class TransmissionDateTime:
    """Field 7, MMDDhhmmss in UTC (GMT in ISO 8583:1987); it has no year."""

    month: int
    day: int
    hour: int
    minute: int
    second: int

    def __post_init__(self) -> None:
        _check_mmddhhmmss(self.month, self.day, self.hour, self.minute, self.second, "7")

    def to_datetime(self, now: datetime) -> datetime:
        """The UTC datetime with this MMDDhhmmss nearest to ``now`` (last, this or next year)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        now = now.astimezone(UTC)
        candidates = []
        for year in (now.year - 1, now.year, now.year + 1):
            try:
                moment = datetime(
                    year, self.month, self.day, self.hour, self.minute, self.second, tzinfo=UTC
                )
            except ValueError:  # 29 February outside a leap year
                continue
            candidates.append(moment)
        if not candidates:
            raise MessageError("transmission date 0229 is not within a year of now", field="7")
        return min(candidates, key=lambda moment: abs(moment - now))


def parse_transmission_datetime(value: str, field: str = "7") -> TransmissionDateTime:
    """Validate MMDDhhmmss (month 01-12, a day of that month, 29 February allowed)."""
    text = _fixed_digits(value, field, 10, "transmission date and time")
    month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(0, 10, 2))
    _check_mmddhhmmss(month, day, hour, minute, second, field)
    return TransmissionDateTime(month, day, hour, minute, second)


def _check_mmddhhmmss(
    month: int, day: int, hour: int, minute: int, second: int, field: str
) -> None:
    try:  # 2000 is a leap year, so 29 February passes; the year is unknown here.
        datetime(2000, month, day, hour, minute, second)
    except (TypeError, ValueError):
        reason = "transmission date and time must be a valid MMDDhhmmss"
        raise MessageError(reason, field=field) from None


def format_transmission_datetime(moment: datetime) -> str:
    """Field 7 for an aware datetime: its UTC MMDDhhmmss."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(UTC).strftime("%m%d%H%M%S")


# --- field 90 original data elements -------------------------------------------------

_INSTITUTION_ID_DIGITS = 11


@dataclass(frozen=True)
class OriginalData:
    """Field 90 (n42, ISO 8583:1987): the message a reversal or completion refers to.

    Original MTI (4) + original STAN (6) + original field 7 (10) + acquiring institution
    id (11) + forwarding institution id (11). The ids are stored zero-padded to 11 digits
    ("" or "0" for none), so ``parse(format(x)) == x``.
    """

    mti: str
    stan: str
    transmission_datetime: str
    acquirer_id: str = "0"
    forwarding_id: str = "0"

    def __post_init__(self) -> None:
        _fixed_digits(self.mti, "90", _MTI_CHARS, "original MTI")
        _fixed_digits(self.stan, "90", 6, "original STAN")
        parse_transmission_datetime(self.transmission_datetime, field="90")
        for name in ("acquirer_id", "forwarding_id"):
            value = getattr(self, name)
            ok = isinstance(value, str) and len(value) <= _INSTITUTION_ID_DIGITS
            if not ok or not _DIGITS.issuperset(value):
                raise MessageError(f"{name} must be at most 11 digits", field="90")
            object.__setattr__(self, name, value.zfill(_INSTITUTION_ID_DIGITS))


def parse_original_data_elements(value: str) -> OriginalData:
    """Split field 90 into its five parts (see :class:`OriginalData`)."""
    text = _fixed_digits(value, "90", 42, "original data elements")
    return OriginalData(text[0:4], text[4:10], text[10:20], text[20:31], text[31:42])


def format_original_data_elements(original: OriginalData) -> str:
    """Field 90 for ``original``: 42 digits."""
    return (
        original.mti
        + original.stan
        + original.transmission_datetime
        + original.acquirer_id
        + original.forwarding_id
    )


# --- field 54 additional amounts ------------------------------------------------------

_ADDITIONAL_AMOUNT_CHARS = 20


@dataclass(frozen=True)
class AdditionalAmount:
    """One 20-character entry of field 54: account type (n2), amount type (n2, "01"
    ledger balance, "02" available balance), currency (n3), sign ("C" credit, "D" debit)
    and amount (n12 minor units)."""

    account_type: str
    amount_type: str
    currency: str
    sign: Literal["C", "D"]
    amount_minor: int

    def __post_init__(self) -> None:
        _fixed_digits(self.account_type, "54", 2, "account type")
        _fixed_digits(self.amount_type, "54", 2, "amount type")
        _fixed_digits(self.currency, "54", 3, "currency")
        if self.sign not in ("C", "D"):
            raise MessageError("amount sign must be C or D", field="54")
        amount = self.amount_minor
        if type(amount) is not int or not 0 <= amount < 10**12:
            raise MessageError("amount must be an int from 0 to 999999999999", field="54")


def format_additional_amounts(amounts: Iterable[AdditionalAmount]) -> str:
    """Field 54: the entries, 20 characters each (at most 6, ISO 8583:1987 an..120)."""
    entries = [
        f"{a.account_type}{a.amount_type}{a.currency}{a.sign}{format_amount(a.amount_minor)}"
        for a in amounts
    ]
    if not 1 <= len(entries) <= 6:
        raise MessageError("must hold 1 to 6 amounts", field="54")
    return "".join(entries)


def parse_additional_amounts(value: str) -> tuple[AdditionalAmount, ...]:
    """The entries of field 54."""
    size = len(value) if isinstance(value, str) else 0
    if size == 0 or size % _ADDITIONAL_AMOUNT_CHARS or size > 6 * _ADDITIONAL_AMOUNT_CHARS:
        raise MessageError("must be 1 to 6 entries of 20 characters", field="54")
    step = _ADDITIONAL_AMOUNT_CHARS
    return tuple(_additional_amount(value[i : i + step]) for i in range(0, size, step))


def _additional_amount(entry: str) -> AdditionalAmount:
    sign = entry[7]
    if sign not in ("C", "D"):
        raise MessageError("amount sign must be C or D", field="54")
    amount = int(_fixed_digits(entry[8:], "54", 12, "amount"))
    return AdditionalAmount(entry[0:2], entry[2:4], entry[4:7], sign, amount)


# --- field 22 POS entry mode ----------------------------------------------------------


class PanEntryMode(StrEnum):
    """Positions 1-2 of field 22 used by profile v1."""

    MANUAL = "01"
    MAGNETIC_STRIPE = "02"
    ICC = "05"
    CONTACTLESS_ICC = "07"


@dataclass(frozen=True)
class PosEntryMode:
    """Field 22: how the PAN was read, and whether a PIN was entered (third digit 1)."""

    pan_entry_mode: PanEntryMode
    pin_entered: bool


def parse_pos_entry_mode(value: str) -> PosEntryMode:
    """"051" chip + PIN, "072" contactless without PIN, "021" swipe, "012" manual, ..."""
    text = _fixed_digits(value, "22", 3, "POS entry mode")
    try:
        pan_entry_mode = PanEntryMode(text[:2])
    except ValueError:
        raise MessageError("PAN entry mode must be 01, 02, 05 or 07", field="22") from None
    if text[2] not in "12":
        raise MessageError("PIN entry digit must be 1 (PIN entered) or 2 (no PIN)", field="22")
    return PosEntryMode(pan_entry_mode, pin_entered=text[2] == "1")


# --- binary fields carried as hex: 52, 55, 62 -----------------------------------------


def _hex_bytes(value: object, field: str, chars: int | None, what: str) -> bytes:
    size = f"{chars} hex characters" if chars else "an even number of hex characters"
    if not isinstance(value, str) or _format_problem("b", value) is not None:
        raise MessageError(f"{what} must be {size}", field=field)
    if chars is not None and len(value) != chars:
        raise MessageError(f"{what} must be {size}", field=field)
    return bytes.fromhex(value)


def parse_pin_block(value: str) -> bytes:
    """Field 52: the 8-byte encrypted PIN block (ISO 9564 format 0 under the DUKPT PIN key)."""
    return _hex_bytes(value, "52", _PIN_BLOCK_HEX_CHARS, "PIN block")


def parse_ksn(value: str) -> bytes:
    """Field 62: the 10-byte DUKPT key serial number (ANSI X9.24-1:2009)."""
    return _hex_bytes(value, "62", _KSN_HEX_CHARS, "KSN")


def parse_icc_data(value: str) -> bytes:
    """Field 55: the EMV TLV bytes (at most 255, 510 hex characters)."""
    data = _hex_bytes(value, "55", None, "ICC data")
    if len(data) * 2 > int(SPEC["55"]["max_len"]):
        raise MessageError("ICC data must be at most 255 bytes", field="55")
    return data


def format_icc_data(data: bytes) -> str:
    """Field 55 for EMV TLV bytes: upper-case hex, at most 255 bytes."""
    if not data or len(data) * 2 > int(SPEC["55"]["max_len"]):
        raise MessageError("ICC data must be 1 to 255 bytes", field="55")
    return bytes(data).hex().upper()
