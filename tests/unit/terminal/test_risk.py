"""paypos.terminal.risk: terminal risk management decisions at and around every limit.

Sources:
  [c5]       EMV 4.4 Book 3 Annex C5 table 46 (Terminal Verification Results), as transcribed in
             openemv/emv-utils include/emv_fields.h and Bressan09/pycard
             Utils/EMVValues/TerminalVerificationResult.py: byte 1 b8 "Offline data
             authentication was not performed", byte 3 b3 "Online CVM captured" (EMV 4.3
             "Online PIN entered"), byte 4 b8 "Transaction exceeds floor limit", byte 5 b7
             "Issuer authentication failed".
  [pyemv]    pyemv tests/test_cvn_hsm.py test_visa_cvn10: a chip + online PIN transaction over
             the floor limit with TVR 80 00 04 80 00 — the same bits as here.
  [sandbox]  docs/sandbox.md: terminal CAFE0001, floor limit 10000, contactless limit 500000,
             contactless CVM limit 100000 (CNY); SHOP0001 2000 / 50000 / 10000 (USD).
  [issue4]   Issue 4 item 3 and the module docstring: limits are inclusive (the consequence
             starts strictly above a limit); fallback to swipe after 3 chip failures.
"""

from __future__ import annotations

import pytest

from paypos import limits as paypos_limits
from paypos.terminal.risk import (
    HOST_UNAVAILABLE,
    INSERT_CHIP,
    INSERT_OR_SWIPE,
    TVR_ISSUER_AUTHENTICATION_FAILED,
    TVR_OFFLINE_DATA_AUTHENTICATION_NOT_PERFORMED,
    TVR_ONLINE_CVM_CAPTURED,
    TVR_TRANSACTION_EXCEEDS_FLOOR_LIMIT,
    Decision,
    RiskInputError,
    TerminalLimits,
    decide,
    tvr_has,
    tvr_with,
)

CAFE0001 = {"terminal_id": "CAFE0001", "floor_limit_minor": 10_000, "contactless_txn_limit_minor": 500_000,
            "contactless_cvm_limit_minor": 100_000}  # [sandbox]
LIMITS = TerminalLimits.from_sandbox(CAFE0001)
CARD = ("chip", "contactless", "magstripe")
PHONE = ("contactless",)
CHIP_ONLY = ("chip", "magstripe")
MAGSTRIPE_ONLY = ("magstripe",)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def run(entry: str, amount: int, *, reachable: bool = True, interfaces: tuple[str, ...] = CARD,
        phone: bool = False, failures: int = 0, limits: TerminalLimits = LIMITS,
        service_code: str | None = None) -> Decision:
    return decide(entry, amount, limits, host_reachable=reachable, card_interfaces=interfaces, is_phone=phone,
                  chip_failures=failures, service_code=service_code)  # type: ignore[arg-type]


def summary(decision: Decision) -> tuple[object, ...]:
    return decision.action, decision.cryptogram, decision.cvm, decision.tvr.hex().upper()


# --- TVR bits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bit", "tvr"),
    [
        (TVR_OFFLINE_DATA_AUTHENTICATION_NOT_PERFORMED, "8000000000"),  # [c5] byte 1 b8
        (TVR_ONLINE_CVM_CAPTURED, "0000040000"),  # [c5] byte 3 b3
        (TVR_TRANSACTION_EXCEEDS_FLOOR_LIMIT, "0000008000"),  # [c5] byte 4 b8
        (TVR_ISSUER_AUTHENTICATION_FAILED, "0000000040"),  # [c5] byte 5 b7
    ],
)
def test_tvr_bits_sit_where_book_3_annex_c5_puts_them(bit, tvr):
    assert tvr_with(bit) == h(tvr)
    assert tvr_has(h(tvr), bit)


def test_tvr_with_adds_to_a_given_tvr():
    assert tvr_with(TVR_ISSUER_AUTHENTICATION_FAILED, tvr=h("8000048000")) == h("8000048040")


def test_tvr_with_refuses_a_tvr_that_is_not_5_bytes():
    with pytest.raises(RiskInputError) as caught:
        tvr_with(TVR_ONLINE_CVM_CAPTURED, tvr=bytes(4))
    assert caught.value.field == "95"


def test_chip_online_pin_over_the_floor_limit_gives_the_familiar_tvr():
    assert run("chip", 10_001).tvr == h("8000048000")  # [pyemv]


