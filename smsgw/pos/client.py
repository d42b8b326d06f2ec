"""The terminal side of intake v1: signed requests out, checked responses in.

intake-v1.md, Transport: a client may pipeline, and responses come back in the
order the requests arrived, so answers are matched to requests first in, first
out. Each response is also checked against the request's key (``txn_id``, or
``nonce`` for a ping) whenever it carries one, and its MAC is verified with the
key that signed the request. A response whose MAC is present but wrong, or
that names another request, fails that request with `ResponseError`; a null
MAC is reported as ``mac_null`` (untrusted, never an acknowledgement).

Parsing and checking a response is the pure `check_response`; the protocol
only keeps the FIFO, the clock readings and the optional response timers.
"""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from typing_extensions import override

from smsgw.intake.envelope import TerminalKey, request_frame
from smsgw.session.tcp import no_delay

__all__ = [
    "ACCEPTED",
    "IntakeClientFactory",
    "IntakeClientProtocol",
    "RequestLost",
    "Response",
    "ResponseError",
    "ResponseTimeout",
    "check_response",
    "request_key",
]

MAX_FRAME = 65536
ACCEPTED = frozenset({"accepted", "duplicate"})


class ResponseError(Exception):
    """A response the terminal cannot trust or match to its request."""


class RequestLost(Exception):
    """The connection ended (or was ended) before the request was answered."""


class ResponseTimeout(RequestLost):
    """No response within the client's timeout; the connection is then closed."""


@dataclass(frozen=True, slots=True)
class Response:
    """One checked response.

    ``body`` is the parsed response body; ``signed`` is True when its MAC
    verified with the request's key; ``mac_null`` when the gateway sent no MAC
    (it could not authenticate the request); ``latency`` is seconds from the
    write of the request to the arrival of this response on the client's clock.
    """

    body: dict[str, Any]
    signed: bool
    mac_null: bool
    latency: float = 0.0

    @property
    def outcome(self) -> str:
        """What the gateway said: ``accepted``/``duplicate`` for a signed ack,
        the error ``code`` for an error, ``pong``, or ``untrusted_ack`` for an
        ack without a MAC (spec: never an acknowledgement)."""
        body = self.body
        kind = body.get("type")
        if kind == "ack":
            if not self.signed:
                return "untrusted_ack"
            return str(body.get("status"))
        if kind == "error":
            return str(body.get("code"))
        return str(kind)

    @property
    def accepted(self) -> bool:
        """True for a signed ack with status ``accepted`` or ``duplicate``."""
        return self.signed and self.outcome in ACCEPTED


def request_key(body: dict[str, Any]) -> tuple[str, object]:
    """The name and value of a request's key: ``txn_id``, or ``nonce`` for a ping.

    Returns the value as sent (None when the body has none).
    """
    name = "nonce" if body.get("type") == "ping" else "txn_id"
    return name, body.get(name)


