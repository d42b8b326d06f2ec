"""One intake request in, one framed response out: the spec's order of checks.

`Intake.handle(frame)` runs steps 2 to 10 of intake-v1 ("Checks run in this
order"): envelope, terminal, MAC, body, rate, ``ts``, fields, then the
acceptor (idempotency and the durable commit). It returns the framed
response at once, or a Deferred of it when the request needs the store.
Step 1 (frame length) belongs to the protocol. Nothing here writes to a
socket, so every rule is tested without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Protocol

import orjson
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from smsgw.intake.envelope import (
    IntakeError,
    TerminalKey,
    error_body,
    parse_body,
    parse_envelope,
    response_frame,
    verify,
)
from smsgw.intake.replay import ReplayCache
from smsgw.intake.terminals import Terminal
from smsgw.intake.validate import Hasher, Txn, check_ts, validate_ping, validate_txn

__all__ = ["AcceptResult", "Acceptor", "Intake", "Unavailable"]

log = Logger()


class AcceptResult(NamedTuple):
    """How the store answered a valid transaction (steps 9 and 10).

    A NamedTuple: one comes back from the store process per transaction, and
    a slotted dataclass unpickles several times slower."""

    status: Literal["accepted", "duplicate", "conflict"]
    ref: str
    alerts: int


class Unavailable(Exception):
    """The transaction could not be committed now; the terminal retries."""


class Acceptor(Protocol):
    """Idempotency check and durable commit of a valid transaction."""

    def accept(self, terminal: Terminal, txn: Txn) -> defer.Deferred[AcceptResult]:
        """Fires after the commit; errbacks (any failure) mean ``unavailable``."""
        ...


class Intake:
    """The decisions of the intake port, shared by all its connections."""

    def __init__(
        self,
        terminals: Mapping[str, Terminal],
        acceptor: Acceptor,
        hasher: Hasher,
        clock: IReactorTime,
        *,
        max_skew: int = 300,
        issuers: frozenset[str] = frozenset({"default"}),
        replays: ReplayCache | None = None,
    ) -> None:
        # A frame passes the ts check from ts - max_skew to ts + max_skew: a
        # replay can follow its original by up to twice max_skew.
        self.replays = replays or ReplayCache(2 * max_skew)
        self.terminals = terminals
        self.acceptor = acceptor
        self.hasher = hasher
        self.clock = clock
        self.max_skew = max_skew
        self.issuers = issuers
        self.closing = False
        self.counts: dict[str, int] = {}

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def error(
        self,
        error: IntakeError,
        key: TerminalKey | None,
        body: dict[str, Any] | None = None,
    ) -> bytes:
        """The framed error response (signed when the terminal is known).

        It carries the request's key wherever the body could be read:
        ``txn_id``, or ``nonce`` for a ping (or for a body of unknown type
        that has one and no ``txn_id``).
        """
        self._count(error.code)
        answer = error_body(error)
        if body is not None:
            txn_id = body.get("txn_id")
            if answer["txn_id"] is None and isinstance(txn_id, str):
                answer["txn_id"] = txn_id
            nonce = body.get("nonce")
            if isinstance(nonce, str) and (
                body.get("type") == "ping" or answer["txn_id"] is None
            ):
                answer["nonce"] = nonce
        return response_frame(answer, key)

    def handle(
        self, frame: bytes, peer_cert: str | None = None
    ) -> bytes | defer.Deferred[bytes]:
        """Decide one request; see the module docstring.

        ``peer_cert``: the SHA-256 fingerprint of the connection's client
        certificate (TLS with client certificates), or None. A terminal
        pinned to a certificate (``cert_sha256``) is unknown on any other
        connection: a valid certificate for T1 cannot send as T2.
        """
        try:
            envelope = parse_envelope(frame)
        except IntakeError as e:
            return self.error(e, None)
        terminal = self.terminals.get(envelope.terminal)
        if terminal is None or not terminal.enabled:
            return self.error(
                IntakeError("unknown_terminal", _no_terminal(envelope.terminal)),
                None,
                _readable(envelope.body_bytes),
            )
        if terminal.cert_sha256 is not None and peer_cert != terminal.cert_sha256:
            log.warn(
                "terminal {terminal} refused: not its client certificate",
                terminal=terminal.id,
            )
            return self.error(
                IntakeError(
                    "unknown_terminal",
                    f"terminal {terminal.id} may not send over this connection "
                    "(its client certificate is another one)",
                ),
                None,
                _readable(envelope.body_bytes),
            )
        try:
            key = verify(envelope, terminal.keys)
        except IntakeError as e:
            log.warn("bad MAC terminal={terminal}", terminal=terminal.id)
            return self.error(e, None, _readable(envelope.body_bytes))
        body: dict[str, Any] | None = None
        try:
            body = parse_body(envelope)
            txn_id = _txn_id(body)
            if not terminal.allow(self.clock.seconds()):
                raise IntakeError(
                    "rate_limited",
                    f"terminal {terminal.id} is over its rate of "
                    f"{terminal.rate:g} requests per second",
                    txn_id,
                )
            now = self.clock.seconds()
            check_ts(body, now, self.max_skew)
            if txn_id is not None and body["type"] == "txn":
                replayed = self.replays.get(terminal.id, envelope.mac, now)
                if replayed is not None:
                    self._count("replayed")
                    return response_frame(
                        {
                            "type": "ack",
                            "txn_id": txn_id,
                            "status": "duplicate",
                            "ref": replayed.ref,
                            "alerts": replayed.alerts,
                        },
                        key,
                    )
            if body["type"] == "ping":
                nonce = validate_ping(body)
                self._count("pong")
                return response_frame({"type": "pong", "nonce": nonce}, key)
            txn = validate_txn(body, self.hasher)
            if txn.issuer is not None and txn.issuer not in self.issuers:
                raise IntakeError(
                    "invalid", f"issuer: no issuer profile {txn.issuer!r}", txn_id
                )
            if txn.issuer is not None and terminal.issuer not in (None, txn.issuer):
                raise IntakeError(
                    "invalid",
                    f"issuer: terminal {terminal.id} sends for issuer "
                    f"{terminal.issuer!r} only",
                    txn_id,
                )
        except IntakeError as e:
            readable = body if body is not None else _readable(envelope.body_bytes)
            return self.error(e, key, readable)
        if self.closing:
            return self.error(
                IntakeError("unavailable", "the gateway is shutting down", txn.txn_id),
                key,
            )
        d = self.acceptor.accept(terminal, txn)
        return d.addBoth(self._reply, txn, key, terminal, envelope.mac)

    def _reply(
        self,
        result: AcceptResult | Failure,
        txn: Txn,
        key: TerminalKey,
        terminal: Terminal,
        mac: str,
    ) -> bytes:
        # One callback for both outcomes (this runs for every transaction).
        # The terminal is authenticated: even an internal error is signed.
        if isinstance(result, Failure):
            return self._failed(result, txn, key, terminal)
        try:
            return self._answered(result, txn, key, terminal.id, mac)
        except Exception:
            return self._failed(Failure(), txn, key, terminal)

    def _answered(
        self,
        result: AcceptResult,
        txn: Txn,
        key: TerminalKey,
        terminal_id: str,
        mac: str,
    ) -> bytes:
        if result.status != "conflict":
            self.replays.put(
                terminal_id, mac, result.ref, result.alerts, self.clock.seconds()
            )
        if result.status == "conflict":
            return self.error(
                IntakeError(
                    "conflict",
                    f"txn_id {txn.txn_id!r} was already used by this terminal "
                    f"with different content (ref {result.ref})",
                    txn.txn_id,
                ),
                key,
            )
        self._count(result.status)
        return response_frame(
            {
                "type": "ack",
                "txn_id": txn.txn_id,
                "status": result.status,
                "ref": result.ref,
                "alerts": result.alerts,
            },
            key,
        )

    def _failed(
        self, failure: Failure, txn: Txn, key: TerminalKey, terminal: Terminal
    ) -> bytes:
        log.warn(
            "unavailable terminal={terminal} txn_id={txn_id} cause={cause}",
            terminal=terminal.id,
            txn_id=txn.txn_id,
            cause=failure.getErrorMessage(),
        )
        return self.error(
            IntakeError(
                "unavailable",
                "the store cannot commit right now; retry later",
                txn.txn_id,
            ),
            key,
        )


def _no_terminal(name: str) -> str:
    """The unknown_terminal message; the id is echoed only when it has the
    shape of one (never caller data that could be a card number)."""
    if re.fullmatch(r"[A-Za-z0-9._:-]{1,32}", name) and not re.search(
        r"[0-9]{12}", name
    ):
        return f"no enabled terminal {name!r}"
    return "no enabled terminal with that id"


def _readable(body_bytes: bytes) -> dict[str, Any] | None:
    """The body as a JSON object when it is one (to echo the request's key)."""
    try:
        value = orjson.loads(body_bytes)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _txn_id(body: dict[str, Any]) -> str | None:
    value = body.get("txn_id") if body.get("type") == "txn" else None
    return value if isinstance(value, str) else None
