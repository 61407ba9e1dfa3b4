"""Every limit and timeout of paypos, in one place, units last in the name.

TigerBeetle's TIGER_STYLE: put a limit on everything, so that overload is an
operating error with a clear answer rather than an unbounded queue.
"""

from __future__ import annotations

# --- ledger -----------------------------------------------------------------
# Largest amount a single transfer may move (minor units). 10^15 minor units is
# ten trillion in a 2-exponent currency: far above any POS payment, far below
# the signed 64-bit columns the balances are stored in.
transfer_amount_minor_max = 10**15
# Largest value any stored balance column may reach (signed 64-bit SQL BIGINT).
balance_minor_max = 2**63 - 1
# Transfers in one linked chain / one create_transfers batch.
transfers_per_batch_max = 64
# A pending transfer (an authorization hold) expires at most this long after it was made.
pending_timeout_s_max = 60 * 60 * 24 * 31
# Default hold for card pre-authorizations when the caller gives none (7 days).
pending_timeout_s_default = 60 * 60 * 24 * 7
# Transfer ids and account owners/codes are client-chosen strings of bounded size.
transfer_id_bytes_max = 64
account_owner_bytes_max = 96
account_code_bytes_max = 32
# Pending transfers expired per sweep of `expire_pending`.
expire_batch_size_max = 1000
# Retries of a ledger write after a serialization failure / unique-id race.
ledger_write_retries_max = 5

# --- storage ----------------------------------------------------------------
# How long SQLite waits on a locked database before it reports "busy".
sqlite_busy_timeout_ms = 10_000
# SQLAlchemy pool for PostgreSQL.
db_pool_size_max = 16
db_pool_overflow_max = 8
db_pool_timeout_s = 30
db_connect_timeout_s = 10
# A pooled PostgreSQL connection idle longer than this is pinged before use (a restarted
# server is noticed before a transaction starts on a dead link); one used more recently is
# not, as a busy host would otherwise pay a round trip per batch. A link that died within
# this window fails its statement, which invalidates the pool (the host re-runs the batch).
db_ping_idle_s = 1.0

# --- HTTP API ---------------------------------------------------------------
http_port_default = 8000
http_host_default = "127.0.0.1"
http_request_body_bytes_max = 1_000_000
http_page_size_default = 50
http_page_size_max = 500
# Graceful shutdown of `paypos serve`.
http_shutdown_timeout_s = 10
# How long `paypos demo` waits for the server to answer /healthz.
http_startup_timeout_s = 30

# --- ISO 8583 host (next issue) ----------------------------------------------
iso_port_default = 8583

# --- card data ----------------------------------------------------------------
pan_digits_min = 12
pan_digits_max = 19

# --- background jobs -----------------------------------------------------------
# How often `paypos serve` releases authorization holds past their timeout.
pending_expiry_sweep_interval_s = 5.0

# --- EMV -----------------------------------------------------------------------
# ICC data (ISO 8583 field 55): at most this many bytes of BER-TLV. pyiso8583's
# default_ascii spec caps field 55 at 510 hex characters, i.e. 255 bytes.
emv_field_55_bytes_max = 255

# --- acquiring host -------------------------------------------------------------
# Largest amount a card transaction may carry (minor units): far below field 4's 12 digits.
iso_amount_minor_max = 10**10
# A pre-authorization hold lasts this long before the ledger releases it.
preauth_hold_s_default = 60 * 60 * 24 * 7
# Placeholder risk rule (velocity): at most this many transactions per card per window.
risk_card_velocity_max = 120
risk_velocity_window_s = 60
# The TCP server: requests in flight per connection, connections, idle timeout.
iso_in_flight_per_connection_max = 256
iso_connections_max = 1024
iso_idle_timeout_s = 300
# Answering one request (the host's own deadline; a terminal's is longer).
iso_request_timeout_s = 20

