"""Replies and feedback: MO parts, matching columns, opt-outs, fraud webhooks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feedback", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("feedback_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("disputed_at", sa.Float(), nullable=True))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("ref", existing_type=sa.String(length=24), nullable=True)
        batch_op.add_column(sa.Column("reply_code", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("feedback", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "ix_alerts_destination", ["destination", "created_at"], unique=False
        )
    with op.batch_alter_table("mo_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("msisdn", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("normalized", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ref", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column("matched_by", sa.String(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("action", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("parts", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "complete", sa.Boolean(), server_default=sa.text("true"), nullable=False
            )
        )
        batch_op.create_index("ix_mo_msisdn", ["msisdn", "received_at"], unique=False)
        batch_op.create_index("ix_mo_ref", ["ref"], unique=False)
    op.create_table(
        "mo_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_key", sa.String(length=200), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=21), nullable=False),
        sa.Column("destination", sa.String(length=21), nullable=False),
        sa.Column("data_coding", sa.Integer(), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mo_parts", schema=None) as batch_op:
        batch_op.create_index("ix_mo_parts_group", ["group_key"], unique=False)
        batch_op.create_index("ix_mo_parts_received_at", ["received_at"], unique=False)
    op.create_table(
        "opt_outs",
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("msisdn", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("mo_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("issuer", "msisdn", name="pk_opt_outs"),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("mo_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhooks_status_next", ["status", "next_at"], unique=False
        )
        batch_op.create_index("ix_webhooks_ref", ["ref"], unique=False)
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_attempts_webhook", ["webhook_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhooks")
    op.drop_table("opt_outs")
    op.drop_table("mo_parts")
    with op.batch_alter_table("mo_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_mo_ref")
        batch_op.drop_index("ix_mo_msisdn")
        for column in (
            "complete",
            "parts",
            "action",
            "matched_by",
            "ref",
            "normalized",
            "msisdn",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_destination")
        batch_op.drop_column("feedback")
        batch_op.drop_column("reply_code")
        batch_op.alter_column("ref", existing_type=sa.String(length=24), nullable=False)
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_column("disputed_at")
        batch_op.drop_column("feedback_at")
        batch_op.drop_column("feedback")
