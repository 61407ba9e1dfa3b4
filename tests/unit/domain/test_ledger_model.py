"""The ledger state machine (tests/ledger_machine.py) against the pure planner
with an in-memory store: many examples, fully shrunk on failure."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.ledger_machine import LedgerMachine, MemoryBackend


def test_random_ledger_histories_match_the_reference_model() -> None:
    LedgerMachine.backend = MemoryBackend()
    runner = LedgerMachine.TestCase
    runner.settings = settings(
        max_examples=300, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    runner().runTest()