# --- ISO 8583 wire --------------------------------------------------------------
# Largest ISO 8583 message (the bytes after the 2-byte length prefix) the host reads or
# writes. A realistic 0200 with track 2, PIN block, KSN, 255 bytes of ICC data and a MAC
# is under 1 KiB; the 2-byte prefix itself could declare up to 65535.
iso_frame_bytes_max = 8192
# Cryptographic memos of a host process: DUKPT intermediate keys (a few per terminal) and
# ICC master keys (one per card); both only ever hold what the process derives anyway.
dukpt_key_cache_entries_max = 262_144
emv_icc_key_cache_entries_max = 131_072
# Requests the host answers in one database transaction (group commit). A batch is whatever
# arrived while the previous one committed, up to this many; more would only lengthen the
# time its hot rows stay locked.
iso_batch_requests_max = 128
# Group-commit linger: under load (the previous batch held more than one request), the batch
# thread waits up to this long for more requests before answering, as PostgreSQL's
# commit_delay or a producer's linger does. A batch costs ~10 statements whatever its size,
# so fuller batches cost less CPU per request; a lone request (the previous batch was
# alone too) never waits. 0 turns it off.
iso_batch_linger_ms = 3.0
# Journal ids (RRNs) a host process takes from PostgreSQL's sequence at a time.
journal_ids_block = 256
# `paypos serve --iso-processes N`: host processes sharing the ISO port (SO_REUSEPORT), each
# with its own batch thread, over one database (PostgreSQL; on SQLite they take turns).
iso_processes_max = 16
iso_parent_check_s = 1.0  # a worker process exits within this long after its parent died
# A serving process's cyclic garbage collector: what start-up built is frozen out of the
# collections (gc.freeze), and the youngest generation is collected after this many new
# container objects instead of CPython's 700. A batch allocates tens of thousands; at 700
# the collections took 3.7 % of a host process's CPU under load, at 10 000 0.9 %
# (docs/performance.md). Memory: the young generation stays a few MB.
gc_gen0_threshold = 10_000
# Registry rows (terminals, merchants, cards, keys, account ids) cached by a host process.
registry_cache_ttl_s = 5.0
registry_cache_entries_max = 200_000
# `paypos bench --sweep`: terminal counts in one sweep (each a load of --duration, with
# terminals and cards of its own).
bench_sweep_counts_max = 12

# --- terminal -----------------------------------------------------------------------
# How long the terminal waits for an answer before it reverses the request.
terminal_response_timeout_s = 15.0
terminal_connect_timeout_s = 5.0
# Reversals and advices sent per drain of the queues.
terminal_queue_drain_max = 100
# Terminals' initial DUKPT keys kept derived per host process.
iso_ipek_cache_entries_max = 65_536

# --- wallet payment codes (issue 5) ---------------------------------------------------
# A buyer's payment code (protocol/paycode.py) belongs to one time step of this length
# (RFC 6238's X): the wallet shows a new code every step.
paycode_step_s = 60
# Longest time step a verifier accepts: a code must not stay valid for long.
paycode_step_s_max = 300
# Steps either side of the host's own step that still verify (clock drift, time to scan).
paycode_skew_steps = 1
paycode_skew_steps_max = 2
# Steps older than the window in which a matching code is reported as "expired" rather
# than "unknown" (each is one HMAC per verification).
paycode_expired_lookback_steps = 10
# Longest OTP secret (bytes) accepted: SHA-512's 64-byte RFC 6238 seed, the largest in use.
otp_secret_bytes_max = 64

# --- credit pay (issue 5) ---------------------------------------------------------------
# Purchases one statement is computed from, and amounts due one repayment is allocated over.
creditpay_statement_purchases_max = 10_000
creditpay_repayment_dues_max = 1_000
# Longest overdue period (days) interest is computed for in one call (ten years).
creditpay_overdue_days_max = 3_650

# --- the sandbox wallet network (issue 5) ---------------------------------------------
# A collection QR (precreate) or a payment waiting for the buyer's confirmation expires
# after this long unless paid (the terminal's default QR timeout too).
wallet_trade_timeout_s = 300
wallet_trade_timeout_s_max = 15 * 24 * 3600
# Payments by payment code above this amount (minor units) wait for the buyer's confirm.
wallet_no_confirm_limit_minor_default = 20_000
# Asynchronous notifications: delays (s) before each retry until the merchant answers
# "success"; after the last one the notice is abandoned (the merchant can still query).
# The platform's own schedule is protocol.alipay.NOTIFY_RETRY_DELAYS_S (4 min ... 15 h);
# the sandbox retries sooner so that tests and demos see the whole cycle.
wallet_notify_retry_delays_s = (1, 2, 4, 8, 30, 120, 600, 1800)
wallet_notify_timeout_s = 5.0
wallet_notify_batch_max = 50
wallet_notify_poll_interval_s = 0.5
# Largest amount one wallet trade may carry (minor units), the platform's 100 000 000.00.
wallet_trade_amount_minor_max = 100_000_000_00
# Recent trades a buyer's listing shows.
wallet_bills_trades_max = 50

