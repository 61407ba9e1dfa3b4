"""Webhooks (issue 6, docs/webhooks.md): the ``Paypos-Signature`` header, the retry schedule
and the endpoint rules. Pure: no I/O; time and randomness are passed in.

Signature header::

    Paypos-Signature: t=1764763200,v1=5257a869e7ec...,v1=...

``t`` is the Unix time (seconds) of signing; each ``v1`` is the lowercase hex
HMAC-SHA256 (RFC 2104 with SHA-256, FIPS 180-4) keyed with an endpoint secret (the whole
``whsec_...`` string, UTF-8) over ``f"{t}."`` followed by the raw request body. During a
secret rotation there is one ``v1`` per live secret; a receiver accepts the request if any
``v1`` matches its secret and ``t`` is within its tolerance of its own clock (which bounds
replays).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from paypos import limits

SIGNATURE_HEADER = "Paypos-Signature"
EVENT_ID_HEADER = "Paypos-Event-Id"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"
SECRET_RANDOM_BYTES = 32
ENDPOINT_ID_PREFIX = "we_"
DELIVERY_ID_PREFIX = "wd_"
ALL_EVENTS = "*"
_SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{43}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """A request whose signature does not verify; the message says why."""


class EndpointError(ValueError):
    """An endpoint's URL or event list is unusable; ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# --- secrets and ids ----------------------------------------------------------------------

def new_secret(random_bytes: bytes) -> str:
    """An endpoint secret: ``whsec_`` + the base64url (unpadded) of 32 random bytes."""
    if len(random_bytes) != SECRET_RANDOM_BYTES:
        raise ValueError(f"an endpoint secret needs {SECRET_RANDOM_BYTES} random bytes")
    return SECRET_PREFIX + base64.urlsafe_b64encode(random_bytes).decode("ascii").rstrip("=")


def is_secret(text: str) -> bool:
    return _SECRET.fullmatch(text) is not None


def new_id(prefix: str, random_bytes: bytes) -> str:
    """``prefix`` + 24 lowercase base32 characters of 15 random bytes (like ``evt_`` ids)."""
    if len(random_bytes) != 15:
        raise ValueError("an id needs 15 random bytes")
    return prefix + base64.b32encode(random_bytes).decode("ascii").lower()