# --- contactless ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "phone", "expected"),
    [
        (0, False, ("online", "ARQC", "no_cvm", "8000000000")),
        (99_999, False, ("online", "ARQC", "no_cvm", "8000008000")),
        (100_000, False, ("online", "ARQC", "no_cvm", "8000008000")),  # at the CVM limit
        (100_001, False, ("online", "ARQC", "online_pin", "8000048000")),
        (100_001, True, ("online", "ARQC", "cdcvm", "8000008000")),
        (499_999, True, ("online", "ARQC", "cdcvm", "8000008000")),
        (500_000, False, ("online", "ARQC", "online_pin", "8000048000")),  # at the transaction limit
        (500_000, True, ("online", "ARQC", "cdcvm", "8000008000")),
        (500_001, False, ("refuse", None, None, "0000000000")),
        (500_001, True, ("refuse", None, None, "0000000000")),
        (10_000, False, ("online", "ARQC", "no_cvm", "8000000000")),  # at the floor limit
        (10_001, False, ("online", "ARQC", "no_cvm", "8000008000")),
    ],
)
def test_contactless_decisions_around_the_limits(amount, phone, expected):
    interfaces = PHONE if phone else CARD
    assert summary(run("contactless", amount, interfaces=interfaces, phone=phone)) == expected


def test_contactless_above_the_transaction_limit_asks_to_insert_or_swipe():
    assert run("contactless", 500_001).reason == INSERT_OR_SWIPE == "insert or swipe card"


@pytest.mark.parametrize("amount", [1, 100_001])
def test_contactless_with_the_host_unreachable_is_declined(amount):
    decision = run("contactless", amount, reachable=False)
    assert (decision.action, decision.cryptogram, decision.reason) == ("decline", None, HOST_UNAVAILABLE)


def test_contactless_above_the_transaction_limit_is_refused_even_offline():
    assert run("contactless", 500_001, reachable=False).action == "refuse"


def test_usd_terminal_uses_its_own_limits():
    shop = TerminalLimits.from_sandbox({"floor_limit_minor": 2_000, "contactless_txn_limit_minor": 50_000,
                                        "contactless_cvm_limit_minor": 10_000})  # [sandbox] SHOP0001
    assert [run("contactless", amount, limits=shop).cvm for amount in (10_000, 10_001)] == ["no_cvm", "online_pin"]
    assert run("contactless", 50_001, limits=shop).action == "refuse"


# --- chip -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "reachable", "expected"),
    [
        (1, True, ("online", "ARQC", "online_pin", "8000040000")),
        (10_000, True, ("online", "ARQC", "online_pin", "8000040000")),
        (10_001, True, ("online", "ARQC", "online_pin", "8000048000")),
        (600_000, True, ("online", "ARQC", "online_pin", "8000048000")),  # no contactless limits here
        (0, False, ("offline_approve", "TC", "signature", "8000000000")),
        (9_999, False, ("offline_approve", "TC", "signature", "8000000000")),
        (10_000, False, ("offline_approve", "TC", "signature", "8000000000")),  # at the floor limit
        (10_001, False, ("decline", "AAC", None, "8000008000")),
    ],
)
def test_chip_decisions_around_the_floor_limit(amount, reachable, expected):
    assert summary(run("chip", amount, reachable=reachable)) == expected


def test_chip_above_the_floor_limit_with_the_host_down_says_host_unavailable():
    assert run("chip", 10_001, reachable=False).reason == HOST_UNAVAILABLE == "host unavailable"


def test_offline_approval_is_marked_for_store_and_forward():
    assert "forwarded" in run("chip", 5_000, reachable=False).reason


# --- swipe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, ("refuse", None, None, False)),
        (1, ("refuse", None, None, False)),
        (2, ("refuse", None, None, False)),
        (3, ("online", None, "online_pin", True)),  # the third chip failure allows fallback
        (4, ("online", None, "online_pin", True)),
    ],
)
def test_swipe_of_a_chip_card_is_only_a_fallback(failures, expected):
    decision = run("swipe", 2_000, failures=failures)
    assert (decision.action, decision.cryptogram, decision.cvm, decision.fallback) == expected
    assert decision.tvr == bytes(5)


def test_swipe_of_a_chip_card_asks_to_insert_the_chip():
    assert run("swipe", 2_000, failures=2).reason == INSERT_CHIP == "insert chip card"


def test_swipe_of_a_magstripe_card_goes_online_at_once():
    decision = run("swipe", 2_000, interfaces=MAGSTRIPE_ONLY)
    assert (decision.action, decision.cvm, decision.fallback) == ("online", "online_pin", False)


