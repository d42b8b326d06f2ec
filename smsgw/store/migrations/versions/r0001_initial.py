"""Initial schema: transactions, alerts, parts, receipts, MO, registries, audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29 10:42:31.312895
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "merchants",
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("notify", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("templates", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "merchant_id", name="pk_merchants"),
    )
    op.create_table(
        "mo_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=True),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=21), nullable=False),
        sa.Column("destination", sa.String(length=21), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("alert_id", sa.String(length=32), nullable=True),
        sa.Column("classification", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mo_messages", schema=None) as batch_op:
        batch_op.create_index("ix_mo_received_at", ["received_at"], unique=False)

    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("stat", sa.String(length=8), nullable=False),
        sa.Column("error", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_receipts_carrier_message", ["carrier", "message_id"], unique=False
        )
        batch_op.create_index(
            "ix_receipts_waiting",
            ["received_at"],
            unique=False,
            sqlite_where=sa.text("NOT matched"),
            postgresql_where=sa.text("NOT matched"),
        )

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("card_hash", sa.String(length=80), nullable=True),
        sa.Column("card_token", sa.String(length=64), nullable=True),
        sa.Column("masked_pan", sa.String(length=19), nullable=True),
        sa.Column("msisdn", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("min_amount", sa.String(length=20), nullable=True),
        sa.Column("kinds", sa.String(length=80), nullable=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("timezone", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "card_hash", name="uq_subscribers_card_hash"),
        sa.UniqueConstraint("issuer", "card_token", name="uq_subscribers_card_token"),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index("ix_subscribers_msisdn", ["msisdn"], unique=False)

    op.create_table(
        "transactions",
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("terminal_id", sa.String(length=64), nullable=False),
        sa.Column("txn_id", sa.String(length=64), nullable=False),
        sa.Column("content_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("masked_pan", sa.String(length=19), nullable=True),
        sa.Column("card_hash", sa.String(length=80), nullable=True),
        sa.Column("card_token", sa.String(length=64), nullable=True),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_name", sa.String(length=100), nullable=True),
        sa.Column("location", sa.String(length=100), nullable=True),
        sa.Column("local_time", sa.String(length=40), nullable=False),
        sa.Column("balance", sa.String(length=20), nullable=True),
        sa.Column("lang", sa.String(length=35), nullable=True),
        sa.Column("msisdn", sa.String(length=16), nullable=True),
        sa.Column("rrn", sa.String(length=12), nullable=True),
        sa.Column("stan", sa.String(length=6), nullable=True),
        sa.Column("auth_code", sa.String(length=6), nullable=True),
        sa.Column("orig_txn_id", sa.String(length=64), nullable=True),
        sa.Column("orig_ref", sa.String(length=24), nullable=True),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("ref"),
        sa.UniqueConstraint(
            "terminal_id", "txn_id", name="uq_transactions_terminal_txn"
        ),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("audience", sa.String(length=10), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("encoding", sa.String(length=8), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("source_addr", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("not_before", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["ref"],
            ["transactions.ref"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alerts_status_not_before", ["status", "not_before"], unique=False
        )

    op.create_table(
        "parts",
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("part_no", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.String(length=32), nullable=True),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.Column("done_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
        ),
        sa.PrimaryKeyConstraint("alert_id", "part_no", name="pk_parts"),
    )
    with op.batch_alter_table("parts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_parts_carrier_message", ["carrier", "message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("parts", schema=None) as batch_op:
        batch_op.drop_index("ix_parts_carrier_message")

    op.drop_table("parts")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_status_not_before")

    op.drop_table("alerts")
    op.drop_table("transactions")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_msisdn")

    op.drop_table("subscribers")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_receipts_waiting",
            sqlite_where=sa.text("NOT matched"),
            postgresql_where=sa.text("NOT matched"),
        )
        batch_op.drop_index("ix_receipts_carrier_message")

    op.drop_table("receipts")
    with op.batch_alter_table("mo_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_mo_received_at")

    op.drop_table("mo_messages")
    op.drop_table("merchants")
    op.drop_table("audit")
