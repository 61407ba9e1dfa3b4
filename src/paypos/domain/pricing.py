"""Merchant fees: the payment methods they are priced by and pricing plans (issue 7).

Pure: no I/O. A :class:`PricingPlan` prices every :class:`PaymentMethod`; :func:`fee_for`
computes one payment's fee from the plan in force (docs/pricing.md).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from paypos import limits

# 0.60 % of the amount, in basis points: the standard plan's rate (and paypos's only rate
# before plans); consumer credit pay costs the merchant more, 0.80 %.
DEFAULT_MDR_BPS = 60
CREDIT_PAY_MDR_BPS = 80
STANDARD_PLAN_ID = "standard"


def fee_minor(amount_minor: int, rate_bps: int = DEFAULT_MDR_BPS) -> int:
    """Fee in minor units, rounded half up, integer arithmetic only (never a float)."""
    if type(amount_minor) is not int or amount_minor < 0:
        raise ValueError("amount must be a non-negative int of minor units")
    return (amount_minor * rate_bps + 5_000) // 10_000


class PaymentMethod(enum.StrEnum):
    """How a payment was made, as pricing plans and reports group it (issue 7)."""

    DEBIT_CARD = "debit_card"
    CREDIT_CARD = "credit_card"
    CONTACTLESS = "contactless"
    WALLET_BALANCE = "wallet_balance"
    WALLET_CARD = "wallet_card"
    CREDIT_PAY = "credit_pay"
    PREPAID = "prepaid"
    CARD_NOT_PRESENT = "card_not_present"


# ISO 8583 field 22 positions 1-2 (PAN entry mode) that mean a contactless read.
_CONTACTLESS_ENTRY = ("07", "91")


def card_present_method(funding: str, entry_mode: str | None) -> PaymentMethod:
    """The method of a card-present transaction from the card's funding (debit, credit,
    prepaid) and field 22: a tap is contactless whatever the funding, except prepaid cards,
    which are priced as prepaid however they are read."""
    if funding == "prepaid":
        return PaymentMethod.PREPAID
    if entry_mode is not None and entry_mode[:2] in _CONTACTLESS_ENTRY:
        return PaymentMethod.CONTACTLESS
    return PaymentMethod.CREDIT_CARD if funding == "credit" else PaymentMethod.DEBIT_CARD


def wallet_method(funding: str) -> PaymentMethod:
    """The method of a wallet payment from its funding (balance, card, creditpay)."""
    return {"balance": PaymentMethod.WALLET_BALANCE, "card": PaymentMethod.WALLET_CARD,
            "creditpay": PaymentMethod.CREDIT_PAY}[funding]


# --- pricing plans (issue 7, docs/pricing.md) ---------------------------------------------

_BPS = 10_000  # basis points in one whole
_PLAN_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class PricingError(ValueError):
    """A plan or a quote broke a pricing rule; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "plan") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class MethodPrice:
    """One method's merchant discount rate (basis points), minimum and cap of the rate part
    (minor units; ``cap_minor`` None: no cap)."""

    rate_bps: int
    min_minor: int = 0
    cap_minor: int | None = None

    def __post_init__(self) -> None:
        _int_in(self.rate_bps, 0, _BPS, "rate_bps")
        _int_in(self.min_minor, 0, limits.transfer_amount_minor_max, "min_minor")
        if self.cap_minor is not None:
            _int_in(self.cap_minor, self.min_minor, limits.transfer_amount_minor_max, "cap_minor")


class DeviceKind(enum.StrEnum):
    NONE = "none"
    FREE_WITH_THRESHOLD = "free_with_threshold"  # free unless the volume stays under a threshold
    DEPOSIT = "deposit"  # a refundable deposit, returned once a volume target is met
    BUYOUT = "buyout"  # the merchant buys the device


