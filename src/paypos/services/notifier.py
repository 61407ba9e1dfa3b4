"""The sandbox wallet's asynchronous notifier: POST each queued ``trade_status_sync`` notice
(the signed form ``services.wallet`` stored when the trade changed) to its ``notify_url``
until the merchant answers ``success``.

A notice is claimed, POSTed outside any database transaction, then recorded:

- answered ``success`` (HTTP 200): ``delivered``, never sent again;
- anything else (another status, another body, no answer): ``attempts`` + 1 and
  ``next_attempt_at`` = now + ``limits.wallet_notify_retry_delays_s[attempts - 1]``; after
  the last delay, ``abandoned`` (the merchant can still ask alipay.trade.query).

Several notifiers may share one database (two hosts on one PostgreSQL). Claiming takes the
due rows with ``FOR UPDATE SKIP LOCKED`` and moves their ``next_attempt_at`` past the time
the POSTs can take (a lease), in one short transaction: no other notifier sees them until
the lease ends, so none is sent twice at once. A notifier that dies mid-batch leaves its
notices to be sent again when the lease ends: delivery is at least once, and the merchant
recognises a repeat by its ``notify_id`` (the same signed form every time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from paypos import limits
from paypos.adapters.outbound_http import post_bounded
from paypos.bootstrap import App
from paypos.domain.wallet import Notification
from paypos.protocol import alipay
from paypos.services.background import run_batches

log = logging.getLogger("paypos.wallet.notifier")

PENDING, DELIVERED, ABANDONED = "pending", "delivered", "abandoned"
# Bytes of the merchant's answer read: "success" is 7; more is read only to report it.
ANSWER_BYTES_MAX = 1024
# A POST is bounded by the timeout for each of connect, send and read (post_form).
LEASE_S_PER_NOTICE = 3 * limits.wallet_notify_timeout_s
LAST_ERROR_CHARS_MAX = 256  # wallet_notifications.last_error is String(256)

Post = Callable[[str, Mapping[str, str]], tuple[int, str]]


def post_form(url: str, form: Mapping[str, str]) -> tuple[int, str]:
    """POST ``form`` as ``application/x-www-form-urlencoded; charset=utf-8``, as the platform
    does; returns (HTTP status, the answer's first ``ANSWER_BYTES_MAX`` bytes as text).
    Redirects are not followed (an answer, not ``success``); proxies from the environment
    are not used (a sandbox notifier posts straight to the merchant)."""
    content = alipay.encode_form(form).encode("utf-8")
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    return post_bounded(url, content, headers, timeout_s=limits.wallet_notify_timeout_s,
                        answer_bytes_max=ANSWER_BYTES_MAX)


def deliver_due(app: App, post: Post = post_form, now: datetime | None = None) -> int:
    """Send every notice due now (one batch of at most ``wallet_notify_batch_max``);
    returns how many were tried. ``now`` fixes the clock for the whole call (tests)."""
    clock = (lambda: now) if now is not None else app.clock
    claimed = _claim(app, clock())
    for notice in claimed:
        acknowledged, error = _attempt(post, notice)
        _record(app, notice, clock(), acknowledged, error)
    return len(claimed)


async def run_notifier(app: App, interval_s: float, post: Post = post_form) -> None:
    """``deliver_due`` forever, off the event loop; a full batch is followed at once by the next."""
    await run_batches(lambda: deliver_due(app, post), batch_max=limits.wallet_notify_batch_max,
                      interval_s=interval_s, what="delivering wallet notifications", log=log)


def _claim(app: App, now: datetime) -> list[Notification]:
    with app.uow(write=False) as uow:  # a cheap look first: no write lock when nothing is due
        if not uow.wallet.due_notifications(now, 1):
            return []
    with app.uow() as uow:
        due = uow.wallet.due_notifications(now, limits.wallet_notify_batch_max)
        lease_until = now + timedelta(seconds=LEASE_S_PER_NOTICE * len(due))
        for notice in due:
            uow.wallet.update_notification(notice.id, next_attempt_at=lease_until)
        uow.commit()
    return due


def _attempt(post: Post, notice: Notification) -> tuple[bool, str]:
    """POST one notice: (acknowledged, why not)."""
    try:
        status, body = post(notice.notify_url, notice.params)
    except Exception as error:  # a merchant's endpoint never stops the notifier
        return False, f"{type(error).__name__}: {error}"
    if status == 200 and alipay.is_notification_acknowledged(body):
        return True, ""
    if status != 200:
        return False, f"HTTP {status}"
    return False, f"answered {body[:64]!r}, not {alipay.NOTIFICATION_ACK!r}"


def _record(app: App, notice: Notification, now: datetime, acknowledged: bool, error: str) -> None:
    with app.uow() as uow:
        current = next((n for n in uow.wallet.notifications_of(notice.trade_no) if n.id == notice.id), None)
        if current is None or current.state != PENDING:
            return  # recorded by another notifier whose lease this one outlived
        attempts = current.attempts + 1
        delays = limits.wallet_notify_retry_delays_s
        if acknowledged:
            values = {"state": DELIVERED, "delivered_at": now, "last_error": ""}
        elif attempts <= len(delays):
            values = {"next_attempt_at": now + timedelta(seconds=delays[attempts - 1]),
                      "last_error": error[:LAST_ERROR_CHARS_MAX]}
        else:
            values = {"state": ABANDONED, "last_error": error[:LAST_ERROR_CHARS_MAX]}
        if not uow.wallet.update_notification(notice.id, if_state=PENDING, if_attempts=current.attempts,
                                              attempts=attempts, **values):
            return  # another notifier recorded this attempt first
        uow.commit()
    _log(notice, attempts, values["state"] if "state" in values else PENDING, error)


def _log(notice: Notification, attempts: int, state: str, error: str) -> None:
    what = f"notice {notice.event} of trade {notice.trade_no} to {notice.notify_url}"
    if state == DELIVERED:
        log.info("%s delivered (attempt %d)", what, attempts)
    elif state == ABANDONED:
        log.warning("%s abandoned after %d attempts: %s", what, attempts, error)
    else:
        log.info("%s not acknowledged (attempt %d): %s", what, attempts, error)