@pytest.mark.parametrize(("service_code", "interfaces", "action"), [
    ("201", MAGSTRIPE_ONLY, "refuse"),  # the track says chip card, whatever the profile says
    ("601", MAGSTRIPE_ONLY, "refuse"),  # national chip card
    ("101", CARD, "online"),  # the track says no chip
])
def test_track_service_code_decides_whether_the_card_has_a_chip(service_code, interfaces, action):
    assert run("swipe", 2_000, interfaces=interfaces, service_code=service_code).action == action


def test_fallback_threshold_comes_from_the_terminal_limits():
    limits = TerminalLimits(10_000, 500_000, 100_000, chip_failures_before_fallback=1)
    assert run("swipe", 2_000, failures=1, limits=limits).action == "online"


def test_swipe_with_the_host_unreachable_is_declined():
    assert run("swipe", 2_000, interfaces=MAGSTRIPE_ONLY, reachable=False).action == "decline"


# --- manual -----------------------------------------------------------------------------------


def test_key_entry_goes_online_with_a_signature():
    assert summary(run("manual", 2_000)) == ("online", None, "signature", "0000000000")


def test_key_entry_with_the_host_unreachable_is_declined():
    assert run("manual", 2_000, reachable=False).reason == HOST_UNAVAILABLE


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "amount", "kwargs", "field"),
    [
        ("tap", 100, {}, "entry"),
        ("CHIP", 100, {}, "entry"),
        (None, 100, {}, "entry"),
        ("chip", -1, {}, "amount_minor"),
        ("chip", 12.5, {}, "amount_minor"),
        ("chip", True, {}, "amount_minor"),
        ("chip", "100", {}, "amount_minor"),
        ("chip", paypos_limits.iso_amount_minor_max + 1, {}, "amount_minor"),
        ("chip", 100, {"interfaces": MAGSTRIPE_ONLY}, "entry"),
        ("contactless", 100, {"interfaces": CHIP_ONLY}, "entry"),
        ("swipe", 100, {"interfaces": PHONE, "phone": True}, "entry"),
        ("manual", 100, {"interfaces": PHONE, "phone": True}, "entry"),
        ("chip", 100, {"interfaces": "chip"}, "card_interfaces"),
        ("chip", 100, {"interfaces": ("chip", "nfc")}, "card_interfaces"),
        ("chip", 100, {"interfaces": ()}, "card_interfaces"),
        ("chip", 100, {"failures": -1}, "chip_failures"),
        ("chip", 100, {"failures": 1.0}, "chip_failures"),
        ("chip", 100, {"reachable": "yes"}, "host_reachable"),
        ("chip", 100, {"phone": 0}, "is_phone"),
        ("swipe", 100, {"service_code": "2a1"}, "service_code"),
        ("chip", 100, {"service_code": "2011"}, "service_code"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_field(entry, amount, kwargs, field):
    with pytest.raises(RiskInputError) as caught:
        run(entry, amount, **kwargs)
    assert caught.value.field == field


def test_limits_must_be_terminal_limits():
    with pytest.raises(RiskInputError) as caught:
        decide("chip", 100, CAFE0001,  # type: ignore[arg-type]
               host_reachable=True, card_interfaces=CARD, is_phone=False, chip_failures=0)
    assert caught.value.field == "limits"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ((-1, 500_000, 100_000), "floor_limit_minor"),
        ((10_000, "500000", 100_000), "contactless_txn_limit_minor"),
        ((10_000, 500_000, None), "contactless_cvm_limit_minor"),
        ((10_000, 500_000, 100_000, 0), "chip_failures_before_fallback"),
    ],
)
def test_terminal_limits_reject_bad_values(values, field):
    with pytest.raises(RiskInputError) as caught:
        TerminalLimits(*values)
    assert caught.value.field == field


def test_terminal_limits_from_sandbox_need_every_limit():
    record = {key: value for key, value in CAFE0001.items() if key != "floor_limit_minor"}
    with pytest.raises(RiskInputError) as caught:
        TerminalLimits.from_sandbox(record)
    assert caught.value.field == "floor_limit_minor"


def test_terminal_limits_from_sandbox_read_the_record():
    assert LIMITS == TerminalLimits(10_000, 500_000, 100_000, 3)


@pytest.mark.parametrize(
    "fields",
    [("maybe", "ARQC", "no_cvm", bytes(5), "x"), ("online", "ARPC", "no_cvm", bytes(5), "x"),
     ("online", "ARQC", "pin", bytes(5), "x"), ("online", "ARQC", "no_cvm", bytes(4), "x")],
)
def test_a_decision_outside_the_vocabulary_is_a_programming_error(fields):
    with pytest.raises(ValueError):
        Decision(*fields)
