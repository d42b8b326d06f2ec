"""Builders shared by the store tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert

from smsgw.intake.validate import Txn, validate_txn
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store import schema as S
from smsgw.store.accept import Accepted, AcceptItem, make_accept_op
from smsgw.store.keys import CardHasher, load_card_hasher
from smsgw.store.pii import Vault
from smsgw.store.writer import BatchOp

NOW = 1764417605.0
PAN = "6222021234567894"
ISSUER = IssuerConfig(name="default", signature={"zh": "示例银行", "en": "Demo Bank"})


_TEST_KEYS = {"msisdn": bytes(range(32)), "msisdn-index": bytes(range(32, 64))}
_CARD_HASH_KEY = bytes(range(64, 96))


def test_vault() -> Vault:
    """A vault with fixed test keys (k1 for numbers and for the index)."""
    return Vault({"k1": _TEST_KEYS["msisdn"]}, {"k1": _TEST_KEYS["msisdn-index"]})


def write_test_vault(keys_dir: Path) -> Path:
    """Write `test_vault`'s keys (and a card-hash key) as key files in
    ``keys_dir`` (for a child process that loads them); returns ``keys_dir``."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, key in (*_TEST_KEYS.items(), ("card-hash", _CARD_HASH_KEY)):
        path = keys_dir / f"{name}-k1.key"
        path.write_text(key.hex() + "\n")
        path.chmod(0o600)
    return keys_dir


test_vault.__test__ = False  # type: ignore[attr-defined]


def hasher(tmp: Path) -> CardHasher:
    """A card hasher with a key generated in ``tmp``."""
    return load_card_hasher(tmp / "keys")


def body(**fields: Any) -> dict[str, Any]:
    """The spec's test-vector transaction, with ``fields`` changed (None removes)."""
    b: dict[str, Any] = {
        "type": "txn",
        "txn_id": "000123",
        "ts": 1764417605,
        "kind": "purchase",
        "amount": "128.50",
        "currency": "CNY",
        "pan": PAN,
        "merchant_id": "M001",
        "merchant_name": "星巴克(南京西路店)",
        "time": "2026-11-29T20:00:05+08:00",
        "msisdn": "+8613800138000",
    }
    for k, v in fields.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def txn(h: CardHasher, **fields: Any) -> Txn:
    """A validated Txn of ``body(**fields)``."""
    return validate_txn(body(**fields), h)


def item(t: Txn, terminal: str = "T1001", now: float = NOW, **kw: Any) -> AcceptItem:
    """An AcceptItem for ``t``."""
    return AcceptItem(
        terminal_id=terminal,
        may_supply_msisdn=kw.pop("may_supply_msisdn", True),
        issuer=kw.pop("issuer", ISSUER),
        txn=t,
        now=now,
    )


def run(engine: Engine, op: BatchOp[Any, Any], items: list[Any]) -> list[Any]:
    """Run a batch op in one transaction, as the writer does."""
    with engine.begin() as conn:
        return list(op.run(conn, items))


ACCEPT: BatchOp[AcceptItem, Accepted] = make_accept_op(
    node="n1", lease=60.0, ttl=3600.0
)


def rows(conn: Connection, table: Any) -> list[Any]:
    """Every row of ``table``."""
    return list(conn.execute(table.select()))


def insert_subscriber(
    engine: Engine,
    *,
    msisdn: str = "+8613900000001",
    sealed: str | None = None,
    **fields: Any,
) -> None:
    """Insert a subscriber row (every column; ``fields`` change them): its
    number sealed and indexed with `test_vault`, or ``sealed`` stored as is."""
    v = test_vault()
    row: dict[str, Any] = {
        "issuer": "default", "card_hash": None, "card_token": None,
        "masked_pan": None, "msisdn": sealed or v.seal(msisdn),
        "msisdn_index": v.index(msisdn), "lang": None, "min_amount": None,
        "kinds": None, "opted_out": False, "quiet_start": None, "quiet_end": None,
        "timezone": None, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    row.update(fields)
    with engine.begin() as conn:
        conn.execute(insert(S.subscribers), [row])
