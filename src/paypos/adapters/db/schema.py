"""The SQL schema: one metadata for SQLite and PostgreSQL, changed only by Alembic.

Money columns are BIGINT minor units; their currency is an ISO 4217 alpha code
on the same row. Timestamps are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both backends."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Client ids are at most limits.transfer_id_bytes_max (64) bytes; the column is
# wider so that ledger-made ids ("~expire:<id>") fit and never collide.
TRANSFER_ID = sa.String(96)

ledger_accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("owner_ref", sa.String(96), nullable=False),
    sa.Column("owner", sa.String(96), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
    sa.Column("debits_pending", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("credits_pending", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("owner_ref", "code", "currency", name="uq_ledger_accounts_owner_code_currency"),
    sa.CheckConstraint(
        "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
        name="balances_not_negative",
    ),
)

ledger_transfers = sa.Table(
    "ledger_transfers",
    metadata,
    # Journal order; the client-chosen id is the idempotency key.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", TRANSFER_ID, nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("debit_account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False, index=True),
    sa.Column("credit_account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False, index=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("pending_id", TRANSFER_ID, nullable=True),
    sa.Column("timeout_s", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("code", sa.String(32), nullable=False, server_default=""),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint("debit_account_id <> credit_account_id", name="accounts_different"),
    # Settlement windows (docs/settlement.md) and statements read the journal by posting time.
    sa.Index("ix_ledger_transfers_created_at", "created_at"),
    # Only second-phase transfers name a hold: a partial index (migration 0017) spares the
    # single-phase majority an index entry.
    sa.Index("ix_ledger_transfers_pending_id", "pending_id", postgresql_where=sa.text("pending_id IS NOT NULL"),
             sqlite_where=sa.text("pending_id IS NOT NULL")),
)

# Current state of every pending transfer (the hold). The transfers themselves
# are append-only; this row changes once, when the hold is posted, voided or expires.
ledger_pending = sa.Table(
    "ledger_pending",
    metadata,
    sa.Column("transfer_id", TRANSFER_ID, sa.ForeignKey("ledger_transfers.id"), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Index("ix_ledger_pending_state_expires_at", "state", "expires_at"),
)

# Failures that depended on ledger state, remembered so that a replay of the
# same id gets the same answer (never a posting that the first attempt refused).
ledger_transfer_failures = sa.Table(
    "ledger_transfer_failures",
    metadata,
    sa.Column("id", TRANSFER_ID, primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("result", sa.String(48), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- the acquirer's registry -------------------------------------------------

acquirers = sa.Table(
    "acquirers",
    metadata,
    sa.Column("acquirer_id", sa.String(11), primary_key=True),  # ISO 8583 field 32
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("merchant_id", sa.String(15), primary_key=True),  # ISO 8583 field 42
    sa.Column("acquirer_id", sa.String(11), sa.ForeignKey("acquirers.acquirer_id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("mcc", sa.String(4), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("country", sa.String(3), nullable=False),  # ISO 3166 numeric
    sa.Column("city", sa.String(64), nullable=False),
    sa.Column("address", sa.String(128), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

merchant_api_keys = sa.Table(
    "merchant_api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),  # public, shown in listings
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False, index=True),
    sa.Column("prefix", sa.String(16), nullable=False),  # "sk_test_" or "sk_live_"
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),  # HMAC-SHA256, never the key
    sa.Column("label", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

terminals = sa.Table(
    "terminals",
    metadata,
    sa.Column("terminal_id", sa.String(8), primary_key=True),  # ISO 8583 field 41
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 numeric, field 49
    sa.Column("bdk_enc", sa.LargeBinary, nullable=False),  # encrypted under the data key
    sa.Column("initial_ksn", sa.String(20), nullable=False),
    sa.Column("mac_required", sa.Boolean, nullable=False),
    sa.Column("contactless_cvm_limit_minor", sa.BigInteger, nullable=False),
    sa.Column("contactless_txn_limit_minor", sa.BigInteger, nullable=False),
    sa.Column("floor_limit_minor", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- the sandbox issuer ------------------------------------------------------

issuers = sa.Table(
    "issuers",
    metadata,
    sa.Column("issuer_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

issuer_cards = sa.Table(
    "issuer_cards",
    metadata,
    sa.Column("card_id", sa.String(48), primary_key=True),
    sa.Column("issuer_id", sa.String(16), sa.ForeignKey("issuers.issuer_id"), nullable=False),
    sa.Column("pan_enc", sa.LargeBinary, nullable=False),  # AES-GCM under the data key
    sa.Column("pan_hash", sa.String(64), nullable=False, unique=True),  # keyed hash for lookup
    sa.Column("pan_first6", sa.String(6), nullable=False),
    sa.Column("pan_last4", sa.String(4), nullable=False),
    sa.Column("expiry", sa.String(4), nullable=False),  # YYMM
    sa.Column("psn", sa.String(2), nullable=False),
    sa.Column("service_code", sa.String(3), nullable=False),
    sa.Column("scheme", sa.String(16), nullable=False),
    sa.Column("funding", sa.String(16), nullable=False),  # debit | credit | prepaid
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 numeric
    sa.Column("interfaces", sa.String(48), nullable=False),  # "chip,contactless,magstripe"
    sa.Column("cvn", sa.Integer, nullable=True),  # 10 | 18 | NULL (magstripe only)
    sa.Column("behavior", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    # Issuer keys, each encrypted under the data key (never stored in clear).
    sa.Column("imk_ac_enc", sa.LargeBinary, nullable=True),
    sa.Column("cvk_enc", sa.LargeBinary, nullable=False),
    sa.Column("pvk_enc", sa.LargeBinary, nullable=False),
    # IBM 3624 PIN offset: with the PVK it verifies (and, in the sandbox, recovers) the PIN.
    sa.Column("pin_offset", sa.String(12), nullable=False),
    # A phone-wallet device token stands for a funding card (EMVCo payment tokenisation).
    sa.Column("token_for_card_id", sa.String(48), sa.ForeignKey("issuer_cards.card_id"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- the acquiring host (ISO 8583) ---------------------------------------------

# Per-terminal security and batch state: the DUKPT counter only rises.
terminal_state = sa.Table(
    "terminal_state",
    metadata,
    sa.Column("terminal_id", sa.String(8), sa.ForeignKey("terminals.terminal_id"), primary_key=True),
    sa.Column("ksn_counter_last", sa.Integer, nullable=False, server_default="-1"),
    sa.Column("signed_on", sa.Boolean, nullable=False),
    sa.Column("batch_no", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# The sandbox issuer's per-card state: the last application transaction counter
# seen (ATCs only rise) and the PIN tries left before the PIN is blocked.
issuer_card_state = sa.Table(
    "issuer_card_state",
    metadata,
    sa.Column("card_id", sa.String(48), sa.ForeignKey("issuer_cards.card_id"), primary_key=True),
    sa.Column("atc_last", sa.Integer, nullable=False, server_default="-1"),
    sa.Column("pin_tries_left", sa.Integer, nullable=False, server_default="3"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Every request answered, by its ISO 8583 identity (41, 11, 7): a retransmission
# with the same business content gets this response again; other content gets 94.
iso_messages = sa.Table(
    "iso_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("terminal_id", sa.String(8), nullable=False),
    sa.Column("stan", sa.String(6), nullable=False),
    sa.Column("transmission_dt", sa.String(10), nullable=False),
    sa.Column("mti", sa.String(4), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("response_json", sa.Text, nullable=False),  # response fields, without the MAC
    sa.Column("response_code", sa.String(2), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("terminal_id", "stan", "transmission_dt", name="uq_iso_messages_identity"),
)

# The host's journal of card transactions (what reports, refunds, reversals and
# reconciliation read). Card data: masked PAN only.
host_transactions = sa.Table(
    "host_transactions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    # Not indexed alone: ix_host_transactions_identity leads with terminal_id and
    # ix_host_transactions_merchant_created with merchant_id (migration 0017 dropped the
    # single-column twins: every sale paid for them on insert).
    sa.Column("terminal_id", sa.String(8), nullable=False),
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("batch_no", sa.Integer, nullable=False),
    sa.Column("mti", sa.String(4), nullable=False),
    sa.Column("processing_code", sa.String(6), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # purchase, refund, preauth, completion, balance
    sa.Column("stan", sa.String(6), nullable=False),
    sa.Column("transmission_dt", sa.String(10), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("card_id", sa.String(48), nullable=True),
    sa.Column("pan_masked", sa.String(19), nullable=True),
    sa.Column("entry_mode", sa.String(3), nullable=True),
    sa.Column("response_code", sa.String(2), nullable=False),
    sa.Column("approval_code", sa.String(6), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # approved, declined, reversed, completed
    sa.Column("original_id", sa.BigInteger, nullable=True),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("completed_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("transfer_ref", sa.String(64), nullable=True),  # base of its ledger transfer ids
    sa.Column("created_at", UTCDateTime, nullable=False),
    # How it was paid as pricing plans and reports group it (domain.pricing.PaymentMethod),
    # filled at authorization when the host priced it; NULL on older rows (issue 7, pricing).
    sa.Column("method", sa.String(24), nullable=True),
    sa.Index("ix_host_transactions_identity", "terminal_id", "stan", "transmission_dt"),
    sa.Index("ix_host_transactions_card_time", "card_id", "created_at"),  # the velocity rule
)

# A reversal that arrived before its original: the late original is refused, never posted.
reversal_tombstones = sa.Table(
    "reversal_tombstones",
    metadata,
    sa.Column("terminal_id", sa.String(8), primary_key=True),
    sa.Column("stan", sa.String(6), primary_key=True),
    sa.Column("transmission_dt", sa.String(10), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The sandbox issuer's outbox of cardholder notices (SMS / e-mail), one per approved payment.
issuer_notifications = sa.Table(
    "issuer_notifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("card_id", sa.String(48), nullable=False, index=True),
    sa.Column("channel", sa.String(8), nullable=False),  # sms | email
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("text", sa.String(320), nullable=False),  # masked PAN only, never more
    sa.Column("reference", sa.String(64), nullable=False, unique=True),  # one notice per payment
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- the sandbox wallet network (issue 5) ----------------------------------------

# The wallet's own RSA2 key pair: it signs gateway responses and notifications.
wallet_keys = sa.Table(
    "wallet_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("private_key_enc", sa.LargeBinary, nullable=False),  # sealed under the data key
    sa.Column("public_key_pem", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A merchant's app on the wallet's open platform (Alipay-style app_id).
wallet_apps = sa.Table(
    "wallet_apps",
    metadata,
    sa.Column("app_id", sa.String(16), primary_key=True),
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("app_public_key_pem", sa.Text, nullable=False),
    # Sandbox apps only: the TEST private key the sandbox publishes (sealed); NULL for real apps.
    sa.Column("app_private_key_enc", sa.LargeBinary, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

wallet_users = sa.Table(
    "wallet_users",
    metadata,
    sa.Column("user_id", sa.String(16), primary_key=True),  # "2088" + 12 digits, as buyer_user_id
    sa.Column("phone", sa.String(20), nullable=False, unique=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("device_no", sa.Integer, nullable=False, unique=True),  # payment-code device number
    sa.Column("device_secret_enc", sa.LargeBinary, nullable=False),  # sealed
    sa.Column("paycode_last_step", sa.BigInteger, nullable=True),  # single use: steps only rise
    sa.Column("credit_score", sa.Integer, nullable=False),
    sa.Column("credit_line_minor", sa.BigInteger, nullable=False),
    sa.Column("no_confirm_limit_minor", sa.BigInteger, nullable=False),
    sa.Column("bill_day", sa.Integer, nullable=False),
    sa.Column("due_day", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

wallet_user_cards = sa.Table(
    "wallet_user_cards",
    metadata,
    sa.Column("user_id", sa.String(16), sa.ForeignKey("wallet_users.user_id"), primary_key=True),
    sa.Column("card_id", sa.String(48), sa.ForeignKey("issuer_cards.card_id"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

wallet_trades = sa.Table(
    "wallet_trades",
    metadata,
    sa.Column("trade_no", sa.String(32), primary_key=True),
    sa.Column("app_id", sa.String(16), sa.ForeignKey("wallet_apps.app_id"), nullable=False),
    sa.Column("merchant_id", sa.String(15), nullable=False, index=True),
    sa.Column("out_trade_no", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("total_amount_minor", sa.BigInteger, nullable=False),  # 0 = static code, buyer types it
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("scene", sa.String(16), nullable=False),  # qr_code | bar_code
    sa.Column("state", sa.String(16), nullable=False),  # WAIT_BUYER_PAY, TRADE_SUCCESS, ...
    sa.Column("fingerprint", sa.String(64), nullable=False),  # of the creating request's business data
    sa.Column("qr_code", sa.Text, nullable=True),
    sa.Column("buyer_user_id", sa.String(16), nullable=True),
    sa.Column("funding", sa.String(16), nullable=True),  # balance | card | creditpay
    sa.Column("funding_card_id", sa.String(48), nullable=True),
    sa.Column("installments", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fee_payer", sa.String(8), nullable=True),  # buyer | merchant (installments)
    sa.Column("fee_minor", sa.BigInteger, nullable=False, server_default="0"),  # the merchant's fees
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("notify_url", sa.Text, nullable=True),
    sa.Column("terminal_id", sa.String(8), nullable=True),
    sa.Column("awaiting_confirmation", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("paid_at", UTCDateTime, nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("app_id", "out_trade_no", name="uq_wallet_trades_app_out_trade_no"),
    sa.Index("ix_wallet_trades_buyer_state", "buyer_user_id", "state"),
)

wallet_refunds = sa.Table(
    "wallet_refunds",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("trade_no", sa.String(32), sa.ForeignKey("wallet_trades.trade_no"), nullable=False),
    sa.Column("out_request_no", sa.String(64), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("trade_no", "out_request_no", name="uq_wallet_refunds_trade_request"),
)

# Outbox of asynchronous notifications: one row per trade state change, delivered with
# back-off until the merchant answers "success".
wallet_notifications = sa.Table(
    "wallet_notifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("trade_no", sa.String(32), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),  # the trade status (or refund id) notified
    sa.Column("notify_url", sa.Text, nullable=False),
    sa.Column("params_json", sa.Text, nullable=False),  # the signed form, as sent every time
    sa.Column("state", sa.String(12), nullable=False),  # pending | delivered | abandoned
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(256), nullable=False, server_default=""),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("trade_no", "event", name="uq_wallet_notifications_trade_event"),
    sa.Index("ix_wallet_notifications_state_next", "state", "next_attempt_at"),
)

# --- credit pay (Huabei style) -------------------------------------------------------

creditpay_purchases = sa.Table(
    "creditpay_purchases",
    metadata,
    sa.Column("trade_no", sa.String(32), sa.ForeignKey("wallet_trades.trade_no"), primary_key=True),
    sa.Column("user_id", sa.String(16), sa.ForeignKey("wallet_users.user_id"), nullable=False, index=True),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("installments", sa.Integer, nullable=False),  # 1 = pay in full next bill
    sa.Column("fee_payer", sa.String(8), nullable=False),
    sa.Column("buyer_fee_minor", sa.BigInteger, nullable=False),
    sa.Column("merchant_fee_minor", sa.BigInteger, nullable=False),
    sa.Column("posted_on", sa.Date, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("paid_off_on", sa.Date, nullable=True),  # early payoff
    sa.Column("created_at", UTCDateTime, nullable=False),
)

creditpay_bills = sa.Table(
    "creditpay_bills",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(16), sa.ForeignKey("wallet_users.user_id"), nullable=False),
    sa.Column("bill_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),  # new charges + carried balance
    sa.Column("minimum_minor", sa.BigInteger, nullable=False),
    sa.Column("paid_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("interest_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("interest_through", sa.Date, nullable=True),  # overdue interest charged up to this day
    sa.Column("lines_json", sa.Text, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # open | paid | overdue
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("user_id", "bill_date", name="uq_creditpay_bills_user_bill_date"),
)

creditpay_repayments = sa.Table(
    "creditpay_repayments",
    metadata,
    sa.Column("repayment_id", sa.String(64), primary_key=True),  # client-chosen: idempotent
    sa.Column("user_id", sa.String(16), sa.ForeignKey("wallet_users.user_id"), nullable=False, index=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # balance | card
    sa.Column("card_id", sa.String(48), nullable=True),
    sa.Column("allocation_json", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- prepaid stored-value cards on the platform's own BIN ----------------------------

prepaid_cards = sa.Table(
    "prepaid_cards",
    metadata,
    sa.Column("card_id", sa.String(48), sa.ForeignKey("issuer_cards.card_id"), primary_key=True),
    sa.Column("program_merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False,
              index=True),
    sa.Column("kind", sa.String(12), nullable=False),  # reloadable | gift
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# --- online payments REST API (issue 6) ----------------------------------------------

# What a merchant asks a buyer to pay (domain/payment_request.py). The merchant's order id is
# unique per merchant: a buyer refreshing the page can never create a second charge.
payment_requests = sa.Table(
    "payment_requests",
    metadata,
    sa.Column("id", sa.String(27), primary_key=True),  # "pr_" + 24 base32 characters
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("capture", sa.String(16), nullable=False),  # automatic | manual
    sa.Column("escrow", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("merchant_id", "order_id", name="uq_payment_requests_merchant_order"),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_payment_requests_merchant_created", "merchant_id", "created_at", "id"),  # cursor pages
    sa.Index("ix_payment_requests_status_expires", "status", "expires_at"),  # the expiry sweep
)

# Idempotency-Key of every POST, per merchant: the row's insert is the lock (its primary key),
# and once done it holds the first answer, replayed for limits.idempotency_key_ttl_s.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_method", sa.String(8), nullable=False),
    sa.Column("request_path", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),  # SHA-256 of the canonical body
    sa.Column("state", sa.String(12), nullable=False),  # in_progress | done
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Events of the online POS (issue 6): the transactional outbox. A service writes its state
# change and the event in one transaction (services/events.py), so an event exists iff its
# change committed; webhook delivery reads them in ``seq`` order.
events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(28), nullable=False, unique=True),  # "evt_" + 24 base32 characters
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("type", sa.String(48), nullable=False),  # e.g. payment_request.paid
    sa.Column("object_id", sa.String(40), nullable=False),  # the id of the object in data
    sa.Column("data_json", sa.Text, nullable=False),  # the object as the API shows it
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_events_merchant_seq", "merchant_id", "seq"),
)

# --- webhooks (issue 6, services/webhooks.py) -------------------------------------------
# An endpoint a merchant registered: its secret sealed by the vault (purpose
# "webhook-secret"); after a rotation the previous secret also signs until it expires.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(27), primary_key=True),  # "we_" + 24 base32 characters
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret_enc", sa.LargeBinary, nullable=False),
    sa.Column("previous_secret_enc", sa.LargeBinary, nullable=True),
    sa.Column("previous_secret_expires_at", UTCDateTime, nullable=True),
    sa.Column("enabled_events_json", sa.Text, nullable=False),  # sorted JSON list, or ["*"]
    sa.Column("status", sa.String(8), nullable=False),  # enabled | disabled | deleted (kept for its deliveries)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_webhook_endpoints_merchant_created", "merchant_id", "created_at"),
)

# One event to one endpoint, made in the event's own transaction (services/events.py).
# ``schedule_step`` counts the failed attempts since it was (re)queued; ``lease_token`` is
# set while a delivery loop holds it (``next_attempt_at`` is then the lease's end).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(27), primary_key=True),  # "wd_" + 24 base32 characters
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("event_id", sa.String(28), sa.ForeignKey("events.id"), nullable=False),
    sa.Column("endpoint_id", sa.String(27), sa.ForeignKey("webhook_endpoints.id"), nullable=False),
    sa.Column("state", sa.String(9), nullable=False),  # pending | succeeded | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("schedule_step", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_event", "event_id"),
)

# Each POST of a delivery: when, the answer's status (None: no answer), how long, why not.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(27), sa.ForeignKey("webhook_deliveries.id"), nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.String(256), nullable=False),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# Payments (attempts) of payment requests (issue 6, domain/online_payment.py): card not present
# or wallet. The PAN is only ever stored sealed by the vault (pan_enc) beside its masked form
# and keyed lookup hash; the CVV2 is never stored. The one-time code of a challenge is stored
# only as a keyed hash. Ledger transfer ids derive from the payment's id.
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(28), primary_key=True),  # "pay_" + 24 base32 characters
    sa.Column("payment_request_id", sa.String(27), sa.ForeignKey("payment_requests.id"), nullable=False,
              index=True),
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),  # card | wallet
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("captured_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("escrow", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("settled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("card_id", sa.String(48), nullable=True),
    sa.Column("masked_pan", sa.String(19), nullable=True),
    sa.Column("pan_enc", sa.LargeBinary, nullable=True),  # AES-GCM under the data key
    sa.Column("pan_hash", sa.String(64), nullable=True),  # keyed hash: the same card submitted twice
    sa.Column("wallet_trade_no", sa.String(64), nullable=True, unique=True),
    sa.Column("failure_code", sa.String(32), nullable=True),
    sa.Column("failure_reason", sa.String(200), nullable=True),
    sa.Column("challenge_hash", sa.String(64), nullable=True),
    sa.Column("challenge_expires_at", UTCDateTime, nullable=True),
    sa.Column("challenge_tries_left", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.CheckConstraint("refunded_minor <= captured_minor", name="refunds_within_captured"),
    sa.Index("ix_payments_merchant_created", "merchant_id", "created_at", "id"),  # cursor pages
)

# Refunds of payments: full or partial, several per payment, never above what was captured.
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.String(27), primary_key=True),  # "re_" + 24 base32 characters
    sa.Column("payment_id", sa.String(28), sa.ForeignKey("payments.id"), nullable=False, index=True),
    sa.Column("payment_request_id", sa.String(27), sa.ForeignKey("payment_requests.id"), nullable=False),
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False, server_default=""),
    sa.Column("source", sa.String(32), nullable=False),  # merchant_pending | merchant_escrow | merchant_available
    sa.Column("status", sa.String(16), nullable=False),  # succeeded
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_refunds_merchant_created", "merchant_id", "created_at", "id"),
)

# --- escrow and disputes (issue 6, docs/escrow-disputes.md) ---------------------------------

# One row per escrow request once paid: shipping, release and the buyer's refund request. The
# state itself is the payment request's status (domain/payment_request.py).
escrows = sa.Table(
    "escrows",
    metadata,
    sa.Column("payment_request_id", sa.String(27), sa.ForeignKey("payment_requests.id"), primary_key=True),
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("payment_id", sa.String(28), sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("carrier", sa.String(64), nullable=True),
    sa.Column("tracking_number", sa.String(64), nullable=True),
    sa.Column("held_at", UTCDateTime, nullable=False),
    sa.Column("shipped_at", UTCDateTime, nullable=True),
    sa.Column("release_due_at", UTCDateTime, nullable=True, index=True),  # shipped_at + auto-release period
    sa.Column("released_at", UTCDateTime, nullable=True),
    sa.Column("release_reason", sa.String(16), nullable=True),  # buyer_confirmed | auto | operator
    sa.Column("refund_reason", sa.String(500), nullable=True),
    sa.Column("refund_requested_at", UTCDateTime, nullable=True),
    sa.Column("merchant_answer", sa.String(16), nullable=True),  # accepted | rejected
    sa.Column("operator_decision", sa.String(16), nullable=True),  # refund | release
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Disputes (chargebacks) the sandbox issuer opens on card payments.
disputes = sa.Table(
    "disputes",
    metadata,
    sa.Column("id", sa.String(27), primary_key=True),  # "dp_" + 24 base32 characters
    sa.Column("payment_id", sa.String(28), sa.ForeignKey("payments.id"), nullable=False, index=True),
    sa.Column("payment_request_id", sa.String(27), sa.ForeignKey("payment_requests.id"), nullable=False),
    sa.Column("merchant_id", sa.String(15), sa.ForeignKey("merchants.merchant_id"), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("reason_code", sa.String(8), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),  # needs_response | under_review | won | lost
    sa.Column("source", sa.String(32), nullable=False),  # the merchant account debited
    sa.Column("evidence_text", sa.Text, nullable=True),
    sa.Column("evidence_submitted_at", UTCDateTime, nullable=True),
    sa.Column("evidence_due_by", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_disputes_merchant_created", "merchant_id", "created_at", "id"),  # cursor pages
)

# --- issue 7: audit log ----------------------------------------------------------------------

# Who did what to which object: every state change made by a person (console, CLI operator
# commands). Append-only; a later issue chains the rows by hash (tamper evidence).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(96), nullable=False),  # "user:<id>", "cli:<os user>", "system"
    sa.Column("action", sa.String(64), nullable=False),  # "application.approve", "terminal.suspend"
    sa.Column("subject_type", sa.String(32), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False),
    sa.Column("merchant_id", sa.String(15), nullable=True),  # whose data, for a merchant's view
    sa.Column("details_json", sa.Text, nullable=False, server_default="{}"),  # never card data
    sa.Index("ix_audit_log_subject", "subject_type", "subject_id"),
    sa.Index("ix_audit_log_merchant_seq", "merchant_id", "seq"),
)

# --- issue 7: merchant lifecycle -------------------------------------------------------------

# A merchant's application (docs/merchant-lifecycle.md): draft → submitted → approved |
# rejected. Identity numbers of persons are sealed by the vault (only a masked form is plain);
# a business's unified social credit code is public and kept plain. ``editors_json`` lists
# every actor who edited or submitted (maker-checker: none of them may approve or reject).
merchant_applications = sa.Table(
    "merchant_applications",
    metadata,
    sa.Column("id", sa.String(28), primary_key=True),  # "app_" + 24 base32 characters
    sa.Column("reference", sa.String(64), nullable=True, unique=True),  # the creator's retry key
    sa.Column("kind", sa.String(16), nullable=False),  # individual | business
    sa.Column("legal_name", sa.String(128), nullable=False),
    sa.Column("id_number_enc", sa.LargeBinary, nullable=False),  # sealed resident ID
    sa.Column("id_number_masked", sa.String(18), nullable=False),
    sa.Column("licence_number", sa.String(18), nullable=True),  # USCC, businesses only
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("mcc", sa.String(4), nullable=False),
    sa.Column("city", sa.String(64), nullable=False),
    sa.Column("address", sa.String(128), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("country", sa.String(3), nullable=False),  # ISO 3166-1 numeric
    sa.Column("status", sa.String(16), nullable=False),  # draft | submitted | approved | rejected
    sa.Column("editors_json", sa.Text, nullable=False, server_default="[]"),
    sa.Column("last_editor", sa.String(96), nullable=False),
    sa.Column("reject_codes", sa.String(256), nullable=True),  # comma-separated reason codes
    sa.Column("reject_text", sa.Text, nullable=True),
    sa.Column("decided_by", sa.String(96), nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Column("merchant_id", sa.String(15), nullable=True, unique=True),  # set on approval
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_merchant_applications_status_created", "status", "created_at"),
)

# Uploaded documents: the bytes live in the data dir as documents/<sha256>; the row is the
# only way to them (an unguessable id, served to the operator or the owning merchant only).
merchant_documents = sa.Table(
    "merchant_documents",
    metadata,
    sa.Column("id", sa.String(28), primary_key=True),  # "doc_" + 24 base32 characters
    sa.Column("application_id", sa.String(28), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("media_type", sa.String(32), nullable=False),
    sa.Column("file_name", sa.String(128), nullable=False),  # sanitised, display only
    sa.Column("uploaded_by", sa.String(96), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("application_id", "sha256", name="uq_merchant_documents_application_sha256"),
)

# A terminal's life before and beside the host's ``terminals`` row: the request (merchant,
# location), its DUKPT device id, the one-time activation code (hashed) and its attempts.
terminal_provisioning = sa.Table(
    "terminal_provisioning",
    metadata,
    sa.Column("id", sa.String(28), primary_key=True),  # "trq_" + 24 base32 characters
    sa.Column("reference", sa.String(64), nullable=True, unique=True),  # the requester's retry key
    sa.Column("merchant_id", sa.String(15), nullable=False, index=True),
    sa.Column("location", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # requested | provisioned | active | suspended | replaced
    sa.Column("terminal_id", sa.String(8), nullable=True, unique=True),
    sa.Column("device_id", sa.Integer, nullable=True, unique=True),  # KSN device id (19 bits)
    sa.Column("activation_code_hash", sa.String(64), nullable=True),
    sa.Column("activation_expires_at", UTCDateTime, nullable=True),
    sa.Column("activation_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("activated_at", UTCDateTime, nullable=True),
    sa.Column("replaces_terminal_id", sa.String(8), nullable=True),
    sa.Column("replaced_by_terminal_id", sa.String(8), nullable=True),
    sa.Column("created_by", sa.String(96), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# --- issue 7: web console ---------------------------------------------------------------------

# People who sign in to /console/ (docs/console.md). Merchant roles carry merchant_id; operator
# roles do not. The password is an argon2id hash; the TOTP secret is sealed by the vault.
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.String(24), primary_key=True),  # "cu_" + 20 hex digits
    sa.Column("email", sa.String(254), nullable=False, unique=True),  # normalised lower-case
    sa.Column("display_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(256), nullable=False),  # argon2id encoded hash
    sa.Column("role", sa.String(16), nullable=False),  # owner | cashier | reviewer | risk | finance | admin
    sa.Column("merchant_id", sa.String(15), nullable=True, index=True),
    sa.Column("refund_limit_minor", sa.BigInteger, nullable=False, server_default="0"),  # a cashier's
    sa.Column("totp_secret_enc", sa.LargeBinary, nullable=True),  # vault-sealed base32 secret
    sa.Column("totp_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),  # the last accepted code's step
    sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),  # active | disabled
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("refund_limit_minor >= 0", name="refund_limit_not_negative"),
)

# Signed-in sessions: the cookie's token is stored only as its SHA-256.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(24), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("awaiting_totp", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),  # created_at + the absolute lifetime
)

# A form's idempotency key (one per rendered refund form): the first submit's answer, replayed.
console_form_keys = sa.Table(
    "console_form_keys",
    metadata,
    sa.Column("form_key", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(24), nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
# --- issue 7: settlement and payouts --------------------------------------------------------

# A merchant's settlement cycle (docs/settlement.md); merchants without a row use the defaults.
settlement_settings = sa.Table(
    "settlement_settings",
    metadata,
    sa.Column("merchant_id", sa.String(15), primary_key=True),
    sa.Column("cycle", sa.String(8), nullable=False),  # T0 | T1 | WEEKLY
    sa.Column("weekday", sa.Integer, nullable=False),  # 0 = Monday (WEEKLY)
    sa.Column("cutoff_local", sa.String(5), nullable=False),  # HH:MM in time_zone
    sa.Column("time_zone", sa.String(64), nullable=False),  # IANA
    sa.Column("reserve_bps", sa.Integer, nullable=False),
    sa.Column("reserve_hold_days", sa.Integer, nullable=False),
    sa.Column("instant_rate_bps", sa.Integer, nullable=False),
    sa.Column("payout_minor_min", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Dates on which nothing settles and nothing is paid out (settlement rolls to the next working day).
settlement_holidays = sa.Table(
    "settlement_holidays",
    metadata,
    sa.Column("holiday_date", sa.Date, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# One clearing run per business date: its progress, so a crashed run resumes.
settlement_runs = sa.Table(
    "settlement_runs",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | done
    sa.Column("merchants_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("merchants_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("batches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("payouts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
)

# One merchant's settlement of one business date: the window and what moved (minor units).
settlement_batches = sa.Table(
    "settlement_batches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # sb_<merchant>_<yyyymmdd>
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("cycle", sa.String(8), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=False),  # exclusive
    sa.Column("window_end", UTCDateTime, nullable=False),  # inclusive
    sa.Column("gross_minor", sa.BigInteger, nullable=False),  # credits to merchant_pending
    sa.Column("fees_minor", sa.BigInteger, nullable=False),
    sa.Column("refunds_minor", sa.BigInteger, nullable=False),
    sa.Column("chargebacks_minor", sa.BigInteger, nullable=False),
    sa.Column("other_minor", sa.BigInteger, nullable=False),  # other debits of merchant_pending
    sa.Column("carried_in_minor", sa.BigInteger, nullable=False),  # a negative net of the last batch
    sa.Column("settled_minor", sa.BigInteger, nullable=False),  # merchant_pending → merchant_available
    sa.Column("carried_out_minor", sa.BigInteger, nullable=False),  # <= 0: left for the next batch
    sa.Column("reserve_minor", sa.BigInteger, nullable=False),  # available → merchant_reserve
    sa.Column("reserve_released_minor", sa.BigInteger, nullable=False),  # older reserves back to available
    sa.Column("reserve_released_at", UTCDateTime, nullable=True),  # when THIS batch's reserve went back
    sa.Column("instant_fee_minor", sa.BigInteger, nullable=False),
    sa.Column("charges_minor", sa.BigInteger, nullable=False),  # pricing charges (hook)
    sa.Column("payout_id", sa.String(32), nullable=True),
    sa.Column("payout_minor", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(128), nullable=False, server_default=""),  # why no payout
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("merchant_id", "business_date", name="uq_settlement_batches_merchant_date"),
)

# Money on its way to a merchant's bank account: created → sent (in a clearing file) → paid | returned.
payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # po_<merchant>_<yyyymmdd>
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False, index=True),
    sa.Column("bank_account_id", sa.String(32), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("file_id", sa.String(32), nullable=True),
    sa.Column("return_code", sa.String(8), nullable=True),
    sa.Column("return_reason", sa.String(128), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_payouts_merchant_date", "merchant_id", "business_date"),
)

# A merchant's bank account (the sandbox bank verifies it by micro-deposits). The number is
# sealed by the vault (purpose "bank_account"); lookup_hash finds it; masked everywhere else.
bank_accounts = sa.Table(
    "bank_accounts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # ba_ + 16 hex
    sa.Column("merchant_id", sa.String(15), nullable=False, index=True),
    sa.Column("number_sealed", sa.LargeBinary, nullable=False),
    sa.Column("number_hash", sa.String(64), nullable=False, index=True),
    sa.Column("number_masked", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # card | iban
    sa.Column("holder_name", sa.String(128), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),  # pending_verification | verified | failed
    sa.Column("micro_deposit_1", sa.Integer, nullable=False),
    sa.Column("micro_deposit_2", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bank_flag", sa.String(24), nullable=True),  # sandbox bank: account_closed | name_mismatch
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("verified_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# --- issue 7: pricing plans -------------------------------------------------------------------

# Pricing plans (docs/pricing.md): immutable once created; the whole plan (rates, mins, caps,
# fees, device model, promotions) is one JSON document, domain.pricing.plan_to_json.
pricing_plans = sa.Table(
    "pricing_plans",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # chosen by the operator: "standard"
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),  # ISO 4217 alpha
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Which plan a merchant is on from when: history kept, the newest effective_from <= t applies.
pricing_assignments = sa.Table(
    "pricing_assignments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("effective_from", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(96), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("merchant_id", "effective_from", name="uq_pricing_assignments_merchant_from"),
)

# Charges billed to merchants outside a payment (monthly and device fees, deposits and their
# return), one row per ledger transfer id; pending while merchant_available cannot pay it.
pricing_charges = sa.Table(
    "pricing_charges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # = its ledger transfer id, "bill:<m>:<month>:<item>"
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("item", sa.String(40), nullable=False),  # monthly_fee | device_fee-a<n> | deposit-a<n> | ...
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # pending | posted | waived
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("posted_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_pricing_charges_merchant_status", "merchant_id", "status"),
)
# --- issue 7: reports ------------------------------------------------------------------------

# Pre-aggregated card-present journal (host_transactions) per merchant, UTC hour, method,
# terminal, kind and status, for dashboards over millions of rows (services/reports.py). Rows
# up to a watermark are folded once; reversals after folding are moved by a correction pass.
report_rollups = sa.Table(
    "report_rollups",
    metadata,
    sa.Column("merchant_id", sa.String(15), primary_key=True),
    sa.Column("bucket_start", UTCDateTime, primary_key=True),  # the UTC hour
    sa.Column("method", sa.String(24), primary_key=True),  # domain.pricing.PaymentMethod
    sa.Column("terminal_id", sa.String(8), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # sale | refund | preauth | balance
    sa.Column("status", sa.String(16), primary_key=True),  # approved | declined | reversed | pending | completed
    sa.Column("currency", sa.String(3), primary_key=True),  # ISO 4217 alpha
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Index("ix_report_rollups_bucket", "bucket_start"),
)

# How far each source is folded into report_rollups: "host_transactions" (highest journal id)
# and "ledger_reversals" (highest ledger_transfers.seq whose reversal was applied).
report_watermarks = sa.Table(
    "report_watermarks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Differences reconciliation found (docs/reconciliation.md): terminal batch vs host journal
# (kinds missing_at_host, missing_at_terminal, amount_differs, reversed) and, later, the bank's
# payout statement vs the ledger (payout_*). open → resolved, with who and why (audit-logged).
reconciliation_exceptions = sa.Table(
    "reconciliation_exceptions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("merchant_id", sa.String(15), nullable=False),
    sa.Column("terminal_id", sa.String(8), nullable=True),
    sa.Column("batch_no", sa.Integer, nullable=True),
    sa.Column("transaction_ref", sa.String(64), nullable=False),  # "<terminal>:<transmission_dt>:<stan>"
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("terminal_amount_minor", sa.BigInteger, nullable=True),
    sa.Column("host_amount_minor", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("status", sa.String(8), nullable=False),  # open | resolved
    sa.Column("resolution", sa.String(500), nullable=True),
    sa.Column("resolved_by", sa.String(96), nullable=True),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("kind", "transaction_ref", name="uq_reconciliation_exceptions_kind_ref"),
    sa.Index("ix_reconciliation_exceptions_status_id", "status", "id"),
)

# A merchant's journal by time: the transaction search's pages and statements' periods.
sa.Index("ix_host_transactions_merchant_created", host_transactions.c.merchant_id, host_transactions.c.created_at)
