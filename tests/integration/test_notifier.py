"""services.notifier on SQLite and PostgreSQL: retries with the sandbox's backoff until the
merchant answers `success`, then never again; abandoned after the schedule; one notice per
trade event; two notifiers never POST the same notice at once; and the real HTTP POST."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from paypos import limits
from paypos.bootstrap import App, init_database
from paypos.domain.wallet import Notification
from paypos.networks.sandbox.wallet_keys import WALLET_PUBLIC_KEY
from paypos.protocol import alipay
from paypos.services import notifier, wallet

CAFE_APP = "2021000000000001"
LIN = "2088100000000001"
NOTIFY_URL = "http://127.0.0.1:9/notify"
DELAYS = limits.wallet_notify_retry_delays_s


@pytest.fixture
def seeded(app: App) -> App:
    init_database(app, sandbox=True)
    return app


class Merchant:
    """A scripted notify_url: answers (status, body) in turn, the last one forever; keeps
    what it was sent."""

    def __init__(self, *answers: tuple[int, str], delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay_s = delay_s
        self.received: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, url: str, form: Any) -> tuple[int, str]:
        with self._lock:
            self.received.append((url, dict(form)))
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        time.sleep(self.delay_s)
        return answer


def paid_trade(app: App, out_trade_no: str = "order-1") -> str:
    """A QR trade with a notify_url, paid by Lin: one TRADE_SUCCESS notice queued."""
    with app.uow() as uow:
        cafe = uow.wallet.get_app(CAFE_APP)
        created = wallet.precreate(uow, app.vault, app.clock(), cafe,
                                   {"out_trade_no": out_trade_no, "total_amount": "8.00", "subject": "Tea"}, NOTIFY_URL)
        paid = wallet.scan(uow, app.vault, app.clock(), created["qr_code"], LIN)
        uow.commit()
    return str(paid["trade_no"])


def notices(app: App, trade_no: str) -> list[Notification]:
    with app.uow(write=False) as uow:
        return uow.wallet.notifications_of(trade_no)


def test_a_notice_refused_twice_then_acknowledged_is_delivered_once_after_three_attempts(
    seeded: App, clock: Any
) -> None:
    trade_no = paid_trade(seeded)
    merchant = Merchant((500, "Internal Server Error"), (200, "fail"), (200, "success"))
    start = clock()

    assert notifier.deliver_due(seeded, merchant) == 1
    first = notices(seeded, trade_no)[0]
    assert (first.state, first.attempts, first.last_error) == ("pending", 1, "HTTP 500")
    assert first.next_attempt_at == start + timedelta(seconds=DELAYS[0])
    assert notifier.deliver_due(seeded, merchant) == 0  # not due yet

    clock.advance(DELAYS[0])
    assert notifier.deliver_due(seeded, merchant) == 1
    second = notices(seeded, trade_no)[0]
    assert (second.attempts, second.last_error) == (2, "answered 'fail', not 'success'")
    assert second.next_attempt_at == clock() + timedelta(seconds=DELAYS[1])

    clock.advance(DELAYS[1])
    assert notifier.deliver_due(seeded, merchant) == 1
    clock.advance(24 * 3600)
    assert notifier.deliver_due(seeded, merchant) == 0  # delivered: never sent again

    [done] = notices(seeded, trade_no)
    assert (done.state, done.attempts, done.last_error) == ("delivered", 3, "")
    assert done.delivered_at == start + timedelta(seconds=DELAYS[0] + DELAYS[1])
    forms = [form for _, form in merchant.received]
    assert len(forms) == 3 and forms[0] == forms[1] == forms[2]  # the same notify_id each time
    assert {url for url, _ in merchant.received} == {NOTIFY_URL}
    assert forms[0]["trade_status"] == "TRADE_SUCCESS" and forms[0]["trade_no"] == trade_no
    assert alipay.verify_notification(forms[0], WALLET_PUBLIC_KEY)


def test_a_notice_never_acknowledged_is_abandoned_after_the_last_delay(seeded: App, clock: Any) -> None:
    trade_no = paid_trade(seeded)
    merchant = Merchant((503, ""))

    for delay in (*DELAYS, 0):
        assert notifier.deliver_due(seeded, merchant) == 1
        clock.advance(delay)
    clock.advance(7 * 24 * 3600)

    assert notifier.deliver_due(seeded, merchant) == 0
    [gone] = notices(seeded, trade_no)
    assert (gone.state, gone.attempts, gone.last_error) == ("abandoned", len(DELAYS) + 1, "HTTP 503")
    assert len(merchant.received) == len(DELAYS) + 1


def test_an_unreachable_merchant_is_a_failed_attempt_not_a_crash(seeded: App, clock: Any) -> None:
    trade_no = paid_trade(seeded)

    def refuse(url: str, form: Any) -> tuple[int, str]:
        raise ConnectionRefusedError(111, "Connection refused")

    assert notifier.deliver_due(seeded, refuse) == 1
    [notice] = notices(seeded, trade_no)
    assert notice.state == "pending" and notice.attempts == 1
    assert notice.last_error.startswith("ConnectionRefusedError")


def test_an_answer_with_whitespace_around_success_is_an_acknowledgement(seeded: App) -> None:
    trade_no = paid_trade(seeded)
    assert notifier.deliver_due(seeded, Merchant((200, "success\r\n"))) == 1
    assert notices(seeded, trade_no)[0].state == "delivered"


def test_each_trade_event_is_queued_once_however_often_it_is_replayed(seeded: App) -> None:
    trade_no = paid_trade(seeded)
    with seeded.uow() as uow:
        cafe = uow.wallet.get_app(CAFE_APP)
        for _ in range(2):  # a merchant retrying the same refund
            wallet.refund(uow, seeded.vault, seeded.clock(), cafe,
                          {"out_trade_no": "order-1", "refund_amount": "1.00", "out_request_no": "r1"})
        again = uow.wallet.add_notification(trade_no, "TRADE_SUCCESS", NOTIFY_URL, {"x": "y"}, seeded.clock())
        uow.commit()

    assert again is False
    assert [n.event for n in notices(seeded, trade_no)][0] == "TRADE_SUCCESS"
    assert len(notices(seeded, trade_no)) == 2  # paid, refunded r1


def test_a_notice_recorded_by_a_later_notifier_is_not_overwritten_by_the_first(seeded: App, clock: Any) -> None:
    trade_no = paid_trade(seeded)
    late = Merchant((200, "success"))

    def slow_then_fail(url: str, form: Any) -> tuple[int, str]:
        # The first notifier's lease runs out while it waits; another one delivers meanwhile.
        later = clock() + timedelta(seconds=notifier.LEASE_S_PER_NOTICE + 1)
        assert notifier.deliver_due(seeded, late, now=later) == 1
        return 500, "too late"

    assert notifier.deliver_due(seeded, slow_then_fail) == 1
    [notice] = notices(seeded, trade_no)
    assert (notice.state, notice.attempts, notice.last_error) == ("delivered", 1, "")


def test_two_notifiers_at_once_never_post_the_same_notice(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "wallet_notify_batch_max", 3)  # several claims each, interleaved
    with app.uow() as uow:
        for i in range(12):
            uow.wallet.add_notification(f"T{i:02d}", "TRADE_SUCCESS", NOTIFY_URL, {"notify_id": f"n{i}"}, app.clock())
        uow.commit()
    merchant = Merchant((200, "success"), delay_s=0.02)
    start = threading.Barrier(2)
    tried: list[int] = []

    def run() -> None:
        start.wait()
        while count := notifier.deliver_due(app, merchant):
            tried.append(count)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = sorted(form["notify_id"] for _, form in merchant.received)
    assert sent == sorted(f"n{i}" for i in range(12))  # each once
    assert sum(tried) == 12 and max(tried) <= 3
    assert notifier.deliver_due(app, merchant) == 0


def test_run_notifier_delivers_in_the_background_until_cancelled(seeded: App) -> None:
    trade_no = paid_trade(seeded)
    merchant = Merchant((200, "success"))

    async def scenario() -> None:
        task = asyncio.create_task(notifier.run_notifier(seeded, 0.01, merchant))
        deadline = time.monotonic() + 5
        while not merchant.received and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert notices(seeded, trade_no)[0].state == "delivered"
    assert len(merchant.received) == 1


# --- the real POST ---------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.headers.get("Content-Type", ""), self.rfile.read(length)))
        status, body = self.answers.pop(0) if self.answers else (200, b"success")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def merchant_server() -> Iterator[str]:
    _Recorder.answers, _Recorder.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alipay/notify"
    server.shutdown()
    server.server_close()


def test_post_form_sends_a_utf8_form_and_returns_the_status_and_answer(merchant_server: str) -> None:
    form = {"subject": "两杯拿铁 & cake", "trade_status": "TRADE_SUCCESS"}
    _Recorder.answers = [(500, b"oops"), (200, b"success")]

    assert notifier.post_form(merchant_server, form) == (500, "oops")
    assert notifier.post_form(merchant_server, form) == (200, "success")
    content_type, body = _Recorder.received[0]
    assert content_type == "application/x-www-form-urlencoded; charset=utf-8"
    assert alipay.decode_form(body.decode("ascii")) == form


def test_post_form_reads_a_long_answer_only_up_to_its_limit(merchant_server: str) -> None:
    _Recorder.answers = [(200, b"x" * 100_000)]
    status, answer = notifier.post_form(merchant_server, {"a": "b"})
    assert status == 200 and len(answer) == notifier.ANSWER_BYTES_MAX


def test_a_closed_port_is_a_failed_attempt_through_the_real_post(seeded: App) -> None:
    with seeded.uow() as uow:
        uow.wallet.add_notification("T1", "TRADE_SUCCESS", "http://127.0.0.1:9/notify", {"a": "b"}, seeded.clock())
        uow.commit()
    assert notifier.deliver_due(seeded) == 1
    [notice] = notices(seeded, "T1")
    assert notice.attempts == 1 and notice.state == "pending" and "ConnectError" in notice.last_error


def test_deliver_due_with_a_fixed_now_uses_it_for_the_schedule(seeded: App) -> None:
    trade_no = paid_trade(seeded)
    fixed = seeded.clock() + timedelta(seconds=30)
    notifier.deliver_due(seeded, Merchant((500, "")), now=fixed)
    assert notices(seeded, trade_no)[0].next_attempt_at == fixed + timedelta(seconds=DELAYS[0])