def check_response(
    frame: bytes, key: TerminalKey, key_name: str, key_value: object
) -> Response:
    """Parse and check one response frame (without its length prefix).

    Returns the `Response` (latency 0). Raises ResponseError when the envelope
    or body is not the spec's shape, when the MAC is present but does not
    verify with ``key``, or when the body carries a ``key_name`` other than
    ``key_value``.
    """
    try:
        envelope = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise ResponseError(f"response is not valid JSON: {e}") from None
    if not isinstance(envelope, dict):
        raise ResponseError("response must be a JSON object")
    text = envelope.get("body")
    mac = envelope.get("mac")
    if not isinstance(text, str):
        raise ResponseError("response field 'body' must be a string")
    if mac is not None and not isinstance(mac, str):
        raise ResponseError("response field 'mac' must be a string or null")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ResponseError("response body cannot be encoded as UTF-8") from None
    if mac is not None:
        expected = key.sign(data).encode("ascii")
        if not hmac.compare_digest(expected, mac.encode("ascii", "replace")):
            raise ResponseError("response MAC does not verify with the terminal key")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ResponseError(f"response body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ResponseError("response body must be a JSON object")
    answered = body.get(key_name)
    if answered is not None and answered != key_value:
        raise ResponseError(
            f"response {key_name} {answered!r} does not match the request's "
            f"{key_value!r} (responses out of order?)"
        )
    return Response(body, signed=mac is not None, mac_null=mac is None)


class _Pending:
    __slots__ = ("deferred", "key", "key_name", "key_value", "sent_at")

    def __init__(
        self,
        deferred: Deferred[Response],
        key: TerminalKey,
        key_name: str,
        key_value: object,
        sent_at: float,
    ) -> None:
        self.deferred = deferred
        self.key = key
        self.key_name = key_name
        self.key_value = key_value
        self.sent_at = sent_at


class IntakeClientProtocol(Int32StringReceiver):
    """One terminal (or switch) connection to the intake port.

    `send` writes a signed request at once and returns a Deferred that fires
    with its `Response`; any number may be outstanding (pipelining). When the
    connection is lost every outstanding request fails with `RequestLost`.
    With a ``timeout``, a request unanswered that long fails with
    `ResponseTimeout` and the connection is closed (later answers could no
    longer be matched in order).
    """

    MAX_LENGTH = MAX_FRAME
    log = Logger()

    def __init__(
        self,
        terminal: str,
        key: TerminalKey,
        clock: IReactorTime,
        *,
        timeout: float | None = None,
    ) -> None:
        self.terminal = terminal
        self.key = key
        self.clock = clock
        self.timeout = timeout
        self._pending: deque[_Pending] = deque()
        # One timer for every outstanding request: they share one timeout and
        # are answered in order, so only the oldest can be the next to time
        # out (a timer per request cost more than signing it).
        self._timer: IDelayedCall | None = None
        self._transport: ITransport | None = None
        self._closed = False
        self._lost_reason = "not connected"

    @property
    def outstanding(self) -> int:
        """Requests written and not yet answered."""
        return len(self._pending)

    @property
    def open(self) -> bool:
        """True while requests can be sent on this connection."""
        return self._transport is not None and not self._closed

    @override
    def connectionMade(self) -> None:
        self._transport = self.transport
        no_delay(self.transport)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._closed:
            self._closed = True
            self._lost_reason = reason.getErrorMessage()
        self._fail_all(RequestLost(f"connection lost: {self._lost_reason}"))

    def send(
        self,
        body: dict[str, Any],
        *,
        terminal: str | None = None,
        key: TerminalKey | None = None,
    ) -> Deferred[Response]:
        """Sign and write one request (as ``terminal`` with ``key``, by default
        this connection's).

        Returns a Deferred firing with the checked `Response`, or failing with
        ResponseError, RequestLost or ResponseTimeout.
        """
        if not self.open:
            return _failed(RequestLost(f"connection closed: {self._lost_reason}"))
        sign_with = key if key is not None else self.key
        name, value = request_key(body)
        frame = request_frame(
            terminal if terminal is not None else self.terminal, body, sign_with
        )
        d: Deferred[Response] = Deferred()
        entry = _Pending(d, sign_with, name, value, self.clock.seconds())
        self._pending.append(entry)
        if self.timeout is not None and self._timer is None:
            self._timer = self.clock.callLater(self.timeout, self._check_timeout)
        assert self._transport is not None
        self._transport.write(frame)
        return d

    def close(self) -> None:
        """Close the connection; outstanding requests then fail (RequestLost)."""
        if self._transport is not None and not self._closed:
            self._closed = True
            self._lost_reason = "closed by the client"
            self._transport.loseConnection()

    @override
    def stringReceived(self, string: bytes) -> None:
        if not self._pending:
            if self._closed:
                return  # frames still buffered after we gave up
            self.log.warn(
                "intake response with no request outstanding terminal={terminal}; "
                "closing",
                terminal=self.terminal,
            )
            self.close()
            return
        entry = self._pending.popleft()
        if not self._pending and self._timer is not None:
            self._timer.cancel()  # nothing left to time out
            self._timer = None
        try:
            response = check_response(
                string, entry.key, entry.key_name, entry.key_value
            )
        except ResponseError as e:
            entry.deferred.errback(Failure(e))
            return
        latency = self.clock.seconds() - entry.sent_at
        entry.deferred.callback(
            Response(response.body, response.signed, response.mac_null, latency)
        )

    @override
    def lengthLimitExceeded(self, length: int) -> None:
        # Nothing after an oversized frame can be framed again: give up.
        self._fail_all(
            ResponseError(f"response frame of {length} bytes is over {MAX_FRAME}")
        )
        self.close()

    def _check_timeout(self) -> None:
        """The timer fired: fail the oldest request if it is due, else wait
        for the (new) oldest one's turn."""
        self._timer = None
        if not self._pending or self.timeout is None:
            return
        due = self._pending[0].sent_at + self.timeout
        now = self.clock.seconds()
        if due > now:
            self._timer = self.clock.callLater(due - now, self._check_timeout)
            return
        # Requests are answered in order, so its late answer would be taken
        # for the next one's: give up on the connection.
        entry = self._pending.popleft()
        entry.deferred.errback(
            Failure(ResponseTimeout(f"no response within {self.timeout:g} s"))
        )
        self.close()

    def _fail_all(self, error: Exception) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self._pending = self._pending, deque()
        for entry in pending:
            entry.deferred.errback(Failure(error))


def _failed(error: Exception) -> Deferred[Response]:
    d: Deferred[Response] = Deferred()
    d.errback(Failure(error))
    return d


class IntakeClientFactory(Factory[IntakeClientProtocol]):
    """Makes `IntakeClientProtocol` connections for one terminal and key."""

    def __init__(
        self,
        terminal: str,
        key: TerminalKey,
        clock: IReactorTime,
        *,
        timeout: float | None = None,
    ) -> None:
        self.terminal = terminal
        self.key = key
        self.clock = clock
        self.timeout = timeout

    @override
    def buildProtocol(self, addr: IAddress | None) -> IntakeClientProtocol:
        proto = IntakeClientProtocol(
            self.terminal, self.key, self.clock, timeout=self.timeout
        )
        proto.factory = self
        return proto
