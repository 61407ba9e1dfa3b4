"""Acquiring host state: terminal DUKPT counters and batches, issuer card ATC and PIN tries,
answered ISO 8583 messages (idempotency), the host transaction journal, reversal tombstones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op




revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('host_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('terminal_id', sa.String(length=8), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('batch_no', sa.Integer(), nullable=False),
    sa.Column('mti', sa.String(length=4), nullable=False),
    sa.Column('processing_code', sa.String(length=6), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('transmission_dt', sa.String(length=10), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('fee_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('card_id', sa.String(length=48), nullable=True),
    sa.Column('pan_masked', sa.String(length=19), nullable=True),
    sa.Column('entry_mode', sa.String(length=3), nullable=True),
    sa.Column('response_code', sa.String(length=2), nullable=False),
    sa.Column('approval_code', sa.String(length=6), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('original_id', sa.BigInteger(), nullable=True),
    sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('completed_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('transfer_ref', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_transactions'))
    )
    with op.batch_alter_table('host_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_host_transactions_identity', ['terminal_id', 'stan', 'transmission_dt'], unique=False)
        batch_op.create_index('ix_host_transactions_card_time', ['card_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_host_transactions_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_host_transactions_terminal_id'), ['terminal_id'], unique=False)

    op.create_table('iso_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('terminal_id', sa.String(length=8), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('transmission_dt', sa.String(length=10), nullable=False),
    sa.Column('mti', sa.String(length=4), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response_json', sa.Text(), nullable=False),
    sa.Column('response_code', sa.String(length=2), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_iso_messages')),
    sa.UniqueConstraint('terminal_id', 'stan', 'transmission_dt', name='uq_iso_messages_identity')
    )
    op.create_table('reversal_tombstones',
    sa.Column('terminal_id', sa.String(length=8), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('transmission_dt', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('terminal_id', 'stan', 'transmission_dt', name=op.f('pk_reversal_tombstones'))
    )
    op.create_table('issuer_card_state',
    sa.Column('card_id', sa.String(length=48), nullable=False),
    sa.Column('atc_last', sa.Integer(), server_default='-1', nullable=False),
    sa.Column('pin_tries_left', sa.Integer(), server_default='3', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['issuer_cards.card_id'], name=op.f('fk_issuer_card_state_card_id_issuer_cards')),
    sa.PrimaryKeyConstraint('card_id', name=op.f('pk_issuer_card_state'))
    )
    op.create_table('terminal_state',
    sa.Column('terminal_id', sa.String(length=8), nullable=False),
    sa.Column('ksn_counter_last', sa.Integer(), server_default='-1', nullable=False),
    sa.Column('signed_on', sa.Boolean(), nullable=False),
    sa.Column('batch_no', sa.Integer(), server_default='1', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_terminal_state_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('terminal_id', name=op.f('pk_terminal_state'))
    )


def downgrade() -> None:
    op.drop_table('terminal_state')
    op.drop_table('issuer_card_state')
    op.drop_table('reversal_tombstones')
    op.drop_table('iso_messages')
    with op.batch_alter_table('host_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_host_transactions_terminal_id'))
        batch_op.drop_index(batch_op.f('ix_host_transactions_merchant_id'))
        batch_op.drop_index('ix_host_transactions_card_time')
        batch_op.drop_index('ix_host_transactions_identity')

    op.drop_table('host_transactions')
