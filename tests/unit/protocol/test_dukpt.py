"""paypos.protocol.dukpt: TDES DUKPT per ANSI X9.24-1:2009 Annex A.

Every known-answer vector below was run against this code and cites where it was published.
The standard itself is not freely available; its Annex A.4 test data is reproduced in:

  [openemv] openemv/dukpt, test/dukpt_tdes_test.c at 0478f0568327d28ce2b902ab2b17b6c6aa34e139
            ("ANSI X9.24-1:2009 A.4.2 initial sequence" and "A.4.3 rollover sequence":
            KSNs, transaction keys, and the PIN block 041274EDCBA9876F encrypted).
  [moov]    moov-io/dukpt, pkg/des/des_test.go at 1155c927870e2005282046358fa0f4736146f4af
            ("A.4.2 Initial Sequence": current keys and the request/response data
            encryption of "4012345678909D987", TDES-CBC, zero IV, zero padding).
  [gvr]     marianovolker/jmps-public, C++/Spotcheck/SpotCheckTrunk/Uploader/GVRlib/dukpt3.py
            at b2ca4a6921974e78a2dd128688d42beca121eec6 (dukpt2000_verify_table: PIN and
            MAC key variants and encrypted PIN blocks, including counters E10000-E80000).

The independent ``pydukpt`` package (a dev dependency) is the oracle for random inputs.
"""

import pickle

import pydukpt
import pytest
from Crypto.Cipher import DES3
from hypothesis import given, settings
from hypothesis import strategies as st

from paypos.protocol.dukpt import (
    COUNTER_MASK,
    COUNTER_MAX,
    DukptError,
    KsnExhausted,
    TransactionKeyCache,
    data_request_key,
    data_response_key,
    derive_ipek,
    derive_transaction_key,
    derive_working_keys,
    initial_ksn,
    is_valid_counter,
    ksn_counter,
    ksn_with_counter,
    mac_request_key,
    mac_response_key,
    next_ksn,
    parse_ksn,
    pin_key,
)
from paypos.protocol.pinblock import encode_pinblock_iso_0, encrypt_pinblock

ANSI_BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
ANSI_INITIAL_KSN = "FFFF9876543210E00000"
ANSI_IPEK = "6AC292FAA1315B4D858AB3A3D7D5933A"
# A.4: PIN 1234, PAN 4012345678909 -> clear format 0 block 041274EDCBA9876F.
ANSI_PIN, ANSI_PAN = "1234", "4012345678909"


def ksn(text: str) -> bytes:
    return parse_ksn(text)


def ansi_key(ksn_hex: str) -> bytes:
    return derive_transaction_key(derive_ipek(ANSI_BDK, ksn(ksn_hex)), ksn(ksn_hex))


# --- Initial key (IPEK), A.6 ------------------------------------------------------------


@pytest.mark.parametrize(
    "ksn_hex",
    [ANSI_INITIAL_KSN, "FFFF9876543210E00001", "FFFF9876543210EFFC00", "FFFF9876543210FFF800"],
)
def test_ipek_matches_the_x9_24_annex_a_value_for_any_counter(ksn_hex):
    # [openemv] ik_verify, [moov] TestDerivationOfInitialKey; the counter is ignored.
    assert derive_ipek(ANSI_BDK, ksn(ksn_hex)).hex().upper() == ANSI_IPEK


def test_ipek_rejects_a_bdk_that_is_not_16_bytes():
    for bdk in (ANSI_BDK[:15], ANSI_BDK + ANSI_BDK[:8], ANSI_BDK.hex()):
        with pytest.raises(DukptError) as error:
            derive_ipek(bdk, ksn(ANSI_INITIAL_KSN))
        assert error.value.field == "bdk"
        assert ANSI_BDK.hex() not in str(error.value).lower()


def test_ipek_rejects_a_ksn_that_is_not_10_bytes():
    with pytest.raises(DukptError) as error:
        derive_ipek(ANSI_BDK, ksn(ANSI_INITIAL_KSN)[2:])
    assert error.value.field == "62"


# --- Transaction keys and PIN blocks, A.3 / A.4.2 / A.4.3 ------------------------------

