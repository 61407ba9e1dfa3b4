"""TOTP for console sign-in (domain/totp.py, RFC 6238): the RFC's SHA-1 test vectors, the ±1
step window, replay refused, malformed codes refused."""

from __future__ import annotations

import base64

import pytest

from paypos.domain import totp

# RFC 6238 appendix B: the SHA-1 key "12345678901234567890", 8-digit codes; we use 6 digits,
# which are the last 6 of the RFC's 8.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(("unix_s", "code8"), [(59, "94287082"), (1111111109, "07081804"),
                                              (1234567890, "89005924"), (2000000000, "69279037")])
def test_codes_match_rfc_6238_vectors(unix_s: int, code8: str) -> None:
    assert totp.code_at(RFC_SECRET, unix_s) == code8[-6:]
    assert totp.matched_step(RFC_SECRET, code8[-6:], unix_s) == unix_s // 30


def test_a_code_is_accepted_one_step_either_side_and_not_two() -> None:
    now = 1_700_000_000
    code = totp.code_at(RFC_SECRET, now)
    assert totp.matched_step(RFC_SECRET, code, now + 30) == now // 30
    assert totp.matched_step(RFC_SECRET, code, now - 30) == now // 30
    assert totp.matched_step(RFC_SECRET, code, now + 60) is None


def test_a_used_code_cannot_be_replayed_nor_an_older_one_used() -> None:
    now = 1_700_000_000
    step = totp.matched_step(RFC_SECRET, totp.code_at(RFC_SECRET, now), now)
    assert step is not None
    assert totp.matched_step(RFC_SECRET, totp.code_at(RFC_SECRET, now), now, last_step=step) is None
    assert totp.matched_step(RFC_SECRET, totp.code_at(RFC_SECRET, now - 30), now, last_step=step) is None
    assert totp.matched_step(RFC_SECRET, totp.code_at(RFC_SECRET, now + 30), now + 30, last_step=step) == step + 1


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12 34 5"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert totp.matched_step(RFC_SECRET, bad, 59) is None


def test_a_code_with_a_space_in_the_middle_is_read() -> None:
    code = totp.code_at(RFC_SECRET, 59)
    assert totp.matched_step(RFC_SECRET, f"{code[:3]} {code[3:]}", 59) == 1


def test_new_secrets_are_base32_and_differ_and_the_uri_names_the_account() -> None:
    first, second = totp.new_secret(), totp.new_secret()
    assert first != second and len(base64.b32decode(first)) == 20
    assert totp.provisioning_uri(first, "owner@cafe.example").startswith("otpauth://totp/paypos:owner%40cafe.example")
