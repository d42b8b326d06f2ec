"""Plain records passed between the store and the reactor thread."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueuedAlert:
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


@dataclass(frozen=True, slots=True)
class SentPart:
    """One part the SMSC accepted, with its (normalised) message id."""

    part_no: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Sent:
    """Every part of an alert was accepted by ``carrier``."""

    alert_id: str
    carrier: str
    parts: tuple[SentPart, ...]
    attempts: int
    now: float


@dataclass(frozen=True, slots=True)
class AlertUpdate:
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


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A delivery receipt as received (message id normalised)."""

    carrier: str
    message_id: str
    stat: str
    error: str | None
    now: float