# (KSN, current transaction key, PIN 1234 / PAN 4012345678909 encrypted under its PIN key)
TRANSACTION_VECTORS = [
    # [openemv] A.4.2 initial sequence (the first five also in [moov])
    ("FFFF9876543210E00001", "042666B49184CFA368DE9628D0397BC9", "1B9C1845EB993A7A"),
    ("FFFF9876543210E00002", "C46551CEF9FD24B0AA9AD834130D3BC7", "10A01C8D02C69107"),
    ("FFFF9876543210E00003", "0DF3D9422ACA56E547676D07AD6BADFA", "18DC07B94797B466"),
    ("FFFF9876543210E00004", "279C0F6AEED0BE652B2C733E1383AE91", "0BC79509D5645DF7"),
    ("FFFF9876543210E00005", "5F8DC6D2C845C125508DDC048093B83F", "5BC0AF22AD87B327"),
    ("FFFF9876543210E00006", "5E415CB0BAF9F03CD0C14B63FB62FF43", "A16DF70AE36158D8"),
    ("FFFF9876543210E00007", "0C8F780B7C8B49D0AE84A9EB2A6CE660", "27711C16CB257F8E"),
    ("FFFF9876543210E00008", "27F66D5244FF62E1AA6F6120EDEB4280", "50E55547A5027551"),
    ("FFFF9876543210E00009", "27E31064FDC565698900E2057F658E7E", "536CF7F678ACFC8D"),
    ("FFFF9876543210E0000A", "6CF2500A22507C7CC776CEADC1E33014", "EDABBA23221833FE"),
    ("FFFF9876543210E0000B", "3E8260BA04B2D620C01482B3819A18B7", "2328981C57B4BDBA"),
    ("FFFF9876543210E0000C", "B716E1E11CF53D80726CAEE75C3A624F", "038D03CC926CF286"),
    ("FFFF9876543210E0000D", "E072EDF95340535FB6C581C58FBF2533", "6C8AA97088B62C68"),
    ("FFFF9876543210E0000E", "A80046087F5B8F245AAD95E18429084F", "F17C9E1D72CD4950"),
    ("FFFF9876543210E0000F", "93DD5B956C4878472E453AAEFD32A5AA", "B170F6E7F7F2F64A"),
    ("FFFF9876543210E00010", "59598DCBD9BD94C094165CE453585F57", "D5D9638559EF53D6"),
    ("FFFF9876543210E00011", "2B5F01F4F0CC05EA639D523231BF1BA2", "D544F8CDD292C863"),
    ("FFFF9876543210E00012", "9CF640F279C2AEE615F725EEEAC2CBAF", "7A21BD10F36DC41D"),
    ("FFFF9876543210E00013", "C3DF489FDF1153B4F03DE97C27DC4C2F", "78649BD17D0DFA60"),
    ("FFFF9876543210E00014", "658488507721B3F14737FA93F923CBD2", "7E7E16EA0C31AD56"),
    ("FFFF9876543210E00015", "E161D1956A61F6D2F37AFD7F9CC3699A", "72105C22EBC791E6"),
    # [openemv] A.4.3 rollover sequence
    ("FFFF9876543210EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176", "33365F5CC6F23C35"),
    ("FFFF9876543210EFF801", "5BEE92627E97825C911BF619DF72CA3B", "3A86BF003F835C9D"),
    ("FFFF9876543210EFF802", "64CA2F8AB93F61B01620B00BF77C7301", "3DB977D05C36DF3F"),
    ("FFFF9876543210EFF804", "35A168695B3BA83307E871C42021DD37", "BA83243305712099"),
    ("FFFF9876543210EFF808", "12C380FCB72ED3C26FC6079AF63F4787", "B0DA04AC90A36D85"),
    ("FFFF9876543210EFF810", "D8007C833A1E3C49C6889B97A68C54FF", "2CF02BD9C309EEDA"),
    ("FFFF9876543210EFF820", "A9C9FF9B735FDD49591F296B0BF0FD70", "9D1E2F77AEEE81C6"),
    ("FFFF9876543210EFF840", "0E3E221062CB5E03A384602783A004FA", "40870B0F8BA2011C"),
    ("FFFF9876543210EFF880", "CA8225C587124DFBB87F279C0BE29727", "22E340D6ABB40981"),
    ("FFFF9876543210EFF900", "906AAC1751D4971A144D52C76C6E1F97", "1A4C10AFBA03A430"),
    ("FFFF9876543210EFFA00", "2B9E2CE7C2750337E10B54D2989EA6AF", "849763B43E5F9CFF"),
    ("FFFF9876543210EFFC00", "F9430DF975082491C77BE4EF4FDB91EE", "DEFC6F09F8927B71"),
    ("FFFF9876543210F00000", "AA4D58DB653EC74A48C75F2F047DD2B5", "73EC88AD0AC5830E"),
]


