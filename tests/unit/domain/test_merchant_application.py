"""The onboarding rules (domain/merchant_application.py): state machines, field validation
with known-good and bad check characters, the document check by magic bytes, file names."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from paypos import limits
from paypos.domain import merchant_application as rules

# Known-good numbers: the python-stdnum doctests (stdnum/cn/ric.py, stdnum/cn/uscc.py) and the
# GB 11643-1999 example 11010519491231002X; the bad twins change only the check character.
GOOD_RIC = ("360426199101010071", "11010519491231002X", "11010519491231002x")
BAD_RIC = ("360426199101010072", "11010519491231002Y", "36042619910101007", "360426199113010071")
GOOD_USCC = ("91110000600037341L", "91350100M000100Y43")
BAD_USCC = ("91110000600037341A", "A1110000600037341L", "12345")


def business(**changes: str) -> dict[str, str]:
    return {"kind": "business", "legal_name": "Lotus Tea House Co., Ltd.", "id_number": GOOD_RIC[0],
            "licence_number": GOOD_USCC[0], "phone": "13912345678", "mcc": "5814", "city": "Hangzhou",
            "address": "1 West Lake Road", **changes}


def individual(**changes: str) -> dict[str, str]:
    values = business(kind="individual", legal_name="Wang Fang", **changes)
    values.pop("licence_number")
    return values


@pytest.mark.parametrize("number", GOOD_RIC)
def test_a_resident_id_with_a_good_check_character_is_accepted(number: str) -> None:
    assert rules.validate_id_number(number) == number.upper()


@pytest.mark.parametrize("number", BAD_RIC)
def test_a_resident_id_with_a_bad_check_character_length_or_date_names_the_field(number: str) -> None:
    with pytest.raises(rules.OnboardingError, match="^id_number: ") as raised:
        rules.validate_id_number(number)
    assert raised.value.field == "id_number"


@pytest.mark.parametrize("number", GOOD_USCC)
def test_a_unified_social_credit_code_with_a_good_check_character_is_accepted(number: str) -> None:
    assert rules.validate_licence_number(number) == number


@pytest.mark.parametrize("number", BAD_USCC)
def test_a_bad_unified_social_credit_code_names_the_licence_field(number: str) -> None:
    with pytest.raises(rules.OnboardingError, match="^licence_number: "):
        rules.validate_licence_number(number)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)), st.integers(0, 999))
def test_any_resident_id_passes_with_its_computed_check_character_and_fails_with_another(birth, sequence) -> None:
    body = f"110105{birth:%Y%m%d}{sequence:03d}"
    check = ric.calc_check_digit(body + "?")  # it reads the first 17 characters
    assert rules.validate_id_number(body + check) == body + check
    wrong = next(c for c in "0123456789X" if c != check)
    with pytest.raises(rules.OnboardingError):
        rules.validate_id_number(body + wrong)


@pytest.mark.parametrize("phone, stored", [("13912345678", "13912345678"), ("139 1234 5678", "13912345678"),
                                           ("+8613912345678", "+8613912345678"), ("+442071234567", "+442071234567")])
def test_chinese_mobile_and_e164_phones_are_accepted(phone: str, stored: str) -> None:
    assert rules.validate_phone(phone) == stored


@pytest.mark.parametrize("phone", ["12912345678", "1391234567", "+1234567", "+1234567890123456", "021-12345678x"])
def test_other_phones_name_the_phone_field(phone: str) -> None:
    with pytest.raises(rules.OnboardingError, match="^phone: "):
        rules.validate_phone(phone)


@pytest.mark.parametrize("mcc", ["5411", "5812", "5814", "5999", "7230", "5311", "5912", "4121"])
def test_common_retail_mccs_are_allowed(mcc: str) -> None:
    assert rules.validate_mcc(mcc) == mcc


@pytest.mark.parametrize("mcc", ["7995", "4829", "581", "58144", "abcd"])
def test_gambling_money_transfer_and_malformed_mccs_are_refused(mcc: str) -> None:
    with pytest.raises(rules.OnboardingError, match="^mcc: "):
        rules.validate_mcc(mcc)


def test_a_business_needs_its_licence_number_and_an_individual_has_none() -> None:
    assert rules.validate_fields(business()).licence_number == GOOD_USCC[0]
    assert rules.validate_fields(individual()).licence_number is None
    with pytest.raises(rules.OnboardingError, match="^licence_number: is required"):
        rules.validate_fields(business(licence_number=""))
    with pytest.raises(rules.OnboardingError, match="^licence_number: only a business"):
        rules.validate_fields({**individual(), "licence_number": GOOD_USCC[0]})


@pytest.mark.parametrize("field, value", [
    ("legal_name", "x" * (limits.application_legal_name_chars_max + 1)), ("legal_name", "  "),
    ("address", "a\x00b"), ("city", "c" * (limits.application_city_chars_max + 1)), ("kind", "charity"),
])
def test_missing_overlong_or_control_character_fields_are_refused_by_name(field: str, value: str) -> None:
    with pytest.raises(rules.OnboardingError) as raised:
        rules.validate_fields(business(**{field: value}))
    assert raised.value.field == field


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(rules.OnboardingError, match="^bank: unknown field"):
        rules.validate_fields({**business(), "bank": "x"})


def test_an_id_number_is_masked_to_its_region_and_last_four() -> None:
    assert rules.mask_id_number("360426199101010071") == "360426********0071"


@pytest.mark.parametrize("current, wanted", [("draft", "submitted"), ("submitted", "approved"),
                                             ("submitted", "rejected"), ("rejected", "draft"), ("draft", "draft")])
def test_the_application_moves_along_its_machine(current: str, wanted: str) -> None:
    assert rules.application_transition(current, wanted) == wanted


@pytest.mark.parametrize("current, wanted", [("draft", "approved"), ("approved", "draft"), ("rejected", "approved"),
                                             ("submitted", "draft"), ("approved", "rejected")])
def test_an_illegal_application_transition_names_both_states(current: str, wanted: str) -> None:
    with pytest.raises(rules.IllegalTransition, match=f"is {current}; it cannot become {wanted}"):
        rules.application_transition(current, wanted)


def test_a_closed_merchant_never_trades_again_and_an_approved_one_cannot_be_suspended() -> None:
    assert rules.merchant_transition("suspended", "active") == "active"
    for current, wanted in [("closed", "active"), ("approved", "suspended"), ("closed", "suspended")]:
        with pytest.raises(rules.IllegalTransition):
            rules.merchant_transition(current, wanted)


def test_a_replaced_terminal_is_final_and_a_provisioned_one_cannot_be_suspended() -> None:
    assert rules.terminal_transition("provisioned", "active") == "active"
    for current, wanted in [("replaced", "active"), ("provisioned", "suspended"), ("requested", "active")]:
        with pytest.raises(rules.IllegalTransition):
            rules.terminal_transition(current, wanted)


def test_a_rejection_needs_known_codes_and_a_text_for_other() -> None:
    assert rules.validate_rejection(["id_mismatch", "id_mismatch"], " blurred ") == (["id_mismatch"], "blurred")
    for codes, text, field in [([], "", "reasons"), (["nope"], "", "reasons"), (["other"], "", "text"),
                               (["other"], "t" * (limits.application_reject_text_chars_max + 1), "text")]:
        with pytest.raises(rules.OnboardingError) as raised:
            rules.validate_rejection(codes, text)
        assert raised.value.field == field


@pytest.mark.parametrize("content, declared", [(b"%PDF-1.7\n...", "application/pdf"),
                                               (b"\x89PNG\r\n\x1a\n....", "image/png"),
                                               (b"\xff\xd8\xff\xe0..JFIF", "image/jpeg"),
                                               (b"\xff\xd8\xff\xe0..JFIF", "image/jpg")])
def test_an_allowed_document_type_matching_its_magic_bytes_is_accepted(content: bytes, declared: str) -> None:
    assert rules.check_document(content, declared) == rules.sniff_media_type(content)


@pytest.mark.parametrize("content, declared, field", [
    (b"%PDF-1.7", "image/png", "file"),  # the declared type lies
    (b"MZ\x90\x00 an executable", "application/pdf", "file"),
    (b"<html><script>", "text/html", "media_type"),
    (b"", "application/pdf", "file"),
    (b"%PDF-" + b"0" * limits.document_bytes_max, "application/pdf", "file"),
])
def test_a_document_of_another_type_empty_or_too_large_is_refused(content: bytes, declared: str, field: str) -> None:
    with pytest.raises(rules.OnboardingError) as raised:
        rules.check_document(content, declared)
    assert raised.value.field == field


@pytest.mark.parametrize("name, shown", [("../../etc/passwd", "passwd"), ("C:\\scans\\id card.png", "id card.png"),
                                         ("营业执照.pdf", "营业执照.pdf"), ("a<script>.pdf", "a_script_.pdf"),
                                         ("...", "document")])
def test_a_file_name_is_kept_for_display_only_without_paths_or_markup(name: str, shown: str) -> None:
    assert rules.sanitise_file_name(name) == shown
