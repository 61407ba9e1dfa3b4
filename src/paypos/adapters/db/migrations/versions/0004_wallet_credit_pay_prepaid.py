"""The sandbox wallet network, credit pay and prepaid cards (issue 5).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op




revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wallet_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('private_key_enc', sa.LargeBinary(), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_wallet_keys'))
    )
    op.create_table('wallet_notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trade_no', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('notify_url', sa.Text(), nullable=False),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=256), server_default='', nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_notifications')),
    sa.UniqueConstraint('trade_no', 'event', name='uq_wallet_notifications_trade_event')
    )
    with op.batch_alter_table('wallet_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_notifications_state_next', ['state', 'next_attempt_at'], unique=False)

    op.create_table('wallet_users',
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('device_no', sa.Integer(), nullable=False),
    sa.Column('device_secret_enc', sa.LargeBinary(), nullable=False),
    sa.Column('paycode_last_step', sa.BigInteger(), nullable=True),
    sa.Column('credit_score', sa.Integer(), nullable=False),
    sa.Column('credit_line_minor', sa.BigInteger(), nullable=False),
    sa.Column('no_confirm_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('bill_day', sa.Integer(), nullable=False),
    sa.Column('due_day', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_wallet_users')),
    sa.UniqueConstraint('device_no', name=op.f('uq_wallet_users_device_no')),
    sa.UniqueConstraint('phone', name=op.f('uq_wallet_users_phone'))
    )
    op.create_table('creditpay_bills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('bill_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('minimum_minor', sa.BigInteger(), nullable=False),
    sa.Column('paid_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('interest_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('interest_through', sa.Date(), nullable=True),
    sa.Column('lines_json', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['wallet_users.user_id'], name=op.f('fk_creditpay_bills_user_id_wallet_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_creditpay_bills')),
    sa.UniqueConstraint('user_id', 'bill_date', name='uq_creditpay_bills_user_bill_date')
    )
    op.create_table('creditpay_repayments',
    sa.Column('repayment_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('card_id', sa.String(length=48), nullable=True),
    sa.Column('allocation_json', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['wallet_users.user_id'], name=op.f('fk_creditpay_repayments_user_id_wallet_users')),
    sa.PrimaryKeyConstraint('repayment_id', name=op.f('pk_creditpay_repayments'))
    )
    with op.batch_alter_table('creditpay_repayments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_creditpay_repayments_user_id'), ['user_id'], unique=False)

    op.create_table('prepaid_cards',
    sa.Column('card_id', sa.String(length=48), nullable=False),
    sa.Column('program_merchant_id', sa.String(length=15), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['issuer_cards.card_id'], name=op.f('fk_prepaid_cards_card_id_issuer_cards')),
    sa.ForeignKeyConstraint(['program_merchant_id'], ['merchants.merchant_id'], name=op.f('fk_prepaid_cards_program_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('card_id', name=op.f('pk_prepaid_cards'))
    )
    with op.batch_alter_table('prepaid_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prepaid_cards_program_merchant_id'), ['program_merchant_id'], unique=False)

    op.create_table('wallet_apps',
    sa.Column('app_id', sa.String(length=16), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('app_public_key_pem', sa.Text(), nullable=False),
    sa.Column('app_private_key_enc', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_wallet_apps_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_wallet_apps'))
    )
    with op.batch_alter_table('wallet_apps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_apps_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('wallet_user_cards',
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('card_id', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['issuer_cards.card_id'], name=op.f('fk_wallet_user_cards_card_id_issuer_cards')),
    sa.ForeignKeyConstraint(['user_id'], ['wallet_users.user_id'], name=op.f('fk_wallet_user_cards_user_id_wallet_users')),
    sa.PrimaryKeyConstraint('user_id', 'card_id', name=op.f('pk_wallet_user_cards'))
    )
    op.create_table('wallet_trades',
    sa.Column('trade_no', sa.String(length=32), nullable=False),
    sa.Column('app_id', sa.String(length=16), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('total_amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('scene', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('qr_code', sa.Text(), nullable=True),
    sa.Column('buyer_user_id', sa.String(length=16), nullable=True),
    sa.Column('funding', sa.String(length=16), nullable=True),
    sa.Column('funding_card_id', sa.String(length=48), nullable=True),
    sa.Column('installments', sa.Integer(), server_default='0', nullable=False),
    sa.Column('fee_payer', sa.String(length=8), nullable=True),
    sa.Column('fee_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('notify_url', sa.Text(), nullable=True),
    sa.Column('terminal_id', sa.String(length=8), nullable=True),
    sa.Column('awaiting_confirmation', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['wallet_apps.app_id'], name=op.f('fk_wallet_trades_app_id_wallet_apps')),
    sa.PrimaryKeyConstraint('trade_no', name=op.f('pk_wallet_trades')),
    sa.UniqueConstraint('app_id', 'out_trade_no', name='uq_wallet_trades_app_out_trade_no')
    )
    with op.batch_alter_table('wallet_trades', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_trades_buyer_state', ['buyer_user_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_trades_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('creditpay_purchases',
    sa.Column('trade_no', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('installments', sa.Integer(), nullable=False),
    sa.Column('fee_payer', sa.String(length=8), nullable=False),
    sa.Column('buyer_fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('merchant_fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('posted_on', sa.Date(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('paid_off_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trade_no'], ['wallet_trades.trade_no'], name=op.f('fk_creditpay_purchases_trade_no_wallet_trades')),
    sa.ForeignKeyConstraint(['user_id'], ['wallet_users.user_id'], name=op.f('fk_creditpay_purchases_user_id_wallet_users')),
    sa.PrimaryKeyConstraint('trade_no', name=op.f('pk_creditpay_purchases'))
    )
    with op.batch_alter_table('creditpay_purchases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_creditpay_purchases_user_id'), ['user_id'], unique=False)

    op.create_table('wallet_refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trade_no', sa.String(length=32), nullable=False),
    sa.Column('out_request_no', sa.String(length=64), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=256), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trade_no'], ['wallet_trades.trade_no'], name=op.f('fk_wallet_refunds_trade_no_wallet_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_refunds')),
    sa.UniqueConstraint('trade_no', 'out_request_no', name='uq_wallet_refunds_trade_request')
    )


def downgrade() -> None:
    op.drop_table('wallet_refunds')
    with op.batch_alter_table('creditpay_purchases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_creditpay_purchases_user_id'))

    op.drop_table('creditpay_purchases')
    with op.batch_alter_table('wallet_trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_trades_merchant_id'))
        batch_op.drop_index('ix_wallet_trades_buyer_state')

    op.drop_table('wallet_trades')
    op.drop_table('wallet_user_cards')
    with op.batch_alter_table('wallet_apps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_apps_merchant_id'))

    op.drop_table('wallet_apps')
    with op.batch_alter_table('prepaid_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prepaid_cards_program_merchant_id'))

    op.drop_table('prepaid_cards')
    with op.batch_alter_table('creditpay_repayments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_creditpay_repayments_user_id'))

    op.drop_table('creditpay_repayments')
    op.drop_table('creditpay_bills')
    op.drop_table('wallet_users')
    with op.batch_alter_table('wallet_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_notifications_state_next')

    op.drop_table('wallet_notifications')
    op.drop_table('wallet_keys')