@dataclass(frozen=True)
class DeviceModel:
    """How the merchant pays for its terminal. The fields a kind does not use stay 0.

    - ``free_with_threshold``: ``threshold_minor`` of sales within ``window_days`` of the
      assignment, else ``device_fee_minor`` is charged once, at the end of the window;
    - ``deposit``: ``deposit_minor`` is taken when the plan is assigned and returned once
      the sales reach ``target_minor`` within ``window_days`` (else it is kept);
    - ``buyout``: ``price_minor`` is charged once;
    - ``none``: nothing.
    """

    kind: DeviceKind = DeviceKind.NONE
    threshold_minor: int = 0
    window_days: int = 0
    device_fee_minor: int = 0
    deposit_minor: int = 0
    target_minor: int = 0
    price_minor: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(DeviceKind, self.kind, "device.kind"))
        top = limits.transfer_amount_minor_max
        for name in ("threshold_minor", "device_fee_minor", "deposit_minor", "target_minor", "price_minor"):
            _int_in(getattr(self, name), 0, top, f"device.{name}")
        _int_in(self.window_days, 0, limits.pricing_device_window_days_max, "device.window_days")
        used = {DeviceKind.NONE: (), DeviceKind.BUYOUT: ("price_minor",),
                DeviceKind.FREE_WITH_THRESHOLD: ("threshold_minor", "window_days", "device_fee_minor"),
                DeviceKind.DEPOSIT: ("deposit_minor", "target_minor", "window_days")}[self.kind]
        for name in ("threshold_minor", "window_days", "device_fee_minor", "deposit_minor", "target_minor",
                     "price_minor"):
            value = getattr(self, name)
            if name in used and value <= 0:
                raise PricingError(f"device.{name}: a {self.kind.value} device needs it above 0",
                                   field=f"device.{name}")
            if name not in used and value:
                raise PricingError(f"device.{name}: not used by a {self.kind.value} device",
                                   field=f"device.{name}")


@dataclass(frozen=True)
class Promotion:
    """Rate overrides (basis points) per method, in force while ``at < ends_at``."""

    name: str
    rates_bps: Mapping[PaymentMethod, int]
    ends_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= limits.pricing_name_chars_max:
            raise PricingError(f"promotion name: 1 to {limits.pricing_name_chars_max} characters",
                               field="promotion.name")
        if self.ends_at.tzinfo is None:
            raise PricingError("promotion ends_at: a time with a UTC offset", field="promotion.ends_at")
        if not self.rates_bps:
            raise PricingError("promotion: at least one method's rate", field="promotion.rates_bps")
        rates = {_enum(PaymentMethod, m, "promotion.method"): r for m, r in self.rates_bps.items()}
        for rate in rates.values():
            _int_in(rate, 0, _BPS, "promotion.rate_bps")
        object.__setattr__(self, "rates_bps", MappingProxyType(rates))

    def active(self, at: datetime) -> bool:
        return at < self.ends_at


