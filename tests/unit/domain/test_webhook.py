"""domain/webhook.py: the Paypos-Signature header against known answers, sign/verify
properties, the retry schedule, and endpoint URL and event-type rules."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypos import limits
from paypos.domain import webhook
from paypos.domain.webhook import EndpointError, RetrySchedule, SignatureError

# A fixed secret: "whsec_" + base64url(bytes 0..31).
SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
OTHER_SECRET = "whsec_" + "B" * 43
T = 1764763200  # 2025-12-03T12:00:00Z


@pytest.mark.parametrize("key, message, expected", [
    # RFC 4231 section 4.2, test case 1: the HMAC-SHA256 primitive itself.
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    # RFC 4231 section 4.3, test case 2.
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
])
def test_hmac_sha256_matches_rfc_4231(key: bytes, message: bytes, expected: str) -> None:
    assert hmac.new(key, message, hashlib.sha256).hexdigest() == expected


# Computed independently with OpenSSL 3: printf '%s' "$T.$BODY" | openssl dgst -sha256 -hmac "$SECRET"
@pytest.mark.parametrize("body, expected", [
    (b'{"id":"evt_test","object":"event"}', "50d6a328e319723f33627fce40fda475fb56f03b35e3080771b4bc29c14f20a7"),
    (b"", "465bbef1fd6d34e950a69701c64c8691023d61d84b34431e95450a700a561524"),
])
def test_signature_is_hmac_sha256_of_timestamp_dot_body_keyed_with_the_whole_secret(body: bytes, expected: str) -> None:
    assert webhook.signature(SECRET, T, body) == expected
    assert webhook.sign(body, [SECRET], T) == f"t={T},v1={expected}"
    assert webhook.verify(f"t={T},v1={expected}", body, SECRET, now=T) == T


def test_a_header_signed_with_two_secrets_verifies_under_either() -> None:
    header = webhook.sign(b"{}", [SECRET, OTHER_SECRET], T)
    assert header.count("v1=") == 2
    assert webhook.verify(header, b"{}", SECRET, T) == webhook.verify(header, b"{}", OTHER_SECRET, T) == T
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        webhook.verify(header, b"{}", "whsec_" + "C" * 43, T)


@pytest.mark.parametrize("header, reason", [
    ("", "not key=value"),
    ("v1=" + "0" * 64, "exactly one t="),
    (f"t={T},t={T},v1=" + "0" * 64, "exactly one t="),
    ("t=-5,v1=" + "0" * 64, "exactly one t="),
    (f"t={T}", "no v1= signature"),
    (f"t={T},v0=" + "0" * 64, "no v1= signature"),
    (f"t={T}," + ",".join(["v1=" + "0" * 64] * (limits.webhook_signatures_per_header_max + 1)), "more than"),
    (f"t={T},v1=" + "0" * limits.webhook_signature_header_chars_max, "longer than"),
    (f"t={T},v1=" + "0" * 64, "no v1 signature matches"),
    (f"t={T},v1=zz", "no v1 signature matches"),
])
def test_a_malformed_or_wrong_header_is_refused_with_its_reason(header: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        webhook.verify(header, b"{}", SECRET, T)


def test_a_timestamp_outside_the_tolerance_is_refused_either_way() -> None:
    header = webhook.sign(b"{}", [SECRET], T)
    tolerance = limits.webhook_signature_tolerance_s
    assert webhook.verify(header, b"{}", SECRET, T + tolerance) == T
    assert webhook.verify(header, b"{}", SECRET, T - tolerance) == T
    for now in (T + tolerance + 1, T - tolerance - 1):
        with pytest.raises(SignatureError, match="outside the tolerance"):
            webhook.verify(header, b"{}", SECRET, now)


secrets_st = st.binary(min_size=32, max_size=32).map(webhook.new_secret)


@given(secret=secrets_st, body=st.binary(max_size=512), timestamp=st.integers(0, 2**40))
def test_sign_then_verify_roundtrips(secret: str, body: bytes, timestamp: int) -> None:
    assert webhook.verify(webhook.sign(body, [secret], timestamp), body, secret, timestamp) == timestamp


@given(secret=secrets_st, body=st.binary(min_size=1, max_size=256), data=st.data())
def test_any_flipped_byte_of_the_body_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = body[:index] + bytes([body[index] ^ (1 << bit)]) + body[index + 1:]
    with pytest.raises(SignatureError):
        webhook.verify(webhook.sign(body, [secret], T), tampered, secret, T)


@given(secret=secrets_st, body=st.binary(max_size=64), data=st.data())
def test_any_changed_character_of_the_signature_fails(secret: str, body: bytes, data: st.DataObject) -> None:
    header = webhook.sign(body, [secret], T)
    index = data.draw(st.integers(header.index("v1=") + 3, len(header) - 1))
    replacement = data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != header[index]))
    with pytest.raises(SignatureError):
        webhook.verify(header[:index] + replacement + header[index + 1:], body, secret, T)


@given(skew=st.integers(limits.webhook_signature_tolerance_s + 1, 10**9), sign_=st.sampled_from([1, -1]))
def test_any_timestamp_outside_the_tolerance_fails(skew: int, sign_: int) -> None:
    with pytest.raises(SignatureError, match="outside the tolerance"):
        webhook.verify(webhook.sign(b"{}", [SECRET], T), b"{}", SECRET, T + sign_ * skew)


# --- secrets, ids ---------------------------------------------------------------------------

def test_secrets_and_ids_have_their_documented_form() -> None:
    assert webhook.new_secret(bytes(range(32))) == SECRET and webhook.is_secret(SECRET)
    assert not webhook.is_secret("whsec_short") and not webhook.is_secret("sk_" + SECRET[3:])
    assert webhook.new_id("we_", bytes(15)) == "we_" + "a" * 24
    with pytest.raises(ValueError):
        webhook.new_secret(bytes(16))


# --- the retry schedule ---------------------------------------------------------------------

def test_the_production_schedule_doubles_from_a_minute_to_six_hours_over_three_days() -> None:
    delays = RetrySchedule().delays_s()
    assert delays[:9] == (60, 120, 240, 480, 960, 1920, 3840, 7680, 15360)
    assert set(delays[9:]) == {6 * 3600}
    assert sum(delays) >= 3 * 24 * 3600 > sum(delays[:-1])
    assert len(delays) == 20
    assert RetrySchedule().delay_after(1) == 60 and RetrySchedule().delay_after(20) == 6 * 3600
    assert RetrySchedule().delay_after(21) is None


def test_a_shorter_first_step_keeps_the_three_day_span() -> None:
    quick = RetrySchedule(first_delay_s=0.2)
    assert quick.delays_s()[:3] == (0.2, 0.4, 0.8) and sum(quick.delays_s()) >= 3 * 24 * 3600


@pytest.mark.parametrize("kwargs", [{"first_delay_s": 0}, {"factor": 0.5}, {"first_delay_s": 10, "delay_s_max": 5},
                                    {"span_s": 0}, {"delay_s_max": 1, "first_delay_s": 1}])
def test_a_degenerate_schedule_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)


# --- endpoints ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://merchant.example/hooks", "http://127.0.0.1:8080/x?y=1"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert webhook.check_url(url) == url


@pytest.mark.parametrize("url", ["ftp://x.example/", "//x.example/", "https://", "https://u:p@x.example/",
                                 "https://x.example/ a", "https://x.example:70000/", "https://xn--é.example/",
                                 "https://x.example/" + "a" * limits.webhook_url_chars_max])
def test_other_urls_are_refused_naming_the_field(url: str) -> None:
    with pytest.raises(EndpointError) as refused:
        webhook.check_url(url)
    assert refused.value.field == "url"


def test_enabled_events_are_known_types_or_the_wildcard_alone() -> None:
    known = {"a.b", "c.d"}
    assert webhook.check_enabled_events(["c.d", "a.b", "c.d"], known) == ["a.b", "c.d"]
    assert webhook.check_enabled_events(["*"], known) == ["*"]
    for bad in ([], ["x.y"], ["*", "a.b"]):
        with pytest.raises(EndpointError):
            webhook.check_enabled_events(bad, known)
    assert webhook.subscribes(["*"], "a.b") and webhook.subscribes(["a.b"], "a.b")
    assert not webhook.subscribes(["c.d"], "a.b")
