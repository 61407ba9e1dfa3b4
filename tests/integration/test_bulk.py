"""Set-wise statements of the host's batches (`adapters.db.bulk`) on SQLite and PostgreSQL:
statements built once with named IN parameters, COPY inserts and unnest updates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from paypos.adapters.db import bulk

IDS = [f"T{i:07d}" for i in range(12)]
# A scratch table of the terminal-state shape, without the schema's foreign keys.
terminal_state = sa.Table("bulk_probe", sa.MetaData(), sa.Column("terminal_id", sa.String(8), primary_key=True),
                          sa.Column("ksn_counter_last", sa.BigInteger, nullable=False),
                          sa.Column("signed_on", sa.Boolean, nullable=False))


@pytest.fixture
def rows(engine: Engine) -> Iterator[Engine]:
    terminal_state.create(engine)
    try:
        with engine.begin() as db:
            bulk.insert_rows(db, terminal_state, [
                {"terminal_id": tid, "ksn_counter_last": i, "signed_on": i % 2 == 0} for i, tid in enumerate(IDS)])
        yield engine
    finally:
        terminal_state.drop(engine)


def _by_id(db: sa.Connection, wanted: list[str]) -> list[str]:
    t = terminal_state.c
    query = bulk.built(db, "test.by_id", lambda d: sa.select(t.terminal_id).where(bulk.among(d, t.terminal_id, "ids"))
                       .order_by(t.terminal_id))
    return list(db.execute(query, bulk.among_values("ids", wanted)).scalars())


def _by_pair(db: sa.Connection, wanted: list[tuple[str, int]]) -> list[str]:
    t = terminal_state.c
    query = bulk.built(db, "test.by_pair", lambda d: sa.select(t.terminal_id).where(
        bulk.among_rows(d, (t.terminal_id, t.ksn_counter_last), "pairs")).order_by(t.terminal_id))
    return list(db.execute(query, bulk.among_rows_values(db, "pairs", wanted, 2)).scalars())


def test_a_built_statement_is_built_once_per_dialect_and_takes_any_count_of_values(rows: Engine) -> None:
    with rows.connect() as db:
        assert _by_id(db, IDS[:3]) == IDS[:3]
        assert _by_id(db, [IDS[5], "NOPE", IDS[1]]) == [IDS[1], IDS[5]]
        assert _by_id(db, []) == []
        builds: list[str] = []
        first = bulk.built(db, "test.counted", lambda d: builds.append(d) or sa.select(sa.literal(1)))
        assert bulk.built(db, "test.counted", lambda d: builds.append(d) or sa.select(sa.literal(2))) is first
        assert builds == [rows.dialect.name]


def test_among_rows_matches_whole_tuples_only(rows: Engine) -> None:
    with rows.connect() as db:
        assert _by_pair(db, [(IDS[2], 2), (IDS[3], 3)]) == [IDS[2], IDS[3]]
        assert _by_pair(db, [(IDS[2], 3), (IDS[3], 2)]) == []  # each half matches some row, no pair does
        assert _by_pair(db, []) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(IDS + ["X0000000", "X0000001"]), max_size=20))
def test_among_selects_exactly_the_stored_values_asked_for(rows: Engine, wanted: list[str]) -> None:
    with rows.connect() as db:
        assert _by_id(db, wanted) == sorted(set(wanted) & set(IDS))


def test_update_rows_sets_each_row_from_its_own_values(rows: Engine) -> None:
    with rows.begin() as db:
        bulk.update_rows(db, terminal_state, "terminal_id", [
            {"terminal_id": IDS[0], "ksn_counter_last": 100}, {"terminal_id": IDS[1], "ksn_counter_last": 101}])
    with rows.connect() as db:
        stored = dict(db.execute(sa.select(terminal_state.c.terminal_id, terminal_state.c.ksn_counter_last)).all())
    assert stored[IDS[0]] == 100 and stored[IDS[1]] == 101 and stored[IDS[2]] == 2


def test_insert_rows_raises_sqlalchemys_integrity_error_on_a_duplicate_key(rows: Engine) -> None:
    with rows.begin() as db, pytest.raises(sa.exc.IntegrityError):
        bulk.insert_rows(db, terminal_state, [
            {"terminal_id": IDS[0], "ksn_counter_last": 0, "signed_on": False}])