# --- online payments REST API (issue 6) -------------------------------------------------
# Largest amount one payment request may ask for (minor units): ten million in a
# 2-exponent currency, far below the ledger's transfer_amount_minor_max.
payment_request_amount_minor_max = 10**9
payment_request_order_id_chars_max = 64
payment_request_description_chars_max = 500
payment_request_metadata_keys_max = 20
payment_request_metadata_key_chars_max = 40
payment_request_metadata_value_chars_max = 500
# A payment request left unpaid expires after this long unless the merchant says otherwise,
# and never later than the maximum.
payment_request_expiry_s_default = 24 * 3600
payment_request_expiry_s_max = 30 * 24 * 3600
# Cursor pagination of GET /v1/payment_requests.
payment_request_page_size_default = 20
payment_request_page_size_max = 100
api_cursor_chars_max = 256
# Idempotency-Key: its length, how long a finished request is replayed, and after how long
# a request still "in progress" is taken to have died (its work never committed).
idempotency_key_chars_max = 255
idempotency_key_ttl_s = 24 * 3600
idempotency_in_progress_timeout_s = 60

# --- webhooks (issue 6, docs/webhooks.md) -------------------------------------------------
# Endpoints one merchant may register, and the longest URL one may have.
webhook_endpoints_per_merchant_max = 16
webhook_url_chars_max = 2048
# How far a Paypos-Signature timestamp may be from the receiver's clock, either way.
webhook_signature_tolerance_s = 300
# A Paypos-Signature header longer than this, or with more v1= signatures, is refused unread.
webhook_signature_header_chars_max = 1024
webhook_signatures_per_header_max = 4
# After a secret rotation the previous secret still signs (a second v1=) for this long.
webhook_secret_rotation_grace_s = 24 * 3600
# Retry schedule: the first retry after this long, each next one ``factor`` times later, no
# delay above the cap; retries stop (the delivery is "failed") once they span this long.
# PAYPOS_WEBHOOK_RETRY_FIRST_DELAY_S lowers the first step for tests and demos only.
webhook_retry_first_delay_s = 60.0
webhook_retry_factor = 2.0
webhook_retry_delay_s_max = 6 * 3600.0
webhook_retry_span_s = 3 * 24 * 3600.0
# Bound on the number of retries any schedule may have (a guard against a degenerate one).
webhook_retries_max = 64
# One POST: the timeout for each of connect, send and read; the answer bytes kept.
webhook_timeout_s = 10.0
webhook_response_bytes_max = 1024
# Deliveries claimed per pass of the delivery loop, and the pause when there was less.
webhook_batch_max = 50
webhook_poll_interval_s = 0.5
# An attempt's error excerpt and a delivery's last error (String(256) columns).
webhook_error_chars_max = 256
# GET /v1/events pages.
webhook_event_page_size_default = 20
webhook_event_page_size_max = 100
# `paypos webhooks listen`: the pause between polls, and the pages of new events read per poll.
webhook_listen_poll_interval_s = 1.0
webhook_listen_pages_max = 10

