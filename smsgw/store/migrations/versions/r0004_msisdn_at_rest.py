"""Phone numbers at rest: AES-GCM ciphertexts and blind indexes.

Widens every column that holds a number to a ciphertext, adds the blind
index columns the store looks numbers up by, and seals the numbers already
stored (which needs the msisdn keys: `smsgw db upgrade` loads them from
``keys_dir``). Downgrading opens them again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:20:00
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from smsgw.store.keys import KeyFileError
from smsgw.store.pii import NOTIFY, WEBHOOK, Vault, vault

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEALED = sa.String(length=120)


def _rows(sql: str) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql)))


def _vault_for(*tables: str) -> Vault | None:
    """The connection's vault, when any of ``tables`` has rows to convert."""
    conn = op.get_bind()
    if not any(
        conn.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in tables
    ):
        return None
    try:
        return vault(conn)
    except KeyFileError as e:
        raise KeyFileError(
            "this revision encrypts the phone numbers already stored, which needs "
            "the msisdn keys: run `smsgw db upgrade --config FILE` (it loads "
            "keys_dir)"
        ) from e


def _update(
    table: str, key: str, rows: list[Any], values: Callable[[Any], dict[str, Any]]
) -> None:
    """Set ``values(row)`` on each of ``rows`` (``key``: its key columns)."""
    conn = op.get_bind()
    keys = [k.strip() for k in key.split(",")]
    where = " AND ".join(f"{k} = :_{k}" for k in keys)
    for row in rows:
        new = values(row)
        sets = ", ".join(f"{c} = :{c}" for c in new)
        conn.execute(
            sa.text(f"UPDATE {table} SET {sets} WHERE {where}"),
            {**new, **{f"_{k}": getattr(row, k) for k in keys}},
        )


def _copy_opt_outs(
    target: str, columns: str, values: Callable[[Any], dict[str, Any]]
) -> None:
    """Copy every opt-out into ``target`` with ``values(row)`` for ``columns``."""
    conn = op.get_bind()
    for r in _rows("SELECT issuer, msisdn, at, via, mo_id FROM opt_outs"):
        new = values(r)
        conn.execute(
            sa.text(
                f"INSERT INTO {target} (issuer, {columns}, at, via, mo_id) "
                f"VALUES (:i, {', '.join(':' + c for c in new)}, :at, :via, :mo)"
            ),
            {**new, "i": r.issuer, "at": r.at, "via": r.via, "mo": r.mo_id},
        )


_NOTIFY = "SELECT issuer, merchant_id, notify FROM merchants WHERE notify != ''"
_TABLES = (
    "transactions", "alerts", "mo_messages", "mo_parts", "opt_outs", "webhooks",
    "merchants", "subscribers",
)  # fmt: skip


