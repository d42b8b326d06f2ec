"""Bind: one ClientService per connection, the SMPP bind inside the endpoint."""

from __future__ import annotations

from twisted.application.internet import backoffPolicy
from twisted.internet.task import Clock

from smsgw.carrier.bind import Bind
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status
from smsgw.session.esme import SessionSettings
from smsgw.testing import Connection, FakeEndpoint

POLICY = backoffPolicy(initialDelay=1.0, maxDelay=60.0, factor=2.0, jitter=lambda: 0.0)


def make_bind(
    pair: bool = False, **kw: object
) -> tuple[Bind, FakeEndpoint, FakeEndpoint, Clock]:
    clock = Clock()
    endpoint, rx_endpoint = FakeEndpoint(), FakeEndpoint()
    settings = SessionSettings(system_id="smsgw", password="secret", **kw)  # type: ignore[arg-type]
    bind = Bind(
        name="sim",
        settings=settings,
        endpoint=endpoint,
        rx_endpoint=rx_endpoint if pair else None,
        pair=pair,
        clock=clock,
        retry_policy=POLICY,
    )
    return bind, endpoint, rx_endpoint, clock


def answer_bind(conn: Connection, status: int = 0) -> P.Pdu:
    (req,) = conn.take()
    resp = P.RESPONSE_TYPE[req.command_id](
        sequence_number=req.sequence_number, command_status=status
    )
    conn.feed(resp)
    return req


def test_bind_is_bound_after_bind_resp() -> None:
    """Connecting sends bind_transceiver; its answer makes the bind ready."""
    bind, endpoint, _, _ = make_bind()
    ready: list[bool] = []
    bind.ready_listeners.append(lambda: ready.append(bind.bound))
    bind.startService()
    conn = endpoint.accept()
    assert not bind.bound
    req = answer_bind(conn)
    assert isinstance(req, P.BindTransceiver)
    assert bind.bound
    assert bind.state == "bound"
    assert ready == [True]
    assert bind.tx is bind.rx


def test_refused_connection_backs_off_exponentially() -> None:
    """Refused connections are retried after 2, 4, 8 s (initialDelay x factor^n)."""
    bind, endpoint, _, clock = make_bind()
    bind.startService()
    endpoint.refuse()
    assert bind.refusals == 0  # a refused connection is not a refused bind
    for delay in (2.0, 4.0, 8.0):
        clock.advance(delay - 0.01)
        assert endpoint.attempts == []
        clock.advance(0.01)
        assert len(endpoint.attempts) == 1
        endpoint.refuse()


def test_refused_bind_backs_off_like_a_refused_connection() -> None:
    """A bind answered ESME_RINVPASWD drops the link and retries after back-off."""
    bind, endpoint, _, clock = make_bind()
    bind.startService()
    conn = endpoint.accept()
    answer_bind(conn, Status.ESME_RINVPASWD)
    assert conn.transport.disconnecting
    conn.drop()
    assert not bind.bound
    assert bind.refusals == 1
    clock.advance(1.99)
    assert endpoint.attempts == []
    clock.advance(0.01)
    conn2 = endpoint.accept()
    answer_bind(conn2)
    assert bind.bound


def test_lost_connection_rebinds_after_back_off() -> None:
    """A dropped bound connection is re-established and re-bound."""
    bind, endpoint, _, clock = make_bind()
    bind.startService()
    conn = endpoint.accept()
    answer_bind(conn)
    conn.drop()
    assert not bind.bound
    clock.advance(2.0)
    answer_bind(endpoint.accept())
    assert bind.bound
    assert bind.binds == 2


def test_transmitter_receiver_pair_binds_both() -> None:
    """A pair opens two links: bind_transmitter for tx, bind_receiver for rx."""
    bind, tx_ep, rx_ep, _ = make_bind(pair=True)
    bind.startService()
    tx_req = answer_bind(tx_ep.accept())
    assert bind.state == "partial"
    assert bind.bound
    rx_req = answer_bind(rx_ep.accept())
    assert isinstance(tx_req, P.BindTransmitter)
    assert isinstance(rx_req, P.BindReceiver)
    assert bind.state == "bound"
    assert bind.tx is not bind.rx


def test_stop_unbinds_before_disconnecting() -> None:
    """stopService sends unbind, waits for the answer, closes, and leaves no timers."""
    bind, endpoint, _, clock = make_bind()
    bind.startService()
    conn = endpoint.accept()
    answer_bind(conn)
    stopped = bind.stopService()
    (unbind,) = conn.take()
    assert isinstance(unbind, P.Unbind)
    assert not stopped.called
    conn.feed(P.UnbindResp(sequence_number=unbind.sequence_number))
    assert conn.transport.disconnecting
    conn.drop("closed")
    assert stopped.called
    assert clock.getDelayedCalls() == []
    assert endpoint.attempts == []
