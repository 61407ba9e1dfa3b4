"""Terminal provisioning (services/terminals.py) with the ISO 8583 host in-process, on SQLite
and PostgreSQL: a provisioned terminal is declined (58) until activated with its one-time
code, then its sales are approved; wrong, expired and used-up codes; suspend, resume,
replace; a suspended merchant's terminals declined. The package never holds the BDK."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from paypos import limits
from paypos.adapters.db.schema import events, terminal_provisioning, terminals
from paypos.bootstrap import App
from paypos.domain import merchant_application as rules
from paypos.networks.sandbox import catalog
from paypos.protocol.dukpt import derive_ipek
from paypos.services import audit, onboarding
from paypos.services import terminals as service
from paypos.services.host import IsoHost
from paypos.protocol import iso8583
from paypos.terminal.card import CardProfile, InMemoryAtcStore, SoftCard
from paypos.terminal.engine import TerminalEngine
from paypos.terminal.simulator import SoftTerminal
from paypos.terminal.store import TerminalConfig, TerminalStore
from tests.integration.test_host import cards, chip_sale, host, send, terminal  # noqa: F401  (fixtures)
from tests.integration.test_onboarding import CHECKER, MAKER, approved, in_uow

OPERATOR = "user:ops"


@pytest.fixture
def merchant_id(app: App, host: IsoHost) -> str:  # the sandbox seeded first (the host fixture), then onboarded
    return approved(app)["merchant_id"]


def provisioned(app: App, merchant_id: str, location: str = "Counter 1") -> dict[str, Any]:
    request = in_uow(app, lambda uow: service.apply(uow, OPERATOR, app.clock(), merchant_id, location))
    return in_uow(app, lambda uow: service.provision(uow, app.vault, OPERATOR, app.clock(), request["request_id"]))


def soft_terminal(package: dict[str, Any]) -> SoftTerminal:
    """The terminal as its vendor builds it: the sandbox TEST BDK stands in for loading the IPEK
    (the simulator derives its keys from a BDK; the IPEK it would load is checked to match)."""
    ksn = bytes.fromhex(package["initial_ksn"])
    assert derive_ipek(bytes.fromhex(catalog.TEST_BDK), ksn).hex().upper() == package["ipek"]
    return SoftTerminal(package["terminal_id"], package["merchant_id"], "156", catalog.TEST_BDK,
                        package["initial_ksn"], mac_required=True)


def activate(app: App, terminal_id: str, code: str) -> dict[str, Any]:
    """As the CLI does: a wrong code is committed (it counts) before it is raised."""
    with app.uow() as uow:
        try:
            shown = service.activate(uow, app.vault, "user:installer", app.clock(), terminal_id, code)
        except service.WrongActivationCode:
            uow.commit()
            raise
        uow.commit()
        return shown


def test_a_provisioned_terminal_is_declined_until_activated_then_its_sale_is_approved(
        app: App, host: IsoHost, cards, merchant_id: str) -> None:  # noqa: F811
    result = provisioned(app, merchant_id)
    package = result["package"]
    assert result["status"] == "provisioned" and catalog.TEST_BDK not in str(result)
    assert len(package["terminal_id"]) == 8 and len(package["activation_code"]) >= 8
    device = soft_terminal(package)
    card = cards["visa-cvn18-approve"]
    assert send(host, chip_sale(device, card, 2_000))["39"] == "58"
    active = activate(app, package["terminal_id"], package["activation_code"])
    assert active["status"] == "active" and active["location"] == "Counter 1"
    assert send(host, chip_sale(device, card, 2_000))["39"] == "00"
    with app.uow(write=False) as uow:
        assert uow.registry.get_merchant(merchant_id).status == "active"  # the first terminal activated it
        types = {r.type for r in uow.connection.execute(sa.select(events).where(events.c.merchant_id == merchant_id))}
        assert types == {"merchant.approved", "merchant.activated", "terminal.activated"}
        actions = [e.action for e in audit.entries(uow, subject_id=package["terminal_id"])]
        assert actions == ["terminal.activate", "terminal.provision"]


class InProcessLink:
    """The terminal's host link, straight into the in-process host (no socket)."""

    def __init__(self, host: IsoHost) -> None:
        self.host = host

    def exchange(self, raw: bytes) -> dict[str, str]:
        return iso8583.decode_message(self.host.handle(raw))


