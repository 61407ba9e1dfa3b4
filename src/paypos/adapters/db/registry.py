"""Registry store: acquirers, merchants, API keys, terminals, sandbox issuer cards.

Sealed columns (``*_enc``) hold values encrypted by ``adapters.vault``; this
module moves them as bytes and never opens them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from paypos.adapters.db.bulk import among, among_values, built
from paypos.adapters.db.cache import NoCache, TtlCache
from paypos.adapters.db.schema import (
    acquirers,
    issuer_cards,
    issuers,
    merchant_api_keys,
    merchants,
    terminals,
)
from paypos.domain.registry import Acquirer, CardInterface, Funding, IssuerCard, Merchant, Terminal


class SqlRegistry:
    def __init__(self, connection: sa.Connection, cache: TtlCache | None = None) -> None:
        self._db = connection
        self._cache = cache if cache is not None else NoCache()

    # --- acquirers and merchants ---------------------------------------------

    def add_acquirer(self, acquirer: Acquirer, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(acquirers.insert().values(acquirer_id=acquirer.acquirer_id, name=acquirer.name, created_at=now))

    def get_acquirer(self, acquirer_id: str) -> Acquirer | None:
        row = self._db.execute(sa.select(acquirers).where(acquirers.c.acquirer_id == acquirer_id)).one_or_none()
        return None if row is None else Acquirer(row.acquirer_id, row.name)

    def add_merchant(self, merchant: Merchant, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(merchants.insert().values(**_fields(merchant), created_at=now))

    def get_merchant(self, merchant_id: str) -> Merchant | None:
        return self._cache.get(("merchant", merchant_id), lambda: self._load_merchant(merchant_id))

    def _load_merchant(self, merchant_id: str) -> Merchant | None:
        row = self._db.execute(sa.select(merchants).where(merchants.c.merchant_id == merchant_id)).one_or_none()
        return None if row is None else _merchant(row)

    def set_merchant_status(self, merchant_id: str, status: str) -> None:
        """A merchant's new lifecycle status (issue 7); the host sees it at once in this process."""
        self._cache.clear()
        self._db.execute(merchants.update().where(merchants.c.merchant_id == merchant_id).values(status=status))

    def list_merchants(self) -> list[Merchant]:
        return [_merchant(r) for r in self._db.execute(sa.select(merchants).order_by(merchants.c.merchant_id))]

    # --- API keys ------------------------------------------------------------

    def add_api_key(self, key_id: str, merchant_id: str, prefix: str, secret_hash: str, label: str, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(
            merchant_api_keys.insert().values(
                key_id=key_id, merchant_id=merchant_id, prefix=prefix, secret_hash=secret_hash, label=label, created_at=now
            )
        )

    def merchant_for_api_key(self, secret_hash: str) -> str | None:
        """The merchant id behind an unrevoked key, found by the key's hash."""
        return self._db.execute(
            sa.select(merchant_api_keys.c.merchant_id).where(
                merchant_api_keys.c.secret_hash == secret_hash, merchant_api_keys.c.revoked_at.is_(None)
            )
        ).scalar_one_or_none()

    def api_key_exists(self, key_id: str) -> bool:
        query = sa.select(merchant_api_keys.c.key_id).where(merchant_api_keys.c.key_id == key_id)
        return self._db.execute(query).first() is not None

    def api_keys_of_merchant(self, merchant_id: str, *, limit: int, active_only: bool = False,
                             key_id: str | None = None, lock: bool = False) -> list[sa.Row[Any]]:
        """The merchant's keys (or its ``key_id``), newest first, never the hash; ``lock``
        serialises the changes of one merchant's key set."""
        c = merchant_api_keys.c
        query = (sa.select(c.key_id, c.merchant_id, c.prefix, c.label, c.created_at, c.revoked_at)
                 .where(c.merchant_id == merchant_id).order_by(c.created_at.desc(), c.key_id.desc()).limit(limit))
        if active_only:
            query = query.where(c.revoked_at.is_(None))
        if key_id is not None:
            query = query.where(c.key_id == key_id)
        return list(self._db.execute(query.with_for_update() if lock else query))

    def revoke_api_key(self, key_id: str, now: datetime) -> None:
        self._db.execute(merchant_api_keys.update().where(
            merchant_api_keys.c.key_id == key_id, merchant_api_keys.c.revoked_at.is_(None)).values(revoked_at=now))

    # --- terminals -----------------------------------------------------------

    def add_terminal(self, terminal: Terminal, bdk_enc: bytes, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(terminals.insert().values(**_fields(terminal), bdk_enc=bdk_enc, created_at=now))

    def get_terminal(self, terminal_id: str) -> Terminal | None:
        return self._cache.get(("terminal", terminal_id), lambda: self._load_terminal(terminal_id))

    def _load_terminal(self, terminal_id: str) -> Terminal | None:
        row = self._db.execute(sa.select(terminals).where(terminals.c.terminal_id == terminal_id)).one_or_none()
        return None if row is None else _terminal(row)

    def prime_terminals(self, terminal_ids: Iterable[str]) -> None:
        """`get_terminal` and `terminal_bdk_sealed` of many terminals in one statement."""
        wanted = sorted({i for i in terminal_ids if not self._cache.fresh(("terminal", i))})
        if not wanted or isinstance(self._cache, NoCache):
            return
        query = built(self._db, "registry.terminals", lambda d: sa.select(terminals).where(
            among(d, terminals.c.terminal_id, "ids")))
        for row in self._db.execute(query, among_values("ids", wanted)):
            self._cache.put(("terminal", row.terminal_id), _terminal(row))
            self._cache.put(("bdk", row.terminal_id), row.bdk_enc, forever=True)

    def set_terminal_status(self, terminal_id: str, status: str) -> None:
        """A terminal's new status (issue 7: provisioned, active, suspended, replaced)."""
        self._cache.clear()
        self._db.execute(terminals.update().where(terminals.c.terminal_id == terminal_id).values(status=status))

    def list_terminals(self) -> list[Terminal]:
        return [_terminal(r) for r in self._db.execute(sa.select(terminals).order_by(terminals.c.terminal_id))]

    def terminal_bdk_sealed(self, terminal_id: str) -> bytes | None:
        return self._cache.get(("bdk", terminal_id), lambda: self._db.execute(
            sa.select(terminals.c.bdk_enc).where(terminals.c.terminal_id == terminal_id)
        ).scalar_one_or_none(), forever=True)

    # --- sandbox issuer ------------------------------------------------------

    def add_issuer(self, issuer_id: str, name: str, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(issuers.insert().values(issuer_id=issuer_id, name=name, created_at=now))

    def issuer_exists(self, issuer_id: str) -> bool:
        return self._db.execute(sa.select(issuers.c.issuer_id).where(issuers.c.issuer_id == issuer_id)).first() is not None

    def add_card(self, card: IssuerCard, sealed: dict[str, bytes | None], pan_hash: str, now: datetime) -> None:
        values = _fields(card)
        values["interfaces"] = ",".join(i.value for i in card.interfaces)
        values["funding"] = card.funding.value
        self._cache.clear()
        self._db.execute(issuer_cards.insert().values(**values, **sealed, pan_hash=pan_hash, created_at=now))

    def get_card(self, card_id: str) -> IssuerCard | None:
        return self._cache.get(("card", card_id), lambda: self._load_card(issuer_cards.c.card_id == card_id))

    def find_card_by_pan_hash(self, pan_hash: str) -> IssuerCard | None:
        return self._cache.get(("pan", pan_hash), lambda: self._load_card(issuer_cards.c.pan_hash == pan_hash))

    def _load_card(self, condition: sa.ColumnElement[bool]) -> IssuerCard | None:
        row = self._db.execute(sa.select(issuer_cards).where(condition)).one_or_none()
        return None if row is None else _card(row)

    def prime_cards(self, *, pan_hashes: Iterable[str] = (), card_ids: Iterable[str] = ()) -> None:
        """Load into the cache, in one statement each, the cards named by PAN hash or id
        that it does not hold yet (the host asks for a whole batch's cards this way)."""
        by_hash = sorted({h for h in pan_hashes if not self._cache.fresh(("pan", h))})
        by_id = sorted({i for i in card_ids if not self._cache.fresh(("card", i))})
        for column, wanted in ((issuer_cards.c.pan_hash, by_hash), (issuer_cards.c.card_id, by_id)):
            if not wanted or isinstance(self._cache, NoCache):
                continue
            query = built(self._db, f"registry.cards.{column.name}", lambda d, column=column: sa.select(  # type: ignore[misc]
                issuer_cards).where(among(d, column, "keys")))
            for row in self._db.execute(query, among_values("keys", wanted)):
                card = _card(row)
                self._cache.put(("pan", row.pan_hash), card)
                self._cache.put(("card", card.card_id), card)
                # The same row carries the sealed keys: `prime_card_sealed` then has nothing to read.
                self._cache.put(("sealed", card.card_id), _sealed(row), forever=True)

    def prime_card_sealed(self, card_ids: Iterable[str]) -> None:
        """`card_sealed` of many cards in one statement (cached for good, like one by one)."""
        wanted = sorted({i for i in card_ids if not self._cache.fresh(("sealed", i))})
        if not wanted or isinstance(self._cache, NoCache):
            return
        c = issuer_cards.c
        query = built(self._db, "registry.sealed", lambda d: sa.select(c.card_id, *_SEALED).where(among(d, c.card_id, "ids")))
        for row in self._db.execute(query, among_values("ids", wanted)):
            self._cache.put(("sealed", row.card_id), _sealed(row), forever=True)

    def list_cards(self) -> list[IssuerCard]:
        return [_card(r) for r in self._db.execute(sa.select(issuer_cards).order_by(issuer_cards.c.created_at, issuer_cards.c.card_id))]

    def a_sealed_pan(self) -> bytes | None:
        """One card's sealed PAN, to check a data key against; None before any card exists."""
        sealed = self._db.execute(sa.select(issuer_cards.c.pan_enc).limit(1)).scalar_one_or_none()
        return None if sealed is None else bytes(sealed)

    def card_sealed(self, card_id: str) -> dict[str, bytes | None]:
        return self._cache.get(("sealed", card_id), lambda: self._load_card_sealed(card_id), forever=True)

    def _load_card_sealed(self, card_id: str) -> dict[str, bytes | None]:
        row = self._db.execute(sa.select(*_SEALED).where(issuer_cards.c.card_id == card_id)).one()
        return _sealed(row)  # type: ignore[return-value]


_SEALED = (issuer_cards.c.pan_enc, issuer_cards.c.imk_ac_enc, issuer_cards.c.cvk_enc, issuer_cards.c.pvk_enc)


def _sealed(row: sa.Row) -> MappingProxyType[str, bytes | None]:
    """A card's sealed columns, read-only (the cache shares it)."""
    return MappingProxyType({column.name: row._mapping[column.name] for column in _SEALED})


def _fields(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


def _merchant(row: sa.Row) -> Merchant:
    return Merchant(row.merchant_id, row.acquirer_id, row.name, row.mcc, row.currency, row.country, row.city,
                    row.address, row.status)


def _terminal(row: sa.Row) -> Terminal:
    return Terminal(
        terminal_id=row.terminal_id,
        merchant_id=row.merchant_id,
        currency=row.currency,
        initial_ksn=row.initial_ksn,
        mac_required=bool(row.mac_required),
        contactless_cvm_limit_minor=row.contactless_cvm_limit_minor,
        contactless_txn_limit_minor=row.contactless_txn_limit_minor,
        floor_limit_minor=row.floor_limit_minor,
        status=row.status,
    )


def _card(row: sa.Row) -> IssuerCard:
    return IssuerCard(
        card_id=row.card_id,
        issuer_id=row.issuer_id,
        pan_first6=row.pan_first6,
        pan_last4=row.pan_last4,
        expiry=row.expiry,
        psn=row.psn,
        service_code=row.service_code,
        scheme=row.scheme,
        funding=Funding(row.funding),
        currency=row.currency,
        interfaces=tuple(CardInterface(i) for i in row.interfaces.split(",") if i),
        cvn=row.cvn,
        behavior=row.behavior,
        status=row.status,
        pin_offset=row.pin_offset,
        token_for_card_id=row.token_for_card_id,
    )
