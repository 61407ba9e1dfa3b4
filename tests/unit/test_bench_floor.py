"""bench/floor.py (`python -m bench floor`): the protocol work it times is the real work —
requests it builds verify (MAC, ARQC, PIN), tampered ones do not — and it reports every
step. Its numbers are measurements, never asserted."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

import pytest

from bench import floor
from paypos.adapters.vault import Vault
from paypos.protocol import iso8583

STEPS = ("decode", "dukpt+mac", "card lookup+seal", "emv", "pin", "fingerprint+answer", "encode+mac")


@pytest.mark.parametrize("mac", [False, True])
def test_the_mix_verifies_and_every_step_is_timed(mac: bool) -> None:
    requests, bdks = floor.build(200, terminals=4, cards_per_terminal=3, seed=7, mac=mac)
    kinds = {r.kind for r in requests}
    assert kinds == {"contactless", "chip+pin", "refund"}
    fields = [iso8583.decode_message(r.raw) for r in requests]
    assert all(("64" in f) == mac for f in fields)
    assert all("52" in f and "62" in f for f, r in zip(fields, requests) if r.kind == "chip+pin")
    result = floor.measure(requests, bdks, Vault(secrets.token_bytes(32)))
    assert result.requests == 200
    assert tuple(result.seconds) == STEPS
    assert all(seconds >= 0 for seconds in result.seconds.values())


def _tampered(request: floor.Request, field: str, flip: int) -> floor.Request:
    fields = iso8583.decode_message(request.raw)
    value = fields[field]
    fields[field] = value[:flip] + ("0" if value[flip] != "0" else "1") + value[flip + 1:]
    return replace(request, raw=iso8583.encode_message(fields))


def test_a_tampered_arqc_fails_its_check() -> None:
    requests, bdks = floor.build(40, terminals=2, cards_per_terminal=2, seed=3, mac=False)
    chip = next(r for r in requests if r.kind == "contactless")
    fields = iso8583.decode_message(chip.raw)
    at = fields["55"].index("9F2608") + 6  # the ARQC's first hex digit
    with pytest.raises(floor.CheckFailed, match="ARQC"):
        floor.measure([_tampered(chip, "55", at)], bdks, Vault(secrets.token_bytes(32)))


def test_a_wrong_pin_fails_its_check() -> None:
    requests, bdks = floor.build(40, terminals=2, cards_per_terminal=2, seed=3, mac=False)
    pin_entry = next(r for r in requests if r.kind == "chip+pin")
    card = {**pin_entry.card, "pin_offset": "0000" if pin_entry.card["pin_offset"] != "0000" else "1111"}
    with pytest.raises(floor.CheckFailed, match="PIN"):
        floor.measure([replace(pin_entry, card=card)], bdks, Vault(secrets.token_bytes(32)))


def test_a_tampered_mac_fails_its_check() -> None:
    requests, bdks = floor.build(40, terminals=2, cards_per_terminal=2, seed=3, mac=True)
    with pytest.raises(floor.CheckFailed, match="MAC"):
        floor.measure([_tampered(requests[0], "4", 11)], bdks, Vault(secrets.token_bytes(32)))


def test_command_reports_each_step_and_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    floor.main(["--requests", "60", "--terminals", "3", "--cards-per-terminal", "2", "--runs", "2"])
    out = capsys.readouterr().out
    assert "protocol floor of the ISO host (paypos bench's mix), 60 requests:" in out
    for step in (*STEPS, "total"):
        assert re.search(rf"{re.escape(step)}\s*:\s*[0-9.]+ ms/req", out), out
    assert re.search(r"runs: [0-9.]+, [0-9.]+; median [0-9.]+", out), out


@pytest.mark.parametrize("args", [["--requests", "0"], ["--runs", "0"], ["--terminals", "x"]])
def test_command_refuses_bad_counts(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        floor.main(args)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err