def test_the_terminal_software_loaded_with_the_package_alone_pays_after_activation(
        app: App, host: IsoHost, cards, merchant_id: str, tmp_path) -> None:  # noqa: F811
    package = provisioned(app, merchant_id)["package"]
    store = TerminalStore(tmp_path / "terminal.db")
    store.load_keys(TerminalConfig(package["terminal_id"], package["merchant_id"], "156", package["initial_ksn"],
                                   package["ipek"], True, 10_000, 500_000, 100_000, "Lotus Tea House", "Hangzhou"))
    atc = InMemoryAtcStore()
    engine = TerminalEngine(store, InProcessLink(host), lambda profile: SoftCard(profile, atc), clock=app.clock)
    card = CardProfile.from_sandbox(cards["visa-cvn18-approve"])
    declined = engine.pay(card, 3_000, "chip", pin="1234")
    assert not declined.approved and declined.response_code == "58"
    activate(app, package["terminal_id"], package["activation_code"])
    paid = engine.pay(card, 3_000, "chip", pin="1234")
    assert paid.approved, paid.message
    store.close()


def test_the_code_is_stored_hashed_and_a_retry_with_it_answers_the_active_terminal(
        app: App, merchant_id: str) -> None:
    package = provisioned(app, merchant_id)["package"]
    with app.engine.connect() as connection:
        row = connection.execute(sa.select(terminal_provisioning)).one()
        stored = connection.execute(sa.select(terminals).where(terminals.c.terminal_id == package["terminal_id"])).one()
    assert package["activation_code"] not in row.activation_code_hash and len(row.activation_code_hash) == 64
    assert stored.initial_ksn == package["initial_ksn"] and stored.status == "provisioned"
    assert package["ipek"].encode() not in stored.bdk_enc
    activate(app, package["terminal_id"], package["activation_code"])
    assert activate(app, package["terminal_id"], package["activation_code"].lower())["status"] == "active"
    with pytest.raises(rules.IllegalTransition, match="is active; it cannot become active"):
        activate(app, package["terminal_id"], "WRONGWRONG")


def test_wrong_codes_count_and_lock_the_code_until_a_new_one_is_issued(app: App, merchant_id: str) -> None:
    package = provisioned(app, merchant_id)["package"]
    for left in range(limits.terminal_activation_attempts_max - 1, -1, -1):
        with pytest.raises(service.WrongActivationCode, match=f"{left} attempts left"):
            activate(app, package["terminal_id"], "AAAAAAAAAA")
    with pytest.raises(service.ActivationLocked):
        activate(app, package["terminal_id"], package["activation_code"])
    fresh = in_uow(app, lambda uow: service.new_activation_code(uow, app.vault, OPERATOR, app.clock(),
                                                                package["terminal_id"]))
    assert fresh["activation_code"] != package["activation_code"]
    assert activate(app, package["terminal_id"], fresh["activation_code"])["status"] == "active"


def test_an_expired_code_is_refused(app: App, merchant_id: str) -> None:
    package = provisioned(app, merchant_id)["package"]
    app.clock.advance(limits.terminal_activation_code_ttl_s)
    with pytest.raises(service.ActivationExpired):
        activate(app, package["terminal_id"], package["activation_code"])


def test_provisioning_twice_is_refused_and_the_package_is_never_shown_again(app: App, merchant_id: str) -> None:
    result = provisioned(app, merchant_id)
    with pytest.raises(rules.IllegalTransition, match="is provisioned; it cannot become provisioned"):
        in_uow(app, lambda uow: service.provision(uow, app.vault, OPERATOR, app.clock(), result["request_id"]))
    with app.uow(write=False) as uow:
        listed = service.list_terminals(uow, merchant_id=merchant_id)
    assert "ipek" not in str(listed) and result["package"]["activation_code"] not in str(listed)


def test_terminals_get_distinct_ids_and_device_ids(app: App, merchant_id: str) -> None:
    packages = [provisioned(app, merchant_id, f"Counter {n}")["package"] for n in range(3)]
    assert len({p["terminal_id"] for p in packages}) == 3 and len({p["initial_ksn"] for p in packages}) == 3
    assert len({p["ipek"] for p in packages}) == 3


