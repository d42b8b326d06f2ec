"""Plain records passed between the store and the reactor thread.

NamedTuples: cheap to build on the hot path and to pickle to and from the
store process.
"""

from __future__ import annotations

from typing import NamedTuple


class QueuedAlert(NamedTuple):
    """An alert this process has claimed and is to send."""

    id: str
    ref: str
    issuer: str
    destination: str
    text: str
    priority: int
    source_addr: str | None
    not_before: float
    expires_at: float
    attempts: int


class SentPart(NamedTuple):
    """One part the SMSC accepted, with its (normalised) message id."""

    part_no: int
    message_id: str


class Sent(NamedTuple):
    """Every part of an alert was accepted by ``carrier``."""

    alert_id: str
    carrier: str
    parts: tuple[SentPart, ...]
    attempts: int
    now: float


class AlertUpdate(NamedTuple):
    """An alert that was not (wholly) accepted: retry later, or a final state.

    ``status`` is ``queued`` (retry at ``not_before``), ``failed`` or
    ``expired``. Parts already accepted on an earlier try are kept in
    ``parts``.
    """

    alert_id: str
    status: str
    attempts: int
    last_error: str | None
    not_before: float
    now: float
    carrier: str | None = None
    parts: tuple[SentPart, ...] = ()


class ReceiptRecord(NamedTuple):
    """A delivery receipt as received (message id normalised)."""

    carrier: str
    message_id: str
    stat: str
    error: str | None
    now: float
