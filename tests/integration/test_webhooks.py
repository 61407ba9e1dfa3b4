"""Webhook fan-out and delivery (services/events.py, services/webhooks.py) on SQLite and
PostgreSQL, with a scripted receiver and the fake clock: one delivery per subscribed endpoint
in the event's transaction, signed POSTs, the retry schedule to the second, giving up after
three days, redelivery, secret rotation, and leases that keep two loops from sending at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from paypos.adapters.db.webhooks import SqlWebhookStore
from paypos.bootstrap import App, init_database
from paypos.domain import webhook
from paypos.domain.webhook import RetrySchedule
from paypos.networks.sandbox import catalog
from paypos.services import events
from paypos.services import webhooks as service
from tests.conftest import FakeClock

CAFE, SHOP = catalog.CAFE.merchant_id, catalog.SHOP.merchant_id
SCHEDULE = RetrySchedule()  # the production schedule: the fake clock makes it quick
URL = "https://merchant.example/hooks"


class Receiver:
    """A scripted endpoint: answers from ``script`` in turn (an exception is raised), then 200."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.received: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        self.received.append((url, body, dict(headers)))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, Exception):
            raise answer
        return answer, "busy" if answer >= 300 else "ok"


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


def endpoint(app: App, merchant_id: str = CAFE, enabled: tuple[str, ...] = ("*",), url: str = URL) -> tuple[str, str]:
    with app.uow() as uow:
        made, secret = service.create_endpoint(uow, app.vault, merchant_id, url, list(enabled), app.clock())
        uow.commit()
    return made.id, secret


def emit(app: App, event_type: str = "payment_request.paid", merchant_id: str = CAFE) -> str:
    with app.uow() as uow:
        event_id = events.emit(uow, merchant_id, event_type, {"id": "pr_x", "amount": 1234}, app.clock())
        uow.commit()
    return event_id


def deliveries(app: App, event_id: str, merchant_id: str = CAFE) -> list[dict[str, Any]]:
    with app.uow(write=False) as uow:
        return service.deliveries_of(uow, merchant_id, event_id)


def deliver(app: App, post: Callable[[str, bytes, Mapping[str, str]], tuple[int, str]]) -> int:
    return service.deliver_due(app, SCHEDULE, post)


# --- fan-out -------------------------------------------------------------------------------

def test_an_event_makes_one_delivery_per_endpoint_that_asked_for_its_type(seeded: App) -> None:
    everything, _ = endpoint(seeded)
    payouts_only, _ = endpoint(seeded, enabled=("payout.paid",))
    endpoint(seeded, SHOP)  # another merchant's endpoint gets none of CAFE's events
    paid = emit(seeded)
    assert [d["endpoint"] for d in deliveries(seeded, paid)] == [everything]
    payout = emit(seeded, "payout.paid")
    assert sorted(d["endpoint"] for d in deliveries(seeded, payout)) == sorted([everything, payouts_only])


def test_an_event_rolled_back_leaves_no_delivery(seeded: App) -> None:
    endpoint(seeded)
    with seeded.uow() as uow:
        events.emit(uow, CAFE, "payment.failed", {"id": "pay_x"}, seeded.clock())
    with seeded.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)).scalar_one() == 0


def test_an_endpoint_made_after_an_event_gets_only_later_events(seeded: App) -> None:
    before = emit(seeded)
    made, _ = endpoint(seeded)
    after = emit(seeded)
    assert deliveries(seeded, before) == []
    assert [d["endpoint"] for d in deliveries(seeded, after)] == [made]


def test_the_secret_is_stored_only_sealed(seeded: App) -> None:
    _, secret = endpoint(seeded)
    assert webhook.is_secret(secret)
    with seeded.engine.connect() as connection:
        row = connection.execute(sa.select(webhook_endpoints)).one()
    assert secret.encode() not in row.secret_enc and seeded.vault.open(row.secret_enc, "webhook-secret") == secret


# --- delivery ------------------------------------------------------------------------------

