"""The audit log (services.audit) on SQLite and PostgreSQL: entries in the caller's
transaction, newest first, scoped by merchant, paged by sequence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paypos.bootstrap import App
from paypos.services import audit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_an_entry_is_written_with_the_change_and_read_back_newest_first(app: App) -> None:
    with app.uow() as uow:
        first = audit.record(uow, NOW, "user:u1", "application.submit", "application", "ap_1", merchant_id="M1",
                             details={"reason": "complete"})
        second = audit.record(uow, NOW, "cli:root", "terminal.suspend", "terminal", "T0000001")
        uow.commit()
    assert second > first
    with app.uow(write=False) as uow:
        newest = audit.entries(uow)
        mine = audit.entries(uow, merchant_id="M1")
        older = audit.entries(uow, before_seq=second)
    assert [e.action for e in newest[:2]] == ["terminal.suspend", "application.submit"]
    assert [e.subject_id for e in mine] == ["ap_1"] and mine[0].details == {"reason": "complete"}
    assert second not in [e.seq for e in older]


def test_an_entry_of_a_rolled_back_change_does_not_exist(app: App) -> None:
    with app.uow() as uow:
        audit.record(uow, NOW, "user:u1", "merchant.suspend", "merchant", "GONE")
    with app.uow(write=False) as uow:
        assert audit.entries(uow, subject_id="GONE") == []


@pytest.mark.parametrize("actor", ["", "x" * 97])
def test_an_empty_or_oversized_actor_is_refused(app: App, actor: str) -> None:
    with app.uow() as uow, pytest.raises(ValueError, match="actor"):
        audit.record(uow, NOW, actor, "a", "b", "c")


def test_a_page_size_out_of_range_is_refused(app: App) -> None:
    with app.uow(write=False) as uow, pytest.raises(ValueError, match="limit"):
        audit.entries(uow, limit=0)
