"""The sandbox issuer's outbox of cardholder notices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issuer_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("card_id", sa.String(length=48), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=320), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuer_notifications")),
        sa.UniqueConstraint("reference", name=op.f("uq_issuer_notifications_reference")),
    )
    with op.batch_alter_table("issuer_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issuer_notifications_card_id"), ["card_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issuer_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issuer_notifications_card_id"))
    op.drop_table("issuer_notifications")