@pytest.mark.parametrize(("ksn_hex", "key_hex", "pin_block_hex"), TRANSACTION_VECTORS)
def test_transaction_key_matches_x9_24_annex_a(ksn_hex, key_hex, pin_block_hex):
    ipek = bytes.fromhex(ANSI_IPEK)
    assert derive_transaction_key(ipek, ksn(ksn_hex)).hex().upper() == key_hex


@pytest.mark.parametrize(("ksn_hex", "key_hex", "pin_block_hex"), TRANSACTION_VECTORS)
def test_pin_key_encrypts_the_x9_24_annex_a_pin_block(ksn_hex, key_hex, pin_block_hex):
    key = pin_key(bytes.fromhex(key_hex))
    block = encrypt_pinblock(key, encode_pinblock_iso_0(ANSI_PIN, ANSI_PAN))
    assert block.hex().upper() == pin_block_hex


# (KSN, PIN key variant, request MAC key variant, encrypted PIN block), all from [gvr]
VARIANT_VECTORS = [
    (
        "FFFF9876543210E00001",
        "042666B49184CF5C68DE9628D0397B36",
        "042666B4918430A368DE9628D03984C9",
        "1B9C1845EB993A7A",
    ),
    (
        "FFFF9876543210E10000",
        "2F9A0C0B46ECCBA1F8287A7A071AF54B",
        "2F9A0C0B46EC345EF8287A7A071A0AB4",
        "19776D96D73AF1E2",
    ),
    (
        "FFFF9876543210E20000",
        "DEFDE0EA1043B58D2FA013DE6C4B8F04",
        "DEFDE0EA10434A722FA013DE6C4B70FB",
        "83F14581B8946B2D",
    ),
    (
        "FFFF9876543210E40000",
        "9F59E8536BDB056513C856FCCF9A0981",
        "9F59E8536BDBFA9A13C856FCCF9AF67E",
        "96B3ADCBF9F5219C",
    ),
    (
        "FFFF9876543210E80000",
        "87B9983D9D23047A8D199F5CA0C3DEEC",
        "87B9983D9D23FB858D199F5CA0C32113",
        "1E0F453FD55FCE45",
    ),
    (
        "FFFF9876543210F00000",
        "AA4D58DB653EC7B548C75F2F047DD24A",
        "AA4D58DB653E384A48C75F2F047D2DB5",
        "73EC88AD0AC5830E",
    ),
]


@pytest.mark.parametrize(("ksn_hex", "pin_hex", "mac_hex", "pin_block_hex"), VARIANT_VECTORS)
def test_working_keys_match_published_pin_and_mac_variants(
    ksn_hex, pin_hex, mac_hex, pin_block_hex
):
    keys = derive_working_keys(ANSI_BDK, ksn(ksn_hex))
    assert keys.pin.hex().upper() == pin_hex
    assert keys.mac_request.hex().upper() == mac_hex
    block = encrypt_pinblock(keys.pin, encode_pinblock_iso_0(ANSI_PIN, ANSI_PAN))
    assert block.hex().upper() == pin_block_hex