def test_apply_refuses_an_unknown_or_suspended_merchant_and_a_bad_location(
        app: App, host: IsoHost, merchant_id: str) -> None:
    with pytest.raises(onboarding.MerchantNotFound):
        in_uow(app, lambda uow: service.apply(uow, OPERATOR, app.clock(), "NOPE00000000000", "Counter"))
    for location in ("", "x" * (limits.terminal_location_chars_max + 1), "a\nb"):
        with pytest.raises(rules.OnboardingError, match="^location: "):
            in_uow(app, lambda uow, location=location: service.apply(uow, OPERATOR, app.clock(), merchant_id,
                                                                     location))
    in_uow(app, lambda uow: onboarding.suspend_merchant(uow, CHECKER, app.clock(), catalog.CAFE.merchant_id))
    with pytest.raises(service.MerchantNotTrading, match="is suspended"):
        in_uow(app, lambda uow: service.apply(uow, OPERATOR, app.clock(), catalog.CAFE.merchant_id, "Counter 9"))


def test_a_suspended_terminal_or_merchant_is_declined_58_and_resumes(app: App, host: IsoHost, cards) -> None:  # noqa: F811
    device, card = terminal(app, "CAFE0001"), cards["visa-cvn18-approve"]
    in_uow(app, lambda uow: service.suspend(uow, OPERATOR, app.clock(), "CAFE0001", "lost"))
    assert send(host, chip_sale(device, card, 1_000))["39"] == "58"
    in_uow(app, lambda uow: service.resume(uow, OPERATOR, app.clock(), "CAFE0001"))
    assert send(host, chip_sale(device, card, 1_000))["39"] == "00"
    in_uow(app, lambda uow: onboarding.suspend_merchant(uow, CHECKER, app.clock(), catalog.CAFE.merchant_id))
    assert send(host, chip_sale(device, card, 1_000))["39"] == "58"
    in_uow(app, lambda uow: onboarding.reactivate_merchant(uow, CHECKER, app.clock(), catalog.CAFE.merchant_id))
    assert send(host, chip_sale(device, card, 1_000))["39"] == "00"


def test_replace_retires_the_old_terminal_and_provisions_one_for_the_same_place(
        app: App, host: IsoHost, cards, merchant_id: str) -> None:  # noqa: F811
    old = provisioned(app, merchant_id, "Till 2")["package"]
    activate(app, old["terminal_id"], old["activation_code"])
    new = in_uow(app, lambda uow: service.replace(uow, app.vault, OPERATOR, app.clock(), old["terminal_id"]))
    assert new["status"] == "provisioned" and new["location"] == "Till 2" and new["replaces"] == old["terminal_id"]
    card = cards["visa-cvn18-approve"]
    assert send(host, chip_sale(soft_terminal(old), card, 1_000))["39"] == "58"
    activate(app, new["terminal_id"], new["package"]["activation_code"])
    assert send(host, chip_sale(soft_terminal(new["package"]), card, 1_000))["39"] == "00"
    with app.uow(write=False) as uow:
        assert service.get(uow, old["terminal_id"])["status"] == "replaced"
        assert service.get(uow, old["terminal_id"])["replaced_by"] == new["terminal_id"]
    with pytest.raises(rules.IllegalTransition, match="is replaced"):
        in_uow(app, lambda uow: service.resume(uow, OPERATOR, app.clock(), old["terminal_id"]))


def test_bind_moves_a_terminal_and_a_replaced_or_unknown_one_is_refused(app: App, merchant_id: str) -> None:
    package = provisioned(app, merchant_id)["package"]
    moved = in_uow(app, lambda uow: service.bind(uow, OPERATOR, app.clock(), package["terminal_id"], "Back office"))
    assert moved["location"] == "Back office"
    with pytest.raises(service.TerminalNotFound):
        in_uow(app, lambda uow: service.bind(uow, OPERATOR, app.clock(), "NOPE0000", "Front"))
    in_uow(app, lambda uow: service.replace(uow, app.vault, OPERATOR, app.clock(), package["terminal_id"]))
    with pytest.raises(rules.IllegalTransition):
        in_uow(app, lambda uow: service.bind(uow, OPERATOR, app.clock(), package["terminal_id"], "Front"))


def test_a_retried_apply_with_its_reference_makes_one_request(app: App, merchant_id: str) -> None:
    first = in_uow(app, lambda uow: service.apply(uow, MAKER, app.clock(), merchant_id, "Door", reference="req-7"))
    again = in_uow(app, lambda uow: service.apply(uow, MAKER, app.clock(), merchant_id, "Door", reference="req-7"))
    assert again["request_id"] == first["request_id"]
