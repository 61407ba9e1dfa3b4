"""The ledger state machine (tests/ledger_machine.py) on SQLite and PostgreSQL;
each run ends with `check_ledger` finding nothing wrong."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from sqlalchemy.engine import Engine

from paypos.adapters.db.engine import make_engine
from tests.ledger_machine import LedgerMachine, SqlBackend


@pytest.fixture
def machine_engine(database_url: str):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_random_ledger_histories_keep_every_invariant(machine_engine: Engine) -> None:
    LedgerMachine.backend = SqlBackend(machine_engine)
    runner = LedgerMachine.TestCase
    # Shrinking against a database is slow; the pure-planner run of this same
    # machine (tests/unit/domain/test_ledger_model.py) shrinks, this one reports raw.
    runner.settings = settings(
        max_examples=30, stateful_step_count=30, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    runner().runTest()
