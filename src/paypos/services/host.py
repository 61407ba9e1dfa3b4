"""The acquiring host's use case: one ISO 8583 request in, one response out.

Each request runs the participant pipeline chosen by its MTI and processing
code inside one unit of work; the answer (approved or declined), the journal
row and the ledger chain commit together, and only then is the response
encoded and sent — a terminal never sees an approval the host could lose.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from paypos import limits
from paypos.authorization import participants as p
from paypos.authorization import posting
from paypos.authorization.context import AuthContext, Replay, business_fingerprint
from paypos.authorization.manager import Participant, TransactionManager
from paypos.authorization.result import Result, response_code
from paypos.adapters.db.host import rrn_of
from paypos.bootstrap import App
from paypos.protocol import emv, iso8583
from paypos.protocol.card import mask_pan
from paypos.protocol.mac import retail_mac

log = logging.getLogger("paypos.host")

ENVELOPE: list[Participant[AuthContext]] = [p.ResolveTerminal(), p.CheckMac(), p.CheckDuplicate(), p.CheckKsn()]
CARD_AUTH: list[Participant[AuthContext]] = [p.ValidateFinancial(), p.RefuseReversedOriginal(), p.RouteCard(),
                                             p.Risk(), p.Issuer()]


@dataclass(frozen=True, slots=True)
class Flow:
    kind: str | None  # journal kind; None for messages that move no money
    manager: TransactionManager[AuthContext]


def _flow(kind: str | None, steps: Sequence[Participant[AuthContext]]) -> Flow:
    return Flow(kind, TransactionManager([*ENVELOPE, *steps]))


FLOWS: dict[tuple[str, str], Flow] = {
    ("0800", ""): _flow(None, [posting.NetworkManagement()]),
    ("0200", "00"): _flow("purchase", [*CARD_AUTH, posting.PostSale()]),
    ("0200", "20"): _flow("refund", [p.ValidateFinancial(), p.RouteCard(), p.Issuer(check_cryptogram=False),
                                     posting.Refund()]),
    ("0200", "31"): _flow("balance", [p.ValidateFinancial(), p.RouteCard(), p.Issuer(), posting.BalanceInquiry()]),
    ("0100", "00"): _flow("preauth", [*CARD_AUTH, posting.PlaceHold()]),
    ("0220", "completion"): _flow("completion", [p.ValidateFinancial(needs_card=False), posting.CompleteHold()]),
    ("0220", "00"): _flow("purchase", [*CARD_AUTH, posting.PostSale()]),
    ("0400", ""): _flow(None, [posting.Reverse()]),
    ("0420", ""): _flow(None, [posting.Reverse()]),
    ("0500", ""): _flow(None, [posting.Reconcile()]),
}
UNSUPPORTED = _flow(None, [p.RefuseUnsupported()])


def select_flow(request: dict[str, str]) -> Flow:
    mti, code = request["t"], request.get("3", "")[:2]
    if mti == "0220" and "90" in request:
        return FLOWS[("0220", "completion")]
    return FLOWS.get((mti, code)) or FLOWS.get((mti, "")) or UNSUPPORTED


class IsoHost:
    """Stateless between requests: everything lives in the database."""

    def __init__(self, app: App) -> None:
        self.app = app

    def handle(self, raw: bytes) -> bytes | None:
        """The encoded response, or None when the message cannot be answered (close the link)."""
        try:
            request = iso8583.decode_message(raw)
        except iso8583.MessageError as error:
            return self._format_error(raw, error)
        if "11" not in request or "41" not in request or not iso8583.is_request(request["t"]):
            return self._format_error(raw, iso8583.MessageError("MTI, 11 and 41 are needed", field=None))
        for attempt in range(limits.ledger_write_retries_max + 1):
            try:
                return self._process(request, raw)
            except (sa_exc.IntegrityError, sa_exc.OperationalError) as error:
                # A concurrent twin of this request won a unique key (or a serialization
                # race): run again; the second run sees the first's answer.
                if attempt == limits.ledger_write_retries_max:
                    log.error("giving up on %s/%s: %s", request.get("41"), request.get("11"), error)
                    return self._system_malfunction(request, raw)
            except Exception:  # a bug must cost one 96, never the connection or a half-write
                log.exception("system malfunction on %s/%s", request.get("41"), request.get("11"))
                return self._system_malfunction(request, raw)
        return None  # pragma: no cover

    def _format_error(self, raw: bytes, error: iso8583.MessageError) -> bytes | None:
        routing = iso8583.peek_routing(raw)
        if routing is None:
            log.info("unanswerable message: %s", error)
            return None
        try:
            mti = iso8583.response_mti(routing.mti)
        except iso8583.MessageError:
            return None
        log.info("format error from %s stan %s: %s", routing.terminal_id, routing.stan, error)
        return iso8583.encode_message({"t": mti, "11": routing.stan, "41": routing.terminal_id,
                                       "39": response_code(Result.FORMAT_ERROR)})

    def _system_malfunction(self, request: dict[str, str], raw: bytes) -> bytes:
        return iso8583.encode_message({**iso8583.response_echo(request),
                                       "39": response_code(Result.SYSTEM_MALFUNCTION)})

    def _process(self, request: dict[str, str], raw: bytes) -> bytes:
        flow = select_flow(request)
        with self.app.uow() as uow:
            ctx = AuthContext(request=request, raw=raw, uow=uow, vault=self.app.vault, now=self.app.clock())
            try:
                flow.manager.run(ctx)
            except Replay as replay:
                uow.commit()  # nothing was written before the duplicate check; keep the cache warm
                return self._encode(replay.response, ctx)
            response = self._respond(ctx, flow)
            # Only authenticated requests are remembered: a message with a bad MAC (or for
            # an unknown terminal) must not claim its 41/11/7 and block the real one.
            if ctx.terminal_state is not None and ctx.result is not Result.DUPLICATE_DIFFERENT_CONTENT:
                uow.host.record_answer(ctx.terminal_id, ctx.stan, ctx.transmission_dt, ctx.mti,
                                       business_fingerprint(request), response, ctx.now)
            uow.commit()
        log.info("%s %s/%s → %s (%s)", ctx.mti, ctx.terminal_id, ctx.stan, response["39"], ctx.reason)
        return self._encode(response, ctx)

    def _respond(self, ctx: AuthContext, flow: Flow) -> dict[str, str]:
        result = ctx.result or Result.SYSTEM_MALFUNCTION
        response = {**iso8583.response_echo(ctx.request), "39": response_code(result)}
        if flow.kind is not None and ctx.terminal_state is not None:
            rrn, approval = self._journal(ctx, flow.kind, result)
            response["37"] = rrn
            if approval:
                response["38"] = approval
        if ctx.tag_91 is not None:
            response["55"] = emv.encode_field_55({"91": ctx.tag_91})
        if ctx.balance_minor is not None and result is Result.APPROVED:
            response["54"] = f"0002{ctx.request['49']}C{ctx.balance_minor:012d}"
        response.update(ctx.response_extra)
        return response

    def _journal(self, ctx: AuthContext, kind: str, result: Result) -> tuple[str, str | None]:
        approved = result is Result.APPROVED
        approval = f"{secrets.randbelow(1_000_000):06d}" if approved else None
        state = ctx.terminal_state
        transaction_id = ctx.uow.host.add_transaction(
            terminal_id=ctx.terminal_id, merchant_id=ctx.merchant.merchant_id if ctx.merchant else "",
            batch_no=state.batch_no if state else 0, mti=ctx.mti, processing_code=ctx.processing_code or "000000",
            kind=kind, stan=ctx.stan, transmission_dt=ctx.transmission_dt, amount_minor=ctx.amount_minor,
            currency=ctx.currency_alpha or "", fee_minor=ctx.fee_minor if approved else 0,
            card_id=ctx.card.card_id if ctx.card else None,
            pan_masked=mask_pan(ctx.pan) if ctx.pan else None, entry_mode=ctx.request.get("22"),
            response_code=response_code(result), approval_code=approval,
            status="approved" if approved else "declined",
            original_id=ctx.original.id if ctx.original else None,
            transfer_ref=posting.transfer_ref(ctx), created_at=ctx.now,
        )
        return rrn_of(transaction_id), approval

    def _encode(self, response: dict[str, str], ctx: AuthContext) -> bytes:
        if ctx.mac_present and ctx.keys is not None:
            key = ctx.keys.mac_response
            mac: Callable[[bytes], bytes] = lambda data: retail_mac(key, data)  # noqa: E731
            return iso8583.encode_with_mac(response, mac)
        return iso8583.encode_message(response)

