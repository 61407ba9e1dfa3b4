"""Leaner indexes on the two tables every sale inserts into (docs/performance.md).

host_transactions: the single-column indexes on terminal_id and merchant_id are
dropped; ix_host_transactions_identity (terminal_id, stan, transmission_dt) and
ix_host_transactions_merchant_created (merchant_id, created_at) lead with those
columns and serve the same lookups. ledger_transfers: the pending_id index becomes
partial (only second-phase transfers name a hold).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_NAMES_A_HOLD = sa.text("pending_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('host_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_host_transactions_terminal_id')
        batch_op.drop_index('ix_host_transactions_merchant_id')
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transfers_pending_id')
        batch_op.create_index('ix_ledger_transfers_pending_id', ['pending_id'], unique=False,
                              postgresql_where=_NAMES_A_HOLD, sqlite_where=_NAMES_A_HOLD)


def downgrade() -> None:
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transfers_pending_id')
        batch_op.create_index('ix_ledger_transfers_pending_id', ['pending_id'], unique=False)
    with op.batch_alter_table('host_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_host_transactions_merchant_id', ['merchant_id'], unique=False)
        batch_op.create_index('ix_host_transactions_terminal_id', ['terminal_id'], unique=False)