def test_a_2xx_answer_delivers_the_event_once_signed_with_the_endpoint_secret(seeded: App, clock: FakeClock) -> None:
    _, secret = endpoint(seeded)
    event_id = emit(seeded)
    receiver = Receiver(204)
    assert deliver(seeded, receiver) == 1
    assert deliver(seeded, receiver) == 0
    url, body, headers = receiver.received[0]
    assert url == URL and headers["Content-Type"] == "application/json"
    assert headers["Paypos-Event-Id"] == event_id
    assert webhook.verify(headers["Paypos-Signature"], body, secret, clock().timestamp()) == int(clock().timestamp())
    sent = json.loads(body)
    assert sent["id"] == event_id and sent["type"] == "payment_request.paid"
    assert sent["data"]["object"] == {"id": "pr_x", "amount": 1234}
    (delivery,) = deliveries(seeded, event_id)
    assert delivery["state"] == "succeeded" and delivery["attempt_count"] == 1
    assert delivery["last_status_code"] == 204 and delivery["next_attempt_at"] is None
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(204, "")]


def test_failures_wait_per_the_schedule_and_every_attempt_is_recorded(seeded: App, clock: FakeClock) -> None:
    endpoint(seeded)
    event_id = emit(seeded)
    receiver = Receiver(500, httpx.ConnectTimeout("timed out"), 302)
    delays = SCHEDULE.delays_s()
    for step, delay in enumerate(delays[:3]):
        assert deliver(seeded, receiver) == 1
        (delivery,) = deliveries(seeded, event_id)
        assert delivery["state"] == "pending" and delivery["attempt_count"] == step + 1
        assert delivery["next_attempt_at"] == (clock() + timedelta(seconds=delay)).isoformat().replace("+00:00", "Z")
        clock.advance(delay - 1)
        assert deliver(seeded, receiver) == 0  # not due yet
        clock.advance(1)
    assert deliver(seeded, receiver) == 1
    (delivery,) = deliveries(seeded, event_id)
    assert delivery["state"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, None, 302, 200]
    errors = [a["error"] for a in delivery["attempts"]]
    assert errors[0] == "HTTP 500: busy" and errors[1] == "ConnectTimeout: timed out" and errors[3] == ""
    assert len({r[2]["Paypos-Event-Id"] for r in receiver.received}) == 1  # the same event every time


def test_a_delivery_fails_for_good_once_its_retries_span_three_days(seeded: App, clock: FakeClock) -> None:
    endpoint(seeded)
    event_id = emit(seeded)
    started = clock()
    always_down = Receiver(*[503] * 100)
    for delay in SCHEDULE.delays_s():
        assert deliver(seeded, always_down) == 1
        clock.advance(delay)
    assert deliver(seeded, always_down) == 1  # the last attempt
    (delivery,) = deliveries(seeded, event_id)
    assert delivery["state"] == "failed" and delivery["next_attempt_at"] is None
    assert delivery["attempt_count"] == len(SCHEDULE.delays_s()) + 1 == len(delivery["attempts"])
    assert clock() - started >= timedelta(days=3)
    clock.advance(30 * 24 * 3600)
    assert deliver(seeded, always_down) == 0


def test_redelivery_sends_a_failed_event_again_with_a_fresh_schedule(seeded: App, clock: FakeClock) -> None:
    first, _ = endpoint(seeded)
    event_id = emit(seeded)
    with seeded.uow() as uow:  # fail it by hand: as if three days had passed
        SqlWebhookStore(uow.connection).update_delivery(deliveries(seeded, event_id)[0]["id"], state="failed",
                                                        schedule_step=len(SCHEDULE.delays_s()) + 1)
        uow.commit()
    later, _ = endpoint(seeded, url="https://other.example/hooks")
    with seeded.uow() as uow:
        to_all = service.redeliver(uow, CAFE, event_id, None, clock())
        to_later = service.redeliver(uow, CAFE, event_id, later, clock())
        uow.commit()
    assert [d["endpoint"] for d in to_all] == [first] and to_all[0]["state"] == "pending"
    assert [d["endpoint"] for d in to_later] == [later]  # made for an endpoint newer than the event
    assert deliver(seeded, Receiver(500, 500)) == 2
    retry_at = (clock() + timedelta(seconds=SCHEDULE.delays_s()[0])).isoformat().replace("+00:00", "Z")
    assert [(d["attempt_count"], d["next_attempt_at"]) for d in deliveries(seeded, event_id)] == [
        (1, retry_at), (1, retry_at)]  # the first step of the schedule again, not the last


