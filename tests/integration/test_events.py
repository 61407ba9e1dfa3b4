"""The events outbox (services/events.py) on SQLite and PostgreSQL: an event commits with
its unit of work or not at all, stays with its merchant, and lists in order."""

from __future__ import annotations

import pytest

from paypos.adapters.db.events import SqlEventStore
from paypos.bootstrap import App, init_database
from paypos.networks.sandbox import catalog
from paypos.services import events

CAFE, SHOP = catalog.CAFE.merchant_id, catalog.SHOP.merchant_id


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


def test_an_event_exists_iff_its_unit_of_work_committed(seeded: App) -> None:
    with seeded.uow() as uow:
        kept = events.emit(uow, CAFE, "payment_request.paid", {"id": "pr_a", "amount": 100}, seeded.clock.now)
        uow.commit()
    with seeded.uow() as uow:
        events.emit(uow, CAFE, "payment_request.paid", {"id": "pr_b"}, seeded.clock.now)
        # no commit: rolled back
    with seeded.uow(write=False) as uow:
        listed = SqlEventStore(uow.connection).list_events(CAFE)
        assert [e.id for e in listed] == [kept]
        assert listed[0].data == {"id": "pr_a", "amount": 100} and listed[0].object_id == "pr_a"
        assert events.to_json(listed[0])["data"]["object"]["amount"] == 100
        assert SqlEventStore(uow.connection).get_event(SHOP, kept) is None  # another merchant's: not found


def test_events_list_in_commit_order_after_a_cursor(seeded: App) -> None:
    with seeded.uow() as uow:
        ids = [events.emit(uow, CAFE, "refund.succeeded", {"id": f"re_{n}"}, seeded.clock.now) for n in range(3)]
        uow.commit()
    with seeded.uow(write=False) as uow:
        store = SqlEventStore(uow.connection)
        first = store.list_events(CAFE, limit=1)
        assert [e.id for e in first] == ids[:1]
        assert [e.id for e in store.list_events(CAFE, after_seq=first[0].seq)] == ids[1:]


@pytest.mark.parametrize("event_type, data", [("payment.exploded", {"id": "x"}), ("payment.failed", {})])
def test_unknown_types_and_objects_without_an_id_are_refused(seeded: App, event_type: str, data: dict) -> None:
    with seeded.uow() as uow, pytest.raises(ValueError):
        events.emit(uow, CAFE, event_type, data, seeded.clock.now)
