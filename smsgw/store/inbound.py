"""Recording what carriers send us besides receipts: MO messages (replies).

Issue 4 classifies and matches replies; here each is stored durably before
the SMSC gets its deliver_sm_resp, so a crash never loses a reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert

from smsgw.store import schema as S
from smsgw.store.writer import BatchOp

__all__ = ["MoRecord", "mo_op"]


@dataclass(frozen=True, slots=True)
class MoRecord:
    """One mobile-originated message as received."""

    carrier: str
    source: str
    destination: str
    text: str
    now: float


def _mo_run(conn: Connection, items: Sequence[MoRecord]) -> list[None]:
    conn.execute(
        insert(S.mo_messages),
        [
            {
                "issuer": None,
                "carrier": i.carrier,
                "source": i.source[:21],
                "destination": i.destination[:21],
                "text": i.text,
                "received_at": i.now,
                "alert_id": None,
                "classification": None,
            }
            for i in items
        ],
    )
    return [None] * len(items)


mo_op: BatchOp[MoRecord, None] = BatchOp("mo", _mo_run)