# --- online payments: card not present and hosted checkout (issue 6) --------------------
# A card-not-present payment at or above this amount (minor units, any currency: CNY 500.00)
# needs the cardholder's one-time code (3-D Secure style challenge).
checkout_challenge_threshold_minor = 50_000
# The one-time code: its digits, how long it is valid, and wrong entries before the attempt fails.
checkout_otp_digits = 6
checkout_otp_ttl_s = 300
checkout_otp_tries_max = 3
# Cursor pagination of GET /v1/payments and GET /v1/refunds.
payments_page_size_default = 20
payments_page_size_max = 100
# A refund's reason as the merchant writes it.
refund_reason_chars_max = 200
# The cardholder's name on the checkout form (never stored).
checkout_cardholder_name_chars_max = 64
# How often the hosted checkout page polls /pay/{id}/status (a wallet payment).
checkout_status_poll_ms = 2_000
# Secret API keys (POST /v1/api_keys): active keys a merchant may hold at once (rotation needs
# two for a while), keys a listing shows (newest first), and a key's label.
api_keys_active_per_merchant_max = 10
api_keys_listed_max = 100
api_key_label_chars_max = 64

# --- escrow and disputes (issue 6, docs/escrow-disputes.md) ---------------------------------
# A shipped escrow request the buyer has not confirmed is released to the merchant this long
# after it shipped (PAYPOS_ESCROW_AUTO_RELEASE_S overrides it), and how often `paypos serve`
# looks for them; requests released per pass of the sweep.
escrow_auto_release_s = 10 * 24 * 3600
escrow_auto_release_s_max = 90 * 24 * 3600
escrow_release_sweep_interval_s = 60.0
escrow_release_batch_max = 100
# What the merchant writes when it ships, and what the buyer writes asking for a refund.
escrow_carrier_chars_max = 64
escrow_tracking_number_chars_max = 64
escrow_refund_reason_chars_max = 500
# PAYPOS_OPERATOR_TOKEN (the operator's Bearer token for /v1/operator/*) is at least this long.
operator_token_chars_min = 32
# Disputes (chargebacks): the merchant's fee when one opens (minor units of the payment's
# currency, never returned), how long the merchant has to submit evidence, and its length.
dispute_fee_minor = 1_500
dispute_evidence_window_s = 7 * 24 * 3600
dispute_evidence_chars_max = 5_000
disputes_page_size_default = 20
disputes_page_size_max = 100
# The sweep that writes unpaid payment requests past expires_at as expired (paypos serve):
# requests per transaction; it runs with the hold-expiry sweep (pending_expiry_sweep_interval_s).
payment_request_expiry_batch_max = 200

