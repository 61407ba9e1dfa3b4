"""Ledger (accounts, transfers, holds, remembered failures) and registry (acquirers, merchants,
API keys, terminals, sandbox issuer cards).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acquirers',
    sa.Column('acquirer_id', sa.String(length=11), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('acquirer_id', name=op.f('pk_acquirers'))
    )
    op.create_table('issuers',
    sa.Column('issuer_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('issuer_id', name=op.f('pk_issuers'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('owner_ref', sa.String(length=96), nullable=False),
    sa.Column('owner', sa.String(length=96), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('flags', sa.Integer(), server_default='0', nullable=False),
    sa.Column('debits_pending', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('debits_posted', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('credits_pending', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('credits_posted', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0', name=op.f('ck_ledger_accounts_balances_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('owner_ref', 'code', 'currency', name='uq_ledger_accounts_owner_code_currency')
    )
    op.create_table('ledger_transfer_failures',
    sa.Column('id', sa.String(length=96), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('result', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfer_failures'))
    )
    op.create_table('issuer_cards',
    sa.Column('card_id', sa.String(length=48), nullable=False),
    sa.Column('issuer_id', sa.String(length=16), nullable=False),
    sa.Column('pan_enc', sa.LargeBinary(), nullable=False),
    sa.Column('pan_hash', sa.String(length=64), nullable=False),
    sa.Column('pan_first6', sa.String(length=6), nullable=False),
    sa.Column('pan_last4', sa.String(length=4), nullable=False),
    sa.Column('expiry', sa.String(length=4), nullable=False),
    sa.Column('psn', sa.String(length=2), nullable=False),
    sa.Column('service_code', sa.String(length=3), nullable=False),
    sa.Column('scheme', sa.String(length=16), nullable=False),
    sa.Column('funding', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interfaces', sa.String(length=48), nullable=False),
    sa.Column('cvn', sa.Integer(), nullable=True),
    sa.Column('behavior', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('imk_ac_enc', sa.LargeBinary(), nullable=True),
    sa.Column('cvk_enc', sa.LargeBinary(), nullable=False),
    sa.Column('pvk_enc', sa.LargeBinary(), nullable=False),
    sa.Column('pin_offset', sa.String(length=12), nullable=False),
    sa.Column('token_for_card_id', sa.String(length=48), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['issuers.issuer_id'], name=op.f('fk_issuer_cards_issuer_id_issuers')),
    sa.ForeignKeyConstraint(['token_for_card_id'], ['issuer_cards.card_id'], name=op.f('fk_issuer_cards_token_for_card_id_issuer_cards')),
    sa.PrimaryKeyConstraint('card_id', name=op.f('pk_issuer_cards')),
    sa.UniqueConstraint('pan_hash', name=op.f('uq_issuer_cards_pan_hash'))
    )
    op.create_table('ledger_transfers',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=96), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('pending_id', sa.String(length=96), nullable=True),
    sa.Column('timeout_s', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code', sa.String(length=32), server_default='', nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_ledger_transfers_accounts_different')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_credit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_debit_account_id_ledger_accounts')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('id', name=op.f('uq_ledger_transfers_id'))
    )
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_transfers_credit_account_id'), ['credit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_transfers_debit_account_id'), ['debit_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_transfers_pending_id'), ['pending_id'], unique=False)

    op.create_table('merchants',
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('acquirer_id', sa.String(length=11), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('mcc', sa.String(length=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('country', sa.String(length=3), nullable=False),
    sa.Column('city', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=128), server_default='', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['acquirer_id'], ['acquirers.acquirer_id'], name=op.f('fk_merchants_acquirer_id_acquirers')),
    sa.PrimaryKeyConstraint('merchant_id', name=op.f('pk_merchants'))
    )
    op.create_table('ledger_pending',
    sa.Column('transfer_id', sa.String(length=96), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['transfer_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_pending_transfer_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_ledger_pending'))
    )
    with op.batch_alter_table('ledger_pending', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_pending_state_expires_at', ['state', 'expires_at'], unique=False)

    op.create_table('merchant_api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_merchant_api_keys_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_merchant_api_keys')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_merchant_api_keys_secret_hash'))
    )
    with op.batch_alter_table('merchant_api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_api_keys_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('terminals',
    sa.Column('terminal_id', sa.String(length=8), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('bdk_enc', sa.LargeBinary(), nullable=False),
    sa.Column('initial_ksn', sa.String(length=20), nullable=False),
    sa.Column('mac_required', sa.Boolean(), nullable=False),
    sa.Column('contactless_cvm_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('contactless_txn_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('floor_limit_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_terminals_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('terminal_id', name=op.f('pk_terminals'))
    )
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_terminals_merchant_id'), ['merchant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_terminals_merchant_id'))

    op.drop_table('terminals')
    with op.batch_alter_table('merchant_api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_api_keys_merchant_id'))

    op.drop_table('merchant_api_keys')
    with op.batch_alter_table('ledger_pending', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_pending_state_expires_at')

    op.drop_table('ledger_pending')
    op.drop_table('merchants')
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_transfers_pending_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_transfers_debit_account_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_transfers_credit_account_id'))

    op.drop_table('ledger_transfers')
    op.drop_table('issuer_cards')
    op.drop_table('ledger_transfer_failures')
    op.drop_table('ledger_accounts')
    op.drop_table('issuers')
    op.drop_table('acquirers')
