"""The store's tables (SQLAlchemy Core), one MetaData for every dialect.

Times are Unix seconds as floats (the injected clock's ``seconds()``), so
SQLite and PostgreSQL compare them the same way. Keys are strings chosen by
the gateway (``ref``, alert ids), so a batch inserts without a round trip for
generated ids and several processes never collide. Every record carries the
issuer profile it belongs to.

Card data: ``masked_pan`` (first 6 / last 4 at most) and ``card_hash`` (a
keyed hash written ``<key id>:<hex>``) only; never a full PAN, track data or
CVV. Phone numbers: AES-GCM ciphertexts ``<key id>:<base64>`` (``SEALED``
columns) and, where the store looks a number up, its blind index
``<key id>:<hex>`` (``*_index`` columns); see `smsgw.store.pii`. Alembic
revisions in ``migrations/versions`` create exactly these tables; a test
compares them.

Indexes are few on purpose: every index costs each insert on the hot path
(accept, parts, receipts). Refs and alert ids sort by time, so ranges over
the primary keys serve time-window queries; an alert's id starts with its
transaction's ref.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

#: Widths of a sealed E.164 number (``k<n>:`` + 60 base64 characters, with
#: room for long key ids and for a sender address of up to 21 characters)
#: and of a blind index (``k<n>:`` + 32 hex digits).
SEALED = 120
INDEX = 48

#: Alert statuses (operations.md): final ones never change again.
QUEUED, SUBMITTED, DELIVERED, FAILED, EXPIRED = (
    "queued",
    "submitted",
    "delivered",
    "failed",
    "expired",
)
FINAL_ALERT = frozenset({DELIVERED, FAILED, EXPIRED})

transactions = Table(
    "transactions",
    metadata,
    Column("ref", String(24), primary_key=True),
    Column("issuer", String(32), nullable=False),
    Column("terminal_id", String(64), nullable=False),
    Column("txn_id", String(64), nullable=False),
    # the keyed digest with its key id (b"k1:" + 32 bytes; 32 bare bytes in
    # rows written before key ids were stored, under the first key)
    Column("content_digest", LargeBinary(48), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("result", String(10), nullable=False),
    Column("amount", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("masked_pan", String(19)),
    Column("card_hash", String(80)),
    Column("card_token", String(64)),
    Column("last4", String(4), nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("merchant_name", String(100)),
    Column("location", String(100)),
    Column("local_time", String(40), nullable=False),
    Column("balance", String(20)),
    Column("lang", String(35)),
    Column("msisdn", String(SEALED)),
    Column("rrn", String(12)),
    Column("stan", String(6)),
    Column("auth_code", String(6)),
    Column("orig_txn_id", String(64)),
    Column("orig_ref", String(24)),
    Column("alerts", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    # The cardholder's answer (confirm / not_me / stop / help) and when;
    # disputed_at is set by a "not me" and never cleared by a later reply.
    Column("feedback", String(16)),
    Column("feedback_at", Float),
    Column("disputed_at", Float),
    UniqueConstraint("terminal_id", "txn_id", name="uq_transactions_terminal_txn"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    # None for a text sent back to a reply that matched no transaction
    Column("ref", String(24), ForeignKey("transactions.ref")),
    Column("issuer", String(32), nullable=False),
    Column("audience", String(10), nullable=False),  # cardholder / merchant / reply
    Column("destination", String(SEALED), nullable=False),
    Column("dest_index", String(INDEX)),  # always set: the blind index
    Column("lang", String(8), nullable=False),
    Column("text", Text, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("parts", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("source_addr", String(20)),
    Column("status", String(10), nullable=False),
    Column("carrier", String(32)),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Column("last_error", String(200)),
    # A short code the alert's template showed ("reply N7"), unique among the
    # alerts awaiting a reply from that number; and the reply it got.
    Column("reply_code", String(8)),
    Column("feedback", String(16)),
    Index("ix_alerts_status_not_before", "status", "not_before"),
    # Replies are matched to the alerts sent to their number.
    Index("ix_alerts_dest_index", "dest_index", "created_at"),
)

parts = Table(
    "parts",
    metadata,
    Column("alert_id", String(32), ForeignKey("alerts.id"), nullable=False),
    Column("part_no", Integer, nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("status", String(10), nullable=False),
    Column("error", String(32)),
    Column("submitted_at", Float, nullable=False),
    Column("done_at", Float),
    PrimaryKeyConstraint("alert_id", "part_no", name="pk_parts"),
    Index("ix_parts_carrier_message", "carrier", "message_id"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("carrier", String(32), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("stat", String(8), nullable=False),
    Column("error", String(32)),
    Column("received_at", Float, nullable=False),
    Column("matched", Boolean, nullable=False),
    Index("ix_receipts_carrier_message", "carrier", "message_id"),
    # Only the few receipts still waiting for their part: the periodic
    # re-match reads them without scanning every receipt ever received.
    Index(
        "ix_receipts_waiting",
        "received_at",
        sqlite_where=text("NOT matched"),
        postgresql_where=text("NOT matched"),
    ),
)

mo_messages = Table(
    "mo_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(32)),
    Column("carrier", String(32), nullable=False),
    Column("source", String(SEALED), nullable=False),
    Column("destination", String(21), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("alert_id", String(32)),
    # confirm / not_me / stop / help, or text (anything else, kept)
    Column("classification", String(16)),
    # the blind index of the sender in E.164, when it is a number
    Column("msisdn_index", String(INDEX)),
    Column("normalized", Text),
    Column("ref", String(24)),  # the transaction of the alert it answers
    # code / single / ambiguous / none / unknown_code: how it was matched
    Column("matched_by", String(16)),
    Column("action", String(40)),  # what the gateway did about it
    Column("parts", Integer, nullable=False, server_default="1"),
    Column("complete", Boolean, nullable=False, server_default=text("true")),
    Index("ix_mo_received_at", "received_at"),
    Index("ix_mo_msisdn_index", "msisdn_index", "received_at"),
    Index("ix_mo_ref", "ref"),
)

# Parts of a multi-part reply, kept until the last one arrives (or a timeout).
mo_parts = Table(
    "mo_parts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_key", String(200), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("source", String(SEALED), nullable=False),
    Column("destination", String(21), nullable=False),
    Column("data_coding", Integer, nullable=False),
    Column("ref", Integer),
    Column("total", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("method", String(8), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_mo_parts_group", "group_key"),
    Index("ix_mo_parts_received_at", "received_at"),
)

# Numbers that replied STOP (or were opted out by an operator), per issuer:
# honoured for every alert to that number, whoever supplied it.
opt_outs = Table(
    "opt_outs",
    metadata,
    Column("issuer", String(32), nullable=False),
    Column("msisdn_index", String(INDEX), nullable=False),
    Column("msisdn", String(SEALED), nullable=False),
    Column("at", Float, nullable=False),
    Column("via", String(16), nullable=False),  # sms / cli
    Column("mo_id", Integer),
    PrimaryKeyConstraint("issuer", "msisdn_index", name="pk_opt_outs"),
)

# Signed events for an issuer's fraud endpoint, retried until delivered.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(32), nullable=False),
    Column("event", String(16), nullable=False),
    Column("ref", String(24), nullable=False),
    Column("mo_id", Integer),
    Column("url", String(500), nullable=False),
    Column("body", LargeBinary, nullable=False),  # sealed (it names the sender)
    Column("status", String(10), nullable=False),  # pending / delivered / failed
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("next_at", Float, nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Column("last_error", String(200)),
    Index("ix_webhooks_status_next", "status", "next_at"),
    Index("ix_webhooks_ref", "ref"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", String(200)),
    Column("outcome", String(10), nullable=False),
    Index("ix_webhook_attempts_webhook", "webhook_id"),
)

merchants = Table(
    "merchants",
    metadata,
    Column("issuer", String(32), nullable=False),
    Column("merchant_id", String(32), nullable=False),
    Column("name", String(100), nullable=False),
    # E.164 numbers, space separated, sealed ("" when there are none)
    Column("notify", Text, nullable=False),
    Column("lang", String(8)),
    Column("templates", Text, nullable=False),  # JSON {lang: template}
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("issuer", "merchant_id", name="pk_merchants"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(32), nullable=False),
    Column("card_hash", String(80)),
    Column("card_token", String(64)),
    Column("masked_pan", String(19)),
    Column("msisdn", String(SEALED), nullable=False),
    Column("msisdn_index", String(INDEX)),  # always set
    Column("lang", String(8)),
    Column("min_amount", String(20)),
    Column("kinds", String(80)),  # space separated; null: every kind
    Column("opted_out", Boolean, nullable=False),
    Column("quiet_start", String(5)),
    Column("quiet_end", String(5)),
    Column("timezone", String(40)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("issuer", "card_hash", name="uq_subscribers_card_hash"),
    UniqueConstraint("issuer", "card_token", name="uq_subscribers_card_token"),
    Index("ix_subscribers_msisdn_index", "msisdn_index"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("issuer", String(32)),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("detail", Text, nullable=False),
)

# The signed audit chain (smsgw.store.chain): references and digests only.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(8), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", Float, nullable=False),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("at", Float, nullable=False),
    Column("audit_upto", Integer, nullable=False),
)

# Which of the gateway's own keys this database was written with (never the
# keys themselves): a check value per key id, so a process whose keys_dir holds
# other keys under the same ids refuses to start, and which key id of each kind
# writes (`active`), shared by every process (smsgw.store.keyring).
key_checks = Table(
    "key_checks",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("check_value", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("kind", "key_id", name="pk_key_checks"),
)
