"""Signed fraud webhooks (pure): data, body, signature, verification, back-off.

When a cardholder answers an alert "not me", the gateway POSTs a JSON event to
the card issuer's fraud endpoint. The body is compact JSON with sorted keys, so
the same event always gives the same bytes. The signature header follows the
widely used "t=<unix seconds>,v1=<hex HMAC-SHA256>" scheme: the MAC covers
``b"<t>." + body``, so a captured request cannot be replayed with another
timestamp, and the receiver rejects timestamps outside a tolerance window.

The worker that sends them is ``smsgw.feedback.webhook_worker`` (which also
exports the data classes defined here).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson

__all__ = [
    "KEY_ID_HEADER",
    "SIGNATURE_HEADER",
    "Outcome",
    "PendingWebhook",
    "WebhookAttempt",
    "WebhookTarget",
    "backoff",
    "next_step",
    "outcome",
    "redact_url",
    "scrub_error",
    "sign",
    "signature_headers",
    "verify",
    "webhook_body",
]

SIGNATURE_HEADER = b"X-Smsgw-Signature"
KEY_ID_HEADER = b"X-Smsgw-Key-Id"

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class PendingWebhook:
    """A webhook the store claimed for sending; ``attempts`` made so far."""

    id: int
    issuer: str
    url: str
    body: bytes = field(repr=False)
    attempts: int


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of a webhook and what came of it.

    ``attempt`` is 1-based; ``at`` is when the POST started; ``error`` is a
    short reason when no HTTP status came back; ``next_at`` is when to try
    again (set only for ``retry``).
    """

    webhook_id: int
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    outcome: Outcome
    next_at: float | None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """An issuer's fraud endpoint: shared secret, key id and request timeout."""

    url: str
    secret: bytes = field(repr=False)
    key_id: str
    timeout: float = 10.0


def webhook_body(event: Mapping[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON with sorted keys (the bytes signed and sent).

    Raises ``orjson.JSONEncodeError`` for values JSON cannot carry.
    """
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<timestamp>,v1=<lowercase hex HMAC-SHA256>``.

    The MAC is taken over ``b"<timestamp>." + body`` with ``secret`` as key.
    """
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def signature_headers(
    secret: bytes, key_id: str, timestamp: int, body: bytes
) -> dict[bytes, list[bytes]]:
    """Request headers for one POST of ``body`` (for ``twisted.web.http_headers``).

    ``key_id`` tells the issuer which shared secret to check with (so secrets can
    be rotated). Raises ``UnicodeEncodeError`` if ``key_id`` is not ASCII.
    """
    return {
        b"Content-Type": [b"application/json"],
        SIGNATURE_HEADER: [sign(secret, timestamp, body).encode("ascii")],
        KEY_ID_HEADER: [key_id.encode("ascii")],
        b"User-Agent": [b"smsgw"],
    }


def _parse(header: str) -> tuple[int, list[str]] | None:
    """``(timestamp, [v1 signatures])`` from a header, or None when malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            return None
        if key == "t":
            # Exactly one t, plain decimal digits (int() alone would take "+1_0").
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
        # Other schemes (a future v2) are ignored, as receivers of this format do.
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(
    secret: bytes, header: str, body: bytes, now: int, tolerance: int = 300
) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within tolerance.

    What an issuer runs on receipt. False for a malformed header, a timestamp
    more than ``tolerance`` seconds from ``now`` (either way), or no ``v1``
    signature matching; the comparison is constant-time.
    """
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signatures:
        # compare every candidate, so timing does not tell which one matched
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    return matched


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``initial * 2 ** (attempt - 1)``, capped at ``maximum``. Raises ValueError
    for an attempt below 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    try:
        delay: float = initial * 2 ** (attempt - 1)
    except OverflowError:  # 2**n too large for a float: far past any cap
        return maximum
    return min(maximum, delay)


def outcome(status_code: int | None) -> Literal["delivered", "retry"]:
    """``"delivered"`` for an HTTP 2xx status, else ``"retry"`` (None: no answer)."""
    if status_code is not None and 200 <= status_code <= 299:
        return "delivered"
    return "retry"


def redact_url(url: str) -> str:
    """``url`` without user info, query string or fragment (safe to log).

    Returns ``"<invalid url>"`` when the URL cannot be parsed.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub_error(text: str, url: str, limit: int = 200) -> str:
    """``text`` with ``url``'s query string masked, cut to ``limit`` characters.

    For error texts stored and logged with an attempt: a query string may carry
    the issuer's token.
    """
    if url and url in text:
        text = text.replace(url, redact_url(url))
    _, sep, query = url.partition("?")
    if sep and query:
        text = text.replace(query, "…")
    return text[:limit]


def next_step(
    attempt: int,
    status_code: int | None,
    now: float,
    *,
    initial: float,
    maximum: float,
    max_attempts: int,
) -> tuple[Outcome, float | None]:
    """``(outcome, next_at)`` after attempt number ``attempt`` (1-based) at ``now``.

    ``("delivered", None)`` for a 2xx status; otherwise ``("retry", now +
    backoff)``, or ``("failed", None)`` once ``attempt`` reaches ``max_attempts``.
    """
    if outcome(status_code) == "delivered":
        return "delivered", None
    if attempt >= max_attempts:
        return "failed", None
    return "retry", now + backoff(attempt, initial, maximum)