# --- signatures ---------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 keyed with ``secret`` over ``f"{timestamp}."`` + ``body``."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``Paypos-Signature`` value for ``body``: one ``v1`` per secret, newest first."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    if len(secrets) > limits.webhook_signatures_per_header_max:
        raise ValueError(f"at most {limits.webhook_signatures_per_header_max} signatures per header")
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={signature(s, timestamp, body)}" for s in secrets)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """(t, the v1 signatures) of a ``Paypos-Signature`` value; unknown schemes are ignored."""
    if len(header) > limits.webhook_signature_header_chars_max:
        raise SignatureError(f"{SIGNATURE_HEADER}: longer than {limits.webhook_signature_header_chars_max} characters")
    timestamps, signatures = [], []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"{SIGNATURE_HEADER}: {item.strip()[:20]!r} is not key=value")
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise SignatureError(f"{SIGNATURE_HEADER}: needs exactly one t=<unix seconds>")
    if not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER}: no {SCHEME}= signature")
    if len(signatures) > limits.webhook_signatures_per_header_max:
        raise SignatureError(f"{SIGNATURE_HEADER}: more than {limits.webhook_signatures_per_header_max} signatures")
    return int(timestamps[0]), signatures


def verify(header: str, body: bytes, secret: str, now: float,
           tolerance_s: float = limits.webhook_signature_tolerance_s) -> int:
    """Check a request as a receiver: its timestamp ``t`` when some ``v1`` is the HMAC of
    ``body`` under ``secret`` and ``t`` is within ``tolerance_s`` of ``now`` (Unix seconds);
    otherwise a :class:`SignatureError` naming the reason. Comparisons are constant-time."""
    timestamp, signatures = parse_header(header)
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"{SIGNATURE_HEADER}: timestamp {timestamp} is {now - timestamp:+.0f} s from now, "
                             f"outside the tolerance of {tolerance_s:g} s")
    expected = signature(secret, timestamp, body)
    matched = False
    for candidate in signatures:  # compare every one: the time taken does not depend on which matched
        matched |= _HEX_SHA256.fullmatch(candidate) is not None and hmac.compare_digest(candidate, expected)
    if not matched:
        raise SignatureError(f"{SIGNATURE_HEADER}: no {SCHEME} signature matches this secret and body")
    return timestamp


# --- the retry schedule -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff: retry ``n`` (1-based) waits ``min(first_delay_s * factor**(n-1),
    delay_s_max)`` after the failed attempt before it; the retries stop once their delays add up
    to ``span_s`` or more, and the delivery is then failed."""

    first_delay_s: float = limits.webhook_retry_first_delay_s
    factor: float = limits.webhook_retry_factor
    delay_s_max: float = limits.webhook_retry_delay_s_max
    span_s: float = limits.webhook_retry_span_s

    def __post_init__(self) -> None:
        if not (0 < self.first_delay_s <= self.delay_s_max and self.factor >= 1 and self.span_s > 0):
            raise ValueError(f"unusable retry schedule {self}")
        if self.span_s / self.delay_s_max > limits.webhook_retries_max:
            raise ValueError(f"retry schedule {self} would take more than {limits.webhook_retries_max} retries")

    def delays_s(self) -> tuple[float, ...]:
        """Every retry's delay, in order; their sum is at least ``span_s``."""
        delays: list[float] = []
        delay = self.first_delay_s
        while sum(delays) < self.span_s:
            delays.append(min(delay, self.delay_s_max))
            delay *= self.factor
        return tuple(delays)

    def delay_after(self, failures: int) -> float | None:
        """The wait after the ``failures``-th failed attempt in a row, or None: give up."""
        if failures < 1:
            raise ValueError("delay_after counts failed attempts from 1")
        delays = self.delays_s()
        return delays[failures - 1] if failures <= len(delays) else None


def is_success(status_code: int) -> bool:
    return 200 <= status_code <= 299


# --- endpoints ----------------------------------------------------------------------------

def check_url(url: str) -> str:
    """An endpoint URL: absolute http or https with a host, no credentials, bounded length."""
    if len(url) > limits.webhook_url_chars_max:
        raise EndpointError(f"url: at most {limits.webhook_url_chars_max} characters", "url")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise EndpointError("url: must be ASCII without spaces or control characters", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise EndpointError(f"url: {error}", "url") from None
    if parts.scheme not in ("http", "https"):
        raise EndpointError("url: must start with http:// or https://", "url")
    if not parts.hostname:
        raise EndpointError("url: has no host", "url")
    if parts.username is not None or parts.password is not None:
        raise EndpointError("url: must not carry credentials", "url")
    return url


def check_enabled_events(enabled: Sequence[str], known: Iterable[str]) -> list[str]:
    """The event types an endpoint asks for (``"*"`` alone: every type), sorted, deduplicated."""
    known_set = set(known)
    if not enabled:
        raise EndpointError("enabled_events: name at least one event type, or '*'", "enabled_events")
    wanted = sorted(set(enabled))
    if ALL_EVENTS in wanted and len(wanted) > 1:
        raise EndpointError("enabled_events: '*' stands alone", "enabled_events")
    unknown = [t for t in wanted if t != ALL_EVENTS and t not in known_set]
    if unknown:
        raise EndpointError(f"enabled_events: unknown event type {unknown[0]!r}", "enabled_events")
    return wanted


def subscribes(enabled: Iterable[str], event_type: str) -> bool:
    enabled_set = set(enabled)
    return ALL_EVENTS in enabled_set or event_type in enabled_set
