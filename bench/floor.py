"""The protocol floor of one authorization: the CPU the ISO host cannot avoid in Python.

    python -m bench floor [--requests 20000] [--terminals 64] [--cards-per-terminal 32] [--mac]

Times, in one process and with no database, sockets, participant pipeline or ledger, only
the protocol work the host does for each request of `paypos bench`'s mix: 60 % contactless
without PIN, 30 % chip with online PIN, 10 % refunds by track 2 (the bench sends half of that
tenth as reversals, which carry no card data and cost less); its terminals send no MAC unless
--mac. Per request: decode and validate the ISO 8583 message; for a request with a KSN derive
the DUKPT transaction key (the host's memo: one step a request) and check a retail MAC; find
the card by its keyed PAN hash and seal the PAN for the journal; for chip cards check the
ARQC and build the ARPC (the ICC master key memoised, as the host does); for PIN entries
decrypt the PIN block and check it by IBM 3624 offset; fingerprint the request
(idempotency) and keep the answer as JSON; encode the answer (with its MAC when the request
had one). Every call is paypos's own protocol function or the library the host calls.

The result is a lower bound for the host's CPU per request on this machine; with what
`paypos bench` measures for PostgreSQL and the load generator per request, and pgbench's
machine CPU per TPC-B transaction, it tells whether a throughput ratio is within reach of
any host written on these protocol functions (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress

from paypos.adapters.vault import Vault
from paypos.authorization.context import business_fingerprint
from paypos.protocol import emv, iso8583
from paypos.protocol.card import luhn_check_digit, parse_track2
from paypos.protocol.cardsec import ibm3624_offset, ibm3624_pin_from_offset
from paypos.protocol.dukpt import (TransactionKeyCache, derive_ipek, initial_ksn, mac_response_key, parse_ksn,
                                   pin_key, working_keys)
from paypos.protocol.mac import retail_mac, verify_retail_mac
from paypos.protocol.pinblock import pin_from_encrypted_block
from paypos.terminal.simulator import SoftTerminal

console = Console()
PIN = "1234"


def _luhn_pan(rng: random.Random) -> str:
    body = "476173" + "".join(rng.choice("0123456789") for _ in range(9))
    return body + luhn_check_digit(body)


def _card(rng: random.Random, number: int) -> dict:
    pan = _luhn_pan(rng)
    pvk = rng.randbytes(16).hex().upper()
    return {"id": f"card{number}", "pan": pan, "psn": "01", "track2": f"{pan}=30122010000000000000",
            "cvn": 10 if number % 2 else 18, "currency": "978", "imk_ac": rng.randbytes(16).hex().upper(),
            "pvk": pvk, "pin_offset": ibm3624_offset(pvk, pan, PIN)}


@dataclass
class Request:
    kind: str
    raw: bytes
    terminal: int
    card: dict


def build(requests: int, terminals: int, cards_per_terminal: int, seed: int, mac: bool) -> tuple[list[Request], list[str]]:
    """The mix, round-robin over the terminals (each terminal's KSN counter rises, as on the wire)."""
    rng = random.Random(seed)
    bdks = [rng.randbytes(16).hex().upper() for _ in range(terminals)]
    softs = [SoftTerminal(f"T{i:07d}", "M00000000000001", "978", bdks[i], f"FFFF{i:06X}0000000000", mac)
             for i in range(terminals)]
    cards = [[_card(rng, t * cards_per_terminal + c) for c in range(cards_per_terminal)] for t in range(terminals)]
    built: list[Request] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("building requests", total=requests)
        for n in range(requests):
            t = n % terminals
            soft, card = softs[t], rng.choice(cards[t])
            roll = rng.random()
            if roll < 0.10:  # a refund or reversal: no card cryptography, MAC only
                fields = {"3": "200000", "4": "000000001000", "22": "072", "23": "001", "35": card["track2"],
                          "37": "000000000001"}
                built.append(Request("refund", soft.message("0200", fields, pan=card["pan"]), t, card))
                progress.advance(task)
                continue
            contactless = roll < 0.70
            amount = rng.randint(100, 9_000)
            fields = {"3": "000000", "4": f"{amount:012d}", "22": "072" if contactless else "051", "23": "001",
                      "35": card["track2"], "55": emv.encode_field_55(soft.icc(card, amount))}
            raw = soft.message("0200", fields, pin=None if contactless else PIN, pan=card["pan"])
            built.append(Request("contactless" if contactless else "chip+pin", raw, t, card))
            progress.advance(task)
    return built, bdks


class CheckFailed(RuntimeError):
    """A request the floor built did not verify: the timed work would not be the host's."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


@dataclass
class Floor:
    """What one request's protocol work costs, by step (CPU seconds over all requests)."""

    seconds: dict[str, float]
    requests: int


def measure(requests: list[Request], bdks: list[str], vault: Vault) -> Floor:
    keys_memo = TransactionKeyCache(100_000)
    ipeks: dict[tuple[str, bytes], bytes] = {}
    spent: dict[str, float] = dict.fromkeys(("decode", "dukpt+mac", "card lookup+seal", "emv", "pin",
                                             "fingerprint+answer", "encode+mac"), 0.0)
    clock = time.process_time

    def step(name: str, started: float) -> float:
        now = clock()
        spent[name] += now - started
        return now

    for request in requests:
        t0 = clock()
        fields = iso8583.decode_message(request.raw)
        t0 = step("decode", t0)
        found = iso8583.mac_input_and_value(request.raw, fields)
        transaction_key = None
        if "62" in fields:
            ksn = parse_ksn(fields["62"])
            base = initial_ksn(ksn)
            ipek = ipeks.get((bdks[request.terminal], base))
            if ipek is None:
                ipek = ipeks[(bdks[request.terminal], base)] = derive_ipek(bytes.fromhex(bdks[request.terminal]),
                                                                           base)
            transaction_key = keys_memo.derive(ipek, ksn)
            if found is not None:
                _check(verify_retail_mac(working_keys(transaction_key, with_data=False).mac_request, *found), "MAC")
        t0 = step("dukpt+mac", t0)
        track = parse_track2(fields["35"])
        vault.lookup_hash(track.pan)
        vault.seal(track.pan, "pan")
        t0 = step("card lookup+seal", t0)
        card = request.card
        response = iso8583.response_echo(fields)
        response.update({"37": "000000000001", "38": "123456", "39": "00"})
        if "55" in fields:
            icc = emv.decode_field_55(fields["55"])
            key = emv.ac_key(card["cvn"], bytes.fromhex(card["imk_ac"]), track.pan, card["psn"], icc)
            _check(emv.verify_arqc_under(card["cvn"], key, icc), "ARQC")
            arpc = (emv.arpc_under(10, key, icc, arc=b"00") if card["cvn"] == 10
                    else emv.arpc_under(18, key, icc, csu=bytes(4)))
            response["55"] = emv.encode_field_55({"91": arpc})
            t0 = step("emv", t0)
        if "52" in fields:
            _check(transaction_key is not None, "PIN block without a KSN")
            entered = pin_from_encrypted_block(pin_key(transaction_key), bytes.fromhex(fields["52"]), track.pan)
            _check(entered == ibm3624_pin_from_offset(card["pvk"], track.pan, card["pin_offset"]), "PIN")
            t0 = step("pin", t0)
        business_fingerprint(fields)
        json.dumps(response, sort_keys=True)
        t0 = step("fingerprint+answer", t0)
        if found is not None and transaction_key is not None:
            mac_key = mac_response_key(transaction_key)
            iso8583.encode_with_mac(response, lambda data: retail_mac(mac_key, data))
        else:
            iso8583.encode_message(response)
        step("encode+mac", t0)
    return Floor(spent, len(requests))


def report(floor: Floor, runs: list[float], mac: bool) -> None:
    n = floor.requests
    total = sum(floor.seconds.values())
    console.print(f"protocol floor of the ISO host (paypos bench's mix{', every request MACed' if mac else ''}), "
                  f"{n} requests:")
    for name, seconds in floor.seconds.items():
        console.print(f"  {name:20s}: {1000 * seconds / n:7.3f} ms/req  ({100 * seconds / total:4.1f} %)")
    console.print(f"  {'total':20s}: {1000 * total / n:7.3f} ms/req  (runs: "
                  f"{', '.join(f'{1000 * r:.3f}' for r in runs)}; median {1000 * statistics.median(runs):.3f})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests timed per run (default 20000)")
    parser.add_argument("--terminals", type=int, default=64, help="terminals the requests come from (default 64)")
    parser.add_argument("--cards-per-terminal", type=int, default=32, help="cards per terminal (default 32)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs over the same requests (default 3)")
    parser.add_argument("--mac", action="store_true",
                        help="terminals MAC every request (paypos bench's sandbox terminals do not)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.requests, args.terminals, args.cards_per_terminal, args.runs) < 1:
        parser.error("every count must be at least 1")
    requests, bdks = build(args.requests, args.terminals, args.cards_per_terminal, args.seed, args.mac)
    vault = Vault(secrets.token_bytes(32))
    floors = [measure(requests, bdks, vault) for _ in range(args.runs)]
    best = min(floors, key=lambda f: sum(f.seconds.values()))
    report(best, [sum(f.seconds.values()) / f.requests for f in floors], args.mac)

