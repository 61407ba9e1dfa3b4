"""Time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits, 30 s steps) for console sign-in.

Pure: the time is passed in. A code is accepted for its own step and ``window_steps`` either
side (clock drift), and only for a step later than the last one accepted, so a code that worked
cannot be replayed within its window.
"""

from __future__ import annotations

import hmac

import pyotp

DIGITS = 6


def new_secret() -> str:
    """160 random bits, base32 (what authenticator apps expect)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str = "paypos") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def code_at(secret: str, unix_s: float, step_s: int = 30) -> str:
    return pyotp.TOTP(secret, interval=step_s).at(int(unix_s))


def matched_step(secret: str, code: str, unix_s: float, *, step_s: int = 30, window_steps: int = 1,
                 last_step: int | None = None) -> int | None:
    """The step ``code`` belongs to, if it is valid now and newer than ``last_step``; else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=step_s)
    current = int(unix_s) // step_s
    for step in range(current - window_steps, current + window_steps + 1):
        if hmac.compare_digest(totp.at(step * step_s), code):
            return step if last_step is None or step > last_step else None
    return None