@dataclass(frozen=True)
class PricingPlan:
    """What a merchant pays: per method a rate with min and cap, a fixed fee per transaction,
    a monthly fee, a device model and promotions. Every method must be priced."""

    id: str
    name: str
    currency: str
    prices: Mapping[PaymentMethod, MethodPrice]
    fixed_fee_minor: int = 0
    monthly_fee_minor: int = 0
    device: DeviceModel = field(default_factory=DeviceModel)
    promotions: tuple[Promotion, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _PLAN_ID.fullmatch(self.id):
            raise PricingError("plan id: 1 to 32 of a-z 0-9 _ - (starting with a letter or digit)", field="id")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= limits.pricing_name_chars_max:
            raise PricingError(f"plan name: 1 to {limits.pricing_name_chars_max} characters", field="name")
        if not isinstance(self.currency, str) or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise PricingError("currency: an ISO 4217 alpha code such as CNY", field="currency")
        prices = {_enum(PaymentMethod, m, "method"): p for m, p in self.prices.items()}
        missing = [m.value for m in PaymentMethod if m not in prices]
        if missing:
            raise PricingError(f"rates: every method needs a price, missing {', '.join(missing)}", field="rates")
        object.__setattr__(self, "prices", MappingProxyType(prices))
        _int_in(self.fixed_fee_minor, 0, limits.transfer_amount_minor_max, "fixed_fee_minor")
        _int_in(self.monthly_fee_minor, 0, limits.transfer_amount_minor_max, "monthly_fee_minor")
        if len(self.promotions) > limits.pricing_promotions_per_plan_max:
            raise PricingError(f"promotions: at most {limits.pricing_promotions_per_plan_max}", field="promotions")
        object.__setattr__(self, "promotions", tuple(self.promotions))

    def rate_bps(self, method: PaymentMethod, at: datetime) -> int:
        """The rate in force at ``at``: the lowest active promotion's for the method, else the plan's."""
        rates = [p.rates_bps[method] for p in self.promotions if method in p.rates_bps and p.active(at)]
        return min(rates) if rates else self.prices[method].rate_bps


def fee_for(plan: PricingPlan, method: PaymentMethod, amount_minor: int, at: datetime) -> int:
    """The merchant's fee for one payment, in minor units, integers only.

    rate part = ``amount * rate_bps / 10000`` rounded half up (the promotion's rate while one is
    in force for the method), then raised to the method's minimum and lowered to its cap; plus
    the plan's fixed fee per transaction; never more than the amount itself.
    """
    if type(amount_minor) is not int or amount_minor < 0:
        raise PricingError("amount must be a non-negative int of minor units", field="amount")
    price = plan.prices[PaymentMethod(method)]
    part = (amount_minor * plan.rate_bps(PaymentMethod(method), at) + _BPS // 2) // _BPS
    part = max(part, price.min_minor)
    if price.cap_minor is not None:
        part = min(part, price.cap_minor)
    return min(part + plan.fixed_fee_minor, amount_minor)


def standard_plan(currency: str = "CNY", plan_id: str = STANDARD_PLAN_ID) -> PricingPlan:
    """The plan of a merchant without an assignment, and the sandbox's "standard" plan: the
    rates paypos charged before plans existed (60 bps, credit pay 80 bps), nothing else."""
    prices = {m: MethodPrice(DEFAULT_MDR_BPS) for m in PaymentMethod}
    prices[PaymentMethod.CREDIT_PAY] = MethodPrice(CREDIT_PAY_MDR_BPS)
    return PricingPlan(plan_id, "Standard", currency, prices)


def standard_plan_id(currency: str) -> str:
    """The sandbox's standard plan of a currency: "standard" (CNY), "standard-usd", ..."""
    return STANDARD_PLAN_ID if currency == "CNY" else f"{STANDARD_PLAN_ID}-{currency.lower()}"


def plan_to_json(plan: PricingPlan) -> dict[str, Any]:
    """The plan as stored (``pricing_plans.spec_json``) and shown by the CLI and REST."""
    return {
        "id": plan.id, "name": plan.name, "currency": plan.currency,
        "rates": {m.value: {"rate_bps": p.rate_bps, "min_minor": p.min_minor, "cap_minor": p.cap_minor}
                  for m, p in plan.prices.items()},
        "fixed_fee_minor": plan.fixed_fee_minor, "monthly_fee_minor": plan.monthly_fee_minor,
        "device": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in vars(plan.device).items()
                   if k == "kind" or v},
        "promotions": [{"name": p.name, "rates_bps": {m.value: r for m, r in p.rates_bps.items()},
                        "ends_at": p.ends_at.astimezone(UTC).isoformat().replace("+00:00", "Z")}
                       for p in plan.promotions],
    }


def plan_from_json(data: Mapping[str, Any]) -> PricingPlan:
    """Read a plan from its JSON form (see :func:`plan_to_json`); bad input is a PricingError."""
    try:
        rates = data.get("rates") or {}
        default = rates.get("*") if isinstance(rates, Mapping) else None
        prices: dict[PaymentMethod, MethodPrice] = {}
        for method in PaymentMethod:
            spec = rates.get(method.value, default)
            if spec is None:
                continue
            spec = {"rate_bps": spec} if isinstance(spec, int) else spec
            prices[method] = MethodPrice(spec["rate_bps"], spec.get("min_minor", 0), spec.get("cap_minor"))
        unknown = set(rates) - {m.value for m in PaymentMethod} - {"*"}
        if unknown:
            raise PricingError(f"rates: unknown method {sorted(unknown)[0]!r}", field="rates")
        device = DeviceModel(**(data.get("device") or {}))
        promotions = tuple(Promotion(p["name"], p["rates_bps"], _utc(p["ends_at"]))
                           for p in data.get("promotions") or ())
        return PricingPlan(data["id"], data["name"], data["currency"], prices,
                           data.get("fixed_fee_minor", 0), data.get("monthly_fee_minor", 0), device, promotions)
    except PricingError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PricingError(f"plan: {error.__class__.__name__}: {error}") from None


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else text
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise PricingError("promotion ends_at: an ISO 8601 time with a UTC offset", field="promotion.ends_at")
    return value.astimezone(UTC)


def _int_in(value: object, low: int, high: int, name: str) -> None:
    if type(value) is not int or not low <= value <= high:
        raise PricingError(f"{name}: an integer from {low} to {high}", field=name)


E = TypeVar("E", bound=enum.Enum)


def _enum(kind: type[E], value: object, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise PricingError(f"{name}: unknown {value!r}, one of {', '.join(m.value for m in kind)}",
                           field=name) from None
