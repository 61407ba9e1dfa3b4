"""The store of pricing plans, merchant plan assignments and billed charges (issue 7,
docs/pricing.md). Plain reads and writes; every decision is in ``services.pricing``.

A merchant's assignment history is read through the process's TtlCache (``limits.
pricing_cache_ttl_s``): the host prices every payment without a database round trip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.cache import NoCache, TtlCache
from paypos.adapters.db.schema import pricing_assignments, pricing_charges, pricing_plans
from paypos.domain.pricing import PricingPlan, plan_from_json, plan_to_json, standard_plan


@dataclass(frozen=True, slots=True)
class Assignment:
    id: int
    merchant_id: str
    plan_id: str
    effective_from: datetime
    actor: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Charge:
    id: str  # its ledger transfer id
    merchant_id: str
    month: str
    item: str
    amount_minor: int
    currency: str
    status: str  # pending | posted | waived
    created_at: datetime
    posted_at: datetime | None


class SqlPricingStore:
    def __init__(self, connection: sa.Connection, cache: TtlCache | None = None) -> None:
        self._db = connection
        self._cache = cache if cache is not None else NoCache()

    # --- plans ----------------------------------------------------------------------------

    def add_plan(self, plan: PricingPlan, now: datetime) -> None:
        self._cache.clear()
        self._db.execute(pricing_plans.insert().values(
            id=plan.id, name=plan.name, currency=plan.currency,
            spec_json=json.dumps(plan_to_json(plan), sort_keys=True), created_at=now))

    def get_plan(self, plan_id: str) -> PricingPlan | None:
        row = self._db.execute(sa.select(pricing_plans.c.spec_json).where(pricing_plans.c.id == plan_id)).first()
        return None if row is None else plan_from_json(json.loads(row.spec_json))

    def list_plans(self) -> list[tuple[PricingPlan, datetime]]:
        rows = self._db.execute(sa.select(pricing_plans).order_by(pricing_plans.c.id))
        return [(plan_from_json(json.loads(r.spec_json)), r.created_at) for r in rows]

    # --- assignments ----------------------------------------------------------------------

    def add_assignment(self, merchant_id: str, plan_id: str, effective_from: datetime, actor: str,
                       now: datetime) -> int:
        self._cache.clear()
        result = self._db.execute(pricing_assignments.insert().values(
            merchant_id=merchant_id, plan_id=plan_id, effective_from=effective_from, actor=actor, created_at=now))
        return int(result.inserted_primary_key[0])

    def assignments(self, merchant_id: str | None = None) -> list[Assignment]:
        """Oldest first; one merchant's, or everyone's (billing)."""
        query = sa.select(pricing_assignments).order_by(pricing_assignments.c.merchant_id,
                                                        pricing_assignments.c.effective_from)
        if merchant_id is not None:
            query = query.where(pricing_assignments.c.merchant_id == merchant_id)
        return [Assignment(**r._mapping) for r in self._db.execute(query)]

    def history(self, merchant_id: str) -> tuple[tuple[datetime, PricingPlan], ...]:
        """(effective_from, plan), oldest first: cached, the host reads it on every payment."""
        return self._cache.get(("pricing", merchant_id), lambda: self._load_history(merchant_id))

    def plan_at(self, merchant_id: str, currency: str, at: datetime) -> PricingPlan:
        """The plan in force for a merchant at ``at``: the newest assignment with
        ``effective_from <= at``; none, or a plan in another currency than the payment's: the
        standard plan in the payment's currency. Cached history: no statement on a hit."""
        chosen = None
        for effective_from, plan in self.history(merchant_id):
            if effective_from > at:
                break
            chosen = plan
        return chosen if chosen is not None and chosen.currency == currency else standard_plan(currency)

    def _load_history(self, merchant_id: str) -> tuple[tuple[datetime, PricingPlan], ...]:
        query = (sa.select(pricing_assignments.c.effective_from, pricing_plans.c.spec_json)
                 .join(pricing_plans, pricing_plans.c.id == pricing_assignments.c.plan_id)
                 .where(pricing_assignments.c.merchant_id == merchant_id)
                 .order_by(pricing_assignments.c.effective_from.desc())
                 .limit(limits.pricing_assignments_listed_max))
        rows = list(self._db.execute(query))
        return tuple((r.effective_from, plan_from_json(json.loads(r.spec_json))) for r in reversed(rows))

    # --- charges --------------------------------------------------------------------------

    def get_charge(self, charge_id: str) -> Charge | None:
        row = self._db.execute(sa.select(pricing_charges).where(pricing_charges.c.id == charge_id)).first()
        return None if row is None else Charge(**row._mapping)

    def add_charge(self, **values: Any) -> None:
        self._db.execute(pricing_charges.insert().values(**values))

    def mark(self, charge_id: str, status: str, now: datetime) -> None:
        """pending → posted (paid) or waived (a deposit no longer owed)."""
        self._db.execute(sa.update(pricing_charges).where(pricing_charges.c.id == charge_id)
                         .values(status=status, posted_at=now))

    def charges(self, merchant_id: str | None = None, *, status: str | None = None,
                currency: str | None = None, month: str | None = None) -> list[Charge]:
        query = sa.select(pricing_charges).order_by(pricing_charges.c.created_at, pricing_charges.c.id)
        for column, value in (("merchant_id", merchant_id), ("status", status), ("currency", currency),
                              ("month", month)):
            if value is not None:
                query = query.where(pricing_charges.c[column] == value)
        return [Charge(**r._mapping) for r in self._db.execute(query)]
