"""Payments (attempts: card not present, wallet) and refunds of payment requests (issue 6).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payments',
    sa.Column('id', sa.String(length=28), nullable=False),
    sa.Column('payment_request_id', sa.String(length=27), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('captured_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('escrow', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('settled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('card_id', sa.String(length=48), nullable=True),
    sa.Column('masked_pan', sa.String(length=19), nullable=True),
    sa.Column('pan_enc', sa.LargeBinary(), nullable=True),
    sa.Column('pan_hash', sa.String(length=64), nullable=True),
    sa.Column('wallet_trade_no', sa.String(length=64), nullable=True),
    sa.Column('failure_code', sa.String(length=32), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('challenge_hash', sa.String(length=64), nullable=True),
    sa.Column('challenge_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('challenge_tries_left', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('refunded_minor <= captured_minor', name=op.f('ck_payments_refunds_within_captured')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_payments_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_request_id'], ['payment_requests.id'], name=op.f('fk_payments_payment_request_id_payment_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('wallet_trade_no', name=op.f('uq_payments_wallet_trade_no'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_merchant_created', ['merchant_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_payment_request_id'), ['payment_request_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.String(length=27), nullable=False),
    sa.Column('payment_id', sa.String(length=28), nullable=False),
    sa.Column('payment_request_id', sa.String(length=27), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=200), server_default='', nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_refunds_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments')),
    sa.ForeignKeyConstraint(['payment_request_id'], ['payment_requests.id'], name=op.f('fk_refunds_payment_request_id_payment_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_merchant_created', ['merchant_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_payment_id'), ['payment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_payment_id'))
        batch_op.drop_index('ix_refunds_merchant_created')
    op.drop_table('refunds')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_payment_request_id'))
        batch_op.drop_index('ix_payments_merchant_created')
    op.drop_table('payments')
