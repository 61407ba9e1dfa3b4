"""Payment requests and idempotency keys: the online POS REST API (issue 6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_method', sa.String(length=8), nullable=False),
    sa.Column('request_path', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_idempotency_keys_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('payment_requests',
    sa.Column('id', sa.String(length=27), nullable=False),
    sa.Column('merchant_id', sa.String(length=15), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('description', sa.String(length=500), server_default='', nullable=False),
    sa.Column('capture', sa.String(length=16), nullable=False),
    sa.Column('escrow', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('metadata_json', sa.Text(), server_default='{}', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_payment_requests_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.merchant_id'], name=op.f('fk_payment_requests_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_requests')),
    sa.UniqueConstraint('merchant_id', 'order_id', name='uq_payment_requests_merchant_order')
    )
    with op.batch_alter_table('payment_requests', schema=None) as batch_op:
        batch_op.create_index('ix_payment_requests_merchant_created', ['merchant_id', 'created_at', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payment_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_requests_merchant_created')

    op.drop_table('payment_requests')
    op.drop_table('idempotency_keys')
