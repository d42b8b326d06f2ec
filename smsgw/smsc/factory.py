"""The SMSC simulator's shared state: SmscFactory owns message ids, message
states, receipts, held deliveries, MO injection and counters.

Receipts are not one callLater each: the factory keeps a deque of
(due_time, message_id, system_id, frame), ordered since the delay is fixed,
and a single timer at the head's due time that flushes everything due. The
timer runs only while a connection is open; a binding receiver or a query
catches up with whatever fell due meanwhile. A receipt or MO for a system_id
with no receiver bound is held (bounded, oldest dropped with a warning) and
sent when one binds.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from typing_extensions import override

from smsgw.codec import pdu as P
from smsgw.codec.constants import MessageState, command_name
from smsgw.codec.segment import ConcatMethod
from smsgw.smsc.core import (
    IdAllocator,
    MessageStore,
    MoEncoding,
    Received,
    build_mo_pdus,
    build_receipt,
)
from smsgw.smsc.protocol import SmscProtocol
from smsgw.smsc.settings import RECEIPT_STATES, SmscSettings

_EPSILON = 1e-9  # float slack when comparing a due time with the clock


class SmscFactory(ServerFactory[SmscProtocol]):
    """The simulator's shared state: accounts, ids, message states, receipts,
    held deliveries, received messages and counters."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        settings: SmscSettings,
        clock: IReactorTime,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(settings.seed)
        self.log_received = settings.log_received
        self.ids = IdAllocator(settings.id_format)
        self.store = MessageStore(settings.keep_messages)
        self.received: deque[Received] = deque(maxlen=settings.keep_received)
        self.connections: list[SmscProtocol] = []
        self._state = RECEIPT_STATES[settings.receipt_state]
        self._due: deque[tuple[float, str, str, bytes | None]] = deque()
        self._timer: IDelayedCall | None = None
        self._held: dict[str, deque[tuple[bytes, bool]]] = {}
        self._receivers: dict[str, list[SmscProtocol]] = {}
        self._rr = 0
        self._mo_ref = 0
        self.binds_total = 0
        self.submits = 0
        self.throttled = 0
        self.receipts_sent = 0
        self.receipts_scheduled = 0
        self.receipts_held = 0
        self.mo_sent = 0
        self.mo_held = 0
        self.dropped = 0
        self.deliver_sm_errors = 0
        self.deliver_sm_unanswered_closed = 0

    @override
    def buildProtocol(self, addr: IAddress | None) -> SmscProtocol:
        host, port = getattr(addr, "host", None), getattr(addr, "port", None)
        peer = f"{host}:{port}" if host is not None else str(addr)
        return SmscProtocol(self, peer)

    @override
    def stopFactory(self) -> None:
        self._cancel_timer()

    # -- sessions ---------------------------------------------------------------

    def connection_made(self, session: SmscProtocol) -> None:
        """Count a new connection; restart the receipt timer if it was idle."""
        self.connections.append(session)
        self._arm()

    def connection_lost(self, session: SmscProtocol) -> None:
        """Forget a connection; stop the timer when none is left."""
        self.session_unbound(session)
        if session in self.connections:
            self.connections.remove(session)
        self.deliver_sm_unanswered_closed += session.stats.deliver_sm_unanswered
        if not self.connections:
            self._cancel_timer()

    def session_bound(self, session: SmscProtocol) -> None:
        """Register a bound session; a receiver gets what was held for it."""
        self.binds_total += 1
        if not session.can_receive:
            return
        sid = session.system_id
        self._receivers.setdefault(sid, []).append(session)
        held = self._held.pop(sid, None)
        if held:
            self.log.info(
                "sending {count} held deliver_sm to system_id={system_id}",
                count=len(held),
                system_id=sid,
            )
            for frame, is_receipt in held:
                self._count_held(is_receipt, -1)
                self._sent(session, frame, is_receipt)
        self._flush()

    def session_unbound(self, session: SmscProtocol) -> None:
        """Send nothing more to ``session``."""
        sessions = self._receivers.get(session.system_id)
        if sessions and session in sessions:
            sessions.remove(session)
            if not sessions:
                del self._receivers[session.system_id]

    # -- messages ---------------------------------------------------------------

    def accept(
        self, session: SmscProtocol, pdu: P.SubmitSm | P.DataSm, short_message: bytes
    ) -> str:
        """Record an accepted message, schedule its receipt; return its id."""
        now = self.clock.seconds()
        message_id = self.ids.allocate()
        self.store.add(message_id)
        self.submits += 1
        s = self.settings
        self.received.append(
            Received(
                session.system_id,
                pdu.source_addr,
                pdu.destination_addr,
                pdu.data_coding,
                pdu.esm_class,
                short_message,
                pdu.tlvs,
                message_id,
                now,
                pdu.registered_delivery,
            )
        )
        if self.log_received:
            self.log.info(
                "received {command} system_id={system_id} seq={seq} "
                "message_id={message_id} source={source} destination={destination} "
                "data_coding={data_coding} esm_class={esm_class} short_message={sm}",
                command=command_name(pdu.command_id),
                system_id=session.system_id,
                seq=pdu.sequence_number,
                message_id=message_id,
                source=_masked(pdu.source_addr),
                destination=_masked(pdu.destination_addr),
                data_coding=pdu.data_coding,
                esm_class=pdu.esm_class,
                sm=short_message.hex(),
            )
        frame = None
        if s.receipts and pdu.registered_delivery & 1:
            receipt = build_receipt(
                pdu,
                message_id,
                submit_time=now,
                done_time=now + s.receipt_delay,
                stat=s.receipt_state,
                state=self._state,
                with_tlvs=s.receipt_tlvs,
            )
            frame = P.encode(receipt)
            self.receipts_scheduled += 1
        self._due.append((now + s.receipt_delay, message_id, session.system_id, frame))
        if self._timer is None:
            self._arm()
        return message_id

    def query(self, message_id: str) -> tuple[int, float | None] | None:
        """Return (message_state, final_time) of a message, or None if unknown."""
        self._flush()
        return self.store.get(message_id)

    def is_open(self, message_id: str) -> bool:
        """True when the id is known and not in a final state."""
        self._flush()
        return self.store.is_open(message_id)

    def cancel(self, message_id: str) -> bool:
        """Cancel an open message (its receipt is not sent); False otherwise."""
        self._flush()
        return self.store.finish(message_id, MessageState.DELETED, self.clock.seconds())

    def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        encoding: MoEncoding = "auto",
        method: ConcatMethod = "udh8",
        data_coding: int | None = None,
        system_id: str | None = None,
    ) -> int:
        """Send a mobile-originated message as deliver_sm PDUs; return how many.

        They go to one receiver-capable session of ``system_id`` (default: the
        first account) or are held until one binds. Raises ValueError for text
        the encoding cannot carry.
        """
        self._mo_ref += 1
        ref = self._mo_ref % 256 if method == "udh8" else self._mo_ref % 65536
        pdus = build_mo_pdus(
            source,
            destination,
            text,
            encoding=encoding,
            method=method,
            data_coding=data_coding,
            ref=ref,
        )
        frames = [P.encode(pdu) for pdu in pdus]
        self._route(system_id or self.settings.accounts[0][0], frames, False)
        return len(frames)

    def inject_raw(self, pdu: P.DeliverSm, *, system_id: str | None = None) -> None:
        """Send ``pdu`` as is (its sequence number replaced) like an MO."""
        self._route(system_id or self.settings.accounts[0][0], [P.encode(pdu)], False)

    # -- receipts and routing -----------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None and self._due and self.connections:
            delay = self._due[0][0] - self.clock.seconds()
            self._timer = self.clock.callLater(max(0.0, delay), self._flush)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        """Finish every message now due and send its receipt; re-arm the timer."""
        self._cancel_timer()
        now = self.clock.seconds()
        limit = now + _EPSILON
        due, store, state = self._due, self.store, self._state
        while due and due[0][0] <= limit:
            _, message_id, system_id, frame = due.popleft()
            if frame is not None:
                self.receipts_scheduled -= 1
            if not store.finish(message_id, state, now) and store.get(message_id):
                continue  # cancelled: no receipt
            if frame is not None:
                self._route(system_id, [frame], True)
        self._arm()

    def _route(self, system_id: str, frames: list[bytes], is_receipt: bool) -> None:
        sessions = self._receivers.get(system_id)
        if not sessions:
            self._hold(system_id, frames, is_receipt)
            return
        if len(sessions) == 1:
            session = sessions[0]
        else:
            self._rr += 1
            session = sessions[self._rr % len(sessions)]
        for frame in frames:
            self._sent(session, frame, is_receipt)

    def _sent(self, session: SmscProtocol, frame: bytes, is_receipt: bool) -> None:
        session.send_deliver(frame)
        if is_receipt:
            self.receipts_sent += 1
            session.stats.receipts_sent += 1
        else:
            self.mo_sent += 1
            session.stats.mo_sent += 1

    def _hold(self, system_id: str, frames: list[bytes], is_receipt: bool) -> None:
        queue = self._held.setdefault(system_id, deque())
        limit = self.settings.max_held
        for frame in frames:
            if len(queue) >= limit:
                if queue:
                    _, dropped_receipt = queue.popleft()
                    self._count_held(dropped_receipt, -1)
                self._dropped(system_id)
                if not limit:
                    continue
            queue.append((frame, is_receipt))
            self._count_held(is_receipt, 1)

    def _count_held(self, is_receipt: bool, delta: int) -> None:
        if is_receipt:
            self.receipts_held += delta
        else:
            self.mo_held += delta

    def _dropped(self, system_id: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            self.log.warn(
                "no receiver bound for system_id={system_id}: dropped the oldest "
                "held deliver_sm ({dropped} so far)",
                system_id=system_id,
                dropped=self.dropped,
            )

    # -- inspection ---------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return the counters as a JSON-ready dict."""
        bound = [c for c in self.connections if c.bound]
        return {
            "binds": len(bound),
            "binds_total": self.binds_total,
            "connections": len(self.connections),
            "submits": self.submits,
            "throttled": self.throttled,
            "receipts_sent": self.receipts_sent,
            "receipts_pending": self.receipts_scheduled + self.receipts_held,
            "receipts_held": self.receipts_held,
            "mo_sent": self.mo_sent,
            "mo_held": self.mo_held,
            "held_dropped": self.dropped,
            "deliver_sm_unanswered": self.deliver_sm_unanswered_closed
            + sum(c.unanswered for c in self.connections),
            "deliver_sm_errors": self.deliver_sm_errors,
            "per_bind": [
                asdict(c.stats) | {"deliver_sm_unanswered": c.unanswered} for c in bound
            ],
        }

    def received_list(
        self, limit: int | None = None, destination: str | None = None
    ) -> list[Received]:
        """Return the kept received messages, oldest first: the last ``limit``,
        only those to ``destination`` when given."""
        items: list[Received] = list(self.received)
        if destination is not None:
            items = [r for r in items if r.destination_addr == destination]
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return items


def _masked(address: str) -> str:
    """A number as the log shows it: 8613800138000 -> 86138****8000 (short
    codes and alphanumeric sender ids, 8 characters or fewer, as they are)."""
    if len(address) <= 8:
        return address
    return address[:5] + "****" + address[-4:]