# [moov] counters 1-5: "4012345678909D987" zero-padded to 24 bytes, TDES-CBC with a zero IV
# under the request and the response data keys.
DATA_VECTORS = [
    (
        "FFFF9876543210E00001",
        "FC0D53B7EA1FDA9EE68AAF2E70D9B9506229BE2AA993F04F",
        "1FCC89AF66222F27B903898BB2BC8589CDBFDE5EC6AFCC25",
    ),
    (
        "FFFF9876543210E00002",
        "A2B4E70F846E63D68775B7215EB4563DFD3037244C61CC13",
        "5B692A6B1FDD5E25B0DEFAFDE1672E402F8011360CFF3508",
    ),
    (
        "FFFF9876543210E00003",
        "BD751E65F10E75B6C1D5B1D283496A36C2DE21D993C387A7",
        "345992D4163E4926C927BFD8ABD5D76F087A9CE81D5A27B8",
    ),
    (
        "FFFF9876543210E00004",
        "1118F50947441BBDA3C8C70220021A12EC31CC473F7215F4",
        "418C7413576C0D1819E785D3807AF32334231FDEC23414DB",
    ),
    (
        "FFFF9876543210E00005",
        "9FD7BD1EC28845ACA93367A9DA9317BD555C6B33AE22D365",
        "7D4C109E49E83355A556AE949EED359F4404E7A2F0167C00",
    ),
]
DATA_PLAINTEXT = b"4012345678909D987".ljust(24, b"\x00")


@pytest.mark.parametrize(("ksn_hex", "request_hex", "response_hex"), DATA_VECTORS)
def test_data_keys_encrypt_the_x9_24_annex_a_data(ksn_hex, request_hex, response_hex):
    key = ansi_key(ksn_hex)
    request = DES3.new(data_request_key(key), DES3.MODE_CBC, iv=bytes(8))
    response = DES3.new(data_response_key(key), DES3.MODE_CBC, iv=bytes(8))
    assert request.encrypt(DATA_PLAINTEXT).hex().upper() == request_hex
    assert response.encrypt(DATA_PLAINTEXT).hex().upper() == response_hex


def test_variant_masks_are_the_x9_24_2009_table_a_1_constants():
    zero = bytes(16)
    assert pin_key(zero).hex().upper() == "00000000000000FF00000000000000FF"
    assert mac_request_key(zero).hex().upper() == "000000000000FF00000000000000FF00"
    assert mac_response_key(zero).hex().upper() == "00000000FF00000000000000FF000000"


def test_working_keys_bundle_the_individual_derivations():
    ksn_value = ksn("FFFF9876543210E00003")
    key = ansi_key("FFFF9876543210E00003")
    keys = derive_working_keys(ANSI_BDK, ksn_value)
    assert (keys.pin, keys.mac_request, keys.mac_response) == (
        pin_key(key),
        mac_request_key(key),
        mac_response_key(key),
    )
    assert keys.data_request == data_request_key(key)
    assert keys.data_response == data_response_key(key)


def test_working_keys_repr_hides_the_keys():
    keys = derive_working_keys(ANSI_BDK, ksn("FFFF9876543210E00001"))
    assert keys.pin.hex() not in repr(keys).lower()
    assert repr(keys) == "WorkingKeys(<5 keys hidden>)"


@pytest.mark.parametrize("counter", [0, 0x7FF, 0x1FFFFF, 0x1FF801])
def test_transaction_key_rejects_a_counter_no_device_uses(counter):
    with pytest.raises(DukptError) as error:
        derive_transaction_key(
            bytes.fromhex(ANSI_IPEK), ksn_with_counter(ksn(ANSI_INITIAL_KSN), counter)
        )
    assert error.value.field == "62"


def test_transaction_key_rejects_an_ipek_that_is_not_16_bytes():
    with pytest.raises(DukptError) as error:
        derive_transaction_key(bytes.fromhex(ANSI_IPEK)[:8], ksn("FFFF9876543210E00001"))
    assert error.value.field == "ipek"


@pytest.mark.parametrize(
    "variant", [pin_key, mac_request_key, mac_response_key, data_request_key, data_response_key]
)
@pytest.mark.parametrize("key", [b"", bytes(15), bytes(17), "00" * 16, None])
def test_variants_reject_a_key_that_is_not_16_bytes(variant, key):
    with pytest.raises(DukptError) as error:
        variant(key)
    assert error.value.field == "key"


# --- Cross-check against pydukpt ----------------------------------------------------------

keys_16 = st.binary(min_size=16, max_size=16)
ksns = st.binary(min_size=10, max_size=10)
# Valid counters: 1 to 10 distinct bits out of 21, so high bit counts are drawn as often as low.
valid_counters = st.lists(st.integers(0, 20), min_size=1, max_size=10, unique=True).map(
    lambda bits: sum(1 << bit for bit in bits)
)


