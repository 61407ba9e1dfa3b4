"""The public application form's rate limit (entrypoints/console/pages_lifecycle._RateLimit):
per client address and from everyone together, in a sliding window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paypos import limits
from paypos.entrypoints.console.pages_lifecycle import _RateLimit

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_one_address_gets_its_quota_per_window_and_again_after_it() -> None:
    limit = _RateLimit()
    for _ in range(limits.console_public_applications_per_ip_max):
        assert limit.take(1, "10.0.0.1", NOON)
    assert not limit.take(1, "10.0.0.1", NOON)
    assert limit.take(1, "10.0.0.2", NOON)  # another address is not affected
    assert limit.take(2, "10.0.0.1", NOON)  # nor another app
    later = NOON + timedelta(seconds=limits.console_public_applications_window_s)
    assert limit.take(1, "10.0.0.1", later)


def test_all_addresses_together_stop_at_the_global_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "console_public_applications_global_max", 3)
    limit = _RateLimit()
    assert [limit.take(1, f"10.0.0.{n}", NOON) for n in range(5)] == [True, True, True, False, False]
