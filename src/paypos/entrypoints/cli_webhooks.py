"""`paypos webhooks listen --forward-to URL` — relay a merchant's events to a local URL while
developing a webhook receiver (docs/webhooks.md).

It polls ``GET /v1/events`` of a running ``paypos serve`` with the merchant's secret API key,
starting from the newest event (older ones are not replayed), and POSTs each new event to
``--forward-to`` exactly as the delivery loop would: the same JSON body, ``Paypos-Event-Id``,
and a ``Paypos-Signature`` made with a secret that is new for this session and printed at
start-up (verify with it as with an endpoint's). One line per event shows the receiver's
answer; a failed forward is not retried (use ``POST /v1/events/{id}/redeliver`` against a
real endpoint for that). Ctrl-C stops it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from typing import Annotated, Any

import httpx
import typer

from paypos import __version__, limits
from paypos.domain import webhook
from paypos.services import events as events_service
from paypos.services.webhooks import post_json

webhooks_app = typer.Typer(
    help="Webhooks for development: relay a merchant's events to a local URL, signed.",
    no_args_is_help=True,
)
# Ids remembered to recognise events already relayed: well over the pages read per poll.
SEEN_IDS_MAX = 4 * limits.webhook_listen_pages_max * limits.webhook_event_page_size_max


class EventsFeed:
    """New events of one merchant, oldest first, polled from the REST API."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._seen: OrderedDict[str, None] = OrderedDict()

    def start(self) -> None:
        """Remember the newest events as already seen: only later ones are relayed."""
        self._remember(self._page(None)["data"])

    def poll(self) -> list[dict[str, Any]]:
        """Events not seen before, oldest first. Pages are read newest first until one holds a
        seen event, so an event that committed late (after a newer one) is still found."""
        fresh: list[dict[str, Any]] = []
        cursor = None
        for _ in range(limits.webhook_listen_pages_max):
            page = self._page(cursor)
            unseen = [e for e in page["data"] if e["id"] not in self._seen]
            fresh += unseen
            if len(unseen) < len(page["data"]) or not page["has_more"]:
                break
            cursor = page["next_cursor"]
        fresh.reverse()
        self._remember(fresh)
        return fresh

    def _page(self, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limits.webhook_event_page_size_max}
        if cursor:
            params["cursor"] = cursor
        response = self._client.get("/v1/events", params=params)
        if response.status_code != 200:
            raise ApiError(_problem_text(response))
        return response.json()  # type: ignore[no-any-return]

    def _remember(self, found: list[dict[str, Any]]) -> None:
        for event in found:
            self._seen[event["id"]] = None
        while len(self._seen) > SEEN_IDS_MAX:
            self._seen.popitem(last=False)


class ApiError(RuntimeError):
    """The API refused a request (the message is its problem's detail)."""


@webhooks_app.command()
def listen(
    forward_to: Annotated[str, typer.Option("--forward-to", help="Local URL to POST each event to, e.g. "
                                            "http://127.0.0.1:5000/webhooks.")],
    api: Annotated[str, typer.Option(help="Base URL of a running `paypos serve`.")] = (
        f"http://{limits.http_host_default}:{limits.http_port_default}"),
    api_key: Annotated[str, typer.Option("--api-key", envvar="PAYPOS_API_KEY", show_envvar=True,
                                         help="The merchant's secret API key (sk_test_...); see "
                                              "`paypos sandbox merchants`.")] = "",
    only: Annotated[str, typer.Option("--events", help="Comma-separated event types to relay (default: all), "
                                      "e.g. payment_request.paid,refund.succeeded.")] = "",
    interval: Annotated[float, typer.Option("--interval", min=0.1, max=60,
                                            help="Seconds between polls.")] = limits.webhook_listen_poll_interval_s,
) -> None:
    """Relay this merchant's new events to --forward-to, signed with a per-session whsec_
    secret printed at start-up, one line per event; Ctrl-C stops."""
    wanted = _wanted(only)
    _check(forward_to, api_key)
    secret = webhook.new_secret(secrets.token_bytes(webhook.SECRET_RANDOM_BYTES))
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": f"paypos-webhooks-listen/{__version__}"}
    with httpx.Client(base_url=api, headers=headers, timeout=limits.webhook_timeout_s, trust_env=False) as client:
        feed = EventsFeed(client)
        try:
            _call(feed.start)
            typer.echo(f"Ready: relaying events from {api} to {forward_to} (Ctrl-C to stop).")
            typer.echo(f"Webhook signing secret for this session: {secret}")
            while True:
                for event in _call(feed.poll, default=[]):
                    if wanted is None or event["type"] in wanted:
                        typer.echo(_forward(event, forward_to, secret))
                time.sleep(interval)
        except KeyboardInterrupt:
            typer.echo("Stopped.")


def _wanted(only: str) -> set[str] | None:
    if not only.strip():
        return None
    wanted = {t.strip() for t in only.split(",") if t.strip()}
    unknown = sorted(wanted - events_service.EVENT_TYPES - {webhook.ALL_EVENTS})
    if unknown:
        raise typer.BadParameter(f"unknown event type {unknown[0]!r}; known: "
                                 f"{', '.join(sorted(events_service.EVENT_TYPES))}", param_hint="--events")
    return None if webhook.ALL_EVENTS in wanted else wanted


def _check(forward_to: str, api_key: str) -> None:
    try:
        webhook.check_url(forward_to)
    except webhook.EndpointError as error:
        raise typer.BadParameter(str(error).removeprefix("url: "), param_hint="--forward-to") from None
    if not api_key.startswith("sk_"):
        raise typer.BadParameter("give the merchant's secret API key (sk_test_...)", param_hint="--api-key")


def _call(poll: Any, default: Any = None) -> Any:
    """One API call; a refusal at start-up ends the command, a transient error later is reported."""
    try:
        return poll()
    except ApiError as error:
        typer.echo(f"error: the API refused: {error}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as error:
        if default is None:
            typer.echo(f"error: cannot reach the API: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"warning: cannot reach the API ({error}); retrying", err=True)
        return default


def _forward(event: dict[str, Any], url: str, secret: str) -> str:
    """POST one event as the delivery loop would; its line for the console."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", webhook.EVENT_ID_HEADER: event["id"],
               webhook.SIGNATURE_HEADER: webhook.sign(body, [secret], int(time.time()))}
    started = time.monotonic()
    try:
        status, _ = post_json(url, body, headers)
        answer = f"[{status}]"
    except httpx.HTTPError as error:
        answer = f"[failed: {type(error).__name__}]"
    took_ms = int((time.monotonic() - started) * 1000)
    return f"{event['created_at']}  --> {event['type']:<22} {event['id']}  POST {url} {answer} {took_ms} ms"


def _problem_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.status_code))
    except ValueError:
        return f"HTTP {response.status_code}"
