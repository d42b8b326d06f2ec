"""Socket options for SMPP links."""

from __future__ import annotations

from twisted.internet.interfaces import ITCPTransport


def no_delay(transport: object) -> None:
    """Turn Nagle's algorithm off on a TCP transport (no-op for others).

    SMPP exchanges many small PDUs in both directions; with Nagle on, a small
    write waits for the peer's (possibly delayed) ACK.
    """
    if ITCPTransport.providedBy(transport):
        transport.setTcpNoDelay(True)