@given(bdk=keys_16, ksn_value=ksns, counter=valid_counters)
def test_derivations_agree_with_pydukpt(bdk, ksn_value, counter):
    current = ksn_with_counter(ksn_value, counter)
    ipek = derive_ipek(bdk, current)
    assert ipek == pydukpt.derive_ipek(bdk, current)
    key = derive_transaction_key(ipek, current)
    assert key == pydukpt.derive_key(ipek, current)
    keys = derive_working_keys(bdk, current)
    assert keys.pin == pydukpt.pin_key(key)
    assert keys.mac_request == pydukpt.mac_request_key(key)
    assert keys.mac_response == pydukpt.mac_response_key(key)
    assert keys.data_request == pydukpt.data_request_key(key)
    assert keys.data_response == pydukpt.data_response_key(key)


@pytest.mark.parametrize("bdk", [bytes(16), bytes.fromhex("0123456789ABCDEF" * 2)])
def test_ipek_of_a_bdk_with_equal_halves_is_the_single_des_value(bdk):
    # pycryptodome's DES3 refuses such a key; TDES-EDE with K1 = K2 is single DES.
    current = ksn("FFFF9876543210E00001")
    assert derive_ipek(bdk, current) == pydukpt.derive_ipek(bdk, current)


# --- KSN handling -------------------------------------------------------------------------


def test_parse_ksn_reads_20_hex_characters_in_either_case():
    assert parse_ksn("ffff9876543210e00001") == bytes.fromhex("FFFF9876543210E00001")


@pytest.mark.parametrize(
    "text",
    [
        "FFFF9876543210E0000",
        "FFFF9876543210E000001",
        "GFFF9876543210E00001",
        "",
        b"FFFF9876543210E00001",
        None,
    ],
)
def test_parse_ksn_rejects_anything_but_20_hex_characters(text):
    with pytest.raises(DukptError) as error:
        parse_ksn(text)
    assert error.value.field == "62"


@pytest.mark.parametrize(
    ("ksn_hex", "counter"),
    [
        ("FFFF9876543210E00000", 0),
        ("FFFF9876543210E00015", 0x15),
        ("FFFF9876543210F00000", 0x100000),
        ("FFFF9876543210FFFFFF", 0x1FFFFF),
    ],
)
def test_ksn_counter_is_the_rightmost_21_bits(ksn_hex, counter):
    assert ksn_counter(ksn(ksn_hex)) == counter


@pytest.mark.parametrize("value", [bytes(9), bytes(11), "FFFF9876543210E00000", None])
def test_ksn_functions_reject_a_ksn_that_is_not_10_bytes(value):
    for function in (ksn_counter, initial_ksn, next_ksn):
        with pytest.raises(DukptError) as error:
            function(value)
        assert error.value.field == "62"


def test_ksn_with_counter_replaces_only_the_counter_bits():
    changed = ksn_with_counter(ksn("FFFF9876543210E00000"), 0x1FF800)
    assert changed.hex().upper() == "FFFF9876543210FFF800"
    assert initial_ksn(ksn("FFFF9876543210FFF800")).hex().upper() == "FFFF9876543210E00000"


@pytest.mark.parametrize("counter", [-1, 0x200000, True, 1.0, "1"])
def test_ksn_with_counter_rejects_a_counter_outside_21_bits(counter):
    with pytest.raises(DukptError) as error:
        ksn_with_counter(ksn(ANSI_INITIAL_KSN), counter)
    assert error.value.field == "62"


@pytest.mark.parametrize(
    ("counter", "valid"),
    [
        (1, True),
        (0x3FF, True),  # ten 1 bits
        (0x7FF, False),  # eleven
        (0x1FF800, True),  # the last valid counter
        (0x1FFFFF, False),
        (0, False),  # the initial KSN's counter is never used for a transaction
        (0x200000, False),
        (-1, False),
        (True, False),
        ("1", False),
    ],
)
def test_is_valid_counter_allows_at_most_ten_one_bits(counter, valid):
    assert is_valid_counter(counter) is valid