def upgrade() -> None:
    v = _vault_for(*_TABLES)
    with op.batch_alter_table("transactions") as b:
        b.alter_column("msisdn", existing_type=sa.String(length=16), type_=_SEALED)
    with op.batch_alter_table("alerts") as b:
        b.drop_index("ix_alerts_destination")
        b.alter_column(
            "destination",
            existing_type=sa.String(length=16),
            type_=_SEALED,
            existing_nullable=False,
        )
        b.add_column(sa.Column("dest_index", sa.String(length=48), nullable=True))
    with op.batch_alter_table("mo_messages") as b:
        b.drop_index("ix_mo_msisdn")
        b.alter_column(
            "source",
            existing_type=sa.String(length=21),
            type_=_SEALED,
            existing_nullable=False,
        )
        b.add_column(sa.Column("msisdn_index", sa.String(length=48), nullable=True))
    with op.batch_alter_table("mo_parts") as b:
        b.alter_column(
            "source",
            existing_type=sa.String(length=21),
            type_=_SEALED,
            existing_nullable=False,
        )
    with op.batch_alter_table("subscribers") as b:
        b.drop_index("ix_subscribers_msisdn")
        b.alter_column(
            "msisdn",
            existing_type=sa.String(length=16),
            type_=_SEALED,
            existing_nullable=False,
        )
        b.add_column(sa.Column("msisdn_index", sa.String(length=48), nullable=True))
    op.create_table(
        "opt_outs_new",
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("msisdn_index", sa.String(length=48), nullable=False),
        sa.Column("msisdn", _SEALED, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("mo_id", sa.Integer(), nullable=True),
    )
    if v is not None:
        _seal_rows(v)
    _mask_audit()
    op.drop_table("opt_outs")
    op.rename_table("opt_outs_new", "opt_outs")
    with op.batch_alter_table("opt_outs") as b:
        b.create_primary_key("pk_opt_outs", ["issuer", "msisdn_index"])
    with op.batch_alter_table("mo_messages") as b:
        b.drop_column("msisdn")
        b.create_index(
            "ix_mo_msisdn_index", ["msisdn_index", "received_at"], unique=False
        )
    with op.batch_alter_table("alerts") as b:
        b.create_index(
            "ix_alerts_dest_index", ["dest_index", "created_at"], unique=False
        )
    with op.batch_alter_table("subscribers") as b:
        b.create_index("ix_subscribers_msisdn_index", ["msisdn_index"], unique=False)


_NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")


def _mask_audit() -> None:
    """Mask the numbers earlier audit rows hold in clear (registry changes
    wrote them whole), and chain those rows again so that `smsgw audit
    verify` sees a signed change, not an alteration."""
    from smsgw.store.chain import seal, touch
    from smsgw.store.feedback_report import mask_msisdn

    def masked(value: str | None) -> str | None:
        if value is None:
            return None
        return _NUMBER.sub(lambda m: mask_msisdn(m.group()) or "", value)

    conn = op.get_bind()
    changed = []
    for r in _rows("SELECT id, subject, detail FROM audit"):
        subject, detail = masked(r.subject), masked(r.detail)
        if (subject, detail) != (r.subject, r.detail):
            conn.execute(
                sa.text("UPDATE audit SET subject = :s, detail = :d WHERE id = :id"),
                {"s": subject, "d": detail, "id": r.id},
            )
            changed.append(r.id)
    if not changed or not _rows("SELECT seq FROM audit_heads LIMIT 1"):
        return  # nothing chained yet: the next seal chains them as they are
    signer = context.config.attributes.get("audit_signer")
    if signer is None:
        raise KeyFileError(
            "this revision masks numbers in chained audit rows, which needs the "
            "audit key: run `smsgw db upgrade --config FILE` (it loads keys_dir)"
        )
    touch(conn, "audit", changed)
    seal(conn, signer, time.time())


def _seal_rows(v: Vault) -> None:
    _update(
        "transactions",
        "ref",
        _rows("SELECT ref, msisdn FROM transactions WHERE msisdn IS NOT NULL"),
        lambda r: {"msisdn": v.seal(r.msisdn)},
    )
    _update(
        "alerts",
        "id",
        _rows("SELECT id, destination FROM alerts"),
        lambda r: {
            "destination": v.seal(r.destination),
            "dest_index": v.index(r.destination),
        },
    )
    _update(
        "mo_messages",
        "id",
        _rows("SELECT id, source, msisdn FROM mo_messages"),
        lambda r: {"source": v.seal(r.source), "msisdn_index": v.index_opt(r.msisdn)},
    )
    _update(
        "mo_parts",
        "id",
        _rows("SELECT id, source, group_key FROM mo_parts"),
        lambda r: {"source": v.seal(r.source), "group_key": v.index(r.group_key)},
    )
    _update(
        "subscribers",
        "id",
        _rows("SELECT id, msisdn FROM subscribers"),
        lambda r: {"msisdn": v.seal(r.msisdn), "msisdn_index": v.index(r.msisdn)},
    )
    _update(
        "webhooks",
        "id",
        _rows("SELECT id, body FROM webhooks"),
        lambda r: {"body": v.seal_bytes(bytes(r.body), WEBHOOK)},
    )
    _update(
        "merchants",
        "issuer, merchant_id",
        _rows(_NOTIFY),
        lambda r: {"notify": v.seal(r.notify, NOTIFY)},
    )
    _copy_opt_outs(
        "opt_outs_new",
        "msisdn_index, msisdn",
        lambda r: {"msisdn_index": v.index(r.msisdn), "msisdn": v.seal(r.msisdn)},
    )


def downgrade() -> None:
    v = _vault_for(*_TABLES)
    conn = op.get_bind()
    with op.batch_alter_table("mo_messages") as b:
        b.drop_index("ix_mo_msisdn_index")
        b.add_column(sa.Column("msisdn", sa.String(length=16), nullable=True))
    op.create_table(
        "opt_outs_old",
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("msisdn", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("mo_id", sa.Integer(), nullable=True),
    )
    if v is not None:
        from smsgw.store.replies import sender_e164

        _update(
            "transactions",
            "ref",
            _rows("SELECT ref, msisdn FROM transactions WHERE msisdn IS NOT NULL"),
            lambda r: {"msisdn": v.open(r.msisdn)},
        )
        _update(
            "alerts",
            "id",
            _rows("SELECT id, destination FROM alerts"),
            lambda r: {"destination": v.open(r.destination)},
        )

        def _mo(r: Any) -> dict[str, Any]:
            source = v.open(r.source)
            return {
                "source": source,
                "msisdn": sender_e164(source) if r.msisdn_index else None,
            }

        _update(
            "mo_messages",
            "id",
            _rows("SELECT id, source, msisdn_index FROM mo_messages"),
            _mo,
        )
        # Waiting parts cannot get their clear group key back: they are dropped
        # (the reassembly timeout would have kept what arrived).
        conn.execute(sa.text("DELETE FROM mo_parts"))
        _update(
            "subscribers",
            "id",
            _rows("SELECT id, msisdn FROM subscribers"),
            lambda r: {"msisdn": v.open(r.msisdn)},
        )
        _update(
            "webhooks",
            "id",
            _rows("SELECT id, body FROM webhooks"),
            lambda r: {"body": v.open_bytes(bytes(r.body), WEBHOOK)},
        )
        _update(
            "merchants",
            "issuer, merchant_id",
            _rows(_NOTIFY),
            lambda r: {"notify": v.open(r.notify, NOTIFY)},
        )
        _copy_opt_outs("opt_outs_old", "msisdn", lambda r: {"msisdn": v.open(r.msisdn)})
    op.drop_table("opt_outs")
    op.rename_table("opt_outs_old", "opt_outs")
    with op.batch_alter_table("opt_outs") as b:
        b.create_primary_key("pk_opt_outs", ["issuer", "msisdn"])
    with op.batch_alter_table("subscribers") as b:
        b.drop_index("ix_subscribers_msisdn_index")
        b.drop_column("msisdn_index")
        b.alter_column(
            "msisdn",
            existing_type=_SEALED,
            type_=sa.String(length=16),
            existing_nullable=False,
        )
        b.create_index("ix_subscribers_msisdn", ["msisdn"], unique=False)
    with op.batch_alter_table("mo_parts") as b:
        b.alter_column(
            "source",
            existing_type=_SEALED,
            type_=sa.String(length=21),
            existing_nullable=False,
        )
    with op.batch_alter_table("mo_messages") as b:
        b.drop_column("msisdn_index")
        b.alter_column(
            "source",
            existing_type=_SEALED,
            type_=sa.String(length=21),
            existing_nullable=False,
        )
        b.create_index("ix_mo_msisdn", ["msisdn", "received_at"], unique=False)
    with op.batch_alter_table("alerts") as b:
        b.drop_index("ix_alerts_dest_index")
        b.drop_column("dest_index")
        b.alter_column(
            "destination",
            existing_type=_SEALED,
            type_=sa.String(length=16),
            existing_nullable=False,
        )
        b.create_index(
            "ix_alerts_destination", ["destination", "created_at"], unique=False
        )
    with op.batch_alter_table("transactions") as b:
        b.alter_column("msisdn", existing_type=_SEALED, type_=sa.String(length=16))
