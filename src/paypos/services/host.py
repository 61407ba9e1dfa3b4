"""The acquiring host's use case: one ISO 8583 request in, one response out.

Each request runs the participant pipeline chosen by its MTI and processing
code inside a unit of work, shared by the requests of one batch (group commit);
the answer (approved or declined), the journal row and the ledger chain commit
together, and only then is the response encoded and sent — a terminal never
sees an approval the host could lose.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exc as sa_exc

from paypos import limits
from paypos.authorization import participants as p
from paypos.authorization import posting
from paypos.authorization import wallet as w
from paypos.authorization.context import AuthContext, Replay, business_fingerprint
from paypos.authorization.manager import Participant, TransactionManager
from paypos.authorization.result import Result, response_code
from paypos.adapters.db.batch import HostBatch, JournalIds, NeedsDatabase
from paypos.adapters.db.host import id_of_rrn, rrn_of
from paypos.adapters.db.registry import SqlRegistry
from paypos.adapters.db.uow import UnitOfWork
from paypos.adapters.vault import Vault
from paypos.bootstrap import App
from paypos.protocol import emv, iso8583
from paypos.domain.money import MoneyError, currency
from paypos.domain.registry import IssuerCard, Terminal
from paypos.networks.issuer import PIN_TRIES_MAX
from paypos.networks.sandbox.catalog import ACCOUNT_CODE_FOR_FUNDING
from paypos.protocol.card import CardDataError, mask_pan, parse_track2
from paypos.protocol.mac import retail_mac

log = logging.getLogger("paypos.host")

ENVELOPE: list[Participant[AuthContext]] = [p.ResolveTerminal(), p.CheckMac(), p.CheckDuplicate(), p.CheckKsn()]
CARD_AUTH: list[Participant[AuthContext]] = [p.ValidateFinancial(), p.RefuseReversedOriginal(), p.RouteCard(),
                                             p.Risk(), p.Issuer()]


@dataclass(frozen=True, slots=True)
class Flow:
    kind: str | None  # journal kind; None for messages that move no money
    manager: TransactionManager[AuthContext]
    # False: the flow needs the database itself (a wallet's trades), never the batch's memory.
    batched: bool = True


def _flow(kind: str | None, steps: Sequence[Participant[AuthContext]], *, batched: bool = True) -> Flow:
    return Flow(kind, TransactionManager([*ENVELOPE, *steps]), batched)


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
    ("0600", ""): _flow(None, [w.WalletStatus()], batched=False),
}
# 0200 000000 with field 22 = 03x: a wallet payment code (field 2) or collection code (none).
WALLET_SALE = _flow("purchase", [p.ValidateFinancial(needs_card=False), p.RefuseReversedOriginal(),
                                 w.ValidateWalletPayment(), w.WalletPay()], batched=False)
UNSUPPORTED = _flow(None, [p.RefuseUnsupported()])


def _is_refund(request: dict[str, str]) -> bool:
    return request["t"] == "0200" and request.get("3", "")[:2] == "20"


def _account_keys(registry: SqlRegistry, card: IssuerCard | None, merchant_id: str,
                  alpha: str) -> list[tuple[str, str, str]]:
    """The ledger accounts a card payment at a merchant moves: the funding card's, the
    merchant's pending and the platform's fees (`posting.sale_chain`)."""
    funding = registry.get_card(card.token_for_card_id) if card and card.token_for_card_id else card
    keys = [(f"merchant:{merchant_id}", "merchant_pending", alpha), ("platform", "fees_revenue", alpha)]
    if funding is not None:
        keys.append((f"card:{funding.card_id}", ACCOUNT_CODE_FOR_FUNDING[funding.funding], alpha))
    return keys


def _originals_named(requests: Sequence[dict[str, str]]) -> tuple[list[tuple[str, str, str]], list[int]]:
    """The journal rows the requests name: reversals by identity (41 and field 90's STAN and
    date-time), refunds by RRN (field 37, the journal id)."""
    named, rrn_ids = [], []
    for request in requests:
        if request["t"] in ("0400", "0420"):
            try:
                original = iso8583.parse_original_data_elements(request.get("90", ""))
            except iso8583.MessageError:
                continue  # the pipeline answers the format error
            named.append((request["41"], original.stan, original.transmission_datetime))
        elif _is_refund(request) and request.get("37", "").strip():
            rrn_ids.append(id_of_rrn(request["37"].strip()))
    return named, rrn_ids


def select_flow(request: dict[str, str]) -> Flow:
    mti, code = request["t"], request.get("3", "")[:2]
    if mti == "0220" and "90" in request:
        return FLOWS[("0220", "completion")]
    if mti == "0200" and code == "00" and request.get("22", "")[:2] == w.WALLET_ENTRY_MODE[:2]:
        return WALLET_SALE
    return FLOWS.get((mti, code)) or FLOWS.get((mti, "")) or UNSUPPORTED


def response_echo(request: dict[str, str]) -> dict[str, str]:
    return iso8583.response_echo(request)


class IsoHost:
    """Stateless between requests: everything lives in the database.

    Requests are answered in batches (`handle_batch`): one database transaction
    and one commit for all of them (group commit, `adapters.db.batch`), each
    request still running its own participant pipeline. A batch the database
    refuses as a whole (a unique key raced by another host process, a deadlock)
    is re-run one request per transaction, with retries.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._journal_ids = JournalIds()  # this process's block of journal ids (PostgreSQL)

    def handle(self, raw: bytes) -> bytes | None:
        """The encoded response, or None when the message cannot be answered (close the link)."""
        return self.handle_batch([raw])[0]

    def handle_batch(self, raws: Sequence[bytes]) -> list[bytes | None]:
        """Answer many messages with one commit; the answers only exist once it is durable."""
        out: list[bytes | None] = [None] * len(raws)
        work: list[tuple[int, dict[str, str], bytes]] = []
        for index, raw in enumerate(raws):
            try:
                request = iso8583.decode_message(raw)
            except iso8583.MessageError as error:
                out[index] = self._format_error(raw, error)
                continue
            if "11" not in request or "41" not in request or not iso8583.is_request(request["t"]):
                out[index] = self._format_error(raw, iso8583.MessageError("MTI, 11 and 41 are needed", field=None))
                continue
            work.append((index, request, raw))
        if not work:
            return out
        try:
            answers = self._batch(work)
        except sa_exc.DBAPIError as error:
            log.warning("batch of %d re-run one request per transaction: %s", len(work),
                        type(getattr(error, "orig", error)).__name__)
            answers = {index: self._one(request, raw) for index, request, raw in work}
        except Exception:  # a bug must cost 96s, never the connection or a half-write
            log.exception("system malfunction on a batch of %d", len(work))
            answers = {index: self._system_malfunction(request, raw) for index, request, raw in work}
        for index, answer in answers.items():
            out[index] = answer
        return out

    def _one(self, request: dict[str, str], raw: bytes) -> bytes:
        """One request in its own transaction, re-run when a concurrent twin won a unique key."""
        for attempt in range(limits.ledger_write_retries_max + 1):
            try:
                with self.app.uow() as uow:
                    response, ctx = self._run(request, raw, uow, self.app.clock())
                    uow.commit()
                return self._encode(response, ctx)
            except (sa_exc.IntegrityError, sa_exc.OperationalError) as error:
                # The second run sees the first's answer.
                if attempt == limits.ledger_write_retries_max:
                    log.error("giving up on %s/%s: %s", request.get("41"), request.get("11"), error)
            except Exception:
                return self._bug(request, raw)
        return self._system_malfunction(request, raw)

    def _batch(self, work: list[tuple[int, dict[str, str], bytes]]) -> dict[int, bytes]:
        now = self.app.clock()
        done: dict[int, tuple[dict[str, str], AuthContext] | bytes] = {}
        with self.app.uow() as uow:
            batch = HostBatch(uow, now, self._journal_ids)
            self._prefetch(batch, [request for _, request, _ in work])
            deferred: list[tuple[int, dict[str, str], bytes]] = []
            deferred_terminals: set[str] = set()  # a terminal's requests keep their order
            for index, request, raw in work:
                if request["41"] in deferred_terminals or not select_flow(request).batched:
                    deferred.append((index, request, raw))
                    deferred_terminals.add(request["41"])
                    continue
                batch.begin_request()
                try:
                    done[index] = self._run(request, raw, batch.view, now)  # type: ignore[arg-type]
                except NeedsDatabase:
                    batch.undo_request()
                    deferred.append((index, request, raw))
                    deferred_terminals.add(request["41"])
                    continue
                except sa_exc.DBAPIError:
                    raise
                except Exception:
                    batch.undo_request()
                    done[index] = self._bug(request, raw)
                    continue
                batch.end_request()
            batch.flush()
            for index, request, raw in deferred:
                savepoint = uow.connection.begin_nested()
                try:
                    done[index] = self._run(request, raw, uow, now)
                except sa_exc.DBAPIError:
                    raise
                except Exception:
                    savepoint.rollback()
                    done[index] = self._bug(request, raw)
                    continue
                savepoint.commit()
            uow.commit()
        return {index: answer if isinstance(answer, bytes) else self._encode(*answer)
                for index, answer in done.items()}

    def _prefetch(self, batch: HostBatch, requests: list[dict[str, str]]) -> None:
        """Lock and load, set-wise, the rows these requests will most likely touch, in the
        per-request path's lock order: terminal state, card state, the journal rows that
        reversals and refunds name, ledger accounts. Only a speed-up: whatever is not
        loaded here is loaded row by row when asked for."""
        registry, vault = batch.view.registry, self.app.vault
        requests = [r for r in requests if select_flow(r).batched]  # the others run after the flush
        registry.prime_terminals(r["41"] for r in requests)
        terminals = {r["41"]: registry.get_terminal(r["41"]) for r in requests}
        # Registry rows first, one statement per kind for the whole batch (a card is rarely
        # seen twice within the cache's TTL: one by one, this was ~2 statements a request).
        hashes = {id(r): self._pan_hash(r, vault) for r in requests if terminals[r["41"]] is not None}
        registry.prime_cards(pan_hashes=[h for h in hashes.values() if h is not None])
        presented: list[tuple[dict[str, str], Terminal, IssuerCard]] = []
        for request in requests:
            pan_hash = hashes.get(id(request))
            card = registry.find_card_by_pan_hash(pan_hash) if pan_hash is not None else None
            if card is not None:
                presented.append((request, terminals[request["41"]], card))  # type: ignore[arg-type]
        registry.prime_cards(card_ids=[c.token_for_card_id for _, _, c in presented if c.token_for_card_id])
        registry.prime_card_sealed(c.card_id for _, _, c in presented)
        batch.lock_terminal_states(tid for tid, terminal in terminals.items() if terminal is not None)
        cards = {card.card_id for _, _, card in presented}
        batch.lock_card_states(cards, PIN_TRIES_MAX)
        batch.load_originals(*_originals_named(requests))
        registry.prime_cards(card_ids=[o.card_id for o in batch.originals.values() if o.card_id])
        keys: list[tuple[str, str, str]] = []
        for original in batch.originals.values():
            card = registry.get_card(original.card_id) if original.card_id else None
            keys.extend(_account_keys(registry, card, original.merchant_id, original.currency))
        for request, terminal, card in presented:
            try:
                alpha = currency(terminal.currency).alpha
            except MoneyError:
                continue
            keys.extend(_account_keys(registry, card, terminal.merchant_id, alpha))
            if _is_refund(request) and not request.get("37", "").strip():
                keys.append((f"merchant:{terminal.merchant_id}", "merchant_available", alpha))
        ledger = batch.view.ledger
        ledger.prime_account_ids(keys)
        batch.lock_accounts({ledger.find_account_id(*key) or 0 for key in keys} - {0})
        identities = [(r["41"], r["11"], r.get("7", "")) for r in requests]
        batch.load_answers_and_tombstones(identities)
        batch.load_velocity(cards, batch.now - timedelta(seconds=limits.risk_velocity_window_s))
        batch.reserve_transaction_ids(sum(1 for r in requests if select_flow(r).kind is not None))

    @staticmethod
    def _pan_hash(request: dict[str, str], vault: Vault) -> str | None:
        try:
            pan = parse_track2(request["35"]).pan if "35" in request else request.get("2")
        except CardDataError:
            return None
        return vault.lookup_hash(pan) if pan else None

    def _run(self, request: dict[str, str], raw: bytes, stores: UnitOfWork,
             now: datetime) -> tuple[dict[str, str], AuthContext]:
        """The pipeline for one request over ``stores``; the caller commits, then encodes."""
        flow = select_flow(request)
        ctx = AuthContext(request=request, raw=raw, uow=stores, vault=self.app.vault, now=now)
        try:
            flow.manager.run(ctx)
        except Replay as replay:
            return replay.response, ctx
        response = self._respond(ctx, flow)
        # Only authenticated requests are remembered: a message with a bad MAC (or for
        # an unknown terminal) must not claim its 41/11/7 and block the real one.
        if ctx.terminal_state is not None and ctx.result is not Result.DUPLICATE_DIFFERENT_CONTENT:
            stores.host.record_answer(ctx.terminal_id, ctx.stan, ctx.transmission_dt, ctx.mti,
                                      business_fingerprint(request), response, ctx.now)
        log.info("%s %s/%s → %s (%s)", ctx.mti, ctx.terminal_id, ctx.stan, response["39"], ctx.reason)
        return response, ctx

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

    def _bug(self, request: dict[str, str], raw: bytes) -> bytes:
        """A bug costs its request a 96 (logged with the traceback), never the batch or the link."""
        log.exception("system malfunction on %s/%s", request.get("41"), request.get("11"))
        return self._system_malfunction(request, raw)

    def _system_malfunction(self, request: dict[str, str], raw: bytes) -> bytes:
        return iso8583.encode_message({**response_echo(request), "39": response_code(Result.SYSTEM_MALFUNCTION)})

    def _respond(self, ctx: AuthContext, flow: Flow) -> dict[str, str]:
        result = ctx.result or Result.SYSTEM_MALFUNCTION
        response = {**response_echo(ctx.request), "39": response_code(result)}
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
        # A wallet payment waiting for its buyer is pending until a 0600 or 0400 settles it.
        status = "approved" if approved else "pending" if result is Result.REQUEST_IN_PROGRESS else "declined"
        state = ctx.terminal_state
        transaction_id = ctx.uow.host.add_transaction(
            terminal_id=ctx.terminal_id, merchant_id=ctx.merchant.merchant_id if ctx.merchant else "",
            batch_no=state.batch_no if state else 0, mti=ctx.mti, processing_code=ctx.processing_code or "000000",
            kind=kind, stan=ctx.stan, transmission_dt=ctx.transmission_dt, amount_minor=ctx.amount_minor,
            currency=ctx.currency_alpha or "", fee_minor=ctx.fee_minor if approved else 0,
            card_id=ctx.card.card_id if ctx.card else None,
            pan_masked=ctx.account_masked or (mask_pan(ctx.pan) if ctx.pan else None),
            entry_mode=ctx.request.get("22"), response_code=response_code(result), approval_code=approval,
            status=status,
            original_id=ctx.original.id if ctx.original else None,
            transfer_ref=posting.transfer_ref(ctx), created_at=ctx.now, method=ctx.method,
        )
        return rrn_of(transaction_id), approval

    def _encode(self, response: dict[str, str], ctx: AuthContext) -> bytes:
        if ctx.mac_present and ctx.keys is not None:
            key = ctx.keys.mac_response
            mac: Callable[[bytes], bytes] = lambda data: retail_mac(key, data)  # noqa: E731
            return iso8583.encode_with_mac(response, mac)
        return iso8583.encode_message(response)