def test_there_are_2_to_the_20_minus_1_valid_counters_and_the_last_is_0x1ff800():
    valid = [counter for counter in range(COUNTER_MASK + 1) if is_valid_counter(counter)]
    assert len(valid) == 2**20 - 1
    assert valid[-1] == COUNTER_MAX == 0x1FF800


def _walk(start_hex: str, steps: int) -> list[str]:
    current, seen = ksn(start_hex), []
    for _ in range(steps):
        current = next_ksn(current)
        seen.append(current.hex().upper())
    return seen


def test_next_ksn_walks_the_x9_24_initial_sequence():
    # [openemv] A.4.2: from the initial KSN, counters 1, 2, ... 0x15 (none has over ten 1 bits).
    expected = [row[0] for row in TRANSACTION_VECTORS[:21]]
    assert _walk(ANSI_INITIAL_KSN, 21) == expected


def test_next_ksn_walks_the_x9_24_rollover_sequence_skipping_eleven_bit_counters():
    # [openemv] A.4.3: EFF801 -> EFF802 skips EFF803 (11 one-bits), ..., EFFC00 -> F00000.
    expected = [row[0] for row in TRANSACTION_VECTORS[22:]]
    assert _walk("FFFF9876543210EFF800", len(expected)) == expected


@given(ksn_value=ksns, counter=st.integers(0, COUNTER_MAX - 1))
def test_next_ksn_is_the_smallest_larger_valid_counter(ksn_value, counter):
    following = next_ksn(ksn_with_counter(ksn_value, counter))
    successor = next(c for c in range(counter + 1, COUNTER_MASK + 1) if is_valid_counter(c))
    assert ksn_counter(following) == successor
    assert initial_ksn(following) == initial_ksn(ksn_value)
    assert following == pydukpt.next_ksn(ksn_with_counter(ksn_value, counter))


@pytest.mark.parametrize("counter", [COUNTER_MAX, 0x1FF801, 0x1FFFFF])
def test_next_ksn_past_the_last_valid_counter_is_exhausted(counter):
    with pytest.raises(KsnExhausted) as error:
        next_ksn(ksn_with_counter(ksn(ANSI_INITIAL_KSN), counter))
    assert isinstance(error.value, DukptError)
    assert error.value.field == "62"


def test_next_ksn_reaches_the_last_valid_counter_from_just_below_it():
    assert ksn_counter(next_ksn(ksn_with_counter(ksn(ANSI_INITIAL_KSN), 0x1FF7FF))) == COUNTER_MAX


@pytest.mark.parametrize("error", [DukptError("bad bdk", field="bdk"), KsnExhausted("no successor")])
def test_dukpt_errors_cross_a_process_boundary_whole(error):
    # A load generator builds requests in a process pool and gets its errors back pickled.
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.field) == (type(error), str(error), error.field)


# --- the host's memo of the A.3 walk gives exactly the keys of the walk itself ------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=COUNTER_MASK).filter(is_valid_counter), min_size=1,
                max_size=30), st.integers(min_value=2, max_value=64))
def test_transaction_key_cache_matches_the_walk(counters, entries_max):
    base = ksn(ANSI_INITIAL_KSN)
    ipek = derive_ipek(ANSI_BDK, base)
    cache = TransactionKeyCache(entries_max)
    for counter in [*counters, *sorted(counters), *range(1, 40)]:
        key_ksn = ksn_with_counter(base, counter)
        assert cache.derive(ipek, key_ksn) == derive_transaction_key(ipek, key_ksn)


def test_transaction_key_cache_gives_the_annex_a_key():
    # X9.24-1:2009 A.4: counter 1's PIN key.
    cache = TransactionKeyCache(8)
    ipek = bytes.fromhex(ANSI_IPEK)
    assert cache.derive(ipek, ksn("FFFF9876543210E00001")) == ansi_key("FFFF9876543210E00001")
    assert cache.derive(ipek, ksn("FFFF9876543210E00002")) == ansi_key("FFFF9876543210E00002")


def test_transaction_key_cache_refuses_what_the_walk_refuses():
    cache = TransactionKeyCache(8)
    with pytest.raises(DukptError):
        cache.derive(bytes.fromhex(ANSI_IPEK), ksn("FFFF9876543210E00000"))
    with pytest.raises(DukptError):
        cache.derive(b"short", ksn(ANSI_INITIAL_KSN))