def test_redelivery_of_an_event_no_endpoint_received_is_refused(seeded: App) -> None:
    event_id = emit(seeded)
    with seeded.uow() as uow, pytest.raises(service.Refused):
        service.redeliver(uow, CAFE, event_id, None, seeded.clock())
    with seeded.uow() as uow, pytest.raises(service.NotFound):
        service.redeliver(uow, SHOP, event_id, None, seeded.clock())


def test_after_rotation_both_secrets_sign_for_24_hours_then_only_the_new(seeded: App, clock: FakeClock) -> None:
    made, old = endpoint(seeded)
    with seeded.uow() as uow:
        _, new = service.rotate_secret(uow, seeded.vault, CAFE, made, clock())
        uow.commit()
    assert new != old and webhook.is_secret(new)
    receiver = Receiver()
    emit(seeded)
    deliver(seeded, receiver)
    clock.advance(limits.webhook_secret_rotation_grace_s)
    emit(seeded)
    deliver(seeded, receiver)
    (_, body1, headers1), (_, body2, headers2) = receiver.received
    assert headers1["Paypos-Signature"].count("v1=") == 2
    for secret in (old, new):
        webhook.verify(headers1["Paypos-Signature"], body1, secret, clock().timestamp(), tolerance_s=10**6)
    assert headers2["Paypos-Signature"].count("v1=") == 1
    webhook.verify(headers2["Paypos-Signature"], body2, new, clock().timestamp())
    with pytest.raises(webhook.SignatureError):
        webhook.verify(headers2["Paypos-Signature"], body2, old, clock().timestamp())


def test_a_leased_delivery_is_not_sent_by_a_second_loop_until_the_lease_ends(seeded: App, clock: FakeClock) -> None:
    endpoint(seeded)
    event_id = emit(seeded)
    second_loop_tried: list[int] = []

    def slow_receiver(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        second_loop_tried.append(deliver(seeded, Receiver()))  # another loop, while this POST is in flight
        clock.advance(service.LEASE_S_PER_DELIVERY + 1)  # ...and this POST outlives its lease
        second_loop_tried.append(deliver(seeded, Receiver()))
        return 200, "ok"

    assert deliver(seeded, slow_receiver) == 1
    assert second_loop_tried == [0, 1]  # only once the lease had run out
    (delivery,) = deliveries(seeded, event_id)
    # the late answer of the first loop is not recorded over the second loop's success
    assert delivery["state"] == "succeeded" and delivery["attempt_count"] == 1
    with seeded.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(webhook_attempts)).scalar_one() == 1


def test_deleting_an_endpoint_fails_its_pending_deliveries_and_sends_nothing_more(seeded: App) -> None:
    made, _ = endpoint(seeded)
    event_id = emit(seeded)
    with seeded.uow() as uow:
        service.delete_endpoint(uow, CAFE, made, seeded.clock())
        # a transaction that read the endpoint just before the delete committed still makes a delivery
        SqlWebhookStore(uow.connection).add_delivery("wd_" + "r" * 24, CAFE, emit_in(uow, seeded), made,
                                                     seeded.clock())
        uow.commit()
    (delivery,) = deliveries(seeded, event_id)
    assert delivery["state"] == "failed" and delivery["last_error"] == "the endpoint was deleted"
    assert deliver(seeded, Receiver()) == 0
    with seeded.engine.connect() as connection:
        states = connection.execute(sa.select(webhook_deliveries.c.state)).scalars().all()
    assert states == ["failed", "failed"]
    with seeded.uow() as uow, pytest.raises(service.Refused):
        service.redeliver(uow, CAFE, event_id, None, seeded.clock())
    with seeded.uow() as uow, pytest.raises(service.NotFound):
        service.get_endpoint(uow, CAFE, made)


def emit_in(uow: Any, app: App) -> str:
    return events.emit(uow, CAFE, "payout.paid", {"id": "po_x"}, app.clock())