# --- issue 7: merchant lifecycle (docs/merchant-lifecycle.md) --------------------------------
# An application's text fields (legal name, address, city) and a rejection's free text.
application_legal_name_chars_max = 128
application_address_chars_max = 128
application_city_chars_max = 64
application_reject_text_chars_max = 500
application_reject_reasons_max = 10
applications_listed_max = 200
# Uploaded documents (ID card scans, business licence): size, how many per application, and
# the displayed (sanitised) original file name.
document_bytes_max = 5 * 1024 * 1024
documents_per_application_max = 20
document_file_name_chars_max = 128
# Terminals: a location label, the one-time activation code (its length, lifetime and the
# wrong attempts it survives), and the terminals a listing shows.
terminal_location_chars_max = 128
terminal_activation_code_chars = 10
terminal_activation_code_ttl_s = 72 * 3600
terminal_activation_attempts_max = 5
terminals_listed_max = 500
# --- issue 7: web console (/console/, docs/console.md) ---------------------------------------
# Sessions: idle and absolute lifetimes; last_seen is written at most this often (one write per
# page view would be wasteful). Lock-out: failed logins (wrong password or TOTP code) that lock an
# account, and for how long. Passwords: length bounds (argon2id hashes any length; the bound
# stops a megabyte "password"). TOTP (RFC 6238): 30 s steps, one step either side accepted.
console_session_idle_s = 30 * 60
console_session_absolute_s = 12 * 3600
console_session_touch_interval_s = 60
console_login_failures_max = 5
console_lockout_s = 15 * 60
console_password_chars_min = 10
console_password_chars_max = 256
console_email_chars_max = 254
console_display_name_chars_max = 128
console_totp_step_s = 30
console_totp_window_steps = 1
# Pages: rows per table page; users an operator page lists.
console_page_rows = 25
console_users_listed_max = 500
# --- settlement and payouts (issue 7, docs/settlement.md) ------------------------------------
# Defaults for a merchant without settlement settings: T+1, cut-off 23:00 in Asia/Shanghai,
# no rolling reserve; T+0 (instant) costs this many basis points of the window's net sales on
# top of the sale fees; payouts below this many minor units wait for a later run.
settlement_cutoff_local_default = "23:00"
settlement_time_zone_default = "Asia/Shanghai"
settlement_instant_rate_bps_default = 50
settlement_payout_minor_min_default = 100
settlement_rate_bps_max = 10_000  # reserve and instant rates: at most 100 %
settlement_reserve_hold_days_max = 365
# Sandbox bank binding: micro-deposits are 1..99 minor units each; three wrong confirmations
# fail the binding; the holder name's length.
micro_deposit_minor_max = 99
micro_deposit_attempts_max = 3
bank_holder_name_chars_max = 128
# The clearing run settles this many merchants per transaction (one commit, one disk flush on
# SQLite, per group); a crash loses at most the group in flight, which the next run redoes.
settlement_merchants_per_transaction = 50
settlement_merchants_per_transaction_max = 1_000
# A window shared by at least this many merchants of a run is summed in one grouped scan of
# the journal; merchants with a window of their own are summed one indexed aggregate each.
settlement_shared_window_merchants_min = 20
# A run before a window's cut-off closes the window this long before now instead: transfers
# stamped earlier but still committing are left for the next window, never skipped.
settlement_in_flight_margin_s = 60
# Listings (runs, batches, payouts, bank accounts) show at most this many rows, newest first.
settlement_page_size_max = 500
# Clearing files and bank statements read at most this many bytes.
clearing_file_bytes_max = 256 * 1024 * 1024
# --- pricing plans (issue 7, docs/pricing.md) -----------------------------------------------
# A plan's and a promotion's name, promotions on one plan, a device model's window.
pricing_name_chars_max = 64
pricing_promotions_per_plan_max = 16
pricing_device_window_days_max = 3 * 366
# A merchant's plan history (assignments) is cached per process for this long, so the host
# prices a payment without a database round trip; an assignment made in this process clears
# the cache at once, other processes see it within the TTL.
pricing_cache_ttl_s = 5.0
# Assignments listed / kept in cache per merchant (the newest), and charges a billing run posts.
pricing_assignments_listed_max = 100
pricing_bill_merchants_max = 100_000
# --- reports and reconciliation (issue 7, docs/reports.md, docs/reconciliation.md) ----------
# Transaction search: rows per page (default and most), and the longest time range a search
# or a statement may span.
reports_page_size_default = 50
reports_page_size_max = 500
reports_range_days_max = 366
# Rollups fold journal rows (and reversal postings) at least this old, so that a transaction
# still in flight (its id taken, not yet committed) is never skipped by the watermark.
reports_fold_lag_s = 5.0
# Journal rows folded per transaction of a refresh (a long refresh commits as it goes).
reports_fold_batch_rows_max = 200_000
# How often `paypos serve` refreshes the rollups.
reports_refresh_interval_s = 60.0
# Operator report: merchants in the top list, and the longest statement a PDF holds.
reports_top_merchants_max = 100
# Reconciliation: exceptions a listing shows, and a resolution note's length.
recon_page_size_max = 500
recon_resolution_chars_max = 500
# --- issue 7: console merchant lifecycle (docs/console.md) ----------------------------------
# The public application form (/console/apply, no sign-in): applications accepted per client IP
# address per window, and from all addresses together (a flood from many addresses).
console_public_applications_per_ip_max = 5
console_public_applications_global_max = 200
console_public_applications_window_s = 3600
# Any console POST (forms are small; the application form carries two documents): larger is 413.
console_form_bytes_max = 2 * document_bytes_max + 64 * 1024
# The one-time password shown when an operator creates an approved merchant's owner login.
console_owner_password_bytes = 15

# --- issue 7: console settlement pages (csettle, docs/console.md) ---------------------------------
console_upload_bytes_max = 5 * 1024 * 1024  # an uploaded bank statement (CSV); larger is refused
console_settlement_rows_max = 500  # rows a settlement list pages through (settlement_page_size_max)
# The payout leg of reconciliation: a payout created but not in a clearing file, or sent and not
# answered by the bank's statement, for longer than this is an exception.
payout_stale_after_days = 3
