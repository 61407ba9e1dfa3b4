"""Issue 6's webhook acceptance through the real processes: `paypos serve` delivers an event
to a receiver on 127.0.0.1 that answers 500 three times and then 200; the receiver verifies
every signature with domain.webhook.verify and acts on the event exactly once (it dedupes by
event id, so a manual redelivery changes nothing). `paypos webhooks listen --forward-to`
relays new events, signed with its session secret, and stops cleanly on Ctrl-C.

Events are emitted straight into the server's database, in a transaction as a service would
(services.events.emit): creating a payment request emits none yet. The server runs with
PAYPOS_WEBHOOK_RETRY_FIRST_DELAY_S=0.2, so its retries come after 0.2, 0.4 and 0.8 s.
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from paypos.bootstrap import bootstrap
from paypos.config import load_settings
from paypos.domain import webhook
from paypos.networks.sandbox import catalog
from paypos.services import events
from tests.e2e.conftest import PayposCli
from tests.e2e import hostproc
from tests.e2e.hostproc import running_host

CAFE = catalog.CAFE.merchant_id
API_KEY = catalog.merchant_api_key(CAFE)[1]
WAIT_S = 15


@dataclass
class Receiver:
    """A merchant's webhook receiver: scripted answers, every signature checked, each event
    acted on once."""

    answers: list[int]
    secret: str = ""
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (event id, signature verified)
    acted_on: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        try:
            webhook.verify(headers.get(webhook.SIGNATURE_HEADER, ""), body, self.secret, time.time())
            verified = True
        except webhook.SignatureError:
            verified = False
        event_id = headers.get(webhook.EVENT_ID_HEADER, "")
        with self.lock:
            self.requests.append((event_id, verified))
            if not verified:
                return 400
            status = self.answers.pop(0) if self.answers else 200
            if status == 200 and event_id not in self.acted_on:  # dedupe: a repeat is acknowledged, not redone
                self.acted_on.append(event_id)
            return status


@pytest.fixture
def receiver_at() -> Iterator[Callable[[Receiver], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(receiver: Receiver) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(receiver.handle(self.headers, body))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hooks"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(cli: PayposCli, sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One `paypos serve` for the module: (API base URL, its data dir)."""
    data_dir = Path(shutil.copytree(sandbox_dir, tmp_path_factory.mktemp("webhooks") / "data"))
    env = cli.env(PAYPOS_WEBHOOK_RETRY_FIRST_DELAY_S="0.2")
    with running_host(cli.command, data_dir, data_dir.parent / "serve.log", env=env) as (_iso, http_port):
        yield f"http://127.0.0.1:{http_port}", data_dir


def emit(data_dir: Path, event_type: str, object_id: str) -> str:
    """An event committed in the server's database, as a service would emit it."""
    app = bootstrap(load_settings(data_dir=data_dir), initialising=False)
    try:
        with app.uow() as uow:
            event_id = events.emit(uow, CAFE, event_type, {"id": object_id, "object": "payment_request"}, app.clock())
            uow.commit()
        return event_id
    finally:
        app.close()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    hostproc.wait_for(condition, what, WAIT_S)


def test_a_receiver_failing_three_times_gets_the_event_once_in_effect_every_signature_verified(
    served: tuple[str, Path], receiver_at: Callable[[Receiver], str],
) -> None:
    api, data_dir = served
    receiver = Receiver(answers=[500, 500, 500])
    auth = {"Authorization": f"Bearer {API_KEY}"}
    made = httpx.post(f"{api}/v1/webhook_endpoints", headers=auth | {"Idempotency-Key": "e2e-endpoint"},
                      json={"url": receiver_at(receiver), "enabled_events": ["payment_request.paid"]})
    assert made.status_code == 201, made.text
    receiver.secret = made.json()["secret"]

    event_id = emit(data_dir, "payment_request.paid", "pr_e2e")
    wait_for(lambda: receiver.acted_on == [event_id], "the event to be acted on")
    (delivery,) = httpx.get(f"{api}/v1/events/{event_id}/deliveries", headers=auth).json()["data"]
    assert delivery["state"] == "succeeded" and delivery["attempt_count"] == 4
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]

    redelivered = httpx.post(f"{api}/v1/events/{event_id}/redeliver", headers=auth, json={})
    assert redelivered.status_code == 200, redelivered.text
    wait_for(lambda: len(receiver.requests) == 5, "the redelivery")
    assert receiver.requests == [(event_id, True)] * 5  # every request signed with the endpoint's secret
    assert receiver.acted_on == [event_id]  # ...and acted on exactly once


def test_listen_forwards_new_events_signed_with_its_session_secret_and_stops_on_ctrl_c(
    cli: PayposCli, served: tuple[str, Path], receiver_at: Callable[[Receiver], str],
) -> None:
    api, data_dir = served
    emit(data_dir, "refund.succeeded", "re_before")  # older than the session: not relayed
    receiver = Receiver(answers=[])
    url = receiver_at(receiver)
    listener = cli.popen("webhooks", "listen", "--forward-to", url, "--api", api, "--api-key", API_KEY,
                         "--events", "payout.paid,refund.succeeded", "--interval", "0.2")
    lines = stdout_lines(listener)
    try:
        ready = next_line(lines, "signing secret")
        receiver.secret = ready.rsplit(" ", 1)[1]
        assert webhook.is_secret(receiver.secret)
        emit(data_dir, "payment.failed", "pay_skipped")  # not in --events
        relayed = emit(data_dir, "payout.paid", "po_1")
        assert "[200]" in next_line(lines, relayed)
        assert receiver.requests == [(relayed, True)] and receiver.acted_on == [relayed]
    finally:
        listener.send_signal(signal.SIGINT)
        listener.wait(timeout=WAIT_S)
    assert listener.returncode == 0, listener.stderr.read() if listener.stderr else ""
    assert "Stopped." in next_line(lines, "Stopped.")


def stdout_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str], containing: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if containing in line:
            return line
    pytest.fail(f"no output line containing {containing!r} within {WAIT_S} s")


def test_listen_refuses_bad_options_and_an_unreachable_api(cli: PayposCli) -> None:
    closed_port = hostproc.free_port()
    base = ["webhooks", "listen", "--api-key", API_KEY, "--api", f"http://127.0.0.1:{closed_port}"]
    bad_url, bad_events, no_api = cli.run_many([
        [*base, "--forward-to", "ftp://127.0.0.1/hooks"],
        [*base, "--forward-to", "http://127.0.0.1:1/hooks", "--events", "payment.exploded"],
        [*base, "--forward-to", "http://127.0.0.1:1/hooks"],
    ], env=cli.env(COLUMNS="200"))  # no line wrapping inside the error panels
    assert bad_url.returncode == 2 and "http:// or https://" in bad_url.stderr
    assert bad_events.returncode == 2 and "payment.exploded" in bad_events.stderr
    assert no_api.returncode == 1 and "cannot reach the API" in no_api.stderr
    assert "whsec_" not in bad_url.stdout + bad_events.stdout + no_api.stdout  # no session began
